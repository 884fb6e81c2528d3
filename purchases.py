"""Purchases: what a customer receives, finds again, and may lose to a refund.

Reading order: ... subscriptions.py → **purchases.py** → reviews.py → ...

Every way of getting a product ends here: a payment (checkout.py), a free
product, a seller's /grant (sales.py), a gift claimed (gifts.py).

1. **Delivery** sends the product's hidden content, and for a stocked product
   the buyer's own item. It reads everything first, then closes the session,
   then talks to Telegram; a customer who blocked the bot finds it all later.
2. **📦 My purchases** shows everything bought, newest first, and sends it
   again on a tap, to its owner only; ⭐ beside it leads to a review (reviews.py).
3. **Refunds**: Stars go back through Telegram; card payments are refunded in
   the provider's dashboard and marked here. A refunded purchase no longer
   opens. A key shown to a customer is never resold, but one nobody saw goes
   back on sale. Who refunds is written down before Telegram is asked, and the
   buyer hears it once, whether the seller, the shop or Telegram refunded.
"""
from __future__ import annotations

import html
import logging
from dataclasses import dataclass, field

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, aliased
from telebot import TeleBot, types
from telebot.apihelper import ApiTelegramException

import subscriptions
from menus import CATALOG, PURCHASES
from models import PAID_MEDIA, SUBSCRIPTION, Gift, Product, Purchase, StockItem, User, drop_unowned_reviews
from shopkit import (
    PAGE_SIZE,
    After,
    Handlers,
    Screen,
    Shop,
    Tap,
    Toast,
    add_handlers,
    chat_of,
    copy_row,
    describe_user,
    keyboard,
    label,
    language_for_code,
    notify_admins,
    page_count,
    pager_row,
    send,
    send_file,
    send_media,
    show_reply,
    split_message,
    telegram_error,
    text,
    utcnow,
)
from storefront import MENU, OPEN_PURCHASE, announce_restock

logger = logging.getLogger("shopbot")
handlers = Handlers()

REVIEW = Tap("review", "purchase_id")  # ⭐ beside a purchase in My purchases: reviews.py answers it

# How each way of paying (Purchase.payment_type) is named to the seller.
PAYMENT_TYPES = {"stars": "payment_stars", "card": "payment_card", "free": "payment_free",
                 "manual": "payment_manual", "gift": "payment_gift"}

# ---------------------------------------------------------------------------
# 1. Delivery: where every way of buying ends
# ---------------------------------------------------------------------------

@dataclass
class Parcel:
    """A purchase's content, read from the database, ready to send once the session is closed."""

    purchase_id: int
    product_name: str
    subscription: bool = False  # a 📅 product's: its join link comes after the content (subscriptions.py)
    # (text, file_id, file_type): the buyer's own stock item first, then the product's hidden content
    contents: list[tuple[str, str | None, str | None]] = field(default_factory=list)
    gift_token: str | None = None  # a gift: its buyer gets the link to pass on (gifts.py), never the content
    has_item: bool = False  # a stocked product's: the buyer's own item comes first in contents
    protected: bool = False  # 🔒 sent with protect_content: Telegram lets nobody forward or save it
    # 📸 paid media (paid_media.py), sent again as plain photos and videos: the buyer paid, and Telegram keeps the
    # original unlocked for them anyway.
    media: list = field(default_factory=list)
    caption: str = ""


def parcel_of(session: Session, purchase_id: int) -> Parcel:
    """What a purchase delivers, in one statement: the product's hidden content, and the buyer's own item."""
    row = session.execute(
        select(Product.name, Product.kind, Product.hidden_content, Product.hidden_file_id, Product.hidden_file_type,
               Product.protected, Product.media, Product.caption, StockItem.content.label("item"),
               StockItem.file_id.label("item_file_id"), StockItem.file_type.label("item_file_type"), Gift.token)
        .select_from(Purchase).join(Product, Purchase.product_id == Product.id)
        .outerjoin(StockItem, StockItem.purchase_id == Purchase.id).outerjoin(Gift, Gift.purchase_id == Purchase.id)
        .where(Purchase.id == purchase_id)).one()
    parcel = Parcel(purchase_id, row.name, row.kind == SUBSCRIPTION, gift_token=row.token, protected=row.protected)
    if row.token is not None:
        return parcel  # the content, and a stocked product's key, wait for whoever claims the gift
    if row.kind == PAID_MEDIA:
        parcel.media, parcel.caption = list(row.media or []), row.caption
        return parcel
    if row.item is not None:  # a stocked product: the buyer's own key first
        parcel.has_item = True
        parcel.contents.append((row.item, row.item_file_id, row.item_file_type))
    # For a stocked product the hidden content is what every buyer shares (e.g. how to activate).
    parcel.contents.append((row.hidden_content, row.hidden_file_id, row.hidden_file_type))
    return parcel


def send_content(shop: Shop, chat_id: int, parcel: Parcel, lang: str, content: str, file_id: str | None,
                 file_type: str | None, markup=None) -> bool:
    """Send a text (escaped, split above 4,096 characters, ``markup`` under its last piece) and a file; True if
    there was anything."""
    pieces = split_message(content)
    for number, piece in enumerate(pieces, 1):
        send(shop, chat_id, html.escape(piece, quote=False), markup if number == len(pieces) else None,
             protect=parcel.protected)
    if file_id:
        try:
            send_file(shop, chat_id, file_type, file_id, protect=parcel.protected)
        except ApiTelegramException as error:
            logger.error("Could not send the file of purchase %s: %s", parcel.purchase_id, error.description)
            send(shop, chat_id, text(lang, "file_failed"))
            notify_admins(shop, "admin_file_failed", purchase=parcel.purchase_id, product=parcel.product_name,
                          error=telegram_error(error.description))
    return bool(file_id or content.strip())


def mark_delivered(session: Session, purchase: Purchase) -> None:
    """Delivered, or nothing to deliver (a payment being refunded): the next start need not deliver it."""
    purchase.delivered_at = purchase.delivered_at or utcnow()
    session.commit()


def deliver(shop: Shop, chat_id: int, purchase_id: int, heading: str, lang: str) -> bool:
    """Send what was bought: the heading, then the item and the hidden content, texts split to fit.

    False when the customer has blocked the bot (or never opened it): they find
    it in 📦 My purchases when they come back.
    """
    with shop.Session() as session:
        parcel = parcel_of(session, purchase_id)
    reached = send(shop, chat_id, heading) is not None
    if reached and parcel.gift_token:
        link = f"https://t.me/{shop.bot.user.username}?start=gift_{parcel.gift_token}"
        send(shop, chat_id, text(lang, "gift_to_forward", name=parcel.product_name, link=link),
             keyboard(copy_row(lang, link)))
    elif reached and parcel.media:
        send_media(shop, chat_id, parcel.media, html.escape(parcel.caption, quote=False), parcel.protected)
    elif reached:
        sent = False
        for number, (content, file_id, file_type) in enumerate(parcel.contents):
            # The buyer's own key or code, when it is a short text: 📋 Copy puts it on the clipboard in one tap.
            copy = copy_row(lang, content) if parcel.has_item and number == 0 and not file_id else []
            sent |= send_content(shop, chat_id, parcel, lang, content, file_id, file_type,
                                 keyboard(copy) if copy else None)
        if not sent:
            send(shop, chat_id, text(lang, "nothing_hidden"))
    with shop.Session() as session:
        purchase = session.get(Purchase, purchase_id)
        if purchase.delivered_at is None:
            logger.info("Delivered purchase %s to user %s", purchase_id, chat_id)
        mark_delivered(session, purchase)
    if reached and parcel.subscription:  # last: a link Telegram cannot make now comes from 📦 My purchases (🔗 Join)
        subscriptions.send_invite(shop, chat_id, purchase_id, lang)
    return reached


# ---------------------------------------------------------------------------
# 2. My purchases: everything bought stays here
# ---------------------------------------------------------------------------

def purchase_label(lang: str, row) -> str:
    """'Guide · 2026-05-01', '↩️ Guide (refunded)' (or being refunded), or a gift the customer bought, claimed
    or not yet."""
    if row.refunded_at:
        return label(lang, "purchase_refunded_button", name=row.name)
    if row.refund_due:
        return label(lang, "purchase_refund_due_button", name=row.name)
    if row.gift and row.taken_back:  # the seller revoked the recipient's copy alone: the buyer's money stays paid
        return label(lang, "gift_taken_back_button", name=row.name)
    if row.gift:
        return label(lang, "gift_claimed_button" if row.claimed else "gift_unclaimed_button", name=row.name)
    return label(lang, "purchase_button", name=row.name, date=f"{row.created_at:%Y-%m-%d}")


def review_button(lang: str, row) -> list:
    """⭐ beside a purchase its customer owns (not refunded, nor a gift they bought for someone else)."""
    if row.refunded_at or row.refund_due or row.gift:
        return []
    return [REVIEW.button(label(lang, "btn_review"), purchase_id=row.id)]


def purchases_screen(session: Session, lang: str, telegram_id: int, page: int) -> Screen:
    """📦 My purchases, newest first, a page at a time."""
    # The customer's id, looked up first: PostgreSQL's planner, knowing it, walks their purchases
    # newest first in ix_purchases_user_created and stops at the page, however many they have.
    # A subscription's payments name it (subscriptions.py) and show above, as one line per subscription.
    customer = select(User.id).where(User.telegram_id == telegram_id).scalar_subquery()
    theirs = (Purchase.user_id == customer, Purchase.subscription_charge_id.is_(None))
    claimed = aliased(Purchase)  # the copy of a gift the customer bought, made for whoever claimed it
    rows = session.execute(
        select(Purchase.id, Purchase.created_at, Purchase.refunded_at, Purchase.refund_due, Product.name,
               Gift.id.label("gift"), Gift.claimed_purchase_id.label("claimed"),
               claimed.refunded_at.is_not(None).label("taken_back"))
        .join(Product, Purchase.product_id == Product.id)
        .outerjoin(Gift, Gift.purchase_id == Purchase.id).outerjoin(claimed, claimed.id == Gift.claimed_purchase_id)
        .where(*theirs)
        .order_by(Purchase.created_at.desc(), Purchase.id.desc())
        .limit(PAGE_SIZE).offset(page * PAGE_SIZE)
    ).all()
    # Counted apart, from the index alone, and only when there may be more than one page: a count
    # over the page's own rows would read all of a customer's purchases, every time.
    total = len(rows) if page == 0 and len(rows) < PAGE_SIZE else session.scalar(
        select(func.count(Purchase.id)).where(*theirs))
    back = [MENU.button(label(lang, "btn_back"))]
    subscribed = subscriptions.purchase_rows(session, lang, telegram_id) if page == 0 else []
    if not rows and not subscribed:
        if page > 0:
            return purchases_screen(session, lang, telegram_id, 0)
        return Screen(text(lang, "purchases_empty"), keyboard([CATALOG.button(label(lang, "btn_catalog"))], back))
    buttons = [[OPEN_PURCHASE.button(purchase_label(lang, row), purchase_id=row.id), *review_button(lang, row)]
               for row in rows]
    return Screen(text(lang, "purchases"),
                  keyboard(*subscribed, *buttons, pager_row(lang, PURCHASES, page, page_count(total)), back))


@handlers.command("purchases")
def on_purchases_command(shop: Shop, message: types.Message, session: Session, lang: str) -> Screen:
    """/purchases"""
    return purchases_screen(session, lang, message.from_user.id, 0)


@handlers.tap(PURCHASES)
def tap_purchases(shop: Shop, call: types.CallbackQuery, session: Session, lang: str, page: int) -> Screen:
    """📦 My purchases."""
    return purchases_screen(session, lang, call.from_user.id, page)


@handlers.tap(OPEN_PURCHASE)
def tap_open_purchase(shop: Shop, call: types.CallbackQuery, session: Session, lang: str, purchase_id: int):
    """A purchase in My purchases: its content again, to its owner only."""
    purchase = session.execute(
        select(User.telegram_id, Purchase.refunded_at, Purchase.refund_due, Product.name)
        .select_from(Purchase).join(User, Purchase.user_id == User.id).join(Product, Purchase.product_id == Product.id)
        .where(Purchase.id == purchase_id)).first()
    if purchase is None or purchase.telegram_id != call.from_user.id:
        logger.warning("User %s tried to open purchase %s", call.from_user.id, purchase_id)
        return Toast(text(lang, "not_your_purchase"))
    if purchase.refunded_at is not None:
        return Toast(text(lang, "purchase_refunded"))
    if purchase.refund_due:
        return Toast(text(lang, "purchase_refund_due"))
    return After(deliver, chat_of(call), purchase_id, text(lang, "here_again", name=purchase.name), lang)


# ---------------------------------------------------------------------------
# 3. Refunds: the purchase closed, and a key nobody saw back on sale
# ---------------------------------------------------------------------------

def set_aside_for_refund(session: Session, purchase: Purchase) -> None:
    """A payment the shop cannot honour: it delivers nothing, owns nothing and, as a gift, cannot be claimed
    (models.owning), from now until the refund lands: for a card, or Stars Telegram would not give back, that
    waits for the seller. It leaves ux_purchases_one_live to a purchase that counts, so buying again is open."""
    purchase.refund_due, purchase.once_per_customer = True, False
    mark_delivered(session, purchase)


# Who refunds a purchase (Purchase.refunded_by): the seller, the shop at once (checkout.refund_at_once), or Telegram.
SHOP, AUTO, TELEGRAM = "shop", "auto", "telegram"


def begin_refund(session: Session, purchase_id: int, by: str) -> bool:
    """Write down who refunds, and commit, before Telegram is asked; False when the purchase is refunded already.

    Telegram answers the shop's own refundStarPayment with a refunded_payment
    message too, and a worker may handle it before the answer comes back: it
    must find that the refund is the shop's (close_refund).
    """
    started = session.execute(update(Purchase).where(Purchase.id == purchase_id, Purchase.refunded_at.is_(None))
                              .values(refunded_by=by).execution_options(synchronize_session=False))
    session.commit()
    return bool(started.rowcount)


def give_stars_back(shop: Shop, session: Session, purchase_id: int, buyer_id: int, charge_id: str,
                    by: str) -> str | None:
    """Give a Stars payment back through Telegram; None when it did, otherwise why not (nothing is changed)."""
    if not begin_refund(session, purchase_id, by):
        return "refunded already"
    try:
        shop.bot.refund_star_payment(buyer_id, charge_id)
    except ApiTelegramException as error:  # already refunded, unknown charge...
        logger.warning("Telegram refused to refund purchase %s (%s): %s", purchase_id, by, error.description)
        # Unless its refund landed meanwhile, the purchase is as it was: nobody is refunding it.
        session.execute(update(Purchase).where(Purchase.id == purchase_id, Purchase.refunded_at.is_(None),
                                               Purchase.refunded_by == by)
                        .values(refunded_by=None).execution_options(synchronize_session=False))
        session.commit()
        return error.description
    # Any other failure (the network, say) leaves the refund under way: if Telegram made it, its echo closes it.
    return None


def close_purchase(session: Session, purchase: Purchase, by: str) -> str | None:
    """Mark a purchase refunded, once; who refunded it, or None when it was closed already.

    The seller's refund and Telegram's echo of it may both get here, in either
    order: the first closes it, in the name of whoever began the refund
    (begin_refund), and the second finds nothing left to do. The row stays
    locked until the commit: a claim of this gift at this moment waits for it,
    or it waits for the claim (gifts.py).
    """
    closed = session.execute(
        update(Purchase).where(Purchase.id == purchase.id, Purchase.refunded_at.is_(None))
        .values(refunded_at=utcnow(), refunded_by=func.coalesce(Purchase.refunded_by, by))
        .execution_options(synchronize_session=False))
    if not closed.rowcount:
        return None
    session.refresh(purchase)
    logger.info("Purchase %s is refunded (by %s)", purchase.id, purchase.refunded_by)
    return purchase.refunded_by


def take_back(session: Session, purchase: Purchase, never_delivered: bool = False) -> After | None:
    """What a refund takes back besides the purchase: a gift's claimed copy, or a key nobody saw. Returns the step
    for the caller to take once it has committed: the message that tells the recipient they lost it, or the notice
    to customers waiting for the key that went back to stock.

    A key shown to a customer is never resold; but one nobody saw goes back to
    stock: an unclaimed gift's (gifts.py), a payment's the shop could not
    honour (refund_due), or one Telegram refunded before the shop heard of it
    (``never_delivered``: ledger.py).
    """
    gift = session.scalar(select(Gift).where(Gift.purchase_id == purchase.id)
                          .execution_options(populate_existing=True))  # as it is now, claimed or not
    claimed = gift.claimed_purchase if gift else None
    if claimed is None and (gift or purchase.refund_due or never_delivered):
        key = session.execute(update(StockItem).where(StockItem.purchase_id == purchase.id).values(purchase_id=None))
        return After(announce_restock, purchase.product_id) if key.rowcount else None
    if claimed is None:
        return None
    if claimed.refunded_at is not None:  # the seller took it back from them already
        return None
    claimed.refunded_at, claimed.refunded_by = purchase.refunded_at, purchase.refunded_by
    lang = language_for_code(claimed.user.language_code)
    return After(send, claimed.user.telegram_id, text(lang, "gift_taken_back", name=purchase.product.name,
                                                      giver=purchase.user.first_name))


def close_refund(session: Session, purchase: Purchase, by: str, never_delivered: bool = False) -> tuple | None:
    """Close a refunded purchase and take back what it gave, once (in the caller's transaction); the replies
    that say so, to show after the commit, or None when it was closed already.

    Whoever closes it tells the buyer, once, who refunded it; the admins hear
    of a refund Telegram made. An automatic refund says why itself, and stops
    a second subscription itself (checkout.refund_at_once).
    """
    refunded_by = close_purchase(session, purchase, by)
    if refunded_by is None:
        return None
    taken_back = take_back(session, purchase, never_delivered)
    drop_unowned_reviews(session, purchase.product_id)  # a refund takes the buyer's review with it (reviews.py)
    if refunded_by == AUTO:
        return (taken_back,)
    ending = subscriptions.end_by_refund(session, purchase, note=None)  # the buyer's note below says it
    return (*refund_notes(purchase, refunded_by, ending), ending, taken_back)


def refund_notes(purchase: Purchase, refunded_by: str, ending: After | None) -> tuple[After, After | None]:
    """The buyer's message about a refund, true to who made it and what it ends; the admins' if Telegram made it."""
    buyer, name = purchase.user, purchase.product.name
    lang = language_for_code(buyer.language_code)
    if refunded_by == TELEGRAM:
        return (After(send, buyer.telegram_id, text(lang, "refunded_by_telegram", name=name)),
                After(notify_admins, "admin_refunded_by_telegram", purchase=purchase.id, product=name,
                      who=describe_user(buyer), id=buyer.telegram_id))
    if ending is not None and ending.function is subscriptions.end_refunded_access:  # the live one's access ends
        return After(send, buyer.telegram_id, text(lang, "subscription_refunded", name=name,
                                                   chat=purchase.product.chat_title)), None
    key = {"stars": "refunded_by_shop", "card": "refunded_by_shop_card"}.get(purchase.payment_type, "revoked_by_shop")
    return After(send, buyer.telegram_id, text(lang, key, name=name)), None


def mark_refunded(shop: Shop, purchase_id: int) -> None:
    """A payment refunded at once: a key never shown goes back to stock (and its waiting list hears)."""
    with shop.Session() as session:
        replies = close_refund(session, session.get(Purchase, purchase_id), AUTO)
        session.commit()
    show_reply(shop, None, replies)


def refund_purchase(shop: Shop, session: Session, purchase: Purchase, admin_id: int, lang: str) -> str:
    """Refund a purchase and revoke its access; returns the text that reports the outcome.

    The money goes back first, and only then is the purchase closed: if Telegram
    refuses, nothing changes. The buyer is told once, whether this closes it or
    Telegram's echo of the refund, handled a moment before, did (close_refund).
    """
    if purchase.refunded_at:
        return text(lang, "admin_already_refunded")
    purchase_id, buyer_id, charge_id, paid_with = (purchase.id, purchase.user.telegram_id, purchase.payment_id,
                                                   purchase.payment_type)
    session.commit()  # end the read: no transaction may wait for Telegram's answer
    if paid_with == "stars":
        refused = give_stars_back(shop, session, purchase_id, buyer_id, charge_id, SHOP)
        if refused:
            return text(lang, "admin_refund_failed", error=telegram_error(refused))
    replies = close_refund(session, session.get(Purchase, purchase_id), SHOP)
    session.commit()
    show_reply(shop, None, replies)
    logger.info("Admin %s refunded purchase %s%s", admin_id, purchase_id, "" if replies else " (closed by its echo)")
    outcome = {"stars": "admin_refunded", "card": "admin_refund_marked"}.get(paid_with, "admin_revoked")
    return text(lang, outcome)


def register(bot: TeleBot, shop: Shop) -> None:
    """Wire My purchases into the bot: /purchases and its buttons."""
    add_handlers(shop, handlers)
