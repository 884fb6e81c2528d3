"""Stock: unique items — licence keys, gift codes, accounts — one per buyer.

Reading order: ... admin.py → **stock.py** → sales.py → broadcast.py.

A product with stock items is *stocked*: each buyer receives one item of
their own, claimed in the same transaction that records the payment
(``models.claim_stock_item``), plus the product's hidden content. The seller
adds items with 📥 Upload stock: pasted lines, a .txt/.csv file with one item
per line, or any other file or photo as one item. Customers who tapped
🔔 Notify me on a sold-out product hear once when it is back.
"""
from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass

import requests
from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session
from telebot import TeleBot, types
from telebot.apihelper import ApiException, ApiTelegramException

import routes
from admin import attached_file, product_or_list
from models import Product, StockItem, User, WaitlistEntry, unsold_items, utcnow
from routes import Handlers, ask, end_dialog
from screens import InputError, Screen, button, has_visible_text, keyboard, label, language_for_code, language_of, text
from shop import MASS_SEND_INTERVAL, Shop, send

logger = logging.getLogger("shopbot")
handlers = Handlers(admin=True)

MAX_DOWNLOAD = 20 * 1024 * 1024  # the Bot API lets bots download files of up to 20 MB

# ---------------------------------------------------------------------------
# Reading an upload
# ---------------------------------------------------------------------------


def is_text_list(document: types.Document) -> bool:
    """A .txt or .csv document: one stock item per line (any other file is one item itself)."""
    name = (document.file_name or "").lower()
    return name.endswith((".txt", ".csv")) or (document.mime_type or "") in ("text/plain", "text/csv")


def read_text_lines(data: bytes) -> list[str]:
    """The lines of an uploaded text file: UTF-8 (with or without BOM) or Windows-1251."""
    if b"\x00" in data:
        raise InputError("err_not_text_file")
    try:
        content = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        content = data.decode("cp1251", errors="replace")  # Excel's CSVs on Russian Windows
    return content.splitlines()  # handles \r\n, \n and \r alike


def download(shop: Shop, document: types.Document) -> bytes:
    """A document's bytes (bots may download files of up to 20 MB)."""
    if (document.file_size or 0) > MAX_DOWNLOAD:
        raise InputError("err_file_too_big")
    try:
        return shop.bot.download_file(shop.bot.get_file(document.file_id).file_path)
    except (ApiException, requests.RequestException) as error:
        logger.warning("Could not download document %s: %s", document.file_id, error)
        raise InputError("err_download_failed") from None


def add_stock_lines(session: Session, product_id: int, lines: list[str]) -> tuple[int, int]:
    """Add one item per non-blank line, skipping duplicates (also of existing items); (added, skipped)."""
    known = set(session.scalars(select(StockItem.content).where(StockItem.product_id == product_id,
                                                                StockItem.file_id.is_(None))))
    new_items, skipped = [], 0
    for line in lines:
        item = line.strip()
        if not has_visible_text(item):
            continue  # blank lines are layout, not items
        if item in known:
            skipped += 1
            continue
        known.add(item)
        new_items.append({"product_id": product_id, "content": item, "created_at": utcnow()})
    if new_items:
        session.execute(insert(StockItem), new_items)  # one bulk insert, even for 10,000 lines
        session.commit()
    return len(new_items), skipped


# ---------------------------------------------------------------------------
# 📥 Upload stock
# ---------------------------------------------------------------------------

@dataclass
class RestockNotice:
    """Reply: tell the customers waiting for a product that it is back (in the background)."""

    product_id: int

    def show(self, shop: Shop, update) -> None:
        shop.start_background(notify_waitlist, self.product_id)


def notify_waitlist(shop: Shop, product_id: int) -> None:
    """Tell everyone who tapped "Notify me" that the product is back, once each."""
    with shop.Session() as session:
        waiting = session.execute(
            select(WaitlistEntry.id, User.telegram_id, User.language_code, Product.name)
            .join(User, WaitlistEntry.user_id == User.id).join(Product, WaitlistEntry.product_id == Product.id)
            .where(WaitlistEntry.product_id == product_id)).all()
    for entry_id, telegram_id, language_code, name in waiting:
        lang = language_for_code(language_code)
        with contextlib.suppress(ApiTelegramException):
            send(shop, telegram_id, text(lang, "back_in_stock", name=name),
                 keyboard([button(label(lang, "btn_open_product"), "product", product_id, 0)]))
        with shop.Session() as session:
            session.execute(delete(WaitlistEntry).where(WaitlistEntry.id == entry_id))
            session.commit()
        shop.sleep(MASS_SEND_INTERVAL)
    logger.info("Told %s waiting customers that product %s is back", len(waiting), product_id)


@handlers.tap("upload_stock")
def tap_upload_stock(shop: Shop, call: types.CallbackQuery, session: Session, product_id: int) -> Screen:
    """📥 Upload stock: ask for the items (a stocked product's only: change an unlimited one's kind first)."""
    product = session.get(Product, product_id)
    if product is None or not product.stocked:
        return product_or_list(shop, session, language_of(call.from_user), product_id)
    end_dialog(session, call)
    return ask(session, call, "stock_upload", "admin_ask_stock", product_id=product_id)


def read_upload(shop: Shop, message: types.Message) -> list[str] | StockItem:
    """The upload as lines of items, or as one item (a file or photo that is itself the thing sold)."""
    if message.content_type == "text":
        return message.text.splitlines()
    if message.content_type == "document" and is_text_list(message.document):
        return read_text_lines(download(shop, message.document))
    file = attached_file(message)
    if file is None:
        raise InputError("err_stock_kind")
    return StockItem(content=message.caption or "", file_id=file[0], file_type=file[1])


@handlers.answer("stock_upload")
def answer_stock_upload(shop: Shop, message: types.Message, session: Session, dialog: dict):
    """The items to add: pasted lines, a .txt/.csv list, or a file that is itself one item."""
    upload = read_upload(shop, message)  # first, before any query: a download must not hold a transaction
    lang = language_of(message.from_user)
    product = session.get(Product, dialog["product_id"])
    end_dialog(session, message)
    if product is None:
        return product_or_list(shop, session, lang, dialog["product_id"])
    if isinstance(upload, StockItem):
        upload.product_id = product.id
        session.add(upload)
        session.commit()
        added, skipped = 1, 0
    else:
        added, skipped = add_stock_lines(session, product.id, upload)
    logger.info("Admin %s added %s stock items to product %s", message.from_user.id, added, product.id)
    screen = product_or_list(shop, session, lang, product.id)
    screen.text = text(lang, "admin_stock_added", added=added, skipped=skipped) + "\n\n" + screen.text
    return screen, RestockNotice(product.id) if added else None


# ---------------------------------------------------------------------------
# 🧹 Remove unsold
# ---------------------------------------------------------------------------

@handlers.tap("clear_stock")
def tap_clear_stock(shop: Shop, call: types.CallbackQuery, session: Session, product_id: int) -> Screen:
    """🧹 Remove unsold: asks first."""
    lang = language_of(call.from_user)
    left = unsold_items(session, product_id)
    if not left:
        return product_or_list(shop, session, lang, product_id)
    return Screen(text(lang, "admin_confirm_clear_stock", count=left), keyboard(
        [button(label(lang, "btn_clear_stock"), "confirm_clear_stock", product_id),
         button(label(lang, "btn_back"), "admin_product", product_id)]))


@handlers.tap("confirm_clear_stock")
def tap_confirm_clear_stock(shop: Shop, call: types.CallbackQuery, session: Session, product_id: int) -> Screen:
    """🧹 Remove unsold, confirmed: sold items stay with their buyers."""
    removed = session.execute(delete(StockItem).where(StockItem.product_id == product_id,
                                                      StockItem.purchase_id.is_(None))).rowcount
    session.commit()
    logger.info("Admin %s removed %s unsold items of product %s", call.from_user.id, removed, product_id)
    screen = product_or_list(shop, session, language_of(call.from_user), product_id)
    screen.toast = text(language_of(call.from_user), "admin_stock_removed", count=removed)
    return screen


def register(bot: TeleBot, shop: Shop) -> None:
    """Wire stock uploads into the bot."""
    routes.add_handlers(shop, handlers)
