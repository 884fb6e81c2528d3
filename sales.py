"""Sales: the seller's money screens — figures, purchases, refunds, grants and export.

Reading order: ... stock.py → **sales.py** → promo_panel.py → broadcast.py.

📊 Sales sums up four periods (and what promo codes took off); 🧾 Recent purchases opens any sale, with
↩️ Refund (the refund itself is in checkout.py, beside the payments);
``/refund <charge id>`` and ``/grant <user id> <product id>`` are the same
from the keyboard. 📄 Export CSV sends every purchase as a spreadsheet.
(💾 Backup has a chapter of its own: backups.py.)
"""
from __future__ import annotations

import csv
import io
import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from telebot import TeleBot, types

import routes
from checkout import deliver, give_product, refund_purchase
from config import is_id
from gifts import gift_line
from models import (
    Gift,
    Product,
    PromoCode,
    Purchase,
    Setting,
    User,
    owned_purchase_id,
    utcnow,
)
from promos import promo_line
from routes import Handlers, chat_of, on_message
from screens import (
    PAGE_SIZE,
    Screen,
    Toast,
    button,
    counted,
    decimals,
    describe_user,
    format_price,
    keyboard,
    label,
    language_for_code,
    language_of,
    page_count,
    pager_row,
    text,
    with_toast,
)
from shop import Shop, send

logger = logging.getLogger("shopbot")
handlers = Handlers(admin=True)

# ---------------------------------------------------------------------------
# 📊 Sales
# ---------------------------------------------------------------------------


PAID = ("stars", "card")  # purchases that brought money; "free" and "manual" (a /grant) did not
SNAPSHOT_AGE = timedelta(hours=1)  # how old the all-time snapshot may grow before it is taken again


@dataclass
class Figures:
    """One period's figures: paid sales and revenue per currency, free and granted items, refunds, new users."""

    paid: dict[str, list[int]] = field(default_factory=dict)  # currency -> [sales, revenue]
    free: int = 0
    granted: int = 0
    refunds: int = 0
    new_users: int = 0

    def add(self, payment_type: str, currency: str, count: int, amount: int, sign: int = 1) -> None:
        if payment_type in PAID:
            totals = self.paid.setdefault(currency, [0, 0])
            totals[0] += sign * count
            totals[1] += sign * amount
        elif payment_type == "free":
            self.free += sign * count
        elif payment_type != "gift":  # a claimed gift's sale is its buyer's paid purchase
            self.granted += sign * count

    def merged(self, other: Figures) -> Figures:
        total = Figures(refunds=self.refunds + other.refunds, new_users=self.new_users + other.new_users)
        for figures in (self, other):
            for currency, (count, amount) in figures.paid.items():
                total.add("stars", currency, count, amount)
            total.free, total.granted = total.free + figures.free, total.granted + figures.granted
        return total


def in_period(column, since: datetime, until: datetime | None):
    return column >= since if until is None else (column >= since) & (column < until)


def figures_between(session: Session, admin_ids, since: datetime, until: datetime | None = None) -> Figures:
    """The figures of sales made in [since, until), still live now: a few index ranges (ix_purchases_sales)."""
    figures = Figures()
    rows = session.execute(select(Purchase.payment_type, Purchase.currency, func.count(), func.sum(Purchase.price))
                           .where(in_period(Purchase.created_at, since, until), Purchase.refunded_at.is_(None))
                           .group_by(Purchase.payment_type, Purchase.currency))
    for payment_type, currency, count, amount in rows:
        figures.add(payment_type, currency, count, amount)
    figures.refunds = session.scalar(select(func.count()).where(
        in_period(Purchase.refunded_at, since, until), Purchase.payment_type.in_(PAID)))
    figures.new_users = session.scalar(select(func.count()).where(
        in_period(User.created_at, since, until), User.telegram_id.not_in(admin_ids)))
    return figures


class AllTime:
    """The all-time figures: a snapshot, taken in the background, plus what changed since.

    Counting a million sales takes the best part of a second; what changed since
    the snapshot is a short index range. A refund since then of a sale from
    before is taken back out of the snapshot's figures.
    """

    def __init__(self):
        self.lock = threading.Lock()
        self.snapshot: Figures | None = None
        self.taken_at = datetime(1970, 1, 1)

    def take(self, shop: Shop) -> None:
        now = utcnow()
        with shop.Session() as session:
            snapshot = figures_between(session, shop.config.admin_ids, datetime(1970, 1, 1), now)
        with self.lock:
            self.snapshot, self.taken_at = snapshot, now

    def figures(self, shop: Shop, session: Session) -> Figures:
        if self.snapshot is None:
            self.take(shop)  # the first time only: then the snapshot is kept up to date in the background
        elif utcnow() - self.taken_at > SNAPSHOT_AGE and not self.lock.locked():
            shop.start_background(lambda shop: self.take(shop))
        with self.lock:
            snapshot, taken_at = self.snapshot, self.taken_at
        since = figures_between(session, shop.config.admin_ids, taken_at)
        undone = session.execute(  # sold before the snapshot, refunded after it
            select(Purchase.payment_type, Purchase.currency, func.count(), func.sum(Purchase.price))
            .where(Purchase.refunded_at >= taken_at, Purchase.created_at < taken_at)
            .group_by(Purchase.payment_type, Purchase.currency))
        total = snapshot.merged(since)
        for payment_type, currency, count, amount in undone:
            total.add(payment_type, currency, count, amount, sign=-1)
        return total


def figures_line(lang: str, period: str, figures: Figures) -> str:
    sales = sum(count for count, _ in figures.paid.values())
    revenue = " + ".join(format_price(amount, currency) for currency, (_, amount) in sorted(figures.paid.items())
                         if amount) or "0"
    return text(lang, "admin_sales_line", period=label(lang, period), sales=counted(lang, "n_sales", sales),
                revenue=revenue, free=figures.free, granted=figures.granted, refunds=figures.refunds,
                users=figures.new_users)


def ledger_line(session: Session, lang: str) -> str:
    """When Telegram's Stars ledger was last read (ledger.py), and what it fixed."""
    checked, fixed = session.get(Setting, "ledger_checked_at"), session.get(Setting, "ledger_fixed")
    if checked is None:
        return text(lang, "admin_ledger_never")
    payments, refunds = map(int, fixed.value.split()) if fixed else (0, 0)
    return text(lang, "admin_ledger_checked", date=f"{datetime.fromisoformat(checked.value):%Y-%m-%d %H:%M} UTC",
                payments=counted(lang, "n_payments", payments), refunds=counted(lang, "n_refunds", refunds))


def discounts_line(session: Session, lang: str, since: datetime) -> str:
    """What promo codes took off list prices since ``since``, per currency; '' when nothing."""
    rows = session.execute(
        select(Purchase.currency, func.count(), func.sum(Purchase.list_price - Purchase.price))
        .where(Purchase.created_at >= since, Purchase.refunded_at.is_(None), Purchase.promo_code_id.is_not(None))
        .group_by(Purchase.currency)).all()
    if not rows:
        return ""
    off = " + ".join(format_price(amount, currency) for currency, _, amount in rows)
    return text(lang, "admin_discounts", sales=counted(lang, "n_sales", sum(count for _, count, _ in rows)), off=off)


def sales_report(shop: Shop, session: Session, lang: str) -> str:
    """📊 Sales for today, 7 and 30 days and all time, the month's top 5, and the ledger's last reading."""
    now = utcnow()
    periods = [("period_today", now.replace(hour=0, minute=0, second=0, microsecond=0)),
               ("period_7d", now - timedelta(days=7)), ("period_30d", now - timedelta(days=30))]
    lines = [text(lang, "admin_sales")]
    lines += [figures_line(lang, key, figures_between(session, shop.config.admin_ids, since)) for key, since in periods]
    lines.append(figures_line(lang, "period_all", shop.memo.setdefault("all_time", AllTime()).figures(shop, session)))
    best = (select(Purchase.product_id, func.count().label("sold"))
            .where(Purchase.created_at >= periods[2][1], Purchase.refunded_at.is_(None),
                   Purchase.payment_type.in_(PAID)).group_by(Purchase.product_id)
            .order_by(func.count().desc(), Purchase.product_id).limit(5).subquery())
    top = session.execute(select(Product.name, best.c.sold).join(best, best.c.product_id == Product.id)
                          .order_by(best.c.sold.desc(), Product.id)).all()
    if top:
        lines.append(text(lang, "admin_top"))
        lines += [text(lang, "admin_top_line", place=n, name=name, count=sold) for n, (name, sold) in enumerate(top, 1)]
    lines.append(discounts_line(session, lang, periods[2][1]))
    if shop.config.payment_type == "stars":
        lines.append(ledger_line(session, lang))
    return "\n".join(lines)


@handlers.tap("sales")
def tap_sales(shop: Shop, call: types.CallbackQuery, session: Session) -> Screen:
    """📊 Sales."""
    lang = language_of(call.from_user)
    return Screen(sales_report(shop, session, lang), keyboard([button(label(lang, "btn_back"), "admin")]))


# ---------------------------------------------------------------------------
# 🧾 Recent purchases and refunds
# ---------------------------------------------------------------------------

def recent_purchases_screen(session: Session, lang: str, page: int) -> Screen:
    """🧾 Every purchase, newest first (↩️ = refunded)."""
    total = func.count().over().label("total")
    rows = session.execute(
        select(Purchase.id, Purchase.price, Purchase.currency, Purchase.refunded_at, Product.name, total)
        .join(Product, Purchase.product_id == Product.id)
        .order_by(Purchase.id.desc()).limit(PAGE_SIZE).offset(page * PAGE_SIZE)).all()
    if not rows and page:
        return recent_purchases_screen(session, lang, 0)
    buttons = [[button(("↩️ " if r.refunded_at else "") + f"#{r.id} {r.name} — {format_price(r.price, r.currency)}",
                       "admin_purchase", r.id)] for r in rows]
    return Screen(text(lang, "admin_recent" if rows else "admin_no_purchases"), keyboard(
        *buttons, pager_row(lang, "recent_purchases", (), page, page_count(rows[0].total if rows else 0)),
        [button(label(lang, "btn_back"), "admin")]))


@handlers.tap("recent_purchases")
def tap_recent_purchases(shop: Shop, call: types.CallbackQuery, session: Session, page: int) -> Screen:
    """🧾 Recent purchases."""
    return recent_purchases_screen(session, language_of(call.from_user), page)


def purchase_screen(session: Session, lang: str, purchase_id: int) -> Screen:
    """One sale: buyer, product, price, Telegram's charge id, and ↩️ Refund while it is live."""
    purchase = session.get(Purchase, purchase_id)
    if purchase is None:
        return recent_purchases_screen(session, lang, 0)
    buyer = purchase.user
    body = text(lang, "admin_purchase", id=purchase.id, buyer=describe_user(buyer), buyer_id=buyer.telegram_id,
                product=purchase.product.name, price=format_price(purchase.price, purchase.currency),
                type=label(lang, f"payment_{purchase.payment_type}"), payment_id=purchase.payment_id or "—",
                date=f"{purchase.created_at:%Y-%m-%d %H:%M} UTC")
    body += promo_line(session, lang, purchase) + gift_line(session, lang, purchase)
    if purchase.refunded_at:
        body += "\n" + text(lang, "admin_refunded_at", date=f"{purchase.refunded_at:%Y-%m-%d %H:%M} UTC")
    refund = [] if purchase.refunded_at else [button(label(lang, "btn_refund"), "refund", purchase.id)]
    return Screen(body, keyboard(refund, [button(label(lang, "btn_back"), "recent_purchases", 0)]))


@handlers.tap("admin_purchase")
def tap_admin_purchase(shop: Shop, call: types.CallbackQuery, session: Session, purchase_id: int) -> Screen:
    """A purchase, as the seller sees it."""
    return purchase_screen(session, language_of(call.from_user), purchase_id)


@handlers.tap("refund")
def tap_refund(shop: Shop, call: types.CallbackQuery, session: Session, purchase_id: int) -> Screen:
    """↩️ Refund: asks first."""
    lang = language_of(call.from_user)
    purchase = session.get(Purchase, purchase_id)
    if purchase is None or purchase.refunded_at:
        return purchase_screen(session, lang, purchase_id)
    paid = purchase.payment_type in PAID  # a free item or a grant is taken back, with no money to return
    question = text(lang, "admin_confirm_refund" if paid else "admin_confirm_revoke", id=purchase.id,
                    product=purchase.product.name, price=format_price(purchase.price, purchase.currency),
                    buyer=describe_user(purchase.user))
    return Screen(question, keyboard([button(label(lang, "btn_confirm_refund" if paid else "btn_confirm_revoke"),
                                             "confirm_refund", purchase_id),
                                      button(label(lang, "btn_back"), "admin_purchase", purchase_id)]))


@handlers.tap("confirm_refund")
def tap_confirm_refund(shop: Shop, call: types.CallbackQuery, session: Session, purchase_id: int) -> Screen:
    """↩️ Yes, refund: the money goes back, then the purchase shows as refunded."""
    lang = language_of(call.from_user)
    purchase = session.get(Purchase, purchase_id)
    if purchase is None:
        return recent_purchases_screen(session, lang, 0)
    outcome = refund_purchase(shop, session, purchase, call.from_user.id, lang)
    return with_toast(purchase_screen(session, lang, purchase_id), outcome)  # drawn after: shows the refund


def on_refund_command(shop: Shop, message: types.Message, session: Session) -> Screen:
    """/refund <payment id>"""
    lang = language_of(message.from_user)
    payment_id = message.text.partition(" ")[2].strip()
    purchase = session.scalar(select(Purchase).where(Purchase.payment_id == payment_id)) if payment_id else None
    if purchase is None:
        return Screen(text(lang, "admin_refund_usage"))
    return Screen(refund_purchase(shop, session, purchase, message.from_user.id, lang))


@dataclass
class Granted:
    """Reply: a granted product delivered to the customer; then the admin hears whether it reached them."""

    purchase_id: int
    customer_id: int
    customer_lang: str
    heading: str

    def show(self, shop: Shop, message: types.Message) -> None:
        reached = deliver(shop, self.customer_id, self.purchase_id, self.heading, self.customer_lang)
        send(shop, message.chat.id, text(language_of(message.from_user),
                                         "admin_granted" if reached else "admin_granted_undelivered",
                                         id=self.purchase_id))


def on_grant(shop: Shop, message: types.Message, session: Session):
    """/grant <telegram id> <product id>: give a product to a customer, for support cases."""
    lang = language_of(message.from_user)
    arguments = message.text.split()[1:]
    if len(arguments) != 2 or not all(is_id(a) for a in arguments):
        return Screen(text(lang, "admin_grant_usage"))
    telegram_id, product_id = map(int, arguments)
    product = session.get(Product, product_id)
    if product is None:
        return Screen(text(lang, "unavailable"))
    if product.sold_once_per_customer and owned_purchase_id(session, telegram_id, product_id):
        return Screen(text(lang, "admin_grant_owned"))
    user = session.scalar(select(User).where(User.telegram_id == telegram_id)) or User(telegram_id=telegram_id)
    purchase = give_product(session, user, product, "manual", shop.config.currency)
    if purchase is None:
        return Screen(text(lang, "sold_out_toast"))
    logger.info("Admin %s granted product %s to user %s", message.from_user.id, product_id, telegram_id)
    customer_lang = language_for_code(user.language_code)
    return Granted(purchase.id, telegram_id, customer_lang, text(customer_lang, "thanks", name=product.name))


# ---------------------------------------------------------------------------
# 📄 Export CSV
# ---------------------------------------------------------------------------

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # what makes a spreadsheet run a cell as a formula


def safe_cell(value: str | None) -> str:
    """A cell that a spreadsheet shows as text: a leading ' stops =HYPERLINK(...) in a product's name (OWASP)."""
    value = value or ""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def amount_text(price: int, currency: str) -> str:
    """999, 'USD' -> '9.99': the price in whole units, for a spreadsheet."""
    places = decimals(currency)
    units, cents = divmod(price, 10 ** places)
    return f"{units}.{cents:0{places}d}" if places else str(units)


def purchases_csv(session: Session) -> str:
    """Every purchase as CSV, oldest first, streamed from the database in batches."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["date", "purchase_id", "buyer_id", "username", "product", "price", "currency",
                     "payment_type", "payment_id", "refunded_at", "list_price", "promo_code", "gift"])
    rows = session.execute(
        select(Purchase.created_at, Purchase.id, User.telegram_id, User.username, Product.name, Purchase.price,
               Purchase.currency, Purchase.payment_type, Purchase.payment_id, Purchase.refunded_at,
               Purchase.list_price, PromoCode.code, Gift.id.label("gift"))
        .join(User, Purchase.user_id == User.id).join(Product, Purchase.product_id == Product.id)
        .outerjoin(PromoCode, Purchase.promo_code_id == PromoCode.id).outerjoin(Gift, Gift.purchase_id == Purchase.id)
        .order_by(Purchase.id).execution_options(yield_per=1000))
    for row in rows:
        writer.writerow([f"{row.created_at:%Y-%m-%d %H:%M:%S}", row.id, row.telegram_id, safe_cell(row.username),
                         safe_cell(row.name), amount_text(row.price, row.currency), row.currency, row.payment_type,
                         safe_cell(row.payment_id), f"{row.refunded_at:%Y-%m-%d %H:%M:%S}" if row.refunded_at else "",
                         "" if row.list_price is None else amount_text(row.list_price, row.currency),
                         row.code or "", "yes" if row.gift else ""])
    return out.getvalue()


@dataclass
class Document:
    """Reply: a file made by the shop (the CSV), sent to the admin's chat."""

    file_name: str
    data: bytes

    def show(self, shop: Shop, update) -> None:
        shop.bot.send_document(chat_of(update), io.BytesIO(self.data), visible_file_name=self.file_name)


@handlers.tap("export_csv")
def tap_export_csv(shop: Shop, call: types.CallbackQuery, session: Session):
    """📄 Export CSV: every purchase, as a file."""
    data = purchases_csv(session).encode("utf-8-sig")  # -sig: Excel opens UTF-8 right
    return Toast(text(language_of(call.from_user), "admin_exported")), \
        Document(f"purchases-{utcnow():%Y-%m-%d}.csv", data)


def register(bot: TeleBot, shop: Shop) -> None:
    """Wire the money screens and /refund, /grant into the bot."""
    private = {"chat_types": ["private"]}
    bot.register_message_handler(on_message(shop, on_refund_command, admin=True), commands=["refund"], **private)
    bot.register_message_handler(on_message(shop, on_grant, admin=True), commands=["grant"], **private)
    routes.add_handlers(shop, handlers)
