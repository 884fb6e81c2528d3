"""Paid media: photos and videos sold the way Telegram shows them, blurred until paid, unlocked in place.

Reading order: ... checkout.py → **paid_media.py** → ledger.py → ...

A 📸 paid-media product is up to 10 photos and videos with a caption, priced
in Stars (Telegram sells paid media for Stars only). There is no invoice and
no pre-checkout: Telegram itself takes the Stars.

1. **The seller adds it** in ➕ Add product (admin.py): the photos and videos
   one message at a time, ✅ Done, then its name, price, description and
   caption. Wrong input is explained and asked again.
2. **Buy** sends the customer the paid media itself (sendPaidMedia), blurred,
   with a payload that names the product, the customer and the price, and a
   token of its own: each payload is one sale at most.
3. **Telegram's purchased_paid_media update** says who bought which payload:
   a purchase is recorded at once, once per payload however often the update
   comes, and the admins hear of the sale. The update carries no charge id;
   Telegram's Stars ledger does (ledger.py reads it every 10 minutes, and this
   chapter looks once right after the sale), so that the seller's ↩️ Refund and
   Telegram's refunds reach the purchase. A sale the update missed is recorded
   from the ledger.
4. **📦 My purchases** sends it again as plain photos and videos: the buyer
   paid, and Telegram keeps the original unlocked for them anyway.
5. **📣 Post to channel** (channels.py checks the bot's rights) puts the same
   paid media in the seller's channel. Telegram pays a channel's paid media to
   the channel's own balance and tells the bot nothing: the shop counts none
   of those sales, and says so.

A promo code cannot lower a price Telegram collects itself, and a gift cannot
be bought for someone else: the card says so (models.Product.one_off).
"""
from __future__ import annotations

import html
import logging
import secrets
from dataclasses import dataclass
from typing import NamedTuple

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from telebot import TeleBot, types
from telebot.apihelper import ApiException

from checkout import ADMIN_PURCHASE, sale_notice
from menus import ADMIN
from models import PAID_MEDIA, Product, Purchase, owned_purchase_id, save_user
from purchases import deliver
from shopkit import (
    CANCEL,
    SKIP,
    STARS,
    After,
    Handlers,
    InputError,
    Screen,
    Setting,
    Shop,
    Tap,
    Toast,
    add_handlers,
    ask,
    call_api,
    chat_of,
    counted,
    describe_user,
    end_dialog,
    format_price,
    is_id,
    keyboard,
    label,
    language_of,
    notify_admins,
    run_handler,
    send,
    show_reply,
    text,
    utcnow,
    utf16_len,
)
from storefront import BUY_MEDIA

logger = logging.getLogger("shopbot")
handlers = Handlers()
seller = Handlers(admin=True)

# The buttons of this chapter's screens (admin.py shows them; channels.py answers 📣 Post to channel).
MEDIA_DONE = Tap("media_done")
POST_TO_CHANNEL = Tap("post_to_channel", "product_id")

# Telegram's limits on sendPaidMedia.
MAX_ITEMS = 10
MAX_PAID_MEDIA_STARS = 25_000
CAPTION_MAX = 1024  # characters, after HTML

# ---------------------------------------------------------------------------
# 1. The seller's photos and videos, and what else is asked
# ---------------------------------------------------------------------------

def ask_media(shop: Shop, session: Session, call: types.CallbackQuery, category_id: int) -> Screen:
    """📸 Paid media in ➕ Add product: first its photos and videos. Telegram sells paid media for Stars only: a shop
    that takes cards is told so, and offered nothing (as for subscriptions)."""
    lang = language_of(call.from_user)
    if shop.config.currency != STARS:
        return Screen(text(lang, "admin_paid_media_needs_stars"), keyboard([ADMIN.button(label(lang, "btn_back"))]))
    end_dialog(session, call)
    ask(session, call, "paid_media_items", "admin_ask_paid_media", {"limit": MAX_ITEMS}, category_id=category_id,
        media=[])
    return with_done(lang, text(lang, "admin_ask_paid_media", limit=MAX_ITEMS))


def media_item(message: types.Message) -> dict:
    """A photo (its largest size) or a video, as a paid media item; anything else is refused."""
    if message.content_type == "photo":
        return {"type": "photo", "file_id": message.photo[-1].file_id}
    if message.content_type == "video":
        return {"type": "video", "file_id": message.video.file_id}
    raise InputError("err_paid_media_kind")


def media_so_far(lang: str, count: int, problem: str | None = None) -> Screen:
    """How many photos and videos came so far, with ✅ Done; ``problem`` (a text key) first, when the last one
    was refused."""
    parts = [text(lang, problem, limit=MAX_ITEMS)] if problem else []
    parts.append(text(lang, "admin_paid_media_so_far", count=count, limit=MAX_ITEMS))
    return with_done(lang, "\n\n".join(parts))


def with_done(lang: str, html_text: str) -> Screen:
    """A screen of the photos-and-videos step: ✅ Done (admin.tap_media_done) and ✖️ Cancel under it."""
    return Screen(html_text, keyboard([MEDIA_DONE.button(label(lang, "btn_done"))],
                                      [CANCEL.button(label(lang, "btn_cancel"))]))


@seller.answer("paid_media_items")
def answer_media_item(shop: Shop, message: types.Message, session: Session, lang: str, dialog: dict) -> Screen:
    """One photo or video for the new 📸 product, up to 10; a document, a sticker or an 11th is refused."""
    media = dialog["media"]
    if len(media) >= MAX_ITEMS:
        return media_so_far(lang, len(media), "err_paid_media_full")
    try:
        media = [*media, media_item(message)]
    except InputError as error:
        return media_so_far(lang, len(media), error.key)
    ask(session, message, "paid_media_items", "admin_ask_paid_media", {"limit": MAX_ITEMS}, media=media)
    return media_so_far(lang, len(media))


def collected_media(dialog: dict | None) -> list[dict] | None:
    """The photos and videos of the dialog at ✅ Done (admin.tap_media_done), or None without any."""
    return (dialog or {}).get("media") or None


def check_price(price: int) -> None:
    """Paid media costs 1 to 25,000 Stars: Telegram's limits (there is no free paid media)."""
    if not 1 <= price <= MAX_PAID_MEDIA_STARS:
        raise InputError("err_paid_media_price", limit=format_price(MAX_PAID_MEDIA_STARS, STARS))


def read_caption(message: types.Message) -> dict:
    """The caption under the photos, /skip for none: at most 1,024 characters, as Telegram counts them."""
    if message.content_type != "text":
        raise InputError("err_expected_text")
    caption = message.text.replace("\0", "").strip()  # NUL: PostgreSQL refuses it in a text
    if caption == SKIP:
        return {"caption": ""}
    if utf16_len(caption) > CAPTION_MAX:
        raise InputError("err_caption_too_long", limit=CAPTION_MAX, length=utf16_len(caption))
    return {"caption": caption}


def media_summary(lang: str, product: Product) -> tuple[str, list]:
    """A 📸 product's stock line on its admin screen (plain text), with 📣 Post to channel."""
    media = product.media or []
    photos = sum(item["type"] == "photo" for item in media)
    line = label(lang, "admin_paid_media", photos=counted(lang, "n_photos", photos),
                 videos=counted(lang, "n_videos", len(media) - photos))
    return line, [POST_TO_CHANNEL.button(label(lang, "btn_post_to_channel"), product_id=product.id)]


# ---------------------------------------------------------------------------
# 2. Buy: the paid media itself, blurred, in the customer's chat
# ---------------------------------------------------------------------------

# The payload names the product, the buyer and the price asked, and a random token: one payload, one sale.
# At most 128 bytes; like an invoice's (checkout.py), this form is read for as long as such messages exist.
PAYLOAD_VERSION = "media1"


class Payload(NamedTuple):
    product_id: int
    buyer_id: int
    price: int


def new_payload(product_id: int, buyer_id: int, price: int) -> str:
    """'media1:42:1001:150:9f2c4e1a': product 42 for user 1001 at 150 ⭐ (about 40 bytes)."""
    return f"{PAYLOAD_VERSION}:{product_id}:{buyer_id}:{price}:{secrets.token_hex(4)}"


def parse_payload(payload: str | None) -> Payload | None:
    """'media1:42:1001:150:…' -> (42, 1001, 150); None when it is not the shop's."""
    parts = (payload or "").split(":")
    if len(parts) != 5 or parts[0] != PAYLOAD_VERSION or not all(is_id(part) for part in parts[1:4]):
        return None
    return Payload(*map(int, parts[1:4]))


@dataclass(frozen=True)
class PaidMedia:
    """What sendPaidMedia sends of a product, read before the session closes."""

    price: int
    media: list
    caption: str
    protected: bool

    @classmethod
    def of(cls, product: Product) -> PaidMedia:
        return cls(product.price, list(product.media or []), product.caption, product.protected)


def send_paid_media(shop: Shop, chat_id: int, paid: PaidMedia, payload: str = "", person: bool = True):
    """sendPaidMedia: blurred until paid. To a person (blocked: None) with the payload that names the sale, or to a
    channel (``person=False``: any refusal is raised for the caller)."""
    media = [(types.InputPaidMediaPhoto if item["type"] == "photo" else types.InputPaidMediaVideo)(item["file_id"])
             for item in paid.media]
    return call_api(shop, chat_id if person else None, shop.bot.send_paid_media, chat_id, paid.price, media,
                    caption=html.escape(paid.caption, quote=False) or None, parse_mode="HTML",
                    payload=payload or None, protect_content=paid.protected or None)


@handlers.tap(BUY_MEDIA)
def tap_buy_media(shop: Shop, call: types.CallbackQuery, session: Session, lang: str, product_id: int):
    """Buy under a 📸 card: the paid media, blurred, below; an owner gets theirs again instead."""
    product = session.get(Product, product_id)
    if product is None or not product.is_active or product.kind != PAID_MEDIA or shop.config.currency != STARS:
        return Toast(text(lang, "unavailable"))
    owned = owned_purchase_id(session, call.from_user.id, product_id)
    if owned:
        return After(deliver, chat_of(call), owned, text(lang, "already_owned"), lang)
    payload = new_payload(product.id, call.from_user.id, product.price)
    return (Toast(text(lang, "paid_media_sent"), once_shown=True),
            After(send_paid_media, chat_of(call), PaidMedia.of(product), payload))


# ---------------------------------------------------------------------------
# 3. The sale: Telegram's purchased_paid_media update, and its ledger
# ---------------------------------------------------------------------------

def record_paid_media(session: Session, buyer: types.User, payload: str | None,
                      charge_id: str | None = None) -> tuple[Purchase | None, bool]:
    """The purchase of a paid-media payload, recorded once (ux_purchases_paid_media) and committed; whether it is
    new. ``charge_id`` (from the ledger) is written when known. (None, False) for a payload that is not the shop's.

    Telegram fills in the payload itself, so nobody can forge one; but the
    blurred message can be forwarded, and whoever pays for the forwarded copy
    has paid the shop all the same: the sale is theirs, recorded under the
    payload and their id (the one it was sent to may pay for their own copy too).
    """
    parsed = parse_payload(payload)
    if parsed is None:
        logger.warning("Paid media bought by user %s with a payload that is not the shop's: %r", buyer.id, payload)
        return None, False
    if parsed.buyer_id != buyer.id:
        logger.info("User %s paid for paid media sent to user %s (a forwarded copy)", buyer.id, parsed.buyer_id)
        payload = f"{payload}>{buyer.id}"
    existing = session.scalar(select(Purchase).where(Purchase.paid_media_payload == payload))
    if existing is None:
        product = session.get(Product, parsed.product_id)
        if product is None:  # deleted since: nobody had bought it, so nothing was kept to record it against
            logger.error("Paid media of deleted product %s bought by user %s (charge %s)", parsed.product_id,
                         buyer.id, charge_id)
            return None, False
        # delivered_at: Telegram unlocked it in the buyer's chat. Not once_per_customer: a second payment (two
        # messages bought) is money taken all the same, and must be recorded too.
        purchase = Purchase(user=save_user(session, buyer), product=product, price=parsed.price, currency=STARS,
                            payment_type="stars", payment_id=charge_id, paid_media_payload=payload,
                            delivered_at=utcnow())
        session.add(purchase)
        try:
            session.commit()
            return purchase, True
        except IntegrityError:  # the same payload, recorded by another thread a moment ago
            session.rollback()
            existing = session.scalar(select(Purchase).where(Purchase.paid_media_payload == payload))
            if existing is None:
                raise  # another constraint failed: the sale must not pass as recorded
    if charge_id and existing.payment_id is None:
        existing.payment_id = charge_id
        session.commit()
    return existing, False


def on_paid_media_purchased(shop: Shop, purchased: types.PaidMediaPurchased, session: Session, lang: str):
    """Telegram took the Stars and unlocked the paid media in the customer's chat: a purchase, recorded once."""
    buyer = purchased.from_user
    purchase, new = record_paid_media(session, buyer, purchased.paid_media_payload)
    if not new:
        return None
    logger.info("Paid media %r recorded as purchase %s", purchased.paid_media_payload, purchase.id)
    return (After(send, buyer.id, text(lang, "paid_media_thanks", name=purchase.product.name)), sale_notice(purchase),
            After(find_charge, purchased.paid_media_payload), *paid_twice(session, purchase))


def paid_twice(session: Session, purchase: Purchase) -> tuple:
    """Telegram lets a customer pay for two blurred copies of the same set (Buy tapped twice before paying), and
    has no pre-checkout to refuse the second: the admins are asked to refund it, with its purchase at hand."""
    earlier = session.scalar(select(Purchase.id).where(
        Purchase.user_id == purchase.user_id, Purchase.product_id == purchase.product_id, Purchase.id != purchase.id,
        Purchase.refunded_at.is_(None)).limit(1))
    if earlier is None:
        return ()
    logger.warning("User %s paid twice for paid media %s (purchases %s and %s)", purchase.user.telegram_id,
                   purchase.product_id, earlier, purchase.id)
    return (After(notify_admins, "admin_paid_media_twice", who=describe_user(purchase.user),
                  id=purchase.user.telegram_id, product=purchase.product.name,
                  amount=format_price(purchase.price, purchase.currency), purchase=purchase.id,
                  markup=keyboard([ADMIN_PURCHASE.button(f"🧾 #{purchase.id}", purchase_id=purchase.id)])),)


def paid_in_ledger(transaction: types.StarTransaction) -> bool:
    """A payment in Telegram's Stars ledger for paid media the shop sent to a customer."""
    source = transaction.source
    return (source is not None and source.type == "user" and source.transaction_type == "paid_media_payment"
            and parse_payload(getattr(source, "paid_media_payload", None)) is not None)


def record_from_ledger(shop: Shop, transaction: types.StarTransaction) -> bool:
    """A paid-media payment in Telegram's ledger (ledger.py): its charge id written on the purchase, or the purchase
    recorded if its update never came (the admins hear of that sale). True when it was recorded here."""
    with shop.Session() as session:
        purchase, new = record_paid_media(session, transaction.source.user, transaction.source.paid_media_payload,
                                          transaction.id)
        notice = sale_notice(purchase) if new else None
    if new:
        logger.warning("Paid media %s was recorded from Telegram's ledger: its update never came", transaction.id)
        show_reply(shop, None, notice)
    return new


def find_charge(shop: Shop, payload: str) -> None:
    """Right after a sale, look for its charge id in the part of Telegram's ledger not read yet (ledger.py reads
    it every 10 minutes anyway): with it, the seller can ↩️ Refund the purchase at once."""
    with shop.Session() as session:
        offset = session.get(Setting, "ledger_offset")
    if offset is None:  # the ledger has never been read: it starts at its end (ledger.start_at_the_end)
        return
    try:
        transactions = shop.bot.get_star_transactions(offset=int(offset.value), limit=100).transactions
    except ApiException as error:  # the next reading of the ledger finds it
        logger.warning("Could not look for the charge of paid media %r: %s", payload, error)
        return
    for transaction in transactions:
        if paid_in_ledger(transaction) and transaction.source.paid_media_payload == payload:
            record_from_ledger(shop, transaction)


def register(bot: TeleBot, shop: Shop) -> None:
    """Wire paid media into the bot: Buy, the seller's photos and videos, and Telegram's purchased_paid_media."""
    bot.register_purchased_paid_media_handler(lambda purchased: run_handler(shop, purchased, on_paid_media_purchased),
                                              func=lambda purchased: True)
    add_handlers(shop, handlers)
    add_handlers(shop, seller)
