"""Channels: the seller's side of 📅 subscriptions — the chat a product opens, its subscribers, the figures.

Reading order: ... support.py → **channels.py** → admin.py → ...

subscriptions.py lets paying customers into a channel or group and takes
them out when they stop paying. For that the bot must be an administrator of
the chat, allowed to invite users (its join links, and approving requests)
and to ban users (removing whoever stopped paying). When the seller adds a
📅 Subscription product, admin.py asks which chat it opens; ``read_chat``
checks the bot's rights there with getChatMember and explains exactly what is
missing. Then the product's admin screen lists its subscribers with their
dates, and 📊 Sales (sales.py) shows how many there are, the Stars they renew
for each month, and the month's renewals and cancellations.

A 📸 paid-media product (paid_media.py) can be posted in the seller's
channel: 📣 Post to channel asks which one, and ``read_chat`` checks there
the one right a post needs, explained the same way.
"""
from __future__ import annotations

import html
import logging
import re
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session
from telebot import TeleBot, types
from telebot.apihelper import ApiTelegramException

from menus import ADMIN
from models import PAID_MEDIA, Product, Purchase, Subscription, User, is_live, is_renewal
from paid_media import POST_TO_CHANNEL, PaidMedia, send_paid_media
from shopkit import (
    PAGE_SIZE,
    STARS,
    After,
    Handlers,
    InputError,
    Screen,
    Shop,
    Tap,
    Toast,
    add_handlers,
    ask,
    counted,
    describe_user,
    end_dialog,
    format_price,
    keyboard,
    label,
    language_of,
    page_count,
    pager_row,
    send,
    text,
    utcnow,
)
from subscriptions import bot_id, live, status_of

logger = logging.getLogger("shopbot")
handlers = Handlers(admin=True)

# The buttons of this chapter's screens, and the numbers each carries (admin.py answers ADMIN_PRODUCT).
SUBSCRIBERS = Tap("subscribers", "product_id", page=True)
ADMIN_PRODUCT = Tap("admin_product", "product_id")

MAX_STARS_A_MONTH = 10_000  # the most Telegram lets a subscription cost
LISTED = 10  # subscribers shown on a product's admin screen; 👥 All subscribers pages through the rest

# ---------------------------------------------------------------------------
# 1. The chat a 📅 product opens: admin.py asks for it when the product is added
# ---------------------------------------------------------------------------

# The administrator rights the bot needs: to make join links and approve requests, and to remove members.
RIGHTS = (("can_invite_users", "right_invite"), ("can_restrict_members", "right_ban"))


@dataclass(frozen=True)
class ChatNeeds:
    """What the bot must find in a chat the seller names, and the text keys that say what is missing."""

    kinds: tuple[str, ...]  # the chat's type
    rights: tuple[tuple[str, str], ...]  # (administrator right, text key of its name)
    wrong_kind: str
    not_admin: str


SUBSCRIPTION_CHAT = ChatNeeds(("channel", "supergroup"), RIGHTS, "err_chat_type", "err_chat_not_admin")
# 📣 Post to channel: paid media goes into a channel, where only an administrator allowed to post may post.
POST_CHANNEL = ChatNeeds(("channel",), (("can_post_messages", "right_post"),), "err_post_chat_type",
                         "err_post_not_admin")


def chat_reference(message: types.Message) -> int | str:
    """The chat a seller means: a forwarded post's chat, an @username (or t.me link), or a numeric id."""
    origin = message.forward_origin
    chat = getattr(origin, "chat", None) or getattr(origin, "sender_chat", None)
    if chat is not None:
        return chat.id
    words = (message.text or "").split() if origin is None else []
    word = re.sub(r"^(https?://)?t\.me/", "", words[0]) if len(words) == 1 else ""
    if re.fullmatch(r"-?\d{1,20}", word):
        return int(word)
    if re.fullmatch(r"@?[A-Za-z]\w{3,31}", word):
        return "@" + word.lstrip("@")
    raise InputError("err_chat_reference")


def read_chat(shop: Shop, message: types.Message, needs: ChatNeeds = SUBSCRIPTION_CHAT) -> dict:
    """The subscription's chat (or the channel to post in), checked with Telegram: {"chat_id", "chat_title"}, or
    an InputError that says exactly what is missing. It asks Telegram, so a dialog calls it before its first query."""
    try:
        chat = shop.bot.get_chat(chat_reference(message))
        me = shop.bot.get_chat_member(chat.id, bot_id(shop))
    except ApiTelegramException as error:  # not found, or the bot is not in it
        logger.info("Admin %s named a chat the bot cannot see: %s", message.from_user.id, error.description)
        raise InputError("err_chat_unreachable") from None
    if chat.type not in needs.kinds:
        raise InputError(needs.wrong_kind)
    if me.status != "administrator":
        raise InputError(needs.not_admin, chat=chat.title)
    missing = [key for right, key in needs.rights if not getattr(me, right, False)]
    if missing:
        raise InputError("err_chat_rights", chat=chat.title,
                         rights=lambda lang: ", ".join(label(lang, key) for key in missing))
    return {"chat_id": chat.id, "chat_title": chat.title}


def ask_chat(shop: Shop, session: Session, call: types.CallbackQuery, category_id: int) -> Screen:
    """📅 Subscription in ➕ Add product: first, the chat it opens (admin.answer_subscription_chat reads it).
    Telegram bills subscriptions in Stars only: a shop that takes cards is told so, and offered nothing."""
    lang = language_of(call.from_user)
    if shop.config.currency != STARS:
        return Screen(text(lang, "admin_subscription_needs_stars"),
                      keyboard([ADMIN.button(label(lang, "btn_back"))]))
    end_dialog(session, call)
    return ask(session, call, "subscription_chat", "admin_ask_subscription_chat", category_id=category_id)


def check_price(price: int) -> None:
    """A subscription costs 1 to 10,000 Stars a month: Telegram's limits."""
    if not 1 <= price <= MAX_STARS_A_MONTH:
        raise InputError("err_subscription_price", limit=format_price(MAX_STARS_A_MONTH, STARS))


# ---------------------------------------------------------------------------
# 2. Subscribers on the product's admin screen, and 📊 Sales
# ---------------------------------------------------------------------------

def count_subscribers(session: Session, product_id: int) -> int:
    """A product's subscribers whose access has not ended."""
    return session.scalar(select(func.count()).where(Subscription.product_id == product_id,
                                                     Subscription.ended_at.is_(None)))


def subscriber_lines(session: Session, lang: str, product_id: int, page: int, per_page: int) -> list[str]:
    """'• Alice (@alice) — until 2026-02-01', soonest first: the live subscribers, a page at a time."""
    rows = session.execute(select(Subscription, User).join(User, Subscription.user_id == User.id)
                           .where(Subscription.product_id == product_id, Subscription.ended_at.is_(None))
                           .order_by(Subscription.expires_at, Subscription.id)
                           .limit(per_page).offset(page * per_page)).all()
    return [label(lang, "admin_subscriber_line", who=describe_user(user), state=status_of(lang, subscription))
            for subscription, user in rows]


def subscribers_summary(session: Session, lang: str, product: Product) -> tuple[str, list]:
    """A 📅 product's stock line on its admin screen (plain text): its chat, subscribers and their dates."""
    total = count_subscribers(session, product.id)
    lines = [label(lang, "admin_subscribers", chat=product.chat_title,
                   subscribers=counted(lang, "n_subscribers", total))]
    lines += subscriber_lines(session, lang, product.id, 0, LISTED)
    if total <= LISTED:
        return "\n".join(lines), []
    lines.append(label(lang, "admin_subscribers_more", count=total - LISTED))
    return "\n".join(lines), [SUBSCRIBERS.button(label(lang, "btn_all_subscribers"), product_id=product.id, page=0)]


@handlers.tap(SUBSCRIBERS)
def tap_subscribers(shop: Shop, call: types.CallbackQuery, session: Session, lang: str, product_id: int, page: int):
    """👥 All subscribers of a 📅 product, with their dates, a page at a time."""
    product = session.get(Product, product_id)
    if product is None:
        return Toast(text(lang, "unavailable"))
    per_page = PAGE_SIZE * 3  # lines of text, not buttons: more fit
    pages = page_count(count_subscribers(session, product_id), per_page)
    lines = subscriber_lines(session, lang, product_id, min(page, pages - 1), per_page)
    return Screen("\n".join([text(lang, "admin_all_subscribers", name=product.name, chat=product.chat_title),
                             *[html.escape(line, quote=False) for line in lines]]), keyboard(
        pager_row(lang, SUBSCRIBERS, page, pages, product_id=product_id),
        [ADMIN_PRODUCT.button(label(lang, "btn_back"), product_id=product_id)]))


def sales_figures(session: Session, lang: str) -> str | None:
    """📊 Sales (sales.py): active subscribers, the Stars they renew for each month, 30 days' renewals,
    cancellations (in the shop or in Telegram) and renewals Telegram could not charge. None until somebody has
    subscribed."""
    if session.scalar(select(Subscription.id).limit(1)) is None:
        return None
    now = utcnow()
    since = now - timedelta(days=30)
    active, monthly = session.execute(select(func.count(), func.coalesce(func.sum(case(
        (Subscription.cancelled_at.is_(None), Subscription.price), else_=0)), 0)).where(live(now))).one()
    renewals = session.scalar(select(func.count(Purchase.id)).where(Purchase.created_at >= since, is_live(),
                                                                    is_renewal()))
    # The customers' own ❌ Cancel: a refund stops renewals too, but is counted as a refund.
    cancellations = session.scalar(select(func.count()).where(Subscription.customer_cancelled_at >= since))
    failed = session.scalar(select(func.count()).where(Subscription.renewal_failed_at >= since))
    return text(lang, "admin_subscription_figures", subscribers=counted(lang, "n_subscribers", active),
                monthly=format_price(monthly, STARS), renewals=renewals, cancellations=cancellations, failed=failed)


# ---------------------------------------------------------------------------
# 3. 📣 Post to channel: a 📸 paid-media product in the seller's channel
# ---------------------------------------------------------------------------

@handlers.tap(POST_TO_CHANNEL)
def tap_post_to_channel(shop: Shop, call: types.CallbackQuery, session: Session, lang: str, product_id: int):
    """📣 Post to channel on a 📸 product's admin screen: which channel? (and whose Stars those sales are)"""
    product = session.get(Product, product_id)
    if product is None or product.kind != PAID_MEDIA:
        return Toast(text(lang, "unavailable"))
    end_dialog(session, call)
    return ask(session, call, "post_channel", "admin_ask_post_channel", product_id=product_id)


@handlers.answer("post_channel")
def answer_post_channel(shop: Shop, message: types.Message, session: Session, lang: str, dialog: dict):
    """The channel for the paid media, checked with Telegram (the bot must be allowed to post); then the post."""
    chat = read_chat(shop, message, POST_CHANNEL)  # asks Telegram: before any query
    product = session.get(Product, dialog["product_id"])
    end_dialog(session, message)
    if product is None:
        return Toast(text(lang, "unavailable"))
    return After(post_paid_media, message.chat.id, chat, PaidMedia.of(product), product.id, lang)


def post_paid_media(shop: Shop, admin_chat: int, chat: dict, paid: PaidMedia, product_id: int, lang: str) -> None:
    """Post the paid media in the channel, and tell the seller how it went (a right lost meanwhile, say)."""
    back = keyboard([ADMIN_PRODUCT.button(label(lang, "btn_back"), product_id=product_id)])
    try:
        send_paid_media(shop, chat["chat_id"], paid, person=False)
    except ApiTelegramException as error:
        logger.warning("Could not post product %s in chat %s: %s", product_id, chat["chat_id"], error.description)
        send(shop, admin_chat, text(lang, "admin_post_failed", chat=chat["chat_title"], error=error.description), back)
        return
    logger.info("Posted product %s in chat %s", product_id, chat["chat_id"])
    send(shop, admin_chat, text(lang, "admin_posted", chat=chat["chat_title"]), back)


def register(bot: TeleBot, shop: Shop) -> None:
    """Wire the seller's 👥 All subscribers and 📣 Post to channel into the bot."""
    add_handlers(shop, handlers)
