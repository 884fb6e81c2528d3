"""Sales: the seller's money screens — figures, purchases, refunds, grants and export.

Reading order: ... stock.py → **sales.py** → broadcast.py.

📊 Sales sums up four periods; 🧾 Recent purchases opens any sale, with
↩️ Refund (the refund itself is in checkout.py, beside the payments);
``/refund <charge id>`` and ``/grant <user id> <product id>`` are the same
from the keyboard. 📄 Export CSV sends every purchase as a spreadsheet.
(💾 Backup has a chapter of its own: backups.py.)
"""
from __future__ import annotations

import csv
import io
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from telebot import TeleBot, types

import routes
from checkout import Delivery, give_product, refund_purchase
from config import is_id
from models import (
    Product,
    Purchase,
    User,
    owned_purchase_id,
    utcnow,
)
from routes import Handlers, chat_of, on_message
from screens import (
    PAGE_SIZE,
    Screen,
    Toast,
    button,
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
from shop import Shop

logger = logging.getLogger("shopbot")
handlers = Handlers(admin=True)

# ---------------------------------------------------------------------------
# 📊 Sales
# ---------------------------------------------------------------------------


def sales_report(session: Session, lang: str) -> str:
    """Sales, revenue per currency, refunds and new customers for four periods, and the month's top 5.

    Every query reads an index range by date (see the indexes on Purchase), so
    the report stays quick on a shop with 100,000 sales.
    """
    now = utcnow()
    periods = [("period_today", now.replace(hour=0, minute=0, second=0, microsecond=0)),
               ("period_7d", now - timedelta(days=7)), ("period_30d", now - timedelta(days=30)),
               ("period_all", datetime(1970, 1, 1))]
    live = Purchase.refunded_at.is_(None)
    lines = [text(lang, "admin_sales")]
    for key, since in periods:
        sales = session.execute(select(Purchase.currency, func.count(), func.sum(Purchase.price))
                                .where(Purchase.created_at >= since, live).group_by(Purchase.currency)).all()
        refunds = session.scalar(select(func.count()).where(Purchase.refunded_at >= since))
        customers = session.scalar(select(func.count()).where(User.created_at >= since))
        revenue = " + ".join(format_price(total, currency) for currency, _, total in sales) or "0"
        lines.append(text(lang, "admin_sales_line", period=label(lang, key), count=sum(row[1] for row in sales),
                          revenue=revenue, refunds=refunds, customers=customers))
    month = periods[2][1]
    best = (select(Purchase.product_id, func.count().label("sold"))
            .where(Purchase.created_at >= month, live).group_by(Purchase.product_id)
            .order_by(func.count().desc(), Purchase.product_id).limit(5).subquery())
    top = session.execute(select(Product.name, best.c.sold).join(best, best.c.product_id == Product.id)
                          .order_by(best.c.sold.desc(), Product.id)).all()
    if top:
        lines.append(text(lang, "admin_top"))
        lines += [text(lang, "admin_top_line", place=n, name=name, count=sold) for n, (name, sold) in enumerate(top, 1)]
    return "\n".join(lines)


@handlers.tap("sales")
def tap_sales(shop: Shop, call: types.CallbackQuery, session: Session) -> Screen:
    """📊 Sales."""
    lang = language_of(call.from_user)
    return Screen(sales_report(session, lang), keyboard([button(label(lang, "btn_back"), "admin")]))


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
                type=purchase.payment_type, payment_id=purchase.payment_id or "—",
                date=f"{purchase.created_at:%Y-%m-%d %H:%M} UTC")
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
    return Screen(text(lang, "admin_confirm_refund", id=purchase.id, product=purchase.product.name,
                       price=format_price(purchase.price, purchase.currency), buyer=describe_user(purchase.user)),
                  keyboard([button(label(lang, "btn_confirm_refund"), "confirm_refund", purchase_id),
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
    delivery = Delivery(purchase.id, text(customer_lang, "thanks", name=product.name), customer_lang, telegram_id)
    return delivery, Screen(text(lang, "admin_granted", id=purchase.id))


# ---------------------------------------------------------------------------
# 📄 Export CSV
# ---------------------------------------------------------------------------

def purchases_csv(session: Session) -> str:
    """Every purchase as CSV, oldest first, streamed from the database in batches."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["date", "purchase_id", "buyer_id", "username", "product", "price", "currency",
                     "payment_type", "payment_id", "refunded_at"])
    rows = session.execute(
        select(Purchase.created_at, Purchase.id, User.telegram_id, User.username, Product.name, Purchase.price,
               Purchase.currency, Purchase.payment_type, Purchase.payment_id, Purchase.refunded_at)
        .join(User, Purchase.user_id == User.id).join(Product, Purchase.product_id == Product.id)
        .order_by(Purchase.id).execution_options(yield_per=1000))
    for row in rows:
        created, *middle, price, currency, payment_type, payment_id, refunded = row
        amount = f"{price / 10 ** decimals(currency):.{decimals(currency)}f}"
        writer.writerow([f"{created:%Y-%m-%d %H:%M:%S}", *middle, amount, currency, payment_type, payment_id or "",
                         f"{refunded:%Y-%m-%d %H:%M:%S}" if refunded else ""])
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
