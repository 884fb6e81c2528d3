"""Support: /paysupport, and the seller's answer.

Reading order: ... gifts.py → **support.py** → channels.py → ...

Telegram requires every bot that takes payments to answer /paysupport. Here
the customer's next message (a text or a screenshot) is copied to the admins,
with who is asking and their latest purchases, under a ↩️ Reply button; the
admin's answer reaches the customer from the bot. Neither side needs the
other's Telegram account. The question is over when the customer taps any
other button, or after 10 minutes; and one customer reaches the admins at
most 3 times an hour.
"""
from __future__ import annotations

import logging
import time

from sqlalchemy import select
from sqlalchemy.orm import Session
from telebot import TeleBot, types

from menus import ADMIN, menu_keyboard, menu_screen
from models import Product, Purchase, User
from shopkit import (
    After,
    Handlers,
    Screen,
    Setting,
    Shop,
    Tap,
    add_handlers,
    ask,
    call_api,
    describe_user,
    end_dialog,
    format_price,
    keyboard,
    label,
    language_for_code,
    language_of,
    notify_admins,
    put_setting,
    send,
    text,
)

logger = logging.getLogger("shopbot")
SUPPORT_MINUTES = 10  # a /paysupport question left unanswered this long is over
CONTACTS_PER_HOUR = 3  # how often one customer may reach the admins

customer = Handlers()  # the customer's message after /paysupport
seller = Handlers(admin=True)  # the seller's ↩️ Reply and their answer

# The button under a customer's question, and the number it carries.
REPLY = Tap("reply", "telegram_id")


def reply_keyboard(telegram_id: int):
    """The "reply to this customer" button under messages to the admins, in each admin's language."""
    return lambda lang: keyboard([REPLY.button(label(lang, "btn_reply"), telegram_id=telegram_id)])


def latest_purchases(session: Session, telegram_id: int) -> str:
    """'#12 Netflix — 150 ⭐ (charge id)' lines for the customer's three latest purchases."""
    recent = session.execute(
        select(Purchase.id, Product.name, Purchase.price, Purchase.currency, Purchase.payment_id)
        .join(User, Purchase.user_id == User.id).join(Product, Purchase.product_id == Product.id)
        .where(User.telegram_id == telegram_id)
        .order_by(Purchase.id.desc()).limit(3)).all()
    return "\n".join(f"#{p.id} {p.name} — {format_price(p.price, p.currency)} ({p.payment_id or '-'})"
                     for p in recent) or "—"


def recent_contacts(session: Session, telegram_id: int) -> list[int]:
    """When (Unix time) the customer reached the admins in the last hour."""
    setting = session.get(Setting, f"support:{telegram_id}")
    now = int(time.time())
    return [t for t in map(int, setting.value.split(",")) if now - t < 3600] if setting and setting.value else []


def count_contact(session: Session, telegram_id: int) -> bool:
    """Count one contact with the admins; False when the customer has had their share this hour."""
    contacts = recent_contacts(session, telegram_id)
    if len(contacts) >= CONTACTS_PER_HOUR:
        return False
    put_setting(session, f"support:{telegram_id}", ",".join(map(str, [*contacts, int(time.time())])))
    session.commit()
    return True


def uncount_contact(shop: Shop, telegram_id: int) -> None:
    """Forget the customer's latest contact with the admins: it never reached them."""
    with shop.Session() as session:
        put_setting(session, f"support:{telegram_id}", ",".join(map(str, recent_contacts(session, telegram_id)[:-1])))
        session.commit()


@customer.command("paysupport")
def on_paysupport(shop: Shop, message: types.Message, session: Session, lang: str) -> Screen:
    """/paysupport: the customer's next message goes to the admins."""
    if len(recent_contacts(session, message.from_user.id)) >= CONTACTS_PER_HOUR:
        return menu_screen(lang, "support_later")
    return ask(session, message, "support_message", "paysupport")


@customer.answer("support_message", expires_after=SUPPORT_MINUTES * 60)
def answer_support(shop: Shop, message: types.Message, session: Session, lang: str, dialog: dict):
    """The customer's message after /paysupport goes to the admins, with their latest purchases."""
    lang, customer = lang, message.from_user
    end_dialog(session, message)
    if not count_contact(session, customer.id):
        return menu_screen(lang, "support_later")
    return After(pass_on_to_seller, message, describe_user(customer), latest_purchases(session, customer.id),
                 reply_keyboard(customer.id), lang)


def pass_on_to_seller(shop: Shop, message: types.Message, who: str, purchases: str, markup, lang: str) -> None:
    """The customer's message, copied to the admins; "Sent to the seller" only once one of them has it."""
    received = notify_admins(shop, "admin_support_message", markup, copy_of=message, who=who,
                             id=message.from_user.id, purchases=purchases)
    if not received:  # an honest "try again later", and the try does not count against the customer
        logger.warning("The /paysupport message of user %s reached no admin", message.from_user.id)
        uncount_contact(shop, message.from_user.id)
    send(shop, message.chat.id, text(lang, "support_sent" if received else "support_unreachable"), menu_keyboard(lang))


@seller.tap(REPLY)
def tap_reply(shop: Shop, call: types.CallbackQuery, session: Session, lang: str, telegram_id: int) -> Screen:
    """↩️ Reply under a customer's message: the admin's next message goes to them."""
    end_dialog(session, call)
    screen = ask(session, call, "reply_to_customer", "admin_ask_reply", customer_id=telegram_id)
    screen.new_message = True  # below the customer's message, which stays
    return screen


def copy_to_customer(shop: Shop, message: types.Message, customer_id: int, customer_lang: str) -> None:
    """The admin's ``message``, copied to the customer under a line saying who it is from."""
    delivered = send(shop, customer_id, text(customer_lang, "seller_writes")) and call_api(
        shop, customer_id, shop.bot.copy_message, customer_id, message.chat.id, message.message_id)
    lang = language_of(message.from_user)
    send(shop, message.chat.id, text(lang, "admin_reply_sent" if delivered else "admin_reply_blocked"),
         keyboard([ADMIN.button(label(lang, "btn_back"))]))


@seller.answer("reply_to_customer")
def answer_reply(shop: Shop, message: types.Message, session: Session, lang: str, dialog: dict) -> After:
    """The admin's answer to a customer."""
    customer_id = dialog["customer_id"]
    end_dialog(session, message)
    language_code = session.scalar(select(User.language_code).where(User.telegram_id == customer_id))
    return After(copy_to_customer, message, customer_id, language_for_code(language_code))


def register(bot: TeleBot, shop: Shop) -> None:
    """Wire /paysupport and the replies into the bot."""
    add_handlers(shop, customer)
    add_handlers(shop, seller)
