"""Sales: the seller's money screens — figures, purchases, refunds and grants.

Reading order: ... referrals.py → **sales.py** → export.py → ...

📊 Sales sums up four periods (what promo codes took off, and the last 30
days of revenue as a sparkline), from a snapshot brought up to date on each
open, so it costs the same in a shop's first week and after a million sales.
What counts as a sale, a free item, a grant or a renewal is defined once, in
models.py, for every screen and the export. 🧾 Recent purchases opens any
sale (🎁 a gift, ↩️ refunded), with ↩️ Refund (the refund itself is in
purchases.py, beside the deliveries);
``/refund <charge id>`` and ``/grant <user id> <product id>`` are the same
from the keyboard. (📄 Export and 💾 Backup have chapters of their own: export.py,
backups.py.)
"""
from __future__ import annotations

import logging
import threading
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from sqlalchemy import Select, delete, func, or_, select
from sqlalchemy.orm import Session
from telebot import TeleBot, types

import referrals
from channels import sales_figures
from checkout import ADMIN_PURCHASE, give_product
from gifts import gift_line, giver_purchase
from ledger import REFUND, star_balance, stars_report
from menus import ADMIN, RECENT_PURCHASES, SALES
from models import (
    PAID,
    RECEIVED_GIFT,
    SUBSCRIPTION,
    Gift,
    PendingGrant,
    Product,
    Purchase,
    User,
    figure_of,
    is_live,
    is_sale,
    owned_purchase_id,
)
from promos import promo_line
from purchases import PAYMENT_TYPES, deliver, refund_purchase
from shopkit import (
    PAGE_SIZE,
    After,
    Handlers,
    Screen,
    Setting,
    Shop,
    Tap,
    add_handlers,
    counted,
    describe_user,
    format_price,
    is_id,
    keyboard,
    label,
    language_for_code,
    language_of,
    number,
    page_count,
    pager_row,
    send,
    text,
    utcnow,
    with_toast,
)

logger = logging.getLogger("shopbot")
handlers = Handlers(admin=True)

# The buttons of a purchase's screen, and the numbers each carries.
CONFIRM_REFUND = Tap("confirm_refund", "purchase_id")

# ---------------------------------------------------------------------------
# 📊 Sales
# ---------------------------------------------------------------------------


EPOCH = datetime(1970, 1, 1)
PERIODS = {  # the report's lines, and where each period starts when seen from a given moment
    "period_today": lambda at: at.replace(hour=0, minute=0, second=0, microsecond=0),
    "period_7d": lambda at: at - timedelta(days=7),
    "period_30d": lambda at: at - timedelta(days=30),
    "period_all": lambda at: EPOCH,
}
TOP_PERIOD = "period_30d"  # whose best sellers the report lists
SNAPSHOT_AGE = timedelta(hours=1)  # how old the snapshot may grow before it is taken again
# The snapshot stops this long before it is taken: a sale is stamped a moment before it is committed,
# and one committed after the snapshot was read, stamped before its end, would be missed by both.
SETTLE = timedelta(minutes=1)


@dataclass
class Figures:
    """One period's figures: paid sales still live, per currency (and per product, for the top 5),
    free items and grants, refunds, and new users."""

    sales: Counter[str] = field(default_factory=Counter)  # currency -> paid sales
    revenue: Counter[str] = field(default_factory=Counter)  # currency -> their amount
    sold: Counter[int] = field(default_factory=Counter)  # product id -> paid sales (TOP_PERIOD only)
    free: int = 0
    granted: int = 0
    refunds: int = 0
    new_users: int = 0

    def count(self, count: int, amount: int, payment_type: str, currency: str, product_id: int | None = None) -> None:
        figure = figure_of(payment_type)  # models.py: the one definition of each figure
        if figure == "sales":
            self.sales[currency] += count
            self.revenue[currency] += amount
            if product_id is not None:
                self.sold[product_id] += count
        elif figure == "free":
            self.free += count
        elif figure == "granted":
            self.granted += count

    def plus(self, other: Figures, sign: int = 1) -> Figures:
        """These figures with another's added, or with sign=-1 taken away."""
        def combined(mine: Counter, theirs: Counter) -> Counter:
            total = mine.copy()
            total.update({key: sign * value for key, value in theirs.items()})
            return total

        return Figures(combined(self.sales, other.sales), combined(self.revenue, other.revenue),
                       combined(self.sold, other.sold), self.free + sign * other.free,
                       self.granted + sign * other.granted, self.refunds + sign * other.refunds,
                       self.new_users + sign * other.new_users)


def in_period(column, since: datetime, until: datetime):
    # Closed at both ends, also when "until" is now: a sale recorded while the report is being read
    # stays out of every line, and SQLite's planner, seeing a bounded range, reads it from the index
    # on dates rather than walking all the sales in another index's order.
    return (column >= since) & (column < until)


def sales_by_kind(by_product: bool, *conditions) -> Select:
    """Count and sum the purchases meeting ``conditions`` by payment type and currency (and product)."""
    kinds = [Purchase.payment_type, Purchase.currency] + ([Purchase.product_id] if by_product else [])
    return select(func.count(), func.sum(Purchase.price), *kinds).where(*conditions).group_by(*kinds)


def figures_between(session: Session, admin_ids, since: datetime, until: datetime, by_product: bool,
                    live_at: datetime | None = None) -> Figures:
    """The figures of sales made in [since, until), still live now (or, given ``live_at``, not refunded
    before it): a few index ranges (ix_purchases_sales)."""
    live = is_live()
    if live_at is not None:
        live = or_(live, Purchase.refunded_at >= live_at)
    figures = Figures()
    for row in session.execute(sales_by_kind(by_product, in_period(Purchase.created_at, since, until), live)):
        figures.count(*row)
    figures.refunds = session.scalar(select(func.count()).where(
        in_period(Purchase.refunded_at, since, until), is_sale()))
    # Everyone who started the bot in the period, from the index on created_at, less the admins among
    # them (looked up by their ids): "not an admin" in one query would read every user's row.
    figures.new_users = session.scalar(select(func.count()).where(in_period(User.created_at, since, until))) - \
        session.scalar(select(func.count()).where(in_period(User.created_at, since, until),
                                                  User.telegram_id.in_(admin_ids)))
    return figures


def refunded_since(session: Session, taken_at: datetime, now: datetime) -> list:
    """Sales made before the snapshot and refunded since: the few it counted live that are live no more."""
    return session.execute(
        select(Purchase.created_at, Purchase.price, Purchase.payment_type, Purchase.currency, Purchase.product_id)
        .where(in_period(Purchase.refunded_at, taken_at, now), Purchase.created_at < taken_at)).all()


def change_since(session: Session, admin_ids, start, since_snapshot: Figures, refunded: list, taken_at: datetime,
                 now: datetime, by_product: bool) -> Figures:
    """How a period's figures changed since its snapshot was taken at ``taken_at``: short index ranges only.

    Purchases are stamped when they are recorded, never backdated, so from the snapshot's figures
    for [start(taken_at), taken_at) to today's for [start(now), now) is: add the figures since
    the snapshot (the same for every period), take away those the period's start moved past,
    and take away the period's sales the snapshot counted live that were refunded since. (Each
    count is a sum over its range: this holds also when the period starts after the snapshot,
    as today does at midnight.)
    """
    change = since_snapshot if by_product else replace(since_snapshot, sold=Counter())
    if start(taken_at) < start(now):  # never for "all time"; for today, once a day
        change = change.plus(figures_between(session, admin_ids, start(taken_at), start(now), by_product), sign=-1)
    undone = Figures()
    for created_at, price, payment_type, currency, product_id in refunded:
        if created_at >= start(taken_at):
            undone.count(1, price, payment_type, currency, product_id if by_product else None)
    return change.plus(undone, sign=-1)


def ranking(sold: Counter[int]) -> list[int]:
    """Product ids, the most sold first (the first added first, among equals)."""
    return sorted(sold, key=lambda product_id: (-sold[product_id], product_id))


def top_five(sold: Counter[int], ranked: list[int], change: Counter[int]) -> list[tuple[int, int]]:
    """The five products sold most, and their sales: ``sold`` (in the order of ``ranked``) plus ``change``.

    Only the products in ``change`` can move; the others keep their order, so the best five of
    them are among the first 5 + len(change) ranked. No need to sort tens of thousands again.
    """
    candidates = set(ranked[:5 + len(change)]) | set(change)
    counts = {product_id: sold[product_id] + change[product_id] for product_id in candidates}
    best = sorted((product_id for product_id in candidates if counts[product_id] > 0),
                  key=lambda product_id: (-counts[product_id], product_id))
    return [(product_id, counts[product_id]) for product_id in best[:5]]


@dataclass
class Report:
    """📊 Sales' figures for every period, and the best sellers of TOP_PERIOD."""

    figures: dict[str, Figures]
    top: list[tuple[int, int]]  # (product id, sales), the most sold first


class Snapshot:
    """Every period's figures as they stood at one moment, taken again in the background every hour.

    Counting a million sales takes the best part of a second, a busy month's tens of
    milliseconds; bringing the snapshot up to date (above) takes a few.
    """

    def __init__(self):
        self.lock = threading.Lock()
        self.figures: dict[str, Figures] = {}
        self.ranked: list[int] = []  # TOP_PERIOD's products, the most sold first
        self.taken_at = EPOCH
        self.retaking = False

    def take(self, shop: Shop) -> None:
        taken_at = utcnow() - SETTLE
        with shop.Session() as session:
            # The sales as they stood at taken_at: one refunded since (in SETTLE) is live in the snapshot,
            # and taken away, as every refund after it, by refunded_since.
            figures = {period: figures_between(session, shop.config.admin_ids, start(taken_at), taken_at,
                                               period == TOP_PERIOD, live_at=taken_at)
                       for period, start in PERIODS.items()}
        ranked = ranking(figures[TOP_PERIOD].sold)
        with self.lock:
            self.figures, self.ranked, self.taken_at, self.retaking = figures, ranked, taken_at, False

    def now(self, shop: Shop, session: Session, now: datetime) -> Report:
        """Every period's figures at ``now``, and the best sellers."""
        if not self.figures:
            self.take(shop)  # the first time only: then the snapshot is kept fresh in the background
        with self.lock:
            figures, ranked, taken_at = self.figures, self.ranked, self.taken_at
            retake = now - taken_at > SNAPSHOT_AGE and not self.retaking
            self.retaking |= retake
        if retake:
            shop.start_background(self.take)
        admin_ids = shop.config.admin_ids
        since_snapshot = figures_between(session, admin_ids, taken_at, now, by_product=True)
        refunded = refunded_since(session, taken_at, now)
        changes = {period: change_since(session, admin_ids, start, since_snapshot, refunded, taken_at, now,
                                        period == TOP_PERIOD) for period, start in PERIODS.items()}
        top = top_five(figures[TOP_PERIOD].sold, ranked, changes[TOP_PERIOD].sold)
        return Report({period: figures[period].plus(changes[period]) for period in PERIODS}, top)


def figures_line(lang: str, period: str, figures: Figures) -> str:
    revenue = " + ".join(format_price(amount, currency) for currency, amount in sorted(figures.revenue.items())
                         if amount) or "0"
    return text(lang, "admin_sales_line", period=label(lang, period),
                sales=counted(lang, "n_sales", figures.sales.total()), revenue=revenue, free=number(figures.free),
                granted=number(figures.granted), refunds=number(figures.refunds), users=number(figures.new_users))


SPARKS = "▁▂▃▄▅▆▇█"  # a day without revenue, then seven heights up to the best day
SPARKLINE_DAYS = 30


def sparkline(values: list[int]) -> str:
    """One character a value, oldest first: ▁ for nothing, and the rest in sevenths of the largest (at least ▂,
    so that a small day never looks like an empty one)."""
    top = max(values, default=0)
    return "".join(SPARKS[-(-value * (len(SPARKS) - 1) // top) if value > 0 else 0] for value in values)


def daily_revenue(session: Session, currency: str, today: datetime) -> list[int]:
    """The revenue (live sales, as in the figures above) of each of the last SPARKLINE_DAYS days, in
    ``currency``, oldest first: one range of the sales index, summed by day."""
    first = today.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=SPARKLINE_DAYS - 1)
    day = func.date(Purchase.created_at)  # SQLite: '2026-12-07'; PostgreSQL: a date (str() alike)
    rows = session.execute(select(day, func.sum(Purchase.price))
                           .where(Purchase.created_at >= first, is_sale(), is_live(), Purchase.currency == currency)
                           .group_by(day))
    by_day = {str(date): amount for date, amount in rows}
    return [by_day.get(f"{first + timedelta(days=n):%Y-%m-%d}", 0) for n in range(SPARKLINE_DAYS)]


def sparkline_line(session: Session, lang: str, currency: str) -> str:
    """📈 The last 30 days of revenue at a glance, and the best day's."""
    revenue = daily_revenue(session, currency, utcnow())
    return text(lang, "admin_sparkline", days=SPARKLINE_DAYS, sparkline=sparkline(revenue),
                best=format_price(max(revenue), currency))


def best_sellers(session: Session, top: list[tuple[int, int]]) -> list[tuple[str, int]]:
    """The best sellers' names, with their sales (a product deleted since is left out)."""
    names = dict(session.execute(select(Product.id, Product.name).where(Product.id.in_([id for id, _ in top]))).all())
    return [(names[product_id], count) for product_id, count in top if product_id in names]


def ledger_line(session: Session, lang: str) -> str:
    """When Telegram's Stars ledger was last read (ledger.py), and what it fixed."""
    checked, fixed = session.get(Setting, "ledger_checked_at"), session.get(Setting, "ledger_fixed")
    if checked is None:
        return text(lang, "admin_ledger_never")
    payments, refunds = map(int, fixed.value.split()) if fixed else (0, 0)
    return text(lang, "admin_ledger_checked", date=f"{datetime.fromisoformat(checked.value):%Y-%m-%d %H:%M} UTC",
                payments=counted(lang, "n_payments", payments), refunds=counted(lang, "n_refunds", refunds))


def discounts_line(session: Session, lang: str, since: datetime) -> str:
    """What promo codes took off list prices since ``since``, per currency; '' when nothing. Its sales are
    sales as everywhere (is_sale): an item a 100 % code made free is counted apart, as free."""
    rows = session.execute(
        select(Purchase.currency, is_sale().label("sale"), func.count(),
               func.sum(Purchase.list_price - Purchase.price))
        .where(Purchase.created_at >= since, is_live(), Purchase.promo_code_id.is_not(None))
        .group_by(Purchase.currency, "sale")).all()
    if not rows:
        return ""
    off = Counter()
    for currency, _sale, _count, amount in rows:
        off[currency] += amount
    sales = sum(count for _currency, sale, count, _amount in rows if sale)
    free = sum(count for _currency, sale, count, _amount in rows if not sale)
    line = text(lang, "admin_discounts", sales=counted(lang, "n_sales", sales),
                off=" + ".join(format_price(amount, currency) for currency, amount in sorted(off.items())))
    return line + (text(lang, "admin_discounts_free", free=free) if free else "")


def sales_report(shop: Shop, session: Session, lang: str, balance: int | None = None) -> str:
    """📊 Sales for today, 7 and 30 days and all time, the month's top 5, the ledger's last reading, and the
    Stars net of Telegram's cuts with the bot's ``balance`` (ledger.py)."""
    report = shop.memo.setdefault("sales", Snapshot()).now(shop, session, utcnow())
    lines = [text(lang, "admin_sales")] + [figures_line(lang, period, report.figures[period]) for period in PERIODS]
    lines.append(sparkline_line(session, lang, shop.config.currency))
    top = best_sellers(session, report.top)
    if top:
        lines.append(text(lang, "admin_top"))
        lines += [text(lang, "admin_top_line", place=n, name=name, count=number(sold))
                  for n, (name, sold) in enumerate(top, 1)]
    if subscribed := sales_figures(session, lang):
        lines.append(subscribed)
    if discounts := discounts_line(session, lang, utcnow() - timedelta(days=30)):
        lines.append(discounts)
    if invited := referrals.sales_line(session, lang, utcnow() - timedelta(days=30)):
        lines.append(invited)
    if shop.config.payment_type == "stars":
        lines.append(ledger_line(session, lang))
        lines.append(stars_report(session, lang, PERIODS, balance, utcnow()))
    return "\n".join(lines)


@handlers.tap(SALES)
def tap_sales(shop: Shop, call: types.CallbackQuery, session: Session, lang: str) -> Screen:
    """📊 Sales."""
    # Telegram's answer first, before the first query: no transaction waits for it.
    balance = star_balance(shop) if shop.config.payment_type == "stars" else None
    return Screen(sales_report(shop, session, lang, balance), keyboard([ADMIN.button(label(lang, "btn_back"))]))


# ---------------------------------------------------------------------------
# 🧾 Recent purchases and refunds
# ---------------------------------------------------------------------------

def recent_purchase_label(lang: str, row) -> str:
    """'↩️ 🎁 #7 Pro — 450 ⭐': refunded, a gift (bought or received), and the price of a sale, or what it was
    instead (free, granted, gift)."""
    marks = ("↩️ " if row.refunded_at else "") + ("🎁 " if row.gift or row.payment_type == RECEIVED_GIFT else "")
    paid = format_price(row.price, row.currency) if figure_of(row.payment_type) == "sales" else \
        label(lang, PAYMENT_TYPES[row.payment_type])
    return f"{marks}#{row.id} {row.name} — {paid}"


def recent_purchases_screen(session: Session, lang: str, page: int) -> Screen:
    """🧾 Every purchase, newest first (↩️ = refunded, 🎁 = a gift)."""
    total = func.count().over().label("total")
    rows = session.execute(
        select(Purchase.id, Purchase.price, Purchase.currency, Purchase.refunded_at, Purchase.payment_type,
               Product.name, Gift.id.label("gift"), total)
        .join(Product, Purchase.product_id == Product.id).outerjoin(Gift, Gift.purchase_id == Purchase.id)
        .order_by(Purchase.id.desc()).limit(PAGE_SIZE).offset(page * PAGE_SIZE)).all()
    if not rows and page:
        return recent_purchases_screen(session, lang, 0)
    buttons = [[ADMIN_PURCHASE.button(recent_purchase_label(lang, r), purchase_id=r.id)] for r in rows]
    return Screen(text(lang, "admin_recent" if rows else "admin_no_purchases"), keyboard(
        *buttons, pager_row(lang, RECENT_PURCHASES, page, page_count(rows[0].total if rows else 0)),
        [ADMIN.button(label(lang, "btn_back"))]))


@handlers.tap(RECENT_PURCHASES)
def tap_recent_purchases(shop: Shop, call: types.CallbackQuery, session: Session, lang: str, page: int) -> Screen:
    """🧾 Recent purchases."""
    return recent_purchases_screen(session, lang, page)


def refunded_line(lang: str, purchase: Purchase) -> str:
    """↩️ Refunded: when, and by whom (the seller, the shop itself, or Telegram) when that was recorded."""
    date = f"{purchase.refunded_at:%Y-%m-%d %H:%M} UTC"
    if purchase.refunded_by is None:  # refunded before the shop recorded who did it
        return text(lang, "admin_refunded_at", date=date)
    return text(lang, "admin_refunded_at_by", date=date, who=label(lang, f"export_refunded_by_{purchase.refunded_by}"))


def purchase_screen(session: Session, lang: str, purchase_id: int) -> Screen:
    """One sale: buyer, product, price, Telegram's charge id, and ↩️ Refund while it is live."""
    purchase = session.get(Purchase, purchase_id)
    if purchase is None:
        return recent_purchases_screen(session, lang, 0)
    buyer = purchase.user
    body = text(lang, "admin_purchase", id=purchase.id, buyer=describe_user(buyer), buyer_id=buyer.telegram_id,
                product=purchase.product.name, price=format_price(purchase.price, purchase.currency),
                type=label(lang, PAYMENT_TYPES[purchase.payment_type]), payment_id=purchase.payment_id or "—",
                date=f"{purchase.created_at:%Y-%m-%d %H:%M} UTC")
    body += promo_line(session, lang, purchase) + gift_line(session, lang, purchase)
    if purchase.refunded_at:
        body += "\n" + refunded_line(lang, purchase)
    elif purchase.refund_due:
        body += "\n" + text(lang, "admin_refund_due")
    refund = [] if purchase.refunded_at else [REFUND.button(refund_label(session, lang, purchase),
                                                            purchase_id=purchase.id)]
    return Screen(body, keyboard(refund, [RECENT_PURCHASES.button(label(lang, "btn_back"), page=0)]))


def paid_for_by(session: Session, purchase: Purchase) -> Purchase:
    """The purchase whose refund takes this one back: a gift received is the giver's payment; else itself."""
    return giver_purchase(session, purchase) or purchase


def refund_label(session: Session, lang: str, purchase: Purchase) -> str:
    """↩️ Refund where money was paid (for a gift, the giver's); ↩️ Take back where none was: nothing to refund."""
    paid_for = paid_for_by(session, purchase)
    if paid_for.payment_type not in PAID:
        return label(lang, "btn_take_back")
    if paid_for is not purchase:
        return label(lang, "btn_refund_giver", giver=paid_for.user.first_name or paid_for.user.telegram_id)
    return label(lang, "btn_refund")


@handlers.tap(ADMIN_PURCHASE)
def tap_admin_purchase(shop: Shop, call: types.CallbackQuery, session: Session, lang: str, purchase_id: int) -> Screen:
    """A purchase, as the seller sees it."""
    return purchase_screen(session, lang, purchase_id)


@handlers.tap(REFUND)
def tap_refund(shop: Shop, call: types.CallbackQuery, session: Session, lang: str, purchase_id: int) -> Screen:
    """↩️ Refund: asks first."""
    purchase = session.get(Purchase, purchase_id)
    if purchase is None or purchase.refunded_at:
        return purchase_screen(session, lang, purchase_id)
    # A gift received was paid for by its giver: refunding it gives them their money back, and takes the
    # recipient's copy back with it (purchases.take_back).
    paid_for = paid_for_by(session, purchase)
    paid = paid_for.payment_type in PAID  # a free item or a grant is taken back, with no money to return
    key = "admin_confirm_refund" if paid else "admin_confirm_revoke"
    if paid and paid_for is not purchase:
        key = "admin_confirm_refund_gift"
    question = text(lang, key, id=paid_for.id, product=paid_for.product.name,
                    price=format_price(paid_for.price, paid_for.currency),
                    buyer=describe_user((paid_for if paid else purchase).user),  # a free gift: taken from its holder
                    recipient=describe_user(purchase.user))
    confirm = label(lang, "btn_confirm_refund" if paid else "btn_confirm_revoke")
    return Screen(question, keyboard([CONFIRM_REFUND.button(confirm, purchase_id=paid_for.id),
                                      ADMIN_PURCHASE.button(label(lang, "btn_back"), purchase_id=purchase_id)]))


@handlers.tap(CONFIRM_REFUND)
def tap_confirm_refund(shop: Shop, call: types.CallbackQuery, session: Session, lang: str, purchase_id: int) -> Screen:
    """↩️ Yes, refund: the money goes back, then the purchase shows as refunded."""
    purchase = session.get(Purchase, purchase_id)
    if purchase is None:
        return recent_purchases_screen(session, lang, 0)
    outcome = refund_purchase(shop, session, purchase, call.from_user.id, lang)
    return with_toast(purchase_screen(session, lang, purchase_id), outcome)  # drawn after: shows the refund


@handlers.command("refund")
def on_refund_command(shop: Shop, message: types.Message, session: Session, lang: str) -> Screen:
    """/refund <payment id>"""
    payment_id = message.text.partition(" ")[2].strip()
    known = payment_id and "\0" not in payment_id  # NUL: no charge id has one, and PostgreSQL refuses it
    purchase = session.scalar(select(Purchase).where(Purchase.payment_id == payment_id)) if known else None
    if purchase is None:
        return Screen(text(lang, "admin_refund_usage"))
    return Screen(refund_purchase(shop, session, purchase, message.from_user.id, lang))


def deliver_grant(shop: Shop, message: types.Message, purchase_id: int, customer_id: int, customer_lang: str,
                  heading: str) -> None:
    """A granted product delivered to the customer; then the admin (who sent ``message``) hears whether it
    reached them."""
    reached = deliver(shop, customer_id, purchase_id, heading, customer_lang)
    send(shop, message.chat.id, text(language_of(message.from_user),
                                     "admin_granted" if reached else "admin_granted_undelivered", id=purchase_id))


@handlers.command("grant")
def on_grant(shop: Shop, message: types.Message, session: Session, lang: str):
    """/grant <telegram id> <product id>: give a product to a customer, for support cases."""
    arguments = message.text.split()[1:]
    if len(arguments) != 2 or not all(is_id(a) for a in arguments):
        return Screen(text(lang, "admin_grant_usage"))
    telegram_id, product_id = map(int, arguments)
    product = session.get(Product, product_id)
    if product is None:
        return Screen(text(lang, "admin_grant_no_product", id=product_id))
    if product.kind == SUBSCRIPTION:  # Telegram bills it every month: there is no free month to give
        return Screen(text(lang, "admin_grant_subscription"))
    if product.sold_once_per_customer and owned_purchase_id(session, telegram_id, product_id):
        return Screen(text(lang, "admin_grant_owned"))
    user = session.scalar(select(User).where(User.telegram_id == telegram_id))
    if user is None:  # they never opened the bot: Telegram lets no bot write first
        return grant_later(session, message.from_user.id, telegram_id, product, lang)
    purchase = give_product(session, user, product, "manual", shop.config.currency)
    if purchase is None:
        return Screen(text(lang, "sold_out_toast"))
    logger.info("Admin %s granted product %s to user %s", message.from_user.id, product_id, telegram_id)
    customer_lang = language_for_code(user.language_code)
    return After(deliver_grant, message, purchase.id, telegram_id, customer_lang,
                 text(customer_lang, "granted_gift", name=product.name))


def grant_later(session: Session, admin_id: int, telegram_id: int, product: Product, lang: str) -> Screen:
    """A grant for someone who has not opened the bot: it waits for their first /start (grants_waiting), and
    they are no customer of the shop until then (📊 Sales counts nobody)."""
    waiting = session.scalar(select(PendingGrant.id).where(PendingGrant.telegram_id == telegram_id,
                                                           PendingGrant.product_id == product.id))
    if waiting is None:
        session.add(PendingGrant(telegram_id=telegram_id, product_id=product.id, admin_id=admin_id))
        session.commit()
        logger.info("Admin %s granted product %s to user %s, who has not opened the bot yet: it waits for "
                    "their first /start", admin_id, product.id, telegram_id)
    return Screen(text(lang, "admin_grant_pending", id=telegram_id, product=product.name))


def grants_waiting(shop: Shop, session: Session, telegram_user: types.User) -> list[After]:
    """At /start: the products granted to this person before they had opened the bot, made their purchases;
    the steps that deliver them, and that tell each admin who granted one."""
    waiting = session.execute(select(PendingGrant.id, PendingGrant.admin_id, PendingGrant.product_id)
                              .where(PendingGrant.telegram_id == telegram_user.id)
                              .order_by(PendingGrant.id)).all()
    steps, lang = [], language_of(telegram_user)
    for grant_id, admin_id, product_id in waiting:
        user = session.scalar(select(User).where(User.telegram_id == telegram_user.id))
        product = session.get(Product, product_id)
        name = product.name
        session.execute(delete(PendingGrant).where(PendingGrant.id == grant_id))
        purchase = give_product(session, user, product, "manual", shop.config.currency)  # commits the delete too
        admin_lang = language_for_code(session.scalar(select(User.language_code)
                                                      .where(User.telegram_id == admin_id)))
        if purchase is None:  # sold out meanwhile, or they own it already: the admin decides what next
            session.execute(delete(PendingGrant).where(PendingGrant.id == grant_id))
            session.commit()
            steps.append(After(send, admin_id, text(admin_lang, "admin_grant_waiting_failed",
                                                    who=describe_user(telegram_user), product=name)))
            continue
        logger.info("User %s opened the bot: product %s granted by admin %s is now purchase %s",
                    telegram_user.id, product_id, admin_id, purchase.id)
        steps += [After(deliver, telegram_user.id, purchase.id, text(lang, "granted_gift", name=name), lang),
                  After(send, admin_id, text(admin_lang, "admin_grant_arrived", who=describe_user(telegram_user),
                                             product=name, id=purchase.id))]
    return steps


def register(bot: TeleBot, shop: Shop) -> None:
    """Wire the money screens and /refund, /grant into the bot; and, at /start, the grants waiting."""
    shop.grants_waiting = grants_waiting
    add_handlers(shop, handlers)
