"""Workarounds for pyTelegramBotAPI 4.37.1's bugs on the paid-media path: the one place that patches telebot.

Each patch steps aside by itself once the library is fixed: it acts only
where telebot's own reading leaves the field out.

1. ``PaidMediaPurchased.de_json`` reads ``from_user`` where Telegram sends
   ``from`` (https://core.telegram.org/bots/api#paidmediapurchased): every
   ``purchased_paid_media`` update fails to parse, and the sale would be
   skipped (bot.read_update). The update is read with ``from`` as its buyer.
2. ``TransactionPartnerUser`` drops ``paid_media_payload``, which names what
   a paid-media payment in the Stars ledger bought: it is kept on the object.
"""
from __future__ import annotations

from telebot import types

_read_purchase = types.PaidMediaPurchased.de_json
_read_partner = types.TransactionPartnerUser.de_json


def read_paid_media_purchase(json_string):
    """PaidMediaPurchased from Telegram's JSON, whose buyer is under "from" (telebot 4.37.1 wants "from_user")."""
    if json_string is None:
        return None
    obj = types.JsonDeserializable.check_json(json_string)
    try:
        return _read_purchase(obj)  # a fixed telebot reads "from" itself
    except KeyError:
        if "from" not in obj or "from_user" in obj:
            raise
    obj["from_user"] = obj.pop("from")
    return _read_purchase(obj)


def read_transaction_partner_user(json_string):
    """TransactionPartnerUser, with the paid_media_payload telebot 4.37.1 drops."""
    if json_string is None:
        return None
    obj = types.JsonDeserializable.check_json(json_string)
    partner = _read_partner(obj)
    if getattr(partner, "paid_media_payload", None) is None:
        partner.paid_media_payload = obj.get("paid_media_payload")
    return partner


def patch_telebot() -> None:
    """Install both workarounds (idempotent): telebot looks these classes up at each update it reads."""
    types.PaidMediaPurchased.de_json = read_paid_media_purchase
    types.TransactionPartnerUser.de_json = read_transaction_partner_user
