"""Export: every purchase as a spreadsheet that opens right everywhere, and a CSV beside it for machines.

Reading order: ... sales.py → **export.py** → promo_panel.py → ...

📄 Export, on the seller's panel, sends two files: ``purchases-<date>.xlsx`` to
open, and ``purchases-<date>.csv`` to feed another program. Why both: no CSV
opens right in every Excel. Excel splits a CSV on the list separator of the
computer's region, a comma in English ones and a semicolon in Russian ones, so
any CSV opens as a single column somewhere; a ``sep=`` first line fixes the
split but makes Excel read the file in the old local code page, garbling
Cyrillic. An .xlsx (written with openpyxl) carries its columns, numbers and
dates itself: Excel in any language, LibreOffice and Google Sheets open it alike.

One row per purchase, oldest first, with the columns of ``COLUMNS`` below: dates
and times in UTC (the headers say so), amounts in the currency's units (4.99,
not 499 cents) as numbers, and every text a plain text cell. A name, a product
or a promo code that begins with = + - or @ is what a spreadsheet would run as a
formula (=HYPERLINK(...) in a product's name, a code such as -A1); such a cell is
marked as text that stays text even when edited (the spreadsheet's own leading
apostrophe), and the CSV starts it with ' as spreadsheets do (OWASP).

The figures in it are those of 📊 Sales (models.figure_of): the payment column
says sale, free or granted as the report counts them. A big shop's export takes
a while: it reads the purchases a batch at a time, each in a short transaction,
and between batches edits one progress message ("Exporting… 40 %").
"""
from __future__ import annotations

import csv
import io
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased
from telebot import TeleBot, types

from menus import EXPORT_CSV
from models import SUBSCRIPTION, Gift, Product, PromoCode, Purchase, User, is_renewal
from purchases import PAYMENT_TYPES
from referrals import invited_by
from shopkit import (
    NANOSTARS,
    After,
    Handlers,
    Progress,
    Shop,
    Toast,
    add_handlers,
    call_api,
    chat_of,
    decimals,
    label,
    text,
    utcnow,
)

logger = logging.getLogger("shopbot")
handlers = Handlers(admin=True)

BATCH = 2000  # purchases read in one short transaction
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # what makes a spreadsheet run a cell as a formula

# ---------------------------------------------------------------------------
# The columns: one line each, so that a new one (a commission, say) is one more line
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    """One column: its CSV name (for machines), its heading's text key (for people), and its cell from a row."""

    name: str
    heading: str
    value: Callable[[object, str], object]  # (row, lang) -> text, a number, a datetime or None
    width: int = 14


def amount(price: int | None, currency: str) -> Decimal | None:
    """499, 'USD' -> Decimal('4.99'): the price in the currency's units, exactly."""
    return None if price is None else Decimal(price).scaleb(-decimals(currency))


def commission(row, lang: str) -> Decimal | None:
    """What Telegram's affiliate program took of a Stars payment, in Stars (its ledger counts nanostars); blank
    when nobody referred the buyer, or the ledger has not been read since."""
    return None if row.commission_nanostars is None else Decimal(row.commission_nanostars) / NANOSTARS


def person(name: str | None, username: str | None, telegram_id: int | None) -> str:
    """'Alice (@alice, 1001)', or 'Alice (1001)' without a username."""
    handle = f"@{username}, " if username else ""
    return f"{name or ''} ({handle}{telegram_id})".strip()


def list_price(row) -> Decimal | None:
    """What the product cost before a code: its list price; for a sale or a free item without a code, what
    was paid. A grant or a received gift was never offered at a price: blank."""
    if row.list_price is not None:
        return amount(row.list_price, row.currency)
    return None if row.payment_type in ("manual", "gift") else amount(row.price, row.currency)


def gift(row, lang: str) -> str:
    """'giver → recipient' on both the giver's purchase and the recipient's; '' for no gift."""
    buyer = person(row.first_name, row.username, row.telegram_id)
    if row.given_gift is not None:
        recipient = person(row.r_name, row.r_username, row.r_id) if row.r_id else label(lang, "export_unclaimed")
        return f"{buyer} → {recipient}"
    if row.received_gift is not None:
        return f"{person(row.g_name, row.g_username, row.g_id)} → {buyer}"
    return ""


def subscription_payment(row, lang: str) -> str:
    """A subscription's payment: its first, or a renewal (as 📊 Sales counts renewals: models.is_renewal)."""
    if row.kind != SUBSCRIPTION:
        return ""
    return label(lang, "export_renewal" if row.renewal else "export_first_payment")


COLUMNS = [
    Column("date_utc", "export_date", lambda row, lang: row.created_at, 20),
    Column("purchase_id", "export_purchase", lambda row, lang: row.id, 10),
    Column("buyer_name", "export_buyer", lambda row, lang: row.first_name, 18),
    Column("buyer_username", "export_username", lambda row, lang: f"@{row.username}" if row.username else "", 16),
    Column("buyer_id", "export_buyer_id", lambda row, lang: row.telegram_id, 14),
    Column("product", "export_product", lambda row, lang: row.product, 24),
    Column("kind", "export_kind", lambda row, lang: label(lang, f"export_kind_{row.kind}"), 14),
    Column("payment", "export_payment", lambda row, lang: label(lang, PAYMENT_TYPES[row.payment_type]), 14),
    Column("list_price", "export_list_price", lambda row, lang: list_price(row), 10),
    Column("price_paid", "export_price", lambda row, lang: amount(row.price, row.currency), 10),
    Column("currency", "export_currency", lambda row, lang: row.currency, 8),
    Column("promo_code", "export_code", lambda row, lang: row.code or "", 14),
    Column("gift", "export_gift", gift, 36),
    Column("subscription_payment", "export_subscription", subscription_payment, 14),
    Column("refunded_at_utc", "export_refunded_at", lambda row, lang: row.refunded_at, 20),
    Column("refunded_by", "export_refunded_by",
           lambda row, lang: label(lang, f"export_refunded_by_{row.refunded_by}") if row.refunded_by else "", 16),
    Column("telegram_charge_id", "export_telegram_charge", lambda row, lang: row.payment_id or "", 30),
    Column("provider_charge_id", "export_provider_charge", lambda row, lang: row.provider_payment_id or "", 30),
    Column("affiliate_commission", "export_commission", commission, 12),
    Column("invited_by", "export_invited_by", lambda row, lang: row.invited_by, 14),  # 🤝 referrals.py
]

# ---------------------------------------------------------------------------
# Reading the purchases, a batch at a time
# ---------------------------------------------------------------------------

GivenGift, ReceivedGift = aliased(Gift), aliased(Gift)  # a purchase bought as a gift; one claimed as a gift
RecipientPurchase, GiverPurchase = aliased(Purchase), aliased(Purchase)
Recipient, Giver = aliased(User), aliased(User)


def purchases_after(session: Session, last_id: int, limit: int) -> list:
    """The next ``limit`` purchases after ``last_id``, with everything the columns show."""
    return session.execute(
        select(Purchase.id, Purchase.created_at, User.first_name, User.username, User.telegram_id,
               Product.name.label("product"), Product.kind, Purchase.list_price, Purchase.price, Purchase.currency,
               Purchase.payment_type, PromoCode.code, is_renewal().label("renewal"), Purchase.refunded_at,
               Purchase.refunded_by, Purchase.payment_id, Purchase.provider_payment_id, Purchase.commission_nanostars,
               invited_by().label("invited_by"),
               GivenGift.id.label("given_gift"), Recipient.first_name.label("r_name"),
               Recipient.username.label("r_username"), Recipient.telegram_id.label("r_id"),
               ReceivedGift.id.label("received_gift"), Giver.first_name.label("g_name"),
               Giver.username.label("g_username"), Giver.telegram_id.label("g_id"))
        .join(User, Purchase.user_id == User.id).join(Product, Purchase.product_id == Product.id)
        .outerjoin(PromoCode, Purchase.promo_code_id == PromoCode.id)
        .outerjoin(GivenGift, GivenGift.purchase_id == Purchase.id)
        .outerjoin(RecipientPurchase, RecipientPurchase.id == GivenGift.claimed_purchase_id)
        .outerjoin(Recipient, Recipient.id == RecipientPurchase.user_id)
        .outerjoin(ReceivedGift, ReceivedGift.claimed_purchase_id == Purchase.id)
        .outerjoin(GiverPurchase, GiverPurchase.id == ReceivedGift.purchase_id)
        .outerjoin(Giver, Giver.id == GiverPurchase.user_id)
        .where(Purchase.id > last_id).order_by(Purchase.id).limit(limit)).all()


def batches(shop: Shop) -> Iterator[tuple[list, int, int]]:
    """(rows, done, total): every purchase, oldest first, each batch read in a transaction of its own that is
    over before the caller gets it (so the caller may talk to Telegram between batches)."""
    with shop.Session() as session:
        total = session.scalar(select(func.count(Purchase.id)))
    last_id, done = 0, 0
    while True:
        with shop.Session() as session:
            rows = purchases_after(session, last_id, BATCH)
        if not rows:
            return
        last_id, done = rows[-1].id, done + len(rows)
        yield rows, done, max(total, done)  # purchases made meanwhile are exported too


# ---------------------------------------------------------------------------
# Writing the two files
# ---------------------------------------------------------------------------

def is_formula_like(value: str) -> bool:
    return value.startswith(FORMULA_STARTS)


def csv_cell(value) -> str:
    """A CSV field: dates as 2026-12-07 03:56:00 (UTC), amounts as 4.99, and text a spreadsheet shows as text."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return f"{value:%Y-%m-%d %H:%M:%S}"
    if isinstance(value, str):
        return "'" + value if is_formula_like(value) else value
    return str(value)


class Spreadsheet:
    """An .xlsx written a row at a time (openpyxl's write-only mode: a million rows in little memory)."""

    def __init__(self, lang: str):
        # Imported here rather than at the top: openpyxl takes half a second to import, and the bot's start
        # (a restart after a crash, while payments wait) should not wait for a file it may never write.
        from openpyxl import Workbook
        from openpyxl.cell import WriteOnlyCell
        from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
        from openpyxl.styles import Font
        from openpyxl.utils import get_column_letter

        self.new_cell, self.illegal, self.bold = WriteOnlyCell, ILLEGAL_CHARACTERS_RE, Font(bold=True)
        self.book = Workbook(write_only=True)
        self.sheet = self.book.create_sheet(label(lang, "export_sheet"))
        self.sheet.freeze_panes = "A2"
        for number, column in enumerate(COLUMNS, 1):
            self.sheet.column_dimensions[get_column_letter(number)].width = column.width
        self.sheet.append([self.cell(label(lang, column.heading), bold=True) for column in COLUMNS])

    def cell(self, value, bold: bool = False, currency: str = "XTR"):
        if isinstance(value, str):
            cell = self.new_cell(self.sheet, value=self.illegal.sub("", value))
            cell.data_type = "s"  # always a string: openpyxl would take one beginning with = for a formula
            cell.quotePrefix = is_formula_like(value)  # and text it stays when someone edits it
        else:
            cell = self.new_cell(self.sheet, value=value)
        if isinstance(value, datetime):
            cell.number_format = "yyyy-mm-dd hh:mm:ss"
        elif isinstance(value, Decimal):
            cell.number_format = "0." + "0" * decimals(currency) if decimals(currency) else "0"
        if bold:
            cell.font = self.bold
        return cell

    def append(self, values: list, currency: str) -> None:
        self.sheet.append([self.cell(value, currency=currency) for value in values])

    def save(self) -> bytes:
        out = io.BytesIO()
        self.book.save(out)
        return out.getvalue()


def make_export(shop: Shop, lang: str, progress: Progress | None = None) -> tuple[bytes, bytes]:
    """(the .xlsx, the CSV) of every purchase; ``progress`` hears how far it got after each batch."""
    sheet, out = Spreadsheet(lang), io.StringIO()
    writer = csv.writer(out)
    writer.writerow([column.name for column in COLUMNS])
    for rows, done, total in batches(shop):
        for row in rows:
            values = [column.value(row, lang) for column in COLUMNS]
            sheet.append(values, row.currency)
            writer.writerow([csv_cell(value) for value in values])
        if progress is not None:
            progress.update(done, total)
    return sheet.save(), out.getvalue().encode("utf-8-sig")  # -sig: a spreadsheet reads the CSV as UTF-8


def send_made_file(shop: Shop, chat_id: int, file_name: str, data: bytes, caption: str | None = None) -> None:
    """A file made by the shop, sent to the admin's chat."""
    call_api(shop, chat_id, shop.bot.send_document, chat_id, io.BytesIO(data), visible_file_name=file_name,
             caption=caption)


def send_export(shop: Shop, chat_id: int, lang: str) -> None:
    """Make the export, showing how far it got, then send both files (new messages: the admin is notified)."""
    progress = Progress(shop, chat_id, lambda percent: text(lang, "progress_export", percent=percent))
    spreadsheet, machine_csv = make_export(shop, lang, progress)
    logger.info("Exported every purchase for admin %s (%s bytes as .xlsx)", chat_id, len(spreadsheet))
    progress.finish()
    day = f"{utcnow():%Y-%m-%d}"
    send_made_file(shop, chat_id, f"purchases-{day}.xlsx", spreadsheet, text(lang, "admin_export_caption"))
    send_made_file(shop, chat_id, f"purchases-{day}.csv", machine_csv)


@handlers.tap(EXPORT_CSV)
def tap_export(shop: Shop, call: types.CallbackQuery, session: Session, lang: str):
    """📄 Export: every purchase, as a spreadsheet and a CSV, made once the handler's session is closed."""
    return Toast(text(lang, "admin_exporting")), After(send_export, chat_of(call), lang)


def register(bot: TeleBot, shop: Shop) -> None:
    """Wire 📄 Export into the bot."""
    add_handlers(shop, handlers)
