"""Checkout: payments in the order they happen.

Reading order: ... reviews.py → **checkout.py** → paid_media.py → ...

    Buy → invoice → pre-checkout → successful payment → delivery (purchases.py)

1. **Buy** sends an invoice: Telegram's own payment sheet, in Stars or by card.
   A free product is handed over at once.
2. Before Telegram takes the money it asks the shop a **pre-checkout**
   question: may this payment go ahead? The shop must answer within 10 s.
3. A **successful payment** message follows. The purchase is recorded once per
   Telegram charge id and committed *before* anything is delivered, so that a
   crash can lose a message but never a sale. A payment the shop cannot
   honour (the last key sold a moment before, say) is refunded at once.

Two things ride along in the invoice: the customer's promo code (promos.py
prices with it, holds a use at pre-checkout and counts it at payment) and a
gift mark (gifts.py): a gift's buyer receives a link to pass on, never the
content.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import NamedTuple

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session
from telebot import TeleBot, types
from telebot.apihelper import ApiTelegramException

import promos
import subscriptions
from models import (
    PAID_MEDIA,
    SUBSCRIPTION,
    Gift,
    Product,
    PromoCode,
    Purchase,
    User,
    claim_stock_item,
    owned_purchase_id,
    save_user,
    stock_item_of,
    stock_left,
)
from purchases import AUTO, PAYMENT_TYPES, deliver, give_stars_back, mark_refunded, set_aside_for_refund
from shopkit import (
    CALL_FAILED,
    SALE_ALERTS,
    STARS,
    After,
    Handlers,
    Screen,
    Shop,
    Tap,
    Toast,
    add_handlers,
    call_api,
    chat_of,
    describe_user,
    format_price,
    handles_errors,
    html_to_plain,
    is_id,
    keyboard,
    label,
    language_of,
    notify_admins,
    put_setting,
    replies,
    run_handler,
    send,
    short_reason,
    sqlite_file,
    text,
    truncate,
    utcnow,
    with_toast,
)
from storefront import BUY, product_or_catalog, removed

logger = logging.getLogger("shopbot")
handlers = Handlers()

# The button under a sale's notice (sales.py answers it), and the number it carries.
ADMIN_PURCHASE = Tap("admin_purchase", "purchase_id")

LOW_STOCK_ALERT = 3  # admins hear when a stocked product is down to this many items

# ---------------------------------------------------------------------------
# The invoice payload: what Telegram hands back with the payment
# ---------------------------------------------------------------------------

# It names the product and the buyer, so that pre-checkout can refuse someone
# else's invoice; the second form adds the promo code and the gift mark. At
# most 128 bytes. It does not share the buttons' format (shopkit's Tap), on
# purpose: a button's version may change to turn old buttons away politely,
# but a payment can never be turned away, and a Stars subscription's renewals
# carry the payload of its first invoice for as long as it lasts. So these two
# forms are read for ever, and a new one would be a third, not a replacement.
PAYLOAD_VERSION = "shop1"
PAYLOAD_VERSION_2 = "shop2"  # with a promo code or as a gift


class Payload(NamedTuple):
    product_id: int
    buyer_id: int
    promo_id: int = 0  # the promo code the price was made with, or 0
    gift: bool = False


def invoice_payload(product_id: int, buyer_id: int, promo_id: int = 0, gift: bool = False) -> str:
    """'shop1:42:1001': product 42, for user 1001; 'shop2:42:1001:7:1' with promo code 7, as a gift."""
    if promo_id or gift:
        return f"{PAYLOAD_VERSION_2}:{product_id}:{buyer_id}:{promo_id}:{int(gift)}"
    return f"{PAYLOAD_VERSION}:{product_id}:{buyer_id}"


def parse_invoice_payload(payload: str | None) -> Payload | None:
    """'shop1:42:1001' -> (42, 1001, 0, False); None when it is not one of our invoices."""
    parts = (payload or "").split(":")
    size = {PAYLOAD_VERSION: 3, PAYLOAD_VERSION_2: 5}.get(parts[0])
    if len(parts) != size or not all(is_id(p) for p in parts[1:]) or (size == 5 and parts[4] not in "01"):
        return None
    return Payload(*map(int, parts[1:4]), *([parts[4] == "1"] if size == 5 else []))


# ---------------------------------------------------------------------------
# What the admins hear of a sale
# ---------------------------------------------------------------------------

def sale_notice(purchase: Purchase) -> After:
    """💰 New sale, for the admins who keep sale alerts on; a gift says so (its recipient is told on claiming,
    gifts.py)."""
    return After(notify_admins, "admin_new_gift_sale" if purchase.gift is not None else "admin_new_sale",
                 product=purchase.product.name, price=format_price(purchase.price, purchase.currency),
                 who=describe_user(purchase.user), type=lambda lang: label(lang, PAYMENT_TYPES[purchase.payment_type]),
                 markup=keyboard([ADMIN_PURCHASE.button(f"🧾 #{purchase.id}", purchase_id=purchase.id)]),
                 setting=SALE_ALERTS)


def stock_alert(session: Session, product: Product) -> After | None:
    """Tell the admins when a stocked product runs low, and when it sells out."""
    left = stock_left(session, product)
    if left == 0:
        return After(notify_admins, "admin_sold_out", name=product.name, id=product.id)
    if left == LOW_STOCK_ALERT:
        return After(notify_admins, "admin_low_stock", name=product.name, id=product.id, count=left)
    return None


# ---------------------------------------------------------------------------
# 1. Buy: an invoice, or a free product at once
# ---------------------------------------------------------------------------

@dataclass
class Invoice:
    """Telegram's payment sheet for one product (sent by send_invoice). Invoices are plain text: nothing is escaped."""

    product_id: int
    title: str  # up to 32 characters
    description: str  # up to 255
    price: int
    promo_id: int = 0  # the customer's promo code, which made the price
    gift: bool = False

    @classmethod
    def of(cls, product: Product, offer: promos.Offer, gift: bool = False) -> Invoice:
        return cls(product.id, truncate(("🎁 " if gift else "") + product.name, 32),
                   truncate(product.description.strip() or product.name, 255), offer.price, offer.code_id, gift)


def send_invoice(shop: Shop, chat_id: int, buyer_id: int, invoice: Invoice) -> None:
    """Send ``invoice`` to ``buyer_id``'s chat: only they may pay it (checkout_problem)."""
    call_api(shop, chat_id, shop.bot.send_invoice, chat_id, title=invoice.title, description=invoice.description,
             invoice_payload=invoice_payload(invoice.product_id, buyer_id, invoice.promo_id, invoice.gift),
             provider_token=shop.config.provider_token or None,  # Stars take no provider
             currency=shop.config.currency, prices=[types.LabeledPrice(invoice.title, invoice.price)])


def give_product(session: Session, user: User, product: Product, payment_type: str, currency: str,
                 promo_id: int = 0, gift: bool = False) -> Purchase | None:
    """Hand a product over without payment: a free product (or free with a promo code), or a seller's /grant.

    None when the last item went to someone else a moment ago, when the
    customer already owns it (the database keeps one live purchase, see
    ux_purchases_one_live, however many taps arrive at once), or when the
    promo code has no use left for them.
    """
    if promo_id and not promos.take_use(session, promo_id, user):
        session.rollback()
        return None
    purchase = Purchase(user=user, product=product, price=0, currency=currency, payment_type=payment_type,
                        once_per_customer=product.sold_once_per_customer and not gift,
                        promo_code_id=promo_id or None, list_price=product.price if promo_id else None)
    session.add(purchase)
    if gift:
        session.add(Gift(purchase=purchase))
    try:
        if product.stocked and not claim_stock_item(session, product.id, purchase):
            session.rollback()
            return None
        session.commit()
    except IntegrityError:
        session.rollback()
        return None
    return purchase


@handlers.tap(BUY)
def tap_buy(shop: Shop, call: types.CallbackQuery, session: Session, lang: str, product_id: int):
    """Buy: an invoice for a paid product; a free one is handed over at once."""
    product = session.get(Product, product_id)
    if product is None or not product.is_active or product.kind == PAID_MEDIA:  # no invoice: paid_media.py sells it
        return Toast(text(lang, "unavailable_removed" if removed(session, product_id) else "unavailable"))
    if stock_left(session, product) == 0:  # the card now says "Sold out"
        return with_toast(product_or_catalog(shop, session, lang, call.from_user.id, product_id),
                          text(lang, "sold_out_toast"))
    if product.kind == SUBSCRIPTION:  # an invoice link that Telegram bills every month
        return subscriptions.subscribe(shop, session, call, product, invoice_payload(product.id, call.from_user.id))
    offer, owned = promos.offer_and_owned(session, call.from_user.id, product, shop.config.currency)
    if owned and product.sold_once_per_customer:  # show it again instead
        return After(deliver, chat_of(call), owned, text(lang, "already_owned"), lang)
    if offer.price == 0:  # free, or free with the customer's promo code: no invoice
        return take_free_product(shop, session, call, product, lang, offer.code_id)
    return Toast(text(lang, "invoice_sent"), once_shown=True), After(send_invoice, chat_of(call), call.from_user.id,
                                                                     Invoice.of(product, offer))


def take_free_product(shop: Shop, session: Session, call: types.CallbackQuery, product: Product, lang: str,
                      promo_id: int = 0):
    """🎁 Get for free: the product at once, or what the customer got a moment ago (a double tap)."""
    customer = call.from_user
    purchase = give_product(session, save_user(session, customer), product, "free", shop.config.currency, promo_id)
    if purchase is None:
        owned = owned_purchase_id(session, customer.id, product.id)
        if owned:
            return After(deliver, chat_of(call), owned, text(lang, "already_owned"), lang)
        return Toast(text(lang, "promo_used_up" if promo_id else "sold_out_toast"))
    alert = stock_alert(session, product) if product.stocked else None
    return After(deliver, chat_of(call), purchase.id, text(lang, "thanks", name=product.name), lang), alert


# ---------------------------------------------------------------------------
# 2. Pre-checkout: may this payment go ahead?
# ---------------------------------------------------------------------------

def invoice_price(session: Session, product: Product, promo_id: int, currency: str) -> int:
    """What an invoice asks: the product's price, or the price after the promo code it was sent with."""
    return promos.price_with(session, product, promo_id, currency) if promo_id else product.price


def checkout_problem(shop: Shop, session: Session, query: types.PreCheckoutQuery) -> str | None:
    """The text key explaining why this payment must not happen, or None if it may."""
    payload = parse_invoice_payload(query.invoice_payload)
    if payload is None or payload.buyer_id != query.from_user.id:
        return "checkout_invalid"
    product = session.get(Product, payload.product_id)
    if product is None or not product.is_active or product.price == 0 or product.kind == PAID_MEDIA or (
            (payload.gift or payload.promo_id) and not product.one_off):  # neither a gift nor a code: a subscription
        return "checkout_unavailable"
    if payload.promo_id and payload.promo_id != promos.applied_code_id(session, query.from_user.id):
        return "checkout_promo_not_applied"  # a forged payload, or a code the customer has since replaced
    price = invoice_price(session, product, payload.promo_id, shop.config.currency)
    if query.currency != shop.config.currency or query.total_amount != price:
        return "checkout_price_changed"
    if product.kind == SUBSCRIPTION:
        return subscriptions.checkout_problem(session, query.from_user.id, product)
    if stock_left(session, product) == 0:
        return "checkout_sold_out"
    if product.sold_once_per_customer and not payload.gift and owned_purchase_id(session, query.from_user.id,
                                                                                 product.id):
        return "checkout_owned"
    if payload.promo_id:  # last: it begins the write that holds a use of the code
        return promos.hold_use(session, payload.promo_id, query.from_user, product, shop.config.currency)
    return None


def can_record_payments(session: Session) -> None:
    """A small write, committed: proves the database takes writes right now (not locked, not full).

    The session is a QuickSession, which waits 2 seconds at most for a lock: Telegram waits 10.
    """
    put_setting(session, "last_checkout", utcnow().isoformat())
    session.commit()


# A disk that fills while the shop runs: a payment might not be recorded, so nobody is charged until it has room.
DISK_LOW = 20 * 1024 ** 2  # bytes free below which checkout waits
DISK_TRUSTED = 5.0  # seconds one look at the disk stands for: pre-checkouts may come many at once
DISK_WATCH_EVERY = 60.0  # seconds between two looks in the background, so the admins hear with no sale going on


@dataclass
class DiskLook:
    """The last look at the database's disk: when, and whether it had room."""

    at: float = float("-inf")
    has_room: bool = True
    lock: threading.Lock = field(default_factory=threading.Lock)


def disk_has_room(shop: Shop) -> bool:
    """False while the database's disk is nearly full; True again, by itself, once it has room.

    The admins hear once when it fills and once when it has room again. A database server keeps its own disk.
    """
    path = sqlite_file(shop.config.database_url)
    if path is None:
        return True
    look = shop.memo.setdefault("disk", DiskLook())
    with look.lock:  # one look at a time, so that the admins hear of a change once
        if time.monotonic() - look.at < DISK_TRUSTED:
            return look.has_room
        folder = os.path.dirname(os.path.abspath(path))
        free = shop.free_bytes(folder)
        had_room, look.at, look.has_room = look.has_room, time.monotonic(), free >= DISK_LOW
        has_room = look.has_room
    if has_room != had_room:  # told from a thread of its own: Telegram waits 10 seconds for the answer
        shop.start_background(tell_admins_about_disk, has_room, free, folder)
    return has_room


def tell_admins_about_disk(shop: Shop, has_room: bool, free: int, folder: str) -> None:
    """⚠️ The disk is nearly full (payments wait), or ✅ it has room again."""
    megabytes = f"{free / 1024 ** 2:.0f}"
    if has_room:
        logger.warning("The disk has room again (%s MB free in %s): payments are taken again", megabytes, folder)
    else:
        logger.error("The disk is nearly full (%s MB free in %s): payments are refused until it has room",
                     megabytes, folder)
    try:
        notify_admins(shop, "admin_disk_back" if has_room else "admin_disk_full", free=megabytes, folder=folder,
                      low=f"{DISK_LOW / 1024 ** 2:.0f}")
    except CALL_FAILED as error:
        logger.warning("Could not tell the admins about the disk: %s", short_reason(error))


def watch_the_disk(shop: Shop) -> None:
    """In the background: a look at the disk every minute, so that the admins hear of it with no sale going on."""
    while True:
        try:
            disk_has_room(shop)
        except OSError as error:
            logger.warning("Could not look at the free disk space: %s", error)
        time.sleep(DISK_WATCH_EVERY)


def start_watching_the_disk(shop: Shop) -> None:
    """At start, on SQLite: the disk is watched (a database server keeps its own)."""
    if sqlite_file(shop.config.database_url):
        shop.start_background(watch_the_disk)


@handles_errors
def on_pre_checkout(shop: Shop, query: types.PreCheckoutQuery) -> None:
    """Telegram asks "may this payment go ahead?" and waits at most 10 seconds for the answer.

    OK only if the payment can be recorded right now (the database, and the journal): otherwise nobody is charged.
    """
    problem = None if disk_has_room(shop) else "checkout_try_later"  # nearly full: a payment might not be recorded
    try:
        with shop.QuickSession() as session:
            problem = problem or checkout_problem(shop, session, query) or can_record_payments(session)
    except SQLAlchemyError as error:
        logger.error("Refused a checkout: the database cannot take the payment now (%s)", error.orig or error)
        problem = "checkout_try_later"
    if not problem and not shop.journal.writable():  # the journal is where a payment waits if the database fails
        logger.error("Refused a checkout: the payments journal %s cannot be written (a full disk, a read-only "
                     "folder?)", shop.journal.path)
        problem = "checkout_try_later"
    if problem:
        logger.info("Refused checkout of %r by user %s: %s", query.invoice_payload, query.from_user.id, problem)
    try:
        shop.bot.answer_pre_checkout_query(query.id, ok=not problem, error_message=problem and html_to_plain(
            text(language_of(query.from_user), problem)))
    except ApiTelegramException as error:
        if error.error_code != 400:
            raise
        # Answered already, or too late: after a restart Telegram sends again the updates the bot had
        # fetched but not confirmed, and a query can be answered only once.
        logger.info("Pre-checkout %s could not be answered: %s", query.id, error.description)


# ---------------------------------------------------------------------------
# 3. Successful payment: record it once, commit, then deliver
# ---------------------------------------------------------------------------

def new_purchase(session: Session, user: User, product: Product, payment: types.SuccessfulPayment,
                 payment_type: str, once_per_customer: bool, payload: Payload) -> Purchase:
    # The promo code's use first: it locks the code, so that its uses are counted one payment at a time.
    promo_id = payload.promo_id if payload.promo_id and promos.take_use(session, payload.promo_id, user) else None
    purchase = Purchase(user=user, product=product, price=payment.total_amount, currency=payment.currency,
                        payment_type=payment_type, payment_id=payment.telegram_payment_charge_id,
                        provider_payment_id=payment.provider_payment_charge_id or None,
                        once_per_customer=once_per_customer and not payload.gift, promo_code_id=promo_id,
                        list_price=product.price if payload.promo_id else None)
    session.add(purchase)
    if payload.gift:
        session.add(Gift(purchase=purchase))  # its key, if stocked, is taken now and waits for the claim
    if product.stocked and promo_id == (payload.promo_id or None):
        claim_stock_item(session, product.id, purchase)  # none left: the caller refunds
    elif product.kind == SUBSCRIPTION:
        subscriptions.record_period(session, purchase, payment)  # in this transaction: once per charge
    session.commit()
    return purchase


def record_payment(session: Session, user: User, product: Product, payment: types.SuccessfulPayment,
                   payment_type: str, payload: Payload) -> tuple[Purchase, str]:
    """Save the purchase for this charge (and, if stocked, its item) in one transaction and commit.

    Returns the purchase and what it is: "new"; "repeated" when Telegram sends
    a payment already recorded; "owned" when the customer paid a second time for
    something sold once per customer (two invoices paid at once, say): that
    charge is recorded too, as a purchase of its own, for the caller to refund.
    """
    charge_id = payment.telegram_payment_charge_id
    existing = session.scalar(select(Purchase).where(Purchase.payment_id == charge_id))
    if existing:
        return existing, "repeated"
    try:
        return new_purchase(session, user, product, payment, payment_type, product.sold_once_per_customer,
                            payload), "new"
    except IntegrityError:
        session.rollback()
    existing = session.scalar(select(Purchase).where(Purchase.payment_id == charge_id))
    if existing:  # the same payment, recorded by another thread a moment ago
        return existing, "repeated"
    if not product.sold_once_per_customer:
        raise  # another constraint failed, and the payment must not pass as recorded
    # ux_purchases_one_live refused a second live purchase: the customer owns it already.
    return new_purchase(session, user, product, payment, payment_type, False, payload), "owned"


def refund_stars(shop: Shop, user_id: int, charge_id: str) -> bool:
    """Give Stars back at once (a payment we cannot honour); False if Telegram refuses."""
    try:
        return bool(shop.bot.refund_star_payment(user_id, charge_id))
    except ApiTelegramException as error:
        logger.error("Automatic refund of %s failed: %s", charge_id, error.description)
        return False


# What the buyer and the admins read about a payment refunded at once, by its reason and what became of the
# refund: "refunded", "pending" (a card: the seller refunds it) or "failed" (Stars Telegram would not give back).
REFUND_AT_ONCE_TEXTS = {
    "sold_out": {"refunded": ("sold_out_refunded", "admin_sold_out_refunded"),
                 "pending": ("sold_out_refund_pending", "admin_sold_out_refund_pending"),
                 "failed": ("sold_out_refund_pending", "admin_sold_out_refund_failed")},
    "owned": {"refunded": ("owned_refunded", "admin_owned_refunded"),
              "pending": ("owned_refund_pending", "admin_owned_refund_pending"),
              "failed": ("owned_refund_pending", "admin_owned_refund_failed")},
    "promo": {"refunded": ("promo_refunded", "admin_promo_refunded"),
              "pending": ("promo_refund_pending", "admin_promo_refund_pending"),
              "failed": ("promo_refund_pending", "admin_promo_refund_failed")},
    # Stars only, as every subscription: never "pending".
    "superseded": {"refunded": ("superseded_refunded", "admin_superseded_refunded"),
                   "pending": ("superseded_refund_pending", "admin_superseded_refund_failed"),
                   "failed": ("superseded_refund_pending", "admin_superseded_refund_failed")},
}


# The log's plain words for why a payment could not be honoured, and what became of its money.
UNHONOURED_LOGGED = {"sold_out": "another buyer got the last item a moment before",
                     "owned": "the buyer already owns it", "promo": "the promo code had no use left for them",
                     "superseded": "a late renewal of a subscription the buyer has replaced with a new one"}
REFUND_LOGGED = {"refunded": "its Stars were given back at once",
                 "failed": "Telegram refused to give the Stars back; the admins are asked to refund it",
                 "pending": "the admins are asked to refund it in the payment provider's dashboard"}


def refund_at_once(shop: Shop, message: types.Message, purchase_id: int, reason: str, lang: str) -> None:
    """A payment the shop cannot honour (``message``: its successful_payment), refunded at once (Stars) or by the
    seller (card).

    ``reason`` is "sold_out" (two buyers paid for the last item at once, and
    this one lost), "owned" (a second payment for something the customer
    already owns), "promo" (the promo code had no use left for this customer
    when the payment landed) or "superseded" (a late renewal of a subscription
    the customer has replaced with a new one: that month is paid already).
    """
    payment = message.successful_payment
    with shop.Session() as session:
        name = session.get(Purchase, purchase_id).product.name
        refunded = payment.currency == STARS and not give_stars_back(
            shop, session, purchase_id, message.from_user.id, payment.telegram_payment_charge_id, AUTO)
    if refunded:  # closed here, or a moment before by Telegram's echo of this refund: these messages tell it
        mark_refunded(shop, purchase_id)
    # Stars that Telegram would not give back are refunded from the purchase's screen; a card, by the provider.
    outcome = "refunded" if refunded else "failed" if payment.currency == STARS else "pending"
    logger.warning("Purchase %s could not be honoured (%s): %s", purchase_id, UNHONOURED_LOGGED[reason],
                   REFUND_LOGGED[outcome])
    buyer_text, admin_text = REFUND_AT_ONCE_TEXTS[reason][outcome]
    send(shop, message.chat.id, text(lang, buyer_text, name=name))
    notify_admins(shop, admin_text, purchase=purchase_id, product=name,
                  who=describe_user(message.from_user), id=message.from_user.id,
                  amount=format_price(payment.total_amount, payment.currency),
                  provider=payment.provider_payment_charge_id or "—",
                  markup=keyboard([ADMIN_PURCHASE.button(f"🧾 #{purchase_id}", purchase_id=purchase_id)]))


def refund_unmatched(shop: Shop, message: types.Message, lang: str) -> None:
    """A payment (``message``: its successful_payment) whose product was deleted meanwhile, or a payload we
    cannot read: Stars go back at once; the admins hear either way."""
    payment = message.successful_payment
    logger.error("Payment %s for unknown payload %r from user %s", payment.telegram_payment_charge_id,
                 payment.invoice_payload, message.from_user.id)
    refunded = payment.currency == STARS and refund_stars(shop, message.from_user.id,
                                                          payment.telegram_payment_charge_id)
    send(shop, message.chat.id, text(lang, "paid_but_gone" if refunded else "paid_but_gone_card"))
    notify_admins(shop, "admin_unmatched_payment_refunded" if refunded else "admin_unmatched_payment",
                  who=describe_user(message.from_user), id=message.from_user.id,
                  charge=payment.telegram_payment_charge_id,
                  amount=format_price(payment.total_amount, payment.currency))


def refund_reason(session: Session, purchase: Purchase, outcome: str, product: Product, payload: Payload) -> str | None:
    """Why a payment just recorded cannot be honoured, so that it goes back at once; None when it can."""
    if outcome == "owned":
        return "owned"
    if outcome == "new" and payload.promo_id and purchase.promo_code_id is None:
        return "promo"
    if outcome == "new" and product.stocked and stock_item_of(session, purchase.id) is None:
        return "sold_out"
    return None


def purchase_notice(key: str, purchase: Purchase, **values) -> After:
    """An alert about one purchase, with its button: who paid what, for what, and ``values``."""
    return After(notify_admins, key, purchase=purchase.id, product=purchase.product.name,
                 who=describe_user(purchase.user), id=purchase.user.telegram_id,
                 amount=format_price(purchase.price, purchase.currency), **values,
                 markup=keyboard([ADMIN_PURCHASE.button(f"🧾 #{purchase.id}", purchase_id=purchase.id)]))


def unexpected_payment_notices(shop: Shop, session: Session, purchase: Purchase, payload: Payload,
                               payment: types.SuccessfulPayment) -> tuple[After, ...]:
    """Alerts for a payment just recorded that the shop did not expect. Recorded all the same (the money was
    taken), and never refunded for it: an amount or currency other than the price pre-checkout checks (a
    forged or stale invoice: the admins decide), or a promo code's use past its limit (a hold that lapsed
    before the payment landed: the customer paid the price they were offered)."""
    notices = []
    renewal = payment.is_recurring and not payment.is_first_recurring  # at the subscription's own, older, price
    currency = shop.config.currency
    expected = invoice_price(session, purchase.product, payload.promo_id, currency)
    if not renewal and (payment.total_amount, payment.currency) != (expected, currency):
        logger.warning("Payment %s was %s %s, but the shop asked %s %s", purchase.payment_id, payment.total_amount,
                       payment.currency, expected, currency)
        notices.append(purchase_notice("admin_unexpected_amount", purchase, expected=format_price(expected, currency)))
    code = session.get(PromoCode, purchase.promo_code_id) if purchase.promo_code_id else None
    uses = session.scalar(select(promos.live_uses(code.id))) if code and code.max_uses is not None else 0
    if code and code.max_uses is not None and uses > code.max_uses:
        logger.warning("Payment %s took promo code %s past its limit: %s uses of %s", purchase.payment_id, code.id,
                       uses, code.max_uses)
        notices.append(purchase_notice("admin_promo_over_limit", purchase, code=code.code, uses=uses,
                                       limit=code.max_uses))
    return tuple(notices)


@handlers.payment()
def on_successful_payment(shop: Shop, message: types.Message, session: Session, lang: str):
    """Money received: record the purchase (once per charge) and commit; delivery follows."""
    payment, lang = message.successful_payment, lang
    payload = parse_invoice_payload(payment.invoice_payload)
    user = save_user(session, message.from_user)
    product = session.get(Product, payload.product_id) if payload else None
    if product is None:
        return After(refund_unmatched, message, lang)
    purchase, outcome = record_payment(session, user, product, payment, shop.config.payment_type, payload)
    logger.info("Payment %s recorded as purchase %s (%s)", purchase.payment_id, purchase.id, outcome)
    if outcome == "repeated" and purchase.delivered_at is not None:
        # Telegram sends again after a restart what the bot had fetched but not confirmed, and the ledger or the
        # journal may find a payment that was handled meanwhile: it was delivered (or set aside), nothing to add.
        return None
    unexpected = unexpected_payment_notices(shop, session, purchase, payload, payment) if outcome != "repeated" else ()
    reason = refund_reason(session, purchase, outcome, product, payload)
    if reason:
        set_aside_for_refund(session, purchase)
        return After(refund_at_once, message, purchase.id, reason, lang), *unexpected
    if purchase.refunded_at is not None:  # a repeated update for a refunded payment
        return Screen(text(lang, "purchase_refunded"))
    if purchase.refund_due:  # ...or for one going back
        return Screen(text(lang, "purchase_refund_due"))
    if product.kind == SUBSCRIPTION:
        return *replies(subscription_replies(session, message, purchase, outcome, lang)), *unexpected
    delivery = After(deliver, message.chat.id, purchase.id,
                     text(lang, "gift_paid" if payload.gift else "thanks", name=product.name), lang)
    if outcome == "repeated":
        return delivery
    alert = stock_alert(session, product) if product.stocked else None
    return delivery, sale_notice(purchase), alert, *unexpected


def subscription_replies(session: Session, message: types.Message, purchase: Purchase, outcome: str, lang: str):
    """A subscription payment (subscriptions.py): the first is delivered with the join link, a renewal passes
    silently (unless access had ended: delivered again), and a second subscription to it is refunded and stopped,
    as is the old one a new subscription replaced (first cancelled; refunded if it still charges)."""
    role = subscriptions.payment_role(session, purchase)
    if role in ("second", "superseded") and outcome == "new":
        set_aside_for_refund(session, purchase)
        reason = "owned" if role == "second" else "superseded"
        return After(refund_at_once, message, purchase.id, reason, lang), After(
            subscriptions.edit_renewal, message.from_user.id, purchase.subscription_charge_id)
    if purchase.delivered_at is not None and role != "first":
        return None
    delivery = After(deliver, message.chat.id, purchase.id, text(lang, "thanks", name=purchase.product.name), lang)
    if outcome == "repeated":
        return delivery
    return subscriptions.cancel_replaced(session, purchase), delivery, sale_notice(purchase)


def on_subscription_update(shop: Shop, update: types.BotSubscriptionUpdated, session: Session, lang: str):
    """Telegram's word on a Stars subscription it bills (Bot API 10.2): cancelled or re-enabled by the customer in
    Telegram, or a renewal it could not charge. The invoice's payload names it; subscriptions.py acts on it."""
    payload = parse_invoice_payload(update.invoice_payload)
    return subscriptions.state_changed(session, update.user.id, payload.product_id if payload else None,
                                       update.state, lang)


def register(bot: TeleBot, shop: Shop) -> None:
    """Wire checkout into the bot: Buy, pre-checkout and the payment (@handlers.payment), Telegram's word on
    subscriptions; the disk is watched."""
    shop.jobs_at_start.append(start_watching_the_disk)
    bot.register_pre_checkout_query_handler(lambda query: on_pre_checkout(shop, query), func=lambda query: True)
    bot.register_subscription_handler(lambda update: run_handler(shop, update, on_subscription_update),
                                      func=lambda update: True)
    add_handlers(shop, handlers)
