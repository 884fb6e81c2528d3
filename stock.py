"""Stock: unique items — licence keys, gift codes, accounts — one per buyer.

Reading order: ... admin.py → **stock.py** → referrals.py → ...

A product with stock items is *stocked*: each buyer receives one item of
their own, claimed in the same transaction that records the payment
(``models.claim_stock_item``), plus the product's hidden content. The seller
adds items with 📥 Upload stock: pasted lines, a .txt/.csv file with one item
per line, or any other file or photo as one item. Customers who tapped
🔔 Notify me on a sold-out product hear once when it is back
(storefront.notify_waitlist).
"""
from __future__ import annotations

import codecs
import io
import itertools
import logging
from collections.abc import Iterable, Iterator

import requests
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session
from telebot import TeleBot, types
from telebot.apihelper import ApiException

from admin import CLEAR_STOCK, UPLOAD_STOCK, attached_file, product_or_list
from channels import ADMIN_PRODUCT
from models import Product, StockItem, item_digest, unsold_items
from shopkit import (
    CANCEL,
    After,
    Handlers,
    InputError,
    Progress,
    Screen,
    Shop,
    Tap,
    add_handlers,
    ask,
    counted,
    dialog_data,
    end_dialog,
    has_visible_text,
    insert_for,
    keyboard,
    label,
    text,
    utcnow,
)
from storefront import announce_restock

logger = logging.getLogger("shopbot")
handlers = Handlers(admin=True)

# The buttons of a stock upload, and the numbers each carries.
STOCK_DONE = Tap("stock_done", "product_id")
CONFIRM_CLEAR_STOCK = Tap("confirm_clear_stock", "product_id")

MAX_DOWNLOAD = 20 * 1024 * 1024  # the Bot API lets bots download files of up to 20 MB
ITEM_MAX = 4000  # characters in one item: with the delivery's heading it must fit one message
CHUNK = 5000  # items per insert, each its own transaction

# ---------------------------------------------------------------------------
# Reading an upload
# ---------------------------------------------------------------------------


def add_stock_items(session: Session, rows: list[dict]) -> None:
    """Insert stock items (dicts of columns) in one transaction, skipping any the product already has.

    The database decides what is a duplicate (uq_stock_items_product_digest),
    so two uploads at once cannot store the same key twice.
    """
    for row in rows:
        row["digest"] = item_digest(row["content"], row.get("file_id"))
    session.execute(insert_for(session)(StockItem.__table__).on_conflict_do_nothing(), rows)
    session.commit()


def count_items(session: Session, product_id: int) -> int:
    """Every item a product has, sold or not."""
    return session.scalar(select(func.count(StockItem.id)).where(StockItem.product_id == product_id))


def is_text_list(document: types.Document) -> bool:
    """A .txt or .csv document: one stock item per line (any other file is one item itself)."""
    name = (document.file_name or "").lower()
    return name.endswith((".txt", ".csv")) or (document.mime_type or "") in ("text/plain", "text/csv")


def is_utf8(data: bytes) -> bool:
    """Whether the bytes are valid UTF-8, checked a megabyte at a time (no 20 MB string in memory)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        for start in range(0, len(data), 1 << 20):
            decoder.decode(data[start:start + (1 << 20)])
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def lines_of(upload: str | bytes) -> Iterable[str]:
    """The lines of a paste, or of a text file (UTF-8 with or without BOM, or Windows-1251), one at a time.

    Never all at once: a 20 MB file holds millions of lines, and a list of them
    would take gigabytes. newline=None reads Windows, Unix and old Mac line ends alike.
    """
    if isinstance(upload, str):
        return io.StringIO(upload, newline=None)
    if b"\x00" in upload:
        raise InputError("err_not_text_file")
    encoding = "utf-8-sig" if is_utf8(upload) else "cp1251"  # cp1251: Excel's CSVs on Russian Windows
    return io.TextIOWrapper(io.BytesIO(upload), encoding=encoding, errors="replace", newline=None)


def download(shop: Shop, document: types.Document) -> bytes:
    """A document's bytes (bots may download files of up to 20 MB)."""
    if (document.file_size or 0) > MAX_DOWNLOAD:
        raise InputError("err_file_too_big")
    try:
        return shop.bot.download_file(shop.bot.get_file(document.file_id).file_path)
    except (ApiException, requests.RequestException) as error:
        logger.warning("Could not download document %s: %s", document.file_id, error)
        raise InputError("err_download_failed") from None


def check_lengths(lines: Iterable[str]) -> int:
    """Refuse an upload with an item over ITEM_MAX characters, saying which line (nothing is added); else
    the number of lines."""
    number = 0
    for number, line in enumerate(lines, 1):
        if len(line.strip()) > ITEM_MAX:
            raise InputError("err_item_too_long", line=number, length=len(line.strip()), limit=ITEM_MAX)
    return number


def chunks(items: Iterable, size: int) -> Iterator[list]:
    """[a, b, c, d, e] in lists of ``size``: [a, b], [c, d], [e]."""
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def add_stock_lines(session: Session, product_id: int, lines: Iterable[str], line_count: int = 0,
                    progress: Progress | None = None) -> tuple[int, int]:
    """Add one item per non-blank line, skipping those the product has already; (added, skipped).

    A chunk at a time, each its own short transaction: other writers (a
    payment) never wait long, and memory stays flat whatever the file's size.
    Between chunks, no transaction open, ``progress`` hears how many of the
    ``line_count`` lines were read (a million lines take a while).
    """
    before, total, read = count_items(session, product_id), 0, 0
    session.commit()  # the count's read is over: progress may talk to Telegram between the chunks
    for chunk in chunks(lines, CHUNK):
        items = [item for item in (line.strip() for line in chunk) if has_visible_text(item)]
        if items:
            now = utcnow()
            add_stock_items(session, [{"product_id": product_id, "content": item, "file_id": None,
                                       "file_type": None, "created_at": now} for item in items])
        total, read = total + len(items), read + len(chunk)
        if progress is not None:
            progress.update(read, line_count)
    added = count_items(session, product_id) - before
    return added, total - added


# ---------------------------------------------------------------------------
# 📥 Upload stock
# ---------------------------------------------------------------------------

@handlers.tap(UPLOAD_STOCK)
def tap_upload_stock(shop: Shop, call: types.CallbackQuery, session: Session, lang: str, product_id: int) -> Screen:
    """📥 Upload stock: ask for the items (a stocked product's only: change an unlimited one's kind first)."""
    product = session.get(Product, product_id)
    if product is None or not product.stocked:
        return product_or_list(shop, session, lang, product_id)
    end_dialog(session, call)
    return ask(session, call, "stock_upload", "admin_ask_stock", product_id=product_id)


def read_upload(shop: Shop, message: types.Message) -> str | bytes | StockItem:
    """A paste, a .txt/.csv file's bytes, or one item (a file or photo that is itself the thing sold)."""
    if message.content_type == "text":
        return message.text.replace("\0", "")  # PostgreSQL refuses NUL in a text (a file with one is refused)
    if message.content_type == "document" and is_text_list(message.document):
        return download(shop, message.document)
    file = attached_file(message)
    if file is None:
        raise InputError("err_stock_kind")
    return StockItem(content=message.caption or "", file_id=file[0], file_type=file[1])


def add_upload(session: Session, product_id: int, upload: str | bytes | StockItem,
               progress: Progress | None = None) -> tuple[int, int]:
    """Add what the seller sent; (added, skipped as duplicates)."""
    if isinstance(upload, StockItem):
        before = count_items(session, product_id)
        add_stock_items(session, [{"product_id": product_id, "content": upload.content, "file_id": upload.file_id,
                                   "file_type": upload.file_type, "created_at": utcnow()}])
        added = count_items(session, product_id) - before
        return added, 1 - added
    line_count = check_lengths(lines_of(upload))  # the whole file first: refused, nothing from it is added
    return add_stock_lines(session, product_id, lines_of(upload), line_count, progress)


def upload_screen(lang: str, product_id: int, added: int, skipped: int) -> Screen:
    """The running count, with ✅ Done: Telegram splits a long paste into several messages."""
    return Screen(text(lang, "admin_stock_so_far", added=counted(lang, "n_items", added),
                       skipped=counted(lang, "n_duplicates", skipped)), keyboard(
        [STOCK_DONE.button(label(lang, "btn_done"), product_id=product_id), CANCEL.button(label(lang, "btn_cancel"))]))


@handlers.answer("stock_upload")
def answer_stock_upload(shop: Shop, message: types.Message, session: Session, lang: str, dialog: dict):
    """Items to add: pasted lines, a .txt/.csv list, or a file that is itself one item; more until ✅ Done."""
    upload = read_upload(shop, message)  # first, before any query: a download must not hold a transaction
    product_id, lang = dialog["product_id"], lang
    if session.get(Product, product_id) is None:
        end_dialog(session, message)
        return product_or_list(shop, session, lang, product_id)
    progress = Progress(shop, message.chat.id, lambda percent: text(lang, "progress_stock", percent=percent))
    added, skipped = add_upload(session, product_id, upload, progress)
    session.commit()  # the last count's read is over before the progress message is edited
    progress.finish()
    logger.info("Admin %s added %s stock items to product %s", message.from_user.id, added, product_id)
    added, skipped = dialog.get("added", 0) + added, dialog.get("skipped", 0) + skipped
    ask(session, message, "stock_upload", "admin_ask_stock", added=added, skipped=skipped)
    return upload_screen(lang, product_id, added, skipped), After(announce_restock, product_id) if added else None


@handlers.tap(STOCK_DONE)
def tap_stock_done(shop: Shop, call: types.CallbackQuery, session: Session, lang: str, product_id: int) -> Screen:
    """✅ Done: the upload is over; the product, with what was added."""
    totals = dialog_data(session, call, "stock_upload") or {}
    end_dialog(session, call)
    screen = product_or_list(shop, session, lang, product_id)
    screen.text = text(lang, "admin_stock_added", added=counted(lang, "n_items", totals.get("added", 0)),
                       skipped=counted(lang, "n_duplicates", totals.get("skipped", 0))) + "\n\n" + screen.text
    return screen


# ---------------------------------------------------------------------------
# 🧹 Remove unsold
# ---------------------------------------------------------------------------

@handlers.tap(CLEAR_STOCK)
def tap_clear_stock(shop: Shop, call: types.CallbackQuery, session: Session, lang: str, product_id: int) -> Screen:
    """🧹 Remove unsold: asks first."""
    left = unsold_items(session, product_id)
    if not left:
        return product_or_list(shop, session, lang, product_id)
    return Screen(text(lang, "admin_confirm_clear_stock", items=counted(lang, "n_unsold_items", left)), keyboard(
        [CONFIRM_CLEAR_STOCK.button(label(lang, "btn_clear_stock"), product_id=product_id),
         ADMIN_PRODUCT.button(label(lang, "btn_back"), product_id=product_id)]))


@handlers.tap(CONFIRM_CLEAR_STOCK)
def tap_confirm_clear_stock(shop: Shop, call: types.CallbackQuery, session: Session, lang: str,
                            product_id: int) -> Screen:
    """🧹 Remove unsold, confirmed: sold items stay with their buyers."""
    removed = session.execute(delete(StockItem).where(StockItem.product_id == product_id,
                                                      StockItem.purchase_id.is_(None))).rowcount
    session.commit()
    logger.info("Admin %s removed %s unsold items of product %s", call.from_user.id, removed, product_id)
    screen = product_or_list(shop, session, lang, product_id)
    screen.toast = text(lang, "admin_stock_removed", items=counted(lang, "n_unsold_items", removed))
    return screen


def register(bot: TeleBot, shop: Shop) -> None:
    """Wire stock uploads into the bot."""
    add_handlers(shop, handlers)
