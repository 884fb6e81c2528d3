"""shopbot: sell digital goods in a Telegram chat.

Customers browse categories and products with inline buttons (or search by
typing), pay inside Telegram (Telegram Stars by default, or a card provider)
and at once receive the product's hidden content: a text, key, link or file.
A "stocked" product hands each buyer a unique item (a licence key, a gift
code). The seller fills the catalog, watches sales, refunds and messages
customers from the chat, with /admin.

Run it:

    pip install -r requirements.txt
    BOT_TOKEN=123:ABC ADMIN_IDS=111111111 python shopbot.py

Environment variables (only BOT_TOKEN is required):

    BOT_TOKEN               the token from @BotFather
    ADMIN_IDS               comma-separated Telegram user ids of the seller(s)
    DATABASE_URL            default sqlite:///shop.db
    TELEGRAM_API_URL        a self-hosted Bot API server, default Telegram's
    PAYMENT_PROVIDER_TOKEN  a card provider's token; empty means Telegram Stars
    CURRENCY                the card provider's currency, e.g. USD (Stars: XTR)

The file reads top to bottom in the order a reader needs it: configuration,
money, texts and keyboards, catalog queries, then the ``Shop`` class (customer
screens and handlers, payments, the admin panel), the helpers they use, and
``create_bot()`` / ``main()``. Every update opens one short-lived database
session, closed by a ``with`` block when the handler returns.
"""
from __future__ import annotations

import contextlib
import csv
import fcntl
import functools
import html
import io
import logging
import os
import re
import signal
import sqlite3
import sys
import tempfile
import threading
import time
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta

import requests
import telebot
from sqlalchemy import and_, delete, exists, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from telebot import apihelper, types
from telebot.apihelper import ApiException, ApiTelegramException
from telebot.storage import StateMemoryStorage

import texts
from models import (
    NAME_MAX,
    Category,
    Product,
    Purchase,
    Setting,
    StockItem,
    User,
    WaitlistEntry,
    connect,
    lowercase,
    utcnow,
)

logger = logging.getLogger("shopbot")

# ===========================================================================
# Configuration
# ===========================================================================

STARS = "XTR"
MAX_ID = 2**63 - 1  # ids are 64-bit integers, in the database and at Telegram
WORKER_THREADS = 4  # telebot handles this many updates at once
# The update types the shop handles; Telegram sends no others.
ALLOWED_UPDATES = ["message", "callback_query", "pre_checkout_query"]


class ConfigError(Exception):
    """A setting is missing or malformed; the message says which and how to fix it."""


@dataclass(frozen=True)
class Config:
    """Everything the bot reads from the environment."""

    token: str
    admin_ids: frozenset[int] = frozenset()
    database_url: str = "sqlite:///shop.db"
    api_url: str | None = None
    provider_token: str = ""
    currency: str = STARS
    shop_name: str = texts.SHOP_NAME

    @property
    def payment_type(self) -> str:
        return "card" if self.provider_token else "stars"


def is_number(value: str) -> bool:
    """ASCII digits only: str.isdigit() also says yes to '²', which int() refuses."""
    return value.isascii() and value.isdigit()


def is_id(value: str) -> bool:
    """A number that fits the database's 64-bit ids (and Telegram's)."""
    return is_number(value) and len(value) <= 19 and int(value) <= MAX_ID


def parse_admin_ids(raw: str) -> frozenset[int]:
    """'111, 222' -> {111, 222}; anything that is not a number is an error."""
    ids = set()
    for part in raw.replace(" ", "").split(","):
        if not part:
            continue
        if not is_id(part.removeprefix("-")):
            raise ConfigError(f"ADMIN_IDS must be comma-separated Telegram user ids, got {part!r}")
        ids.add(int(part))
    return frozenset(ids)


def load_config(environ: dict[str, str]) -> Config:
    """Read the configuration from environment variables."""
    token = environ.get("BOT_TOKEN", "").strip()
    if not token:
        raise ConfigError("BOT_TOKEN is not set: get a token from @BotFather and run "
                          "BOT_TOKEN=123:ABC python shopbot.py")
    provider_token = environ.get("PAYMENT_PROVIDER_TOKEN", "").strip()
    # Telegram Stars take no provider token; a card provider needs a real currency.
    currency = environ.get("CURRENCY", "").strip().upper() or ("USD" if provider_token else STARS)
    if provider_token and currency == STARS:
        raise ConfigError("CURRENCY must be a card currency such as USD when PAYMENT_PROVIDER_TOKEN is set")
    if not provider_token and currency != STARS:
        raise ConfigError(f"CURRENCY={currency} needs PAYMENT_PROVIDER_TOKEN; leave both empty for Telegram Stars")
    return Config(
        token=token,
        admin_ids=parse_admin_ids(environ.get("ADMIN_IDS", "")),
        database_url=environ.get("DATABASE_URL", "").strip() or "sqlite:///shop.db",
        api_url=environ.get("TELEGRAM_API_URL", "").strip().rstrip("/") or None,
        provider_token=provider_token,
        currency=currency,
    )


def use_api_server(api_url: str | None) -> None:
    """Send every Bot API request to ``api_url`` (a self-hosted server) instead of Telegram's."""
    if api_url:
        apihelper.API_URL = api_url + "/bot{0}/{1}"
        apihelper.FILE_URL = api_url + "/file/bot{0}/{1}"


class RedactSecrets(logging.Filter):
    """Replace the bot token in every log record: telebot's errors can contain request URLs."""

    def __init__(self, token: str):
        super().__init__()
        self.token = token

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + logging.Formatter().formatException(record.exc_info)
            record.exc_info = record.exc_text = None
        record.msg, record.args = message.replace(self.token, "<BOT_TOKEN>"), ()
        return True


def setup_logging(token: str) -> None:
    """One log format for the shop and telebot, with the token never printed."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s - %(name)s - %(levelname)s - %(message)s"))
    handler.addFilter(RedactSecrets(token))
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    # telebot ships its own stderr handler; send its records through ours instead.
    telebot.logger.handlers.clear()
    telebot.logger.setLevel(logging.WARNING)
    telebot.logger.propagate = True


# ===========================================================================
# Money: prices are integers in the currency's smallest unit
# ===========================================================================

# Currencies without a fractional unit (the Bot API's "exp" of 0).
ZERO_DECIMAL_CURRENCIES = {STARS, "JPY", "KRW", "CLP", "ISK", "UGX", "VND", "PYG"}
CURRENCY_SIGNS = {"USD": "${}", "EUR": "€{}", "GBP": "£{}", "RUB": "{} ₽", "UAH": "{} ₴",
                  "KZT": "{} ₸", "INR": "₹{}", STARS: "{} ⭐"}
# Telegram accepts Stars invoices of 1 to 100,000 Stars.
MAX_STARS = 100_000
# Card providers accept roughly up to 10,000 US dollars; this bound keeps typos out.
MAX_CARD_UNITS = 10_000


def decimals(currency: str) -> int:
    return 0 if currency in ZERO_DECIMAL_CURRENCIES else 2


def format_price(amount: int, currency: str) -> str:
    """1500, 'XTR' -> '1500 ⭐'; 999, 'USD' -> '$9.99'; 99000, 'RUB' -> '990 ₽'."""
    places = decimals(currency)
    units, cents = divmod(amount, 10 ** places) if places else (amount, 0)
    number = f"{units}.{cents:0{places}d}" if cents else str(units)
    return CURRENCY_SIGNS.get(currency, "{} " + currency).format(number)


class InputError(ValueError):
    """Seller input that cannot be used; ``key`` names the text that explains why."""

    def __init__(self, key: str, **values):
        super().__init__(key)
        self.key, self.values = key, values


def parse_price(raw: str, currency: str) -> int:
    """Read a price the way people type it ('9.99', '9,99', '150') into smallest units."""
    raw = raw.strip().replace(",", ".").replace(" ", "")
    whole, _, fraction = raw.partition(".")
    if not is_number(whole) or (fraction and not is_number(fraction)):
        raise InputError("err_price_not_number")
    if len(fraction) > decimals(currency):
        raise InputError("err_price_decimals" if decimals(currency) else "err_price_whole",
                         places=decimals(currency))
    amount = int(whole) * 10 ** decimals(currency) + int(fraction.ljust(decimals(currency), "0") or 0)
    limit = MAX_STARS if currency == STARS else MAX_CARD_UNITS * 10 ** decimals(currency)
    if amount > limit:
        raise InputError("err_price_too_high", limit=format_price(limit, currency))
    return amount


# ===========================================================================
# Texts and keyboards
# ===========================================================================

def language_of(telegram_user: types.User | None) -> str:
    """Russian for users whose Telegram speaks Russian, English for everyone else."""
    return language_for_code(getattr(telegram_user, "language_code", None))


def language_for_code(code: str | None) -> str:
    return "ru" if (code or "").lower().startswith("ru") else "en"


def text(lang: str, key: str, **values) -> str:
    """An HTML text in the user's language, with every value escaped."""
    template = texts.TEXTS[lang].get(key) or texts.EN[key]
    return template.format(**{k: html.escape(str(v), quote=False) for k, v in values.items()})


def label(lang: str, key: str, **values) -> str:
    """A button label: plain text, nothing to escape."""
    return (texts.TEXTS[lang].get(key) or texts.EN[key]).format(**values)


def utf16_len(value: str) -> int:
    """Telegram measures texts in UTF-16 code units (an emoji counts as two)."""
    return len(value.encode("utf-16-le")) // 2


def truncate(value: str, limit: int) -> str:
    """Cut ``value`` to ``limit`` characters with an ellipsis (invoice titles, buttons)."""
    return value if len(value) <= limit else value[: limit - 1] + "…"


MESSAGE_LIMIT = 4096
CAPTION_LIMIT = 1024


def split_message(value: str, limit: int = MESSAGE_LIMIT) -> list[str]:
    """Split plain text into pieces Telegram accepts, preferably at line breaks."""
    pieces, current = [], ""
    for line in value.splitlines(keepends=True):
        for chunk in cut_to_length(line, limit):  # a single line longer than a message is cut
            if current and utf16_len(current + chunk) > limit:
                pieces.append(current)
                current = ""
            current += chunk
    pieces.append(current)
    return [piece for piece in pieces if piece.strip()]  # Telegram refuses blank messages


def cut_to_length(value: str, limit: int):
    """Yield pieces of ``value`` of at most ``limit`` UTF-16 code units."""
    piece, size = [], 0
    for char in value:
        width = 2 if ord(char) > 0xFFFF else 1
        if size + width > limit:
            yield "".join(piece)
            piece, size = [], 0
        piece.append(char)
        size += width
    if piece:
        yield "".join(piece)


# Callback data: "<version>:<action>:<int>:<int>...", at most 64 bytes. The
# version lets a future format reject buttons from old messages politely.
CALLBACK_VERSION = "1"


def callback(action: str, *args: int) -> str:
    """Pack a button's callback data: callback('cat', 3, 0) -> '1:cat:3:0'."""
    return ":".join([CALLBACK_VERSION, action, *(str(int(a)) for a in args)])


def parse_callback(data: str | None) -> tuple[str, list[int]] | None:
    """'1:cat:3:0' -> ('cat', [3, 0]); None for anything we did not make."""
    parts = (data or "").split(":")
    if len(parts) < 2 or parts[0] != CALLBACK_VERSION:
        return None
    args = parts[2:]
    if not all(is_id(a) for a in args):
        return None
    return parts[1], [int(a) for a in args]


def button(caption: str, action: str, *args: int) -> types.InlineKeyboardButton:
    return types.InlineKeyboardButton(truncate(caption, 64), callback_data=callback(action, *args))


def keyboard(*rows: list[types.InlineKeyboardButton]) -> types.InlineKeyboardMarkup:
    markup = types.InlineKeyboardMarkup()
    for row in rows:
        if row:
            markup.row(*row)
    return markup


PAGE_SIZE = 8
SEARCH_MAX = 200  # characters of a search we remember for its Next/Prev buttons
SEARCH_WORDS = 5
LAST_SEARCH = "last_search"  # Setting key prefix: the customer's latest search


def page_count(total: int, per_page: int = PAGE_SIZE) -> int:
    return max(1, -(-total // per_page))


def pager_row(lang: str, action: str, prefix: tuple[int, ...], page: int, pages: int) -> list:
    """◀️ Prev · 2/5 · Next ▶️ (only when there is more than one page)."""
    if pages <= 1:
        return []
    row = []
    if page > 0:
        row.append(button(label(lang, "btn_prev"), action, *prefix, page - 1))
    row.append(button(f"{page + 1}/{pages}", "noop"))
    if page < pages - 1:
        row.append(button(label(lang, "btn_next"), action, *prefix, page + 1))
    return row


@dataclass
class Screen:
    """What one message shows: HTML text, buttons, and optionally a photo or document."""

    text: str
    markup: types.InlineKeyboardMarkup | None = None
    file_id: str | None = None
    file_type: str | None = None  # "photo" or "document"
    toast: str | None = None  # a short note for the callback answer


def shows_already(message: types.Message, screen: Screen) -> bool:
    """True when editing ``message`` into ``screen`` would change nothing (Telegram refuses such edits)."""
    same_text = (message.text or "").strip() == html_to_plain(screen.text).strip()
    old_markup = message.reply_markup.to_dict() if message.reply_markup else None
    return same_text and old_markup == (screen.markup.to_dict() if screen.markup else None)


def menu_keyboard(lang: str) -> types.InlineKeyboardMarkup:
    return keyboard(
        [button(label(lang, "btn_catalog"), "cats")],
        [button(label(lang, "btn_purchases"), "mine", 0), button(label(lang, "btn_help"), "help")],
    )


def menu_screen(lang: str, key: str = "menu") -> Screen:
    return Screen(text(lang, key), menu_keyboard(lang))


# ===========================================================================
# Catalog queries (each one SQL statement; nothing loads the whole catalog)
# ===========================================================================

def categories_on_sale(session: Session) -> list[tuple[int, str, int]]:
    """(id, name, products on sale) for every category that has any, in the seller's order."""
    rows = session.execute(
        select(Category.id, Category.name, func.count(Product.id))
        .join(Product, (Product.category_id == Category.id) & Product.is_active)
        .group_by(Category.id, Category.name, Category.position)
        .order_by(Category.position, Category.id)
    )
    return [tuple(row) for row in rows]


def categories_in_order(session: Session) -> list[tuple[int, str]]:
    """(id, name) of every category, empty ones too, in the seller's order (for admin pickers).

    At most 90: with the panel's own buttons that stays under Telegram's 100 buttons.
    """
    return session.execute(select(Category.id, Category.name)
                           .order_by(Category.position, Category.id).limit(90)).all()


class CatalogCache:
    """The catalog screen's categories and counts, kept for a few seconds.

    Counting every product on sale takes ~15 ms on a 100,000-product shop, and
    the catalog is the most tapped screen. Admin actions clear the cache at
    once; changes made to the database by other means show within ``ttl``.
    """

    def __init__(self, ttl: float = 30.0):
        self.ttl, self.lock = ttl, threading.Lock()
        self.categories: list[tuple[int, str, int]] = []
        self.expires = 0.0

    def categories_on_sale(self, session: Session) -> list[tuple[int, str, int]]:
        with self.lock:
            if time.monotonic() >= self.expires:
                self.categories = categories_on_sale(session)
                self.expires = time.monotonic() + self.ttl
            return self.categories

    def clear(self) -> None:
        with self.lock:
            self.expires = 0.0


def stock_columns():
    """Per-product columns for listings: is it stocked, and how many items are left."""
    items = select(StockItem.id).where(StockItem.product_id == Product.id).correlate(Product)
    unsold = (select(func.count(StockItem.id)).where(StockItem.product_id == Product.id,
                                                      StockItem.purchase_id.is_(None))
              .correlate(Product).scalar_subquery())
    return exists(items).label("stocked"), unsold.label("left")


def category_with_count(session: Session, category_id: int, active_only: bool = True):
    """(name, number of products) of a category, or None: one statement, counted from the index."""
    counted = select(func.count(Product.id)).where(Product.category_id == category_id)
    if active_only:
        counted = counted.where(Product.is_active)
    return session.execute(select(Category.name, counted.scalar_subquery().label("total"))
                           .where(Category.id == category_id)).first()


def products_page(session: Session, category_id: int, page: int, active_only: bool = True):
    """One page of a category's products, with stock figures for just those rows."""
    query = select(Product.id, Product.name, Product.price, Product.is_active, *stock_columns()).where(
        Product.category_id == category_id)
    if active_only:
        query = query.where(Product.is_active)
    return session.execute(query.order_by(Product.id).limit(PAGE_SIZE).offset(page * PAGE_SIZE)).all()


def search_page(session: Session, words: list[str], page: int):
    """Products on sale whose name or description contains every word (any case, any alphabet)."""
    total = func.count().over().label("total")
    matches = [or_(contains_word(Product.name, word), contains_word(Product.description, word)) for word in words]
    rows = session.execute(
        select(Product.id, Product.name, Product.price, *stock_columns(), total)
        .where(Product.is_active, and_(*matches))
        .order_by(Product.id).limit(PAGE_SIZE).offset(page * PAGE_SIZE)).all()
    return rows, (rows[0].total if rows else 0)


def contains_word(column, word: str):
    """``column`` contains ``word`` in any case; % and _ in the word are plain characters."""
    if word.isascii():  # the database's own lower() is enough, and much quicker than ours
        return column.icontains(word, autoescape=True)
    return lowercase(column).contains(word, autoescape=True)


def sold_once_per_customer(product: Product, left: int | None) -> bool:
    """An unlimited product is bought once, and so is a free item (or one customer could take
    them all); a paid stocked product may be bought again: a second key."""
    return left is None or product.price == 0


def stock_left(session: Session, product_id: int) -> int | None:
    """Unsold items of a stocked product; None for an unlimited one (no stock items at all)."""
    items, unsold = session.execute(
        select(func.count(StockItem.id), func.count(StockItem.id).filter(StockItem.purchase_id.is_(None)))
        .where(StockItem.product_id == product_id)).one()
    return unsold if items else None


def claim_stock_item(session: Session, product_id: int, purchase: Purchase) -> bool:
    """Give the next unsold item to ``purchase``, in the caller's transaction. False when none is left.

    Two buyers may reach for the same row at once. The UPDATE only succeeds
    while the row is still unsold, so the loser sees 0 rows and tries the next
    one. SKIP LOCKED lets PostgreSQL hand a waiting buyer another row at once;
    SQLite ignores it (its writers take turns anyway).
    """
    session.flush()  # the purchase needs its id
    for _attempt in range(20):
        candidate = session.scalar(
            select(StockItem.id).where(StockItem.product_id == product_id, StockItem.purchase_id.is_(None))
            .order_by(StockItem.id).limit(1).with_for_update(skip_locked=True))
        if candidate is None:
            return False
        claimed = session.execute(update(StockItem).where(StockItem.id == candidate, StockItem.purchase_id.is_(None))
                                  .values(purchase_id=purchase.id))
        if claimed.rowcount == 1:
            return True
    return False


def owned_purchase_id(session: Session, telegram_id: int, product_id: int) -> int | None:
    """The id of this user's live (not refunded) purchase of a product, if any."""
    return session.scalar(
        select(Purchase.id).join(User)
        .where(User.telegram_id == telegram_id, Purchase.product_id == product_id,
               Purchase.refunded_at.is_(None))
        .limit(1)
    )


def save_user(session: Session, telegram_user: types.User) -> User:
    """Create or refresh the shop's record of a Telegram user (username, language may change)."""
    user = session.scalar(select(User).where(User.telegram_id == telegram_user.id))
    if user is None:
        user = User(telegram_id=telegram_user.id)
        session.add(user)
    user.username = telegram_user.username
    user.first_name = telegram_user.first_name or ""
    user.language_code = telegram_user.language_code or ""
    user.is_blocked = False  # they are talking to us, so they have not blocked the bot
    try:
        session.commit()
    except IntegrityError:  # the same new user, saved by another thread a moment ago
        session.rollback()
        user = session.scalar(select(User).where(User.telegram_id == telegram_user.id))
    return user


# ===========================================================================
# The shop: one object holds the bot, the configuration and the database
# ===========================================================================

def handles_errors(handler):
    """Log a handler's crash with its traceback, apologise to the user, keep serving."""

    @functools.wraps(handler)
    def wrapper(shop: Shop, update, *args):
        try:
            return handler(shop, update, *args)
        except Exception:
            user = getattr(update, "from_user", None)
            logger.exception("Error handling %s from user %s", type(update).__name__, getattr(user, "id", "?"))
            shop.apologize(update)
    return wrapper


def admin_only(handler):
    """Refuse (and log) anyone not in ADMIN_IDS: they get the customer menu."""

    @functools.wraps(handler)
    def wrapper(shop: Shop, update, *args):
        if shop.is_admin(update.from_user.id):
            return handler(shop, update, *args)
        logger.warning("User %s tried admin action %s", update.from_user.id, handler.__name__)
        lang = language_of(update.from_user)
        if isinstance(update, types.CallbackQuery):
            shop.show(update.message.chat.id, menu_screen(lang), replace=update.message)
            return Screen("", toast=text(lang, "stale_button"))
        shop.send(update.chat.id, text(lang, "menu"), menu_keyboard(lang))
    return wrapper


class Shop:
    """The bot's handlers, sharing the configuration, the API client and the database."""

    def __init__(self, config: Config, session_factory=None, threaded: bool = True):
        self.config = config
        # A database server gets a connection per worker thread, plus two for background work.
        self.Session = session_factory or connect(config.database_url, pool_size=WORKER_THREADS + 2)
        self.bot = telebot.TeleBot(config.token, threaded=threaded, parse_mode="HTML",
                                   state_storage=StateMemoryStorage(), num_threads=WORKER_THREADS)
        self.broadcast_lock = threading.Lock()  # one broadcast at a time
        self.background: list[threading.Thread] = []  # broadcasts and restock notices
        self.sleep = time.sleep  # tests replace it to skip the waits
        self.catalog = CatalogCache()
        self.admin_actions = set(self._admin_routes())
        self.routes = self._callback_routes()

    def is_admin(self, telegram_id: int) -> bool:
        return telegram_id in self.config.admin_ids

    def start_background(self, work, *args) -> None:
        """Run long work (messaging many customers) without holding up the update being handled."""
        self.background = [thread for thread in self.background if thread.is_alive()]
        thread = threading.Thread(target=work, args=args, name=work.__name__, daemon=True)
        self.background.append(thread)
        thread.start()

    # --- talking to Telegram ------------------------------------------------

    def call(self, chat_id: int, method, *args, **kwargs):
        """Call ``method`` (a Bot API call about ``chat_id``): wait out flood limits, note blocked users.

        Returns the API's result, or None when the user has blocked the bot.
        """
        for attempt in range(3):
            try:
                return method(*args, **kwargs)
            except ApiTelegramException as error:
                if error.error_code == 429 and attempt < 2:  # Too Many Requests: Telegram says how long to wait
                    self.sleep(retry_after(error))
                    continue
                if error.error_code == 403:  # Forbidden: the user blocked the bot (or never opened it)
                    self.mark_blocked(chat_id)
                    return None
                raise

    def mark_blocked(self, telegram_id: int) -> None:
        logger.info("User %s has blocked the bot", telegram_id)
        with self.Session() as session:
            session.execute(update(User).where(User.telegram_id == telegram_id).values(is_blocked=True))
            session.commit()

    def send(self, chat_id: int, html_text: str, markup=None):
        return self.call(chat_id, self.bot.send_message, chat_id, html_text, reply_markup=markup,
                         link_preview_options=types.LinkPreviewOptions(is_disabled=True))

    def send_file(self, chat_id: int, file_type: str, file_id: str, caption: str | None = None, markup=None):
        sender = self.bot.send_photo if file_type == "photo" else self.bot.send_document
        return self.call(chat_id, sender, chat_id, file_id, caption=caption, reply_markup=markup)

    def show(self, chat_id: int, screen: Screen, replace: types.Message | None = None) -> None:
        """Show a screen, editing ``replace`` in place when Telegram allows it."""
        # An InaccessibleMessage (over 48 hours old) has no content_type: it cannot be edited.
        if replace is not None and screen.file_id is None and getattr(replace, "content_type", None) == "text":
            if shows_already(replace, screen):
                return  # e.g. the user tapped the button of the screen they are on
            try:
                self.call(chat_id, self.bot.edit_message_text, screen.text, chat_id, replace.message_id,
                          reply_markup=screen.markup, link_preview_options=types.LinkPreviewOptions(is_disabled=True))
                return
            except ApiTelegramException as error:
                if "message is not modified" in error.description:
                    return  # two quick taps on the same button
                if error.error_code != 400:
                    raise
                # Too old, deleted, or not a text any more: send a fresh message below.
        self.send_screen(chat_id, screen)
        if replace is not None:
            self.delete_quietly(chat_id, replace.message_id)

    def send_screen(self, chat_id: int, screen: Screen) -> None:
        if screen.file_id is None:
            self.send(chat_id, screen.text, screen.markup)
        elif utf16_len(html_to_plain(screen.text)) <= CAPTION_LIMIT:
            self.send_file(chat_id, screen.file_type, screen.file_id, screen.text, screen.markup)
        else:
            # A caption holds 1,024 characters: the file goes first, the card below it.
            self.send_file(chat_id, screen.file_type, screen.file_id)
            self.send(chat_id, screen.text, screen.markup)

    def delete_quietly(self, chat_id: int, message_id: int) -> None:
        """Delete an old screen; Telegram refuses for messages over 48 hours old, which is fine."""
        with contextlib.suppress(ApiTelegramException):
            self.bot.delete_message(chat_id, message_id)

    def answer(self, call: types.CallbackQuery, toast: str | None = None) -> None:
        """Stop the button's spinner, with a short note if there is one."""
        try:
            self.bot.answer_callback_query(call.id, truncate(html_to_plain(toast), 200) if toast else None)
        except ApiTelegramException as error:  # the query is too old (Telegram keeps them ~15 minutes)
            logger.info("Could not answer callback %s: %s", call.id, error.description)

    def apologize(self, update) -> None:
        """Tell the user something went wrong, however they reached us; never raise."""
        lang = language_of(getattr(update, "from_user", None))
        try:
            if isinstance(update, types.CallbackQuery):
                self.answer(update, text(lang, "sorry"))
            elif isinstance(update, types.PreCheckoutQuery):
                self.bot.answer_pre_checkout_query(update.id, ok=False, error_message=html_to_plain(
                    text(lang, "sorry")))
            elif isinstance(update, types.Message):
                self.send(update.chat.id, text(lang, "sorry"))
        except Exception:
            logger.exception("Could not apologise to user %s", getattr(update.from_user, "id", "?"))

    # =======================================================================
    # Customer screens
    # =======================================================================

    def catalog_screen(self, session: Session, lang: str) -> Screen:
        rows = [[button(label(lang, "category_button", name=name, count=count), "cat", cid, 0)]
                for cid, name, count in self.catalog.categories_on_sale(session)]
        back = [button(label(lang, "btn_back"), "menu")]
        if not rows:
            return Screen(text(lang, "catalog_empty"), keyboard(back))
        return Screen(text(lang, "catalog"), keyboard(*rows, back))

    def category_screen(self, session: Session, lang: str, category_id: int, page: int) -> Screen:
        category = category_with_count(session, category_id)
        if category is None or not category.total:
            screen = self.catalog_screen(session, lang)
            screen.toast = text(lang, "unavailable")
            return screen
        total = category.total
        toast = None
        if page >= page_count(total):  # products were hidden since: show the last page there is
            page, toast = page_count(total) - 1, text(lang, "page_out_of_range")
        products = products_page(session, category_id, page)
        rows = [[button(self.product_label(lang, p), "prod", p.id, page)] for p in products]
        return Screen(text(lang, "category", name=category.name), keyboard(
            *rows, pager_row(lang, "cat", (category_id,), page, page_count(total)),
            [button(label(lang, "btn_back"), "cats")]), toast=toast)

    def product_label(self, lang: str, row) -> str:
        """'Netflix 1 month — 150 ⭐' on a listing button; 'sold out' for stock that ran out."""
        if row.stocked and not row.left:
            return label(lang, "product_button", name=row.name, price=label(lang, "sold_out"))
        price = format_price(row.price, self.config.currency) if row.price else label(lang, "free")
        return label(lang, "product_button", name=row.name, price=price)

    def product_card(self, lang: str, product: Product, left: int | None = None) -> str:
        """The card customers see: name, price, stock (for stocked products), description."""
        price = format_price(product.price, self.config.currency) if product.price else text(lang, "free")
        if left is not None:
            price += "\n" + text(lang, "in_stock" if left else "sold_out_line", count=left)
        return text(lang, "product_card", name=product.name, price=price, description=product.description)

    def product_screen(self, session: Session, lang: str, telegram_id: int, product_id: int,
                       page: int = 0) -> Screen | None:
        """A product card with its Buy button; None when it is not on sale."""
        product = session.get(Product, product_id)
        if product is None or not product.is_active:
            return None
        owned = owned_purchase_id(session, telegram_id, product_id)
        left = stock_left(session, product_id)
        rows = []
        if not (owned and sold_once_per_customer(product, left)):
            rows.append([button(label(lang, "btn_notify"), "notify", product.id)] if left == 0
                        else [self.buy_button(lang, product)])
        if owned:
            rows.append([button(label(lang, "btn_owned"), "open", owned)])
        rows.append([button(label(lang, "btn_back"), "cat", product.category_id, page)])
        return Screen(self.product_card(lang, product, left), keyboard(*rows),
                      product.description_file_id, product.description_file_type)

    def buy_button(self, lang: str, product: Product) -> types.InlineKeyboardButton:
        if product.price == 0:
            return button(label(lang, "btn_get_free"), "buy", product.id)
        return button(label(lang, "btn_buy", price=format_price(product.price, self.config.currency)),
                      "buy", product.id)

    def purchases_screen(self, session: Session, lang: str, telegram_id: int, page: int) -> Screen:
        total = func.count().over().label("total")
        rows = session.execute(
            select(Purchase.id, Purchase.created_at, Purchase.refunded_at, Product.name, total)
            .join(User, Purchase.user_id == User.id).join(Product, Purchase.product_id == Product.id)
            .where(User.telegram_id == telegram_id)
            .order_by(Purchase.created_at.desc(), Purchase.id.desc())
            .limit(PAGE_SIZE).offset(page * PAGE_SIZE)
        ).all()
        back = [button(label(lang, "btn_back"), "menu")]
        if not rows:
            if page > 0:
                return self.purchases_screen(session, lang, telegram_id, 0)
            return Screen(text(lang, "purchases_empty"), keyboard([button(label(lang, "btn_catalog"), "cats")], back))
        buttons = [[button(label(lang, "purchase_refunded_button", name=row.name) if row.refunded_at else
                           label(lang, "purchase_button", name=row.name, date=f"{row.created_at:%Y-%m-%d}"),
                           "open", row.id)] for row in rows]
        return Screen(text(lang, "purchases"),
                      keyboard(*buttons, pager_row(lang, "mine", (), page, page_count(rows[0].total)), back))

    # =======================================================================
    # Customer handlers: commands
    # =======================================================================

    @handles_errors
    def on_start(self, message: types.Message) -> None:
        """/start, or /start p_42 from a deep link t.me/<bot>?start=p_42."""
        lang = language_of(message.from_user)
        argument = message.text.partition(" ")[2].strip()
        self.bot.delete_state(message.from_user.id, message.chat.id)  # /start leaves any dialog
        with self.Session() as session:
            save_user(session, message.from_user)
            if argument.startswith("p_") and is_id(argument[2:]):
                screen = self.product_screen(session, lang, message.from_user.id, int(argument[2:]))
                self.show(message.chat.id, screen or menu_screen(lang, "product_not_found"))
                return
        greeting = text(lang, "welcome", name=message.from_user.first_name or "", shop=self.config.shop_name)
        if self.is_admin(message.from_user.id):
            greeting += "\n\n" + text(lang, "admin_hint")
        self.send(message.chat.id, greeting, menu_keyboard(lang))

    @handles_errors
    def on_catalog_command(self, message: types.Message) -> None:
        """/catalog"""
        with self.Session() as session:
            self.show(message.chat.id, self.catalog_screen(session, language_of(message.from_user)))

    @handles_errors
    def on_purchases_command(self, message: types.Message) -> None:
        """/purchases"""
        with self.Session() as session:
            screen = self.purchases_screen(session, language_of(message.from_user), message.from_user.id, 0)
        self.show(message.chat.id, screen)

    def reply_with_menu(self, message: types.Message, key: str) -> None:
        lang = language_of(message.from_user)
        self.send(message.chat.id, text(lang, key), menu_keyboard(lang))

    @handles_errors
    def on_help(self, message: types.Message) -> None:
        """/help"""
        self.reply_with_menu(message, "help")

    @handles_errors
    def on_terms(self, message: types.Message) -> None:
        """/terms: Telegram asks bots that take payments to show their terms."""
        self.send(message.chat.id, text(language_of(message.from_user), "terms"))

    @handles_errors
    def on_paysupport(self, message: types.Message) -> None:
        """/paysupport: required by Telegram for bots that take payments. Tells the admins, and
        passes the customer's next message on to them."""
        lang = language_of(message.from_user)
        self.bot.set_state(message.from_user.id, "support", message.chat.id)
        self.send(message.chat.id, text(lang, "paysupport"), keyboard([button(label(lang, "btn_cancel"), "cancel")]))
        with self.Session() as session:
            recent = session.execute(
                select(Purchase.id, Product.name, Purchase.price, Purchase.currency, Purchase.payment_id)
                .join(User, Purchase.user_id == User.id).join(Product, Purchase.product_id == Product.id)
                .where(User.telegram_id == message.from_user.id)
                .order_by(Purchase.id.desc()).limit(3)).all()
        lines = [f"#{p.id} {p.name} — {format_price(p.price, p.currency)} ({p.payment_id or '-'})" for p in recent]
        self.notify_admins("admin_support_request", reply_keyboard(message.from_user.id),
                           who=describe_user(message.from_user), id=message.from_user.id,
                           purchases="\n".join(lines) or "—")

    def dialog_support(self, message: types.Message) -> None:
        """The customer's message after /paysupport goes to the admins, who can reply."""
        lang = language_of(message.from_user)
        self.bot.delete_state(message.from_user.id, message.chat.id)
        self.notify_admins("admin_support_message", reply_keyboard(message.from_user.id), copy_of=message,
                           who=describe_user(message.from_user), id=message.from_user.id)
        self.send(message.chat.id, text(lang, "support_sent"), menu_keyboard(lang))

    def tap_cancel(self, call, session) -> Screen:
        """✖️ Cancel under the /paysupport question."""
        self.bot.delete_state(call.from_user.id, call.message.chat.id)
        screen = menu_screen(language_of(call.from_user))
        screen.toast = text(language_of(call.from_user), "cancelled")
        return screen

    @handles_errors
    def on_cancel(self, message: types.Message) -> None:
        """/cancel: leave whatever dialog the user is in."""
        lang = language_of(message.from_user)
        if self.bot.get_state(message.from_user.id, message.chat.id):
            self.bot.delete_state(message.from_user.id, message.chat.id)
            self.send(message.chat.id, text(lang, "cancelled"),
                      admin_keyboard(lang) if self.is_admin(message.from_user.id) else menu_keyboard(lang))
        else:
            self.reply_with_menu(message, "nothing_to_cancel")

    @handles_errors
    def on_search(self, message: types.Message) -> None:
        """/search <words>, or any plain text: look for it in the catalog."""
        lang = language_of(message.from_user)
        query = message.text.partition(" ")[2] if message.text.startswith("/search") else message.text
        query = " ".join(query.split())[:SEARCH_MAX]
        if not has_visible_text(query):
            self.send(message.chat.id, text(lang, "search_how"), menu_keyboard(lang))
            return
        with self.Session() as session:
            session.merge(Setting(key=f"{LAST_SEARCH}:{message.from_user.id}", value=query))
            session.commit()  # remembered for the Next/Prev buttons
            self.show(message.chat.id, self.search_screen(session, lang, query, 0))

    def search_screen(self, session: Session, lang: str, query: str, page: int) -> Screen:
        words = query.lower().split()[:SEARCH_WORDS]
        products, total = search_page(session, words, page)
        if not products and page:
            return self.search_screen(session, lang, query, 0)
        rows = [[button(self.product_label(lang, p), "prod", p.id, 0)] for p in products]
        key = "search_results" if products else "search_nothing"
        return Screen(text(lang, key, query=truncate(query, 100), count=total), keyboard(
            *rows, pager_row(lang, "find", (), page, page_count(total)),
            [button(label(lang, "btn_catalog"), "cats"), button(label(lang, "btn_menu"), "menu")]))

    def tap_search_page(self, call, session, page: int) -> Screen:
        query = session.get(Setting, f"{LAST_SEARCH}:{call.from_user.id}")
        if query is None:
            return menu_screen(language_of(call.from_user))
        return self.search_screen(session, language_of(call.from_user), query.value, page)

    @handles_errors
    def on_anything_else(self, message: types.Message) -> None:
        """Stickers, photos, voice, unknown commands...: a hint and the menu, never silence."""
        self.reply_with_menu(message, "hint")

    @handles_errors
    def on_group_message(self, message: types.Message) -> None:
        """The shop sells in private chats; in a group it only points there (when called)."""
        link = f"https://t.me/{self.bot.user.username}"
        self.send(message.chat.id, text(language_of(message.from_user), "private_only", link=link))

    # =======================================================================
    # Customer handlers: button taps
    # =======================================================================

    def _callback_routes(self) -> dict:
        """Callback action -> (handler, number of integer arguments)."""
        return {
            "noop": (lambda call, session: None, 0),
            "menu": (self.tap_menu, 0),
            "help": (self.tap_help, 0),
            "cats": (self.tap_catalog, 0),
            "cat": (self.tap_category, 2),
            "prod": (self.tap_product, 2),
            "mine": (self.tap_purchases, 1),
            "open": (self.tap_open_purchase, 1),
            "buy": (self.tap_buy, 1),
            "notify": (self.tap_notify, 1),
            "cancel": (self.tap_cancel, 0),
            "find": (self.tap_search_page, 1),
            **self._admin_routes(),
        }

    @handles_errors
    def on_callback(self, call: types.CallbackQuery) -> None:
        """Every button tap comes here: parse the data strictly, run its handler, always answer."""
        lang = language_of(call.from_user)
        parsed = parse_callback(call.data)
        route = parsed and self.routes.get(parsed[0])
        if not route or len(parsed[1]) != route[1] or call.message is None:
            logger.info("Stale or unknown callback data %r from user %s", call.data, call.from_user.id)
            self.answer(call, text(lang, "stale_button"))
            if call.message is not None:
                self.show(call.message.chat.id, menu_screen(lang), replace=call.message)
            return
        handler, _ = route
        with self.Session() as session:
            screen = handler(call, session, *parsed[1])
        if parsed[0] in self.admin_actions:
            self.catalog.clear()  # the seller may have changed what is on sale
        self.answer(call, screen.toast if screen else None)  # first: the button stops spinning sooner
        if screen is not None and screen.text:
            self.show(call.message.chat.id, screen, replace=call.message)

    def tap_menu(self, call, session) -> Screen:
        return menu_screen(language_of(call.from_user))

    def tap_help(self, call, session) -> Screen:
        lang = language_of(call.from_user)
        return Screen(text(lang, "help"), keyboard([button(label(lang, "btn_back"), "menu")]))

    def tap_catalog(self, call, session) -> Screen:
        return self.catalog_screen(session, language_of(call.from_user))

    def tap_category(self, call, session, category_id: int, page: int) -> Screen:
        return self.category_screen(session, language_of(call.from_user), category_id, page)

    def tap_product(self, call, session, product_id: int, page: int) -> Screen:
        lang = language_of(call.from_user)
        screen = self.product_screen(session, lang, call.from_user.id, product_id, page)
        if screen is None:
            screen = self.catalog_screen(session, lang)
            screen.toast = text(lang, "unavailable")
        return screen

    def tap_purchases(self, call, session, page: int) -> Screen:
        return self.purchases_screen(session, language_of(call.from_user), call.from_user.id, page)

    def tap_open_purchase(self, call, session, purchase_id: int) -> Screen | None:
        """Show a purchase's hidden content again, to its owner only."""
        lang = language_of(call.from_user)
        purchase = session.get(Purchase, purchase_id)
        if purchase is None or purchase.user.telegram_id != call.from_user.id:
            logger.warning("User %s tried to open purchase %s", call.from_user.id, purchase_id)
            return Screen("", toast=text(lang, "not_your_purchase"))
        if purchase.refunded_at is not None:
            return Screen("", toast=text(lang, "purchase_refunded"))
        self.deliver(session, call.message.chat.id, purchase, lang,
                     text(lang, "here_again", name=purchase.product.name))
        return None

    # =======================================================================
    # Payments, in the order they happen: Buy -> invoice -> pre-checkout ->
    # successful payment -> delivery
    # =======================================================================

    def tap_buy(self, call, session, product_id: int) -> Screen | None:
        """Buy: send an invoice, or hand over a free product at once."""
        lang = language_of(call.from_user)
        product = session.get(Product, product_id)
        if product is None or not product.is_active:
            return Screen("", toast=text(lang, "unavailable"))
        left = stock_left(session, product_id)
        if left == 0:
            screen = self.tap_product(call, session, product_id, 0)  # the card now says "Sold out"
            screen.toast = text(lang, "sold_out_toast")
            return screen
        once = sold_once_per_customer(product, left)
        owned = owned_purchase_id(session, call.from_user.id, product_id) if once else None
        if owned:  # show it again instead
            self.deliver(session, call.message.chat.id, session.get(Purchase, owned), lang,
                         text(lang, "already_owned"))
            return None
        if product.price == 0:
            return self.give_free_product(call, session, product, stocked=left is not None)
        self.send_invoice(call.message.chat.id, call.from_user.id, product)
        return Screen("", toast=text(lang, "invoice_sent"))

    def give_free_product(self, call, session: Session, product: Product, stocked: bool) -> Screen | None:
        lang = language_of(call.from_user)
        user = save_user(session, call.from_user)
        purchase = Purchase(user=user, product=product, price=0, currency=self.config.currency, payment_type="free")
        session.add(purchase)
        if stocked and not claim_stock_item(session, product.id, purchase):
            session.rollback()  # the last item went to someone else a moment ago
            return Screen("", toast=text(lang, "sold_out_toast"))
        session.commit()
        self.deliver(session, call.message.chat.id, purchase, lang, text(lang, "thanks", name=product.name))
        if stocked:
            self.alert_stock_level(session, product)
        return None

    def send_invoice(self, chat_id: int, buyer_id: int, product: Product) -> None:
        # Invoices are plain text: title up to 32 characters, description up to 255.
        self.call(
            chat_id, self.bot.send_invoice, chat_id,
            title=truncate(product.name, 32),
            description=truncate(product.description.strip() or product.name, 255),
            invoice_payload=invoice_payload(product.id, buyer_id),
            provider_token=self.config.provider_token or None,  # Stars take no provider
            currency=self.config.currency,
            prices=[types.LabeledPrice(truncate(product.name, 32), product.price)],
        )

    @handles_errors
    def on_pre_checkout(self, query: types.PreCheckoutQuery) -> None:
        """Telegram asks "may this payment go ahead?" and waits at most 10 seconds for the answer."""
        lang = language_of(query.from_user)
        with self.Session() as session:
            problem = self.checkout_problem(session, query)
        if problem:
            logger.info("Refused checkout of %r by user %s: %s", query.invoice_payload, query.from_user.id, problem)
            self.bot.answer_pre_checkout_query(query.id, ok=False,
                                               error_message=html_to_plain(text(lang, problem)))
        else:
            self.bot.answer_pre_checkout_query(query.id, ok=True)

    def checkout_problem(self, session: Session, query: types.PreCheckoutQuery) -> str | None:
        """The text key explaining why this payment must not happen, or None if it may."""
        payload = parse_invoice_payload(query.invoice_payload)
        if payload is None or payload[1] != query.from_user.id:
            return "checkout_invalid"
        product = session.get(Product, payload[0])
        if product is None or not product.is_active or product.price == 0:
            return "checkout_unavailable"
        if query.currency != self.config.currency or query.total_amount != product.price:
            return "checkout_price_changed"
        left = stock_left(session, product.id)
        if left == 0:
            return "checkout_sold_out"
        if left is None and owned_purchase_id(session, query.from_user.id, product.id):
            return "checkout_owned"
        return None

    @handles_errors
    def on_successful_payment(self, message: types.Message) -> None:
        """Money received: record the purchase (once per charge), commit, then deliver."""
        payment = message.successful_payment
        lang = language_of(message.from_user)
        payload = parse_invoice_payload(payment.invoice_payload)
        with self.Session() as session:
            user = save_user(session, message.from_user)
            product = session.get(Product, payload[0]) if payload else None
            if product is None:
                self.handle_unmatched_payment(message, lang)
                return
            stocked = stock_left(session, product.id) is not None
            purchase, is_new = record_payment(session, user, product, payment, self.config.payment_type, stocked)
            logger.info("Payment %s recorded as purchase %s (new: %s)", purchase.payment_id, purchase.id, is_new)
            if is_new and stocked and stock_item_of(session, purchase) is None:
                self.refund_sold_out_payment(session, message, purchase, lang)
                return
            if purchase.refunded_at is not None:  # a repeated update for a refunded payment
                self.send(message.chat.id, text(lang, "purchase_refunded"))
                return
            self.deliver(session, message.chat.id, purchase, lang, text(lang, "thanks", name=product.name))
            if is_new:
                self.notify_sale(purchase)
                if stocked:
                    self.alert_stock_level(session, product)

    def refund_stars(self, user_id: int, charge_id: str) -> bool:
        """Give Stars back at once (a payment we cannot honour); False if Telegram refuses or it was by card."""
        try:
            return bool(self.bot.refund_star_payment(user_id, charge_id))
        except ApiTelegramException as error:
            logger.error("Automatic refund of %s failed: %s", charge_id, error.description)
            return False

    def refund_sold_out_payment(self, session: Session, message: types.Message, purchase: Purchase,
                                lang: str) -> None:
        """Two buyers paid for the last item at the same moment and this one lost: refund and say so."""
        refunded = purchase.currency == STARS and self.refund_stars(message.from_user.id, purchase.payment_id)
        if refunded:
            purchase.refunded_at = utcnow()
            session.commit()
        logger.warning("Purchase %s found no stock left (refunded: %s)", purchase.id, refunded)
        self.send(message.chat.id, text(lang, "sold_out_refunded" if refunded else "sold_out_refund_pending"))
        self.notify_admins("admin_race_refunded" if refunded else "admin_race_refund_needed",
                           purchase=purchase.id, product=purchase.product.name,
                           who=describe_user(message.from_user), id=message.from_user.id,
                           amount=format_price(purchase.price, purchase.currency))

    def handle_unmatched_payment(self, message: types.Message, lang: str) -> None:
        """A payment whose product was deleted meanwhile (or a payload we cannot read)."""
        payment = message.successful_payment
        logger.error("Payment %s for unknown payload %r from user %s", payment.telegram_payment_charge_id,
                     payment.invoice_payload, message.from_user.id)
        refunded = payment.currency == STARS and self.refund_stars(message.from_user.id,
                                                                   payment.telegram_payment_charge_id)
        self.send(message.chat.id, text(lang, "paid_but_gone" if refunded else "paid_but_gone_card"))
        self.notify_admins("admin_unmatched_payment_refunded" if refunded else "admin_unmatched_payment",
                           who=describe_user(message.from_user), id=message.from_user.id,
                           charge=payment.telegram_payment_charge_id,
                           amount=format_price(payment.total_amount, payment.currency))

    def deliver(self, session: Session, chat_id: int, purchase: Purchase, lang: str, heading: str) -> None:
        """Send what was bought: the heading, then the buyer's own stock item (if the product is
        stocked) and the product's hidden content: texts split to fit, files by file_id."""
        product = purchase.product
        self.send(chat_id, heading)
        item = stock_item_of(session, purchase)
        sent = False
        if item is not None:
            sent = self.send_content(chat_id, purchase, lang, item.content, item.file_id, item.file_type)
        # For a stocked product the hidden content is what every buyer shares (e.g. how to activate).
        sent |= self.send_content(chat_id, purchase, lang, product.hidden_content, product.hidden_file_id,
                                  product.hidden_file_type)
        if not sent:
            self.send(chat_id, text(lang, "nothing_hidden"))
        logger.info("Delivered purchase %s to user %s", purchase.id, chat_id)

    def send_content(self, chat_id: int, purchase: Purchase, lang: str, content: str, file_id: str | None,
                     file_type: str | None) -> bool:
        """Send a text (escaped, split above 4,096 characters) and a file; True if there was anything."""
        for piece in split_message(content):
            self.send(chat_id, html.escape(piece, quote=False))
        if file_id:
            try:
                self.send_file(chat_id, file_type, file_id)
            except ApiTelegramException as error:
                logger.error("Could not send the file of purchase %s: %s", purchase.id, error.description)
                self.send(chat_id, text(lang, "file_failed"))
                self.notify_admins("admin_file_failed", purchase=purchase.id, product=purchase.product.name,
                                   error=error.description)
        return bool(file_id or content.strip())

    def alert_stock_level(self, session: Session, product: Product) -> None:
        """Tell the admins when a stocked product runs low, and when it sells out."""
        left = stock_left(session, product.id)
        if left == 0:
            self.notify_admins("admin_sold_out", name=product.name, id=product.id)
        elif left == LOW_STOCK_ALERT:
            self.notify_admins("admin_low_stock", name=product.name, id=product.id, count=left)

    def tap_notify(self, call, session, product_id: int) -> Screen:
        """🔔 Notify me: remember who waits for a sold-out product."""
        lang = language_of(call.from_user)
        product = session.get(Product, product_id)
        if product is None or not product.is_active:
            return Screen("", toast=text(lang, "unavailable"))
        user = save_user(session, call.from_user)
        session.add(WaitlistEntry(product_id=product_id, user_id=user.id))
        try:
            session.commit()
        except IntegrityError:  # already waiting
            session.rollback()
        return Screen("", toast=text(lang, "notify_saved"))

    # =======================================================================
    # Admin panel: everything the seller does, from the chat. Every entry
    # point is wrapped in @admin_only, so nobody else gets past it.
    # =======================================================================

    def notify_admins(self, key: str, markup=None, setting: str | None = None,
                      copy_of: types.Message | None = None, **values) -> None:
        """Message every admin in their language (then a copy of ``copy_of``, carrying the buttons);
        with ``setting``, skip those who switched it off.

        Telegram lets a bot write only to people who have opened it, so an admin
        hears from the shop once they have sent it /start.
        """
        with self.Session() as session:
            reachable = dict(session.execute(
                select(User.telegram_id, User.language_code)
                .where(User.telegram_id.in_(self.config.admin_ids), User.is_blocked.is_(False))).all())
            muted = muted_admins(session, setting, self.config.admin_ids) if setting else set()
        for admin_id in sorted(reachable.keys() - muted):
            try:
                self.send(admin_id, text(language_for_code(reachable[admin_id]), key, **values),
                          None if copy_of else markup)
                if copy_of is not None:
                    self.call(admin_id, self.bot.copy_message, admin_id, copy_of.chat.id, copy_of.message_id,
                              reply_markup=markup)
            except ApiTelegramException as error:
                logger.warning("Could not notify admin %s: %s", admin_id, error.description)

    def notify_sale(self, purchase: Purchase) -> None:
        self.notify_admins("admin_new_sale", keyboard([button(f"🧾 #{purchase.id}", "apur", purchase.id)]),
                           setting=SALE_ALERTS,
                           product=purchase.product.name, price=format_price(purchase.price, purchase.currency),
                           who=describe_user(purchase.user), type=purchase.payment_type)

    def _admin_routes(self) -> dict:
        return {
            "adm": (self.tap_admin, 0),
            "aadd": (self.tap_add_product, 0),
            "aaddc": (self.tap_add_product_in, 1),
            "asave": (self.tap_save_product, 0),
            "acancel": (self.tap_cancel_dialog, 0),
            "acats": (self.tap_categories, 1),
            "anewc": (self.tap_new_category, 1),
            "acup": (self.tap_move_category_up, 1),
            "acdn": (self.tap_move_category_down, 1),
            "acren": (self.tap_rename_category, 1),
            "acdel": (self.tap_delete_category, 1),
            "aprods": (self.tap_product_categories, 0),
            "apc": (self.tap_admin_category, 2),
            "ap": (self.tap_admin_product, 1),
            "aedit": (self.tap_edit_field, 2),
            "ahide": (self.tap_toggle_product, 1),
            "adel": (self.tap_delete_product, 1),
            "adelok": (self.tap_confirm_delete_product, 1),
            "asales": (self.tap_sales, 0),
            "arecent": (self.tap_recent_purchases, 1),
            "apur": (self.tap_admin_purchase, 1),
            "aref": (self.tap_refund, 1),
            "arefok": (self.tap_confirm_refund, 1),
            "abc": (self.tap_broadcast, 0),
            "abcgo": (self.tap_start_broadcast, 0),
            "acsv": (self.tap_export_csv, 0),
            "abak": (self.tap_backup, 0),
            "aalerts": (self.tap_toggle_sale_alerts, 0),
            "astock": (self.tap_upload_stock, 1),
            "areply": (self.tap_reply, 1),
            "aclear": (self.tap_clear_stock, 1),
            "aclearok": (self.tap_confirm_clear_stock, 1),
        }

    def admin_screen(self, session: Session, lang: str, admin_id: int) -> Screen:
        alerts_on = admin_id not in muted_admins(session, SALE_ALERTS, [admin_id])
        return Screen(text(lang, "admin_panel"), admin_keyboard(lang, alerts_on))

    @handles_errors
    @admin_only
    def on_admin(self, message: types.Message) -> None:
        """/admin: the seller's panel."""
        self.bot.delete_state(message.from_user.id, message.chat.id)
        with self.Session() as session:
            save_user(session, message.from_user)  # remembers the admin's language for notifications
            self.show(message.chat.id, self.admin_screen(session, language_of(message.from_user),
                                                         message.from_user.id))

    @admin_only
    def tap_admin(self, call, session) -> Screen:
        self.bot.delete_state(call.from_user.id, call.message.chat.id)
        return self.admin_screen(session, language_of(call.from_user), call.from_user.id)

    @admin_only
    def tap_toggle_sale_alerts(self, call, session) -> Screen:
        key = f"{SALE_ALERTS}:{call.from_user.id}"
        setting = session.get(Setting, key) or Setting(key=key, value="on")
        setting.value = "on" if setting.value == "off" else "off"
        session.add(setting)
        session.commit()
        return self.admin_screen(session, language_of(call.from_user), call.from_user.id)

    # --- dialogs: the admin's next message answers a question -------------

    def ask(self, call_or_message, state: str, prompt_key: str, **data) -> Screen:
        """Start waiting for the admin's next message, which answers ``prompt_key``."""
        user_id, chat_id = call_or_message.from_user.id, chat_of(call_or_message)
        self.bot.set_state(user_id, state, chat_id)
        if data:
            self.bot.add_data(user_id, chat_id, **data)
        lang = language_of(call_or_message.from_user)
        return Screen(text(lang, prompt_key), keyboard([button(label(lang, "btn_cancel"), "acancel")]))

    @admin_only
    def tap_cancel_dialog(self, call, session) -> Screen:
        self.bot.delete_state(call.from_user.id, call.message.chat.id)
        screen = self.admin_screen(session, language_of(call.from_user), call.from_user.id)
        screen.toast = text(language_of(call.from_user), "cancelled")
        return screen

    @handles_errors
    def on_dialog(self, message: types.Message) -> None:
        """The answer to the question the bot asked last: a customer's support message, or an admin's."""
        if self.bot.get_state(message.from_user.id, message.chat.id) == "support":
            self.dialog_support(message)
        else:
            self.on_admin_dialog(message)

    @admin_only
    def on_admin_dialog(self, message: types.Message) -> None:
        """The admin's answer to the question the bot asked last."""
        state = self.bot.get_state(message.from_user.id, message.chat.id) or ""
        with self.bot.retrieve_data(message.from_user.id, message.chat.id) as data:
            draft = dict(data or {})
        kind, _, argument = state.partition(":")
        steps = {"add": self.dialog_add_product, "edit": self.dialog_edit_product, "newcat": self.dialog_new_category,
                 "rencat": self.dialog_rename_category, "broadcast": self.dialog_broadcast,
                 "stock": self.dialog_upload_stock, "reply": self.dialog_reply}
        lang = language_of(message.from_user)
        with self.Session() as session:
            try:
                screen = steps[kind](message, session, draft, argument)
            except InputError as error:  # re-ask, keeping what was entered so far
                screen = Screen(text(lang, error.key, **error.values) + "\n\n" + text(lang, "try_again"),
                                keyboard([button(label(lang, "btn_cancel"), "acancel")]))
        self.catalog.clear()  # the seller may have changed what is on sale
        self.show(message.chat.id, screen)

    # --- adding a product: category -> name -> price -> description ->
    #     description file -> hidden content -> preview -> Save

    @admin_only
    def tap_add_product(self, call, session) -> Screen:
        lang = language_of(call.from_user)
        rows = [[button(name, "aaddc", cid)] for cid, name in categories_in_order(session)]
        return Screen(text(lang, "admin_choose_category"), keyboard(
            *rows, [button(label(lang, "btn_new_category"), "anewc", 1)], [button(label(lang, "btn_back"), "adm")]))

    @admin_only
    def tap_add_product_in(self, call, session, category_id: int) -> Screen:
        if session.get(Category, category_id) is None:
            return self.tap_add_product(call, session)
        self.bot.delete_state(call.from_user.id, call.message.chat.id)
        return self.ask(call, "add:0", PRODUCT_FIELDS[0].prompt, category_id=category_id)

    def dialog_add_product(self, message, session, draft: dict, argument: str) -> Screen:
        lang = language_of(message.from_user)
        if argument == "preview":
            raise InputError("err_use_buttons")
        step = int(argument)
        values = PRODUCT_FIELDS[step].read(message, self.config.currency)
        self.bot.add_data(message.from_user.id, message.chat.id, **values)
        if step + 1 < len(PRODUCT_FIELDS):
            return self.ask(message, f"add:{step + 1}", PRODUCT_FIELDS[step + 1].prompt)
        self.bot.set_state(message.from_user.id, "add:preview", message.chat.id)
        preview = Product(**{**draft, **values})
        return Screen(text(lang, "admin_preview") + "\n\n" + self.product_card(lang, preview),
                      keyboard([button(label(lang, "btn_save"), "asave"),
                                button(label(lang, "btn_cancel"), "acancel")]),
                      preview.description_file_id, preview.description_file_type)

    @admin_only
    def tap_save_product(self, call, session) -> Screen:
        lang = language_of(call.from_user)
        if self.bot.get_state(call.from_user.id, call.message.chat.id) != "add:preview":
            return Screen("", toast=text(lang, "stale_button"))
        with self.bot.retrieve_data(call.from_user.id, call.message.chat.id) as data:
            draft = dict(data)
        self.bot.delete_state(call.from_user.id, call.message.chat.id)
        if session.get(Category, draft["category_id"]) is None:
            return Screen("", toast=text(lang, "unavailable"))
        product = Product(**draft)
        session.add(product)
        session.commit()
        logger.info("Admin %s added product %s", call.from_user.id, product.id)
        screen = self.admin_product_screen(session, lang, product.id)
        screen.toast = text(lang, "admin_saved")
        return screen

    # --- categories -----------------------------------------------------------

    @admin_only
    def tap_categories(self, call, session, page: int) -> Screen:
        lang = language_of(call.from_user)
        total = session.scalar(select(func.count(Category.id)))
        categories = session.execute(
            select(Category.id, Category.name, func.count(Product.id))
            .outerjoin(Product, Product.category_id == Category.id)
            .group_by(Category.id, Category.name, Category.position)
            .order_by(Category.position, Category.id).limit(ADMIN_CATEGORY_PAGE).offset(page * ADMIN_CATEGORY_PAGE))
        rows = [[button(f"{name} ({count})", "apc", cid, 0), button("⬆️", "acup", cid), button("⬇️", "acdn", cid),
                 button("✏️", "acren", cid), button("🗑", "acdel", cid)] for cid, name, count in categories]
        return Screen(text(lang, "admin_categories"), keyboard(
            *rows, pager_row(lang, "acats", (), page, page_count(total, ADMIN_CATEGORY_PAGE)),
            [button(label(lang, "btn_new_category"), "anewc", 0)], [button(label(lang, "btn_back"), "adm")]))

    @admin_only
    def tap_new_category(self, call, session, for_new_product: int) -> Screen:
        """➕ New category: from the Categories screen, or on the way to adding a product (1)."""
        return self.ask(call, f"newcat:{for_new_product}", "admin_ask_category_name")

    def dialog_new_category(self, message, session, draft, argument) -> Screen:
        last_position = session.scalar(select(func.max(Category.position))) or 0
        category = Category(name=read_name(message), position=last_position + 1)
        session.add(category)
        try:
            session.commit()
        except IntegrityError:
            raise InputError("err_category_exists") from None
        if argument == "1":  # straight on to the product that needed this category
            return self.ask(message, "add:0", PRODUCT_FIELDS[0].prompt, category_id=category.id)
        self.bot.delete_state(message.from_user.id, message.chat.id)
        return self.tap_categories(message, session, 0)

    @admin_only
    def tap_rename_category(self, call, session, category_id: int) -> Screen:
        if session.get(Category, category_id) is None:
            return self.tap_categories(call, session, 0)
        return self.ask(call, "rencat", "admin_ask_category_name", category_id=category_id)

    def dialog_rename_category(self, message, session, draft, argument) -> Screen:
        category = session.get(Category, draft["category_id"])
        self.bot.delete_state(message.from_user.id, message.chat.id)
        if category is not None:
            category.name = read_name(message)
            try:
                session.commit()
            except IntegrityError:
                self.bot.set_state(message.from_user.id, "rencat", message.chat.id)
                self.bot.add_data(message.from_user.id, message.chat.id, **draft)
                raise InputError("err_category_exists") from None
        return self.tap_categories(message, session, 0)

    @admin_only
    def tap_move_category_up(self, call, session, category_id: int) -> Screen:
        move_category(session, category_id, -1)
        return self.tap_categories(call, session, 0)

    @admin_only
    def tap_move_category_down(self, call, session, category_id: int) -> Screen:
        move_category(session, category_id, +1)
        return self.tap_categories(call, session, 0)

    @admin_only
    def tap_delete_category(self, call, session, category_id: int) -> Screen:
        lang = language_of(call.from_user)
        category = session.get(Category, category_id)
        has_products = session.scalar(select(Product.id).where(Product.category_id == category_id).limit(1))
        toast = text(lang, "admin_category_not_empty") if has_products else None
        if category is not None and not has_products:
            session.delete(category)
            session.commit()
            toast = text(lang, "admin_deleted")
        screen = self.tap_categories(call, session, 0)
        screen.toast = toast
        return screen

    # --- products ---------------------------------------------------------

    @admin_only
    def tap_product_categories(self, call, session) -> Screen:
        lang = language_of(call.from_user)
        rows = [[button(name, "apc", cid, 0)] for cid, name in categories_in_order(session)]
        return Screen(text(lang, "admin_products"), keyboard(*rows, [button(label(lang, "btn_back"), "adm")]))

    @admin_only
    def tap_admin_category(self, call, session, category_id: int, page: int) -> Screen:
        lang = language_of(call.from_user)
        category = category_with_count(session, category_id, active_only=False)
        if category is None:
            return self.tap_product_categories(call, session)
        total = category.total
        products = products_page(session, category_id, min(page, page_count(total) - 1), active_only=False)
        rows = [[button(("" if p.is_active else "🙈 ") + f"{p.name} — {format_price(p.price, self.config.currency)}",
                        "ap", p.id)] for p in products]
        return Screen(text(lang, "admin_category", name=category.name, count=total), keyboard(
            *rows, pager_row(lang, "apc", (category_id,), page, page_count(total)),
            [button(label(lang, "btn_back"), "aprods")]))

    def admin_product_screen(self, session: Session, lang: str, product_id: int) -> Screen:
        product = session.get(Product, product_id)
        sales, revenue = session.execute(select(func.count(Purchase.id), func.coalesce(func.sum(Purchase.price), 0))
                                         .where(Purchase.product_id == product_id,
                                                Purchase.refunded_at.is_(None))).one()
        hidden_file = product.hidden_file_type or "—"
        left = stock_left(session, product_id)
        stock = label(lang, "admin_unlimited") if left is None else label(lang, "admin_stock_left", count=left)
        body = text(lang, "admin_product", stock=stock, id=product.id, name=product.name,
                    category=product.category.name,
                    price=format_price(product.price, self.config.currency),
                    status=label(lang, "admin_on_sale" if product.is_active else "admin_hidden"),
                    description=truncate(product.description, 1000),
                    file=product.description_file_type or "—", hidden=truncate(product.hidden_content, 1500),
                    hidden_file=hidden_file, sales=sales, revenue=format_price(revenue, self.config.currency))
        edit_buttons = [button(label(lang, f"btn_edit_{f.name}"), "aedit", product.id, i)
                        for i, f in enumerate(PRODUCT_FIELDS)]
        toggle = label(lang, "btn_hide" if product.is_active else "btn_show")
        stock_buttons = [button(label(lang, "btn_upload_stock"), "astock", product.id)]
        if left:
            stock_buttons.append(button(label(lang, "btn_clear_stock"), "aclear", product.id))
        return Screen(body, keyboard(
            edit_buttons[:2], edit_buttons[2:4], edit_buttons[4:], stock_buttons,
            [button(toggle, "ahide", product.id), button(label(lang, "btn_delete"), "adel", product.id)],
            [button(label(lang, "btn_back"), "apc", product.category_id, 0)]))

    @admin_only
    def tap_admin_product(self, call, session, product_id: int) -> Screen:
        if session.get(Product, product_id) is None:
            return self.tap_product_categories(call, session)
        return self.admin_product_screen(session, language_of(call.from_user), product_id)

    @admin_only
    def tap_edit_field(self, call, session, product_id: int, field_index: int) -> Screen:
        if session.get(Product, product_id) is None or field_index >= len(PRODUCT_FIELDS):
            return self.tap_product_categories(call, session)
        self.bot.delete_state(call.from_user.id, call.message.chat.id)
        return self.ask(call, f"edit:{field_index}", PRODUCT_FIELDS[field_index].prompt, product_id=product_id)

    def dialog_edit_product(self, message, session, draft, argument) -> Screen:
        values = PRODUCT_FIELDS[int(argument)].read(message, self.config.currency)
        product = session.get(Product, draft["product_id"])
        self.bot.delete_state(message.from_user.id, message.chat.id)
        if product is None:
            return self.admin_screen(session, language_of(message.from_user), message.from_user.id)
        for name, value in values.items():
            setattr(product, name, value)
        session.commit()
        logger.info("Admin %s edited %s of product %s", message.from_user.id, list(values), product.id)
        return self.admin_product_screen(session, language_of(message.from_user), product.id)

    @admin_only
    def tap_toggle_product(self, call, session, product_id: int) -> Screen:
        product = session.get(Product, product_id)
        if product is None:
            return self.tap_product_categories(call, session)
        product.is_active = not product.is_active
        session.commit()
        return self.admin_product_screen(session, language_of(call.from_user), product_id)

    @admin_only
    def tap_delete_product(self, call, session, product_id: int) -> Screen:
        lang = language_of(call.from_user)
        product = session.get(Product, product_id)
        if product is None:
            return self.tap_product_categories(call, session)
        if session.scalar(select(Purchase.id).where(Purchase.product_id == product_id).limit(1)):
            product.is_active = False  # buyers keep their access: hide instead of deleting
            session.commit()
            screen = self.admin_product_screen(session, lang, product_id)
            screen.toast = text(lang, "admin_hidden_not_deleted")
            return screen
        return Screen(text(lang, "admin_confirm_delete", name=product.name), keyboard(
            [button(label(lang, "btn_delete"), "adelok", product_id),
             button(label(lang, "btn_back"), "ap", product_id)]))

    @admin_only
    def tap_confirm_delete_product(self, call, session, product_id: int) -> Screen:
        product = session.get(Product, product_id)
        if product is None or product.purchases:  # bought meanwhile: never delete a sale's product
            return self.tap_delete_product(call, session, product_id)
        category_id = product.category_id
        session.delete(product)
        session.commit()
        logger.info("Admin %s deleted product %s", call.from_user.id, product_id)
        screen = self.tap_admin_category(call, session, category_id, 0)
        screen.toast = text(language_of(call.from_user), "admin_deleted")
        return screen

    # --- unique stock: keys, codes, accounts -------------------------------

    @admin_only
    def tap_upload_stock(self, call, session, product_id: int) -> Screen:
        if session.get(Product, product_id) is None:
            return self.tap_product_categories(call, session)
        self.bot.delete_state(call.from_user.id, call.message.chat.id)
        return self.ask(call, "stock", "admin_ask_stock", product_id=product_id)

    def dialog_upload_stock(self, message, session, draft, argument) -> Screen:
        """Stock arrives as pasted lines, a .txt/.csv list, or a file that is itself one item."""
        lang = language_of(message.from_user)
        product = session.get(Product, draft["product_id"])
        if product is None:
            self.bot.delete_state(message.from_user.id, message.chat.id)
            return self.admin_screen(session, lang, message.from_user.id)
        if message.content_type == "text":
            added, skipped = add_stock_lines(session, product.id, message.text.splitlines())
        elif message.content_type == "document" and is_text_list(message.document):
            lines = read_text_lines(self.download(message.document))
            added, skipped = add_stock_lines(session, product.id, lines)
        elif attached_file(message):
            file_id, file_type = attached_file(message)
            session.add(StockItem(product_id=product.id, content=message.caption or "", file_id=file_id,
                                  file_type=file_type))
            session.commit()
            added, skipped = 1, 0
        else:
            raise InputError("err_stock_kind")
        self.bot.delete_state(message.from_user.id, message.chat.id)
        logger.info("Admin %s added %s stock items to product %s", message.from_user.id, added, product.id)
        if added:
            self.start_background(self.notify_waitlist, product.id)
        screen = self.admin_product_screen(session, lang, product.id)
        screen.text = text(lang, "admin_stock_added", added=added, skipped=skipped) + "\n\n" + screen.text
        return screen

    def download(self, document: types.Document) -> bytes:
        """A document's bytes (bots may download files of up to 20 MB)."""
        if (document.file_size or 0) > MAX_DOWNLOAD:
            raise InputError("err_file_too_big")
        try:
            return self.bot.download_file(self.bot.get_file(document.file_id).file_path)
        except (ApiException, requests.RequestException) as error:
            logger.warning("Could not download document %s: %s", document.file_id, error)
            raise InputError("err_download_failed") from None

    def notify_waitlist(self, product_id: int) -> None:
        """Tell everyone who tapped "Notify me" that the product is back, once each."""
        with self.Session() as session:
            waiting = session.execute(
                select(WaitlistEntry.id, User.telegram_id, User.language_code, Product.name)
                .join(User, WaitlistEntry.user_id == User.id).join(Product, WaitlistEntry.product_id == Product.id)
                .where(WaitlistEntry.product_id == product_id)).all()
            for entry_id, telegram_id, language_code, name in waiting:
                lang = language_for_code(language_code)
                with contextlib.suppress(ApiTelegramException):
                    self.send(telegram_id, text(lang, "back_in_stock", name=name),
                              keyboard([button(label(lang, "btn_open_product"), "prod", product_id, 0)]))
                session.execute(delete(WaitlistEntry).where(WaitlistEntry.id == entry_id))
                session.commit()
                self.sleep(BROADCAST_INTERVAL)
        logger.info("Told %s waiting customers that product %s is back", len(waiting), product_id)

    @admin_only
    def tap_clear_stock(self, call, session, product_id: int) -> Screen:
        lang = language_of(call.from_user)
        left = stock_left(session, product_id)
        if not left:
            return self.tap_admin_product(call, session, product_id)
        return Screen(text(lang, "admin_confirm_clear_stock", count=left), keyboard(
            [button(label(lang, "btn_clear_stock"), "aclearok", product_id),
             button(label(lang, "btn_back"), "ap", product_id)]))

    @admin_only
    def tap_confirm_clear_stock(self, call, session, product_id: int) -> Screen:
        removed = session.execute(delete(StockItem).where(StockItem.product_id == product_id,
                                                          StockItem.purchase_id.is_(None))).rowcount
        session.commit()
        logger.info("Admin %s removed %s unsold items of product %s", call.from_user.id, removed, product_id)
        screen = self.tap_admin_product(call, session, product_id)
        screen.toast = text(language_of(call.from_user), "admin_stock_removed", count=removed)
        return screen

    # --- money: sales, purchases, refunds, grants ----------------------------

    @admin_only
    def tap_sales(self, call, session) -> Screen:
        lang = language_of(call.from_user)
        return Screen(sales_report(session, lang), keyboard([button(label(lang, "btn_back"), "adm")]))

    @admin_only
    def tap_recent_purchases(self, call, session, page: int) -> Screen:
        lang = language_of(call.from_user)
        total = func.count().over().label("total")
        rows = session.execute(
            select(Purchase.id, Purchase.price, Purchase.currency, Purchase.refunded_at, Product.name, total)
            .join(Product, Purchase.product_id == Product.id)
            .order_by(Purchase.id.desc()).limit(PAGE_SIZE).offset(page * PAGE_SIZE)).all()
        if not rows and page:
            return self.tap_recent_purchases(call, session, 0)
        buttons = [[button(("↩️ " if r.refunded_at else "") + f"#{r.id} {r.name} — {format_price(r.price, r.currency)}",
                           "apur", r.id)] for r in rows]
        return Screen(text(lang, "admin_recent" if rows else "admin_no_purchases"), keyboard(
            *buttons, pager_row(lang, "arecent", (), page, page_count(rows[0].total if rows else 0)),
            [button(label(lang, "btn_back"), "adm")]))

    def admin_purchase_screen(self, session: Session, lang: str, purchase: Purchase) -> Screen:
        buyer = purchase.user
        body = text(lang, "admin_purchase", id=purchase.id, buyer=describe_user(buyer), buyer_id=buyer.telegram_id,
                    product=purchase.product.name, price=format_price(purchase.price, purchase.currency),
                    type=purchase.payment_type, payment_id=purchase.payment_id or "—",
                    date=f"{purchase.created_at:%Y-%m-%d %H:%M} UTC")
        if purchase.refunded_at:
            body += "\n" + text(lang, "admin_refunded_at", date=f"{purchase.refunded_at:%Y-%m-%d %H:%M} UTC")
        refund = [] if purchase.refunded_at else [button(label(lang, "btn_refund"), "aref", purchase.id)]
        return Screen(body, keyboard(refund, [button(label(lang, "btn_back"), "arecent", 0)]))

    @admin_only
    def tap_admin_purchase(self, call, session, purchase_id: int) -> Screen:
        purchase = session.get(Purchase, purchase_id)
        if purchase is None:
            return self.tap_recent_purchases(call, session, 0)
        return self.admin_purchase_screen(session, language_of(call.from_user), purchase)

    @admin_only
    def tap_refund(self, call, session, purchase_id: int) -> Screen:
        lang = language_of(call.from_user)
        purchase = session.get(Purchase, purchase_id)
        if purchase is None or purchase.refunded_at:
            return self.tap_admin_purchase(call, session, purchase_id)
        return Screen(text(lang, "admin_confirm_refund", id=purchase.id, product=purchase.product.name,
                           price=format_price(purchase.price, purchase.currency), buyer=describe_user(purchase.user)),
                      keyboard([button(label(lang, "btn_confirm_refund"), "arefok", purchase_id),
                                button(label(lang, "btn_back"), "apur", purchase_id)]))

    @admin_only
    def tap_confirm_refund(self, call, session, purchase_id: int) -> Screen:
        lang = language_of(call.from_user)
        purchase = session.get(Purchase, purchase_id)
        if purchase is None:
            return self.tap_recent_purchases(call, session, 0)
        outcome = self.refund(session, lang, purchase, call.from_user.id)
        screen = self.admin_purchase_screen(session, lang, purchase)  # drawn after: shows the refund
        screen.toast = html_to_plain(outcome)
        return screen

    def refund(self, session: Session, lang: str, purchase: Purchase, admin_id: int) -> str:
        """Refund a purchase and revoke its access; returns the text that reports the outcome."""
        if purchase.refunded_at:
            return text(lang, "admin_already_refunded")
        if purchase.payment_type == "stars":
            try:
                self.bot.refund_star_payment(purchase.user.telegram_id, purchase.payment_id)
            except ApiTelegramException as error:  # already refunded, unknown charge...
                logger.warning("Refund of purchase %s refused: %s", purchase.id, error.description)
                return text(lang, "admin_refund_failed", error=error.description)
        purchase.refunded_at = utcnow()
        session.commit()
        logger.info("Admin %s refunded purchase %s", admin_id, purchase.id)
        return text(lang, "admin_refunded" if purchase.payment_type == "stars" else "admin_refund_marked")

    @handles_errors
    @admin_only
    def on_refund_command(self, message: types.Message) -> None:
        """/refund <payment id>"""
        lang = language_of(message.from_user)
        payment_id = message.text.partition(" ")[2].strip()
        with self.Session() as session:
            purchase = session.scalar(select(Purchase).where(Purchase.payment_id == payment_id)) if payment_id else None
            reply = self.refund(session, lang, purchase, message.from_user.id) if purchase else \
                text(lang, "admin_refund_usage")
        self.send(message.chat.id, reply)

    @handles_errors
    @admin_only
    def on_grant(self, message: types.Message) -> None:
        """/grant <telegram id> <product id>: give a product to a customer, for support cases."""
        lang = language_of(message.from_user)
        arguments = message.text.split()[1:]
        if len(arguments) != 2 or not all(is_id(a) for a in arguments):
            self.send(message.chat.id, text(lang, "admin_grant_usage"))
            return
        telegram_id, product_id = map(int, arguments)
        with self.Session() as session:
            product = session.get(Product, product_id)
            if product is None:
                self.send(message.chat.id, text(lang, "unavailable"))
                return
            stocked = stock_left(session, product_id) is not None
            if not stocked and owned_purchase_id(session, telegram_id, product_id):
                self.send(message.chat.id, text(lang, "admin_grant_owned"))
                return
            user = session.scalar(select(User).where(User.telegram_id == telegram_id)) or User(telegram_id=telegram_id)
            purchase = Purchase(user=user, product=product, price=0, currency=self.config.currency,
                                payment_type="manual")
            session.add(purchase)
            if stocked and not claim_stock_item(session, product_id, purchase):
                session.rollback()
                self.send(message.chat.id, text(lang, "sold_out_toast"))
                return
            session.commit()
            logger.info("Admin %s granted product %s to user %s", message.from_user.id, product_id, telegram_id)
            customer_lang = language_for_code(user.language_code)
            self.deliver(session, telegram_id, purchase, customer_lang,
                         text(customer_lang, "thanks", name=product.name))
            self.send(message.chat.id, text(lang, "admin_granted", id=purchase.id))

    # --- talking to one customer -----------------------------------------------

    @admin_only
    def tap_reply(self, call, session, telegram_id: int) -> None:
        self.bot.delete_state(call.from_user.id, call.message.chat.id)
        screen = self.ask(call, "reply", "admin_ask_reply", customer_id=telegram_id)
        self.send(call.message.chat.id, screen.text, screen.markup)  # below the customer's message, kept
        return None

    def dialog_reply(self, message, session, draft, argument) -> Screen:
        """Copy the admin's message to the customer, under a line saying who it is from."""
        lang, customer_id = language_of(message.from_user), draft["customer_id"]
        customer_lang = language_for_code(session.scalar(select(User.language_code)
                                                         .where(User.telegram_id == customer_id)))
        self.bot.delete_state(message.from_user.id, message.chat.id)
        delivered = self.send(customer_id, text(customer_lang, "seller_writes")) and self.call(
            customer_id, self.bot.copy_message, customer_id, message.chat.id, message.message_id)
        key = "admin_reply_sent" if delivered else "admin_reply_blocked"
        return Screen(text(lang, key), keyboard([button(label(lang, "btn_back"), "adm")]))

    # --- broadcast ----------------------------------------------------------

    @admin_only
    def tap_broadcast(self, call, session) -> Screen:
        return self.ask(call, "broadcast", "admin_ask_broadcast")

    def dialog_broadcast(self, message, session, draft, argument) -> Screen:
        lang = language_of(message.from_user)
        if message.content_type not in ("text", "photo", "document"):
            raise InputError("err_broadcast_kind")
        self.bot.set_state(message.from_user.id, "broadcast:ready", message.chat.id)
        self.bot.add_data(message.from_user.id, message.chat.id, message_id=message.message_id)
        audience = session.scalar(select(func.count(User.id)).where(User.is_blocked.is_(False)))
        self.bot.copy_message(message.chat.id, message.chat.id, message.message_id)  # the preview
        return Screen(text(lang, "admin_confirm_broadcast", count=audience), keyboard(
            [button(label(lang, "btn_send"), "abcgo"), button(label(lang, "btn_cancel"), "acancel")]))

    @admin_only
    def tap_start_broadcast(self, call, session) -> Screen:
        lang = language_of(call.from_user)
        chat_id = call.message.chat.id
        if self.bot.get_state(call.from_user.id, chat_id) != "broadcast:ready":
            return Screen("", toast=text(lang, "stale_button"))
        if not self.broadcast_lock.acquire(blocking=False):
            return Screen("", toast=text(lang, "admin_broadcast_busy"))
        with self.bot.retrieve_data(call.from_user.id, chat_id) as data:
            message_id = data["message_id"]
        self.bot.delete_state(call.from_user.id, chat_id)
        recipients = list(session.scalars(select(User.telegram_id).where(User.is_blocked.is_(False))
                                          .order_by(User.id)))
        self.start_background(self.run_broadcast, chat_id, message_id, recipients, lang)
        return Screen(text(lang, "admin_broadcast_started", count=len(recipients)),
                      keyboard([button(label(lang, "btn_back"), "adm")]))

    def run_broadcast(self, admin_chat: int, message_id: int, recipients: list[int], lang: str) -> None:
        """Copy the admin's message to everyone, at most ~25 a second, reporting progress."""
        counts = {"sent": 0, "blocked": 0, "failed": 0}
        progress = self.send(admin_chat, text(lang, "admin_broadcast_progress", done=0, total=len(recipients)))
        try:
            last_report = time.monotonic()
            for telegram_id in recipients:
                started = time.monotonic()
                try:
                    copied = self.call(telegram_id, self.bot.copy_message, telegram_id, admin_chat, message_id)
                    counts["sent" if copied is not None else "blocked"] += 1
                except ApiTelegramException as error:
                    logger.warning("Broadcast to %s failed: %s", telegram_id, error.description)
                    counts["failed"] += 1
                if progress and time.monotonic() - last_report > BROADCAST_PROGRESS_EVERY:
                    last_report = time.monotonic()
                    self.show(admin_chat, Screen(text(lang, "admin_broadcast_progress", done=sum(counts.values()),
                                                      total=len(recipients))), replace=progress)
                self.sleep(max(0.0, BROADCAST_INTERVAL - (time.monotonic() - started)))
            logger.info("Broadcast finished: %s", counts)
        except Exception:
            logger.exception("Broadcast stopped by an error")
        finally:
            self.show(admin_chat, Screen(text(lang, "admin_broadcast_done", **counts)), replace=progress)
            self.broadcast_lock.release()

    # --- export and backup --------------------------------------------------

    @admin_only
    def tap_export_csv(self, call, session) -> Screen:
        lang = language_of(call.from_user)
        document = io.BytesIO(purchases_csv(session).encode("utf-8-sig"))  # -sig: Excel opens UTF-8 right
        self.bot.send_document(call.message.chat.id, document,
                               visible_file_name=f"purchases-{utcnow():%Y-%m-%d}.csv")
        return Screen("", toast=text(lang, "admin_exported"))

    @admin_only
    def tap_backup(self, call, session) -> Screen:
        lang = language_of(call.from_user)
        url = session.get_bind().url
        if url.get_backend_name() != "sqlite":
            return Screen(text(lang, "admin_backup_server"), keyboard([button(label(lang, "btn_back"), "adm")]))
        with tempfile.TemporaryDirectory() as folder:
            copy_path = os.path.join(folder, "backup.db")
            backup_sqlite(url.database, copy_path)
            with open(copy_path, "rb") as copy:
                self.bot.send_document(call.message.chat.id, copy,
                                       visible_file_name=f"shop-backup-{utcnow():%Y-%m-%d-%H%M}.db")
        return Screen("", toast=text(lang, "admin_backup_sent"))


# ===========================================================================
# Payment helpers
# ===========================================================================

def invoice_payload(product_id: int, buyer_id: int) -> str:
    """What Telegram hands back with the payment: which product, for whom."""
    return f"shop{CALLBACK_VERSION}:{product_id}:{buyer_id}"


def parse_invoice_payload(payload: str | None) -> tuple[int, int] | None:
    """'shop1:42:1001' -> (42, 1001); None when it is not one of our invoices."""
    parts = (payload or "").split(":")
    if len(parts) != 3 or parts[0] != f"shop{CALLBACK_VERSION}" or not all(is_id(p) for p in parts[1:]):
        return None
    return int(parts[1]), int(parts[2])


def record_payment(session: Session, user: User, product: Product, payment: types.SuccessfulPayment,
                   payment_type: str, stocked: bool) -> tuple[Purchase, bool]:
    """Save the purchase for this charge (and, if stocked, its item) in one transaction and commit.

    Returns (purchase, False) when Telegram repeats a payment already recorded.
    """
    charge_id = payment.telegram_payment_charge_id
    existing = session.scalar(select(Purchase).where(Purchase.payment_id == charge_id))
    if existing:
        return existing, False
    purchase = Purchase(user=user, product=product, price=payment.total_amount, currency=payment.currency,
                        payment_type=payment_type, payment_id=charge_id)
    session.add(purchase)
    try:
        if stocked:
            claim_stock_item(session, product.id, purchase)  # none left: the caller refunds
        session.commit()
    except IntegrityError:  # the same payment, recorded by another thread a moment ago
        session.rollback()
        return session.scalar(select(Purchase).where(Purchase.payment_id == charge_id)), False
    return purchase, True


def stock_item_of(session: Session, purchase: Purchase) -> StockItem | None:
    return session.scalar(select(StockItem).where(StockItem.purchase_id == purchase.id))


def retry_after(error: ApiTelegramException) -> float:
    """Seconds Telegram asks us to wait after a 429 Too Many Requests."""
    parameters = (error.result_json or {}).get("parameters") or {}
    return float(parameters.get("retry_after", 1))


def html_to_plain(value: str) -> str:
    """Our HTML texts as plain text, for places that take no markup (toasts, checkout errors)."""
    return html.unescape(re.sub(r"<[^>]+>", "", value))


def describe_user(user: types.User | User) -> str:
    """'Alice (@alice)' or 'Alice' for admin messages."""
    name = user.first_name or ""
    return f"{name} (@{user.username})" if user.username else name or str(getattr(user, "id", ""))



# ===========================================================================
# Admin helpers: reading the seller's input, reports, export, backup
# ===========================================================================

SALE_ALERTS = "sale_alerts"
ADMIN_CATEGORY_PAGE = 10
BROADCAST_INTERVAL = 1 / 25  # Telegram allows about 30 messages a second to different chats
BROADCAST_PROGRESS_EVERY = 3.0  # seconds between edits of the progress message
# The card (name, price, description) must fit one message of 4,096 characters.
DESCRIPTION_MAX = 3500
SKIP = "/skip"
LOW_STOCK_ALERT = 3  # admins hear when a stocked product is down to this many items
MAX_DOWNLOAD = 20 * 1024 * 1024  # the Bot API lets bots download files of up to 20 MB


def admin_keyboard(lang: str, alerts_on: bool = True) -> types.InlineKeyboardMarkup:
    def item(key: str, action: str, *args: int):
        return button(label(lang, key), action, *args)

    return keyboard(
        [item("btn_add_product", "aadd"), item("btn_categories", "acats", 0)],
        [item("btn_products", "aprods"), item("btn_sales", "asales")],
        [item("btn_recent", "arecent", 0), item("btn_broadcast", "abc")],
        [item("btn_export", "acsv"), item("btn_backup", "abak")],
        [item("btn_alerts_on" if alerts_on else "btn_alerts_off", "aalerts")],
    )


def is_command(message: types.Message, except_: str = "") -> bool:
    """A /command (any but ``except_``), as opposed to an answer to the bot's question."""
    words = (message.text or "").split() if message.content_type == "text" else []
    return bool(words) and words[0].startswith("/") and words[0].split("@")[0] != except_


def reply_keyboard(telegram_id: int) -> types.InlineKeyboardMarkup:
    """The "reply to this customer" button under messages to the admins (any admin's language)."""
    return keyboard([button("↩️ Reply · Ответить", "areply", telegram_id)])


def chat_of(update) -> int:
    return update.message.chat.id if isinstance(update, types.CallbackQuery) else update.chat.id


def muted_admins(session: Session, setting: str, admin_ids) -> set[int]:
    """Admins who switched off a kind of notification in the panel."""
    keys = [f"{setting}:{admin_id}" for admin_id in admin_ids]
    rows = session.scalars(select(Setting.key).where(Setting.key.in_(keys), Setting.value == "off"))
    return {int(key.rpartition(":")[2]) for key in rows}


def message_text(message: types.Message) -> str:
    """The text of a message, or an explained refusal when a file/sticker came instead."""
    if message.content_type != "text":
        raise InputError("err_expected_text")
    return message.text.strip()


def read_name(message: types.Message) -> str:
    name = " ".join(message_text(message).split())  # one line: it is shown on buttons
    if not has_visible_text(name):
        raise InputError("err_expected_text")
    if len(name) > NAME_MAX:
        raise InputError("err_name_too_long", limit=NAME_MAX)
    return name


def has_visible_text(value: str) -> bool:
    """False for texts made only of spaces and invisible characters (zero-width, direction marks)."""
    return any(unicodedata.category(char)[0] not in "CZ" for char in value)


def read_description(message: types.Message) -> str:
    description = message_text(message)
    if utf16_len(description) > DESCRIPTION_MAX:
        raise InputError("err_description_too_long", limit=DESCRIPTION_MAX, length=utf16_len(description))
    return description


def attached_file(message: types.Message) -> tuple[str, str] | None:
    """(file_id, 'photo' | 'document') of a photo or document message."""
    if message.content_type == "photo":
        return message.photo[-1].file_id, "photo"  # the largest size
    if message.content_type == "document":
        return message.document.file_id, "document"
    return None


def read_description_file(message: types.Message) -> dict:
    if message.content_type == "text" and message.text.strip() == SKIP:
        return {"description_file_id": None, "description_file_type": None}
    file = attached_file(message)
    if file is None:
        raise InputError("err_expected_file")
    return {"description_file_id": file[0], "description_file_type": file[1]}


def read_hidden(message: types.Message) -> dict:
    """A text, or a photo/document (its caption, if any, is kept as the text)."""
    file = attached_file(message)
    if file is None:
        content = message_text(message)
        if not has_visible_text(content):
            raise InputError("err_expected_text")
        return {"hidden_content": content, "hidden_file_id": None, "hidden_file_type": None}
    return {"hidden_content": message.caption or "", "hidden_file_id": file[0], "hidden_file_type": file[1]}


@dataclass(frozen=True)
class ProductField:
    """One question of the add/edit product dialog and how to read its answer."""

    name: str  # also names the "✏️" button: btn_edit_<name>
    prompt: str  # text key of the question
    reader: object  # (message, currency) -> dict of Product attributes

    def read(self, message: types.Message, currency: str) -> dict:
        return self.reader(message, currency)


PRODUCT_FIELDS = [
    ProductField("name", "admin_ask_name", lambda m, c: {"name": read_name(m)}),
    ProductField("price", "admin_ask_price", lambda m, c: {"price": parse_price(message_text(m), c)}),
    ProductField("description", "admin_ask_description", lambda m, c: {"description": read_description(m)}),
    ProductField("description_file", "admin_ask_description_file", lambda m, c: read_description_file(m)),
    ProductField("hidden", "admin_ask_hidden", lambda m, c: read_hidden(m)),
]


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


def move_category(session: Session, category_id: int, step: int) -> None:
    """Swap a category with its neighbour above (-1) or below (+1)."""
    ordered = list(session.scalars(select(Category).order_by(Category.position, Category.id)))
    index = next((i for i, c in enumerate(ordered) if c.id == category_id), None)
    if index is None or not 0 <= index + step < len(ordered):
        return
    ordered[index], ordered[index + step] = ordered[index + step], ordered[index]
    for position, category in enumerate(ordered):  # renumber: old rows may share a position
        category.position = position
    session.commit()


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


def backup_sqlite(database_path: str, copy_path: str) -> None:
    """A consistent copy of a live SQLite database (the backup API, safe while the bot writes)."""
    source, target = sqlite3.connect(database_path), sqlite3.connect(copy_path)
    try:
        source.backup(target)
    finally:
        source.close()
        target.close()


# ===========================================================================
# Wiring and main()
# ===========================================================================

def create_bot(config: Config, session_factory=None, threaded: bool = True) -> telebot.TeleBot:
    """Build the bot with every handler registered; nothing talks to Telegram yet."""
    shop = Shop(config, session_factory, threaded)
    bot = shop.bot
    private = {"chat_types": ["private"]}

    bot.register_message_handler(shop.on_cancel, commands=["cancel"], **private)
    bot.register_message_handler(shop.on_successful_payment, content_types=["successful_payment"], **private)
    # Someone the bot asked a question (an admin adding a product, a customer after /paysupport)
    # is answered by that dialog.
    # Commands are never taken as answers: /cancel, /start and /admin leave the dialog,
    # others (/help...) do their job and the dialog goes on.
    bot.register_message_handler(shop.on_dialog, content_types=telebot.util.content_type_media,
                                 func=lambda m: bool(bot.get_state(m.from_user.id, m.chat.id))
                                 and not is_command(m, except_=SKIP), **private)
    bot.register_message_handler(shop.on_start, commands=["start"], **private)
    bot.register_message_handler(shop.on_catalog_command, commands=["catalog"], **private)
    bot.register_message_handler(shop.on_purchases_command, commands=["purchases"], **private)
    bot.register_message_handler(shop.on_help, commands=["help"], **private)
    bot.register_message_handler(shop.on_terms, commands=["terms"], **private)
    bot.register_message_handler(shop.on_paysupport, commands=["paysupport"], **private)
    bot.register_message_handler(shop.on_admin, commands=["admin"], **private)
    bot.register_message_handler(shop.on_refund_command, commands=["refund"], **private)
    bot.register_message_handler(shop.on_grant, commands=["grant"], **private)
    bot.register_message_handler(shop.on_search, commands=["search"], **private)
    bot.register_message_handler(shop.on_search, content_types=["text"],
                                 func=lambda m: not m.text.startswith("/"), **private)
    bot.register_message_handler(shop.on_anything_else, content_types=telebot.util.content_type_media,
                                 **private)
    bot.register_message_handler(shop.on_group_message, commands=["start", "help"],
                                 chat_types=["group", "supergroup"])
    bot.register_callback_query_handler(shop.on_callback, func=lambda call: True)
    bot.register_pre_checkout_query_handler(shop.on_pre_checkout, func=lambda query: True)
    bot.shop = shop  # tests and main() reach the shop through the bot
    return bot


class PollingErrors(telebot.ExceptionHandler):
    """Explain the polling errors a seller can fix; telebot retries all of them with backoff."""

    def __init__(self):
        self.last_conflict = 0.0

    def handle(self, exception: Exception) -> bool:
        if isinstance(exception, ApiTelegramException) and exception.error_code == 409:
            if time.monotonic() - self.last_conflict > 60:  # say it once a minute, not on every poll
                logger.error("Another instance of this bot is running: Telegram answered 409 Conflict because "
                             "someone else polls with the same BOT_TOKEN. Stop the other instance.")
            self.last_conflict = time.monotonic()
            return True
        return False


def hold_instance_lock(token: str):
    """Refuse to start twice on one machine: return an open lock file, or None if another instance holds it."""
    path = os.path.join(tempfile.gettempdir(), f"shopbot-{token.partition(':')[0]}.lock")
    lock_file = open(path, "a+")  # noqa: SIM115 (held open for the life of the process)
    try:
        fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock_file.close()
        return None
    return lock_file


def register_commands(bot: telebot.TeleBot) -> None:
    """Fill Telegram's command menu, in English and Russian."""
    for lang, commands in texts.COMMANDS.items():
        bot_commands = [types.BotCommand(name, description) for name, description in commands]
        bot.set_my_commands(bot_commands, language_code=None if lang == "en" else lang)


def main() -> int:
    try:
        config = load_config(os.environ)
    except ConfigError as error:
        print(f"shopbot: {error}", file=sys.stderr)
        return 2
    setup_logging(config.token)
    lock = hold_instance_lock(config.token)
    if lock is None:
        logger.error("Another instance of this bot is already running on this machine; exiting.")
        return 1
    use_api_server(config.api_url)
    bot = create_bot(config)
    bot.exception_handler = PollingErrors()
    logger.info("Database: %s; Telegram API: %s; payments: %s", safe_url(config.database_url),
                config.api_url or "https://api.telegram.org", config.currency)

    def stop(signum, _frame):
        logger.info("Got signal %s, stopping", signum)
        raise SystemExit(0)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        register_commands(bot)
    except Exception as error:  # the menu is a nicety; selling must not wait for it
        logger.warning("Could not register the command menu: %s", error)
    try:
        bot.infinity_polling(timeout=20, long_polling_timeout=20, allowed_updates=ALLOWED_UPDATES)
    except SystemExit:
        pass
    finally:
        bot.stop_bot()
        lock.close()
    logger.info("Stopped")
    return 0


def safe_url(database_url: str) -> str:
    """The database URL without its password, for the start-up log line."""
    from sqlalchemy.engine import make_url

    return make_url(database_url).render_as_string(hide_password=True)


if __name__ == "__main__":
    sys.exit(main())
