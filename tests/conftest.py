"""Test fixtures: a shop on a temp SQLite file, driven by updates as Telegram sends them.

No network: every Bot API call the bot makes goes through
``telebot.apihelper.CUSTOM_REQUEST_SENDER`` into ``FakeApi``, which records it,
answers like Telegram, and keeps each chat's messages (edits and deletions
applied) so a test can look at what a user sees. A test may queue an error for
the next call of a method (``api.fail("sendMessage", 403, "Forbidden: bot was
blocked by the user")``).

Every test that uses the database runs on SQLite and, when TEST_DATABASE_URL
names a PostgreSQL server (``.ci/postgres`` starts one), on PostgreSQL too, in
a fresh schema that is dropped afterwards.

The helpers read like a user's actions:

    alice.sends("/start")
    alice.taps("Catalog")          # an inline button, by part of its label
    alice.pays()                   # pre-checkout query, then successful payment
    assert "KEY-1" in alice.all_texts()
"""
from __future__ import annotations

import contextlib
import itertools
import json
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import sqlalchemy
from sqlalchemy import select
from telebot import apihelper, types

import shopbot
from models import STOCKED, Category, Product, PromoCode, Purchase, StockItem, User
from shopkit import Config, callback, journal, open_database, put_setting, screens

TOKEN = "1234567:TEST-token"
ADMIN_ID = 1


@dataclass
class Call:
    method: str
    params: dict
    files: dict | None = None


@dataclass
class FakeResponse:
    """What telebot reads from requests' Response."""

    status_code: int
    payload: dict
    text: str = ""

    def __post_init__(self):
        self.text = json.dumps(self.payload)

    def json(self):
        return self.payload


class ConnectionWatch:
    """Which threads hold a database connection right now (to catch a Telegram call inside a transaction)."""

    def __init__(self, engine):
        self.held: dict[int, int] = {}  # id of the pooled connection -> thread that checked it out
        sqlalchemy.event.listen(engine, "checkout", lambda _dbapi, record, _proxy: self.held.update(
            {id(record): threading.get_ident()}))
        sqlalchemy.event.listen(engine, "checkin", lambda _dbapi, record: self.held.pop(id(record), None))

    def in_transaction(self) -> bool:
        return threading.get_ident() in self.held.values()


@dataclass
class FakeApi:
    """A recording stand-in for the Bot API."""

    calls: list[Call] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)  # file_path -> content, for getFile + download
    chats: dict[int, dict[int, dict]] = field(default_factory=dict)  # chat id -> message id -> message
    failures: dict[str, list[tuple[int, str, int | None]]] = field(default_factory=dict)
    ids: itertools.count = field(default_factory=lambda: itertools.count(100))
    # Telegram's own record of Stars payments and refunds, oldest first (getStarTransactions).
    star_transactions: list[dict] = field(default_factory=list)
    # The shop's rule: no Telegram call while the calling thread holds a database connection.
    watches: list[ConnectionWatch] = field(default_factory=list)
    calls_in_transaction: list[str] = field(default_factory=list)
    latency: float = 0.0  # seconds each call takes, as over a real network
    pending_updates: int = 0  # what getWebhookInfo says waits at Telegram
    channels: FakeChannels = field(default_factory=lambda: FakeChannels())  # chats and subscriptions (below)

    def fail(self, method: str, code: int, description: str, retry_after: int | None = None, times: int = 1):
        self.failures.setdefault(method, []).extend([(code, description, retry_after)] * times)

    def drop_connection(self, method: str, times: int = 1):
        """The next calls of ``method`` never reach Telegram: the network fails under them."""
        self.failures.setdefault(method, []).extend([requests.ConnectionError("Connection aborted.")] * times)

    def __call__(self, http_method, url, params=None, files=None, **_):
        method = url.rsplit("/", 1)[1]
        params = {k: v for k, v in (params or {}).items()}
        if self.latency:
            time.sleep(self.latency)
        if any(watch.in_transaction() for watch in self.watches):
            self.calls_in_transaction.append(method)
        self.calls.append(Call(method, params, {name: read_upload(value) for name, value in (files or {}).items()}))
        failure = self.failures[method].pop(0) if self.failures.get(method) else self.refusal(method, params)
        if isinstance(failure, Exception):
            raise failure
        if failure:
            code, description, retry_after = failure
            payload = {"ok": False, "error_code": code, "description": description}
            if retry_after is not None:
                payload["parameters"] = {"retry_after": retry_after}
            return FakeResponse(code, payload)
        return FakeResponse(200, {"ok": True, "result": self.result(method, params, files)})

    def refusal(self, method, params) -> tuple | None:
        """Telegram's own refusals that the shop must cope with."""
        if method == "sendPaidMedia" and int(params["chat_id"]) < 0:  # a post in a channel
            return self.channels.post_refusal(int(params["chat_id"]))
        if method in FakeChannels.METHODS:
            return self.channels.refusal(method, params)
        if method == "editMessageText":
            message = self.chats.get(int(params["chat_id"]), {}).get(int(params["message_id"]))
            if message is None:
                return 400, "Bad Request: message to edit not found", None
            if "text" not in message:
                return 400, "Bad Request: there is no text in the message to edit", None
            markup = json.loads(params["reply_markup"]) if params.get("reply_markup") else None
            if message["text"] == as_telegram_shows(params["text"]) and message.get("reply_markup") == markup:
                return 400, "Bad Request: message is not modified: specified new message content and reply " \
                            "markup are exactly the same as a current content and reply markup of the message", None
        return None

    def result(self, method, params, files):
        if method in FakeChannels.METHODS:
            return self.channels.result(method, params)
        chat_id = int(params["chat_id"]) if "chat_id" in params else None
        markup = json.loads(params["reply_markup"]) if params.get("reply_markup") else None
        if method == "sendMediaGroup":
            return [self.result("sendPhoto" if item["type"] == "photo" else "sendVideo",
                                {"chat_id": chat_id, item["type"]: item["media"], "caption": item.get("caption")},
                                None) for item in json.loads(params["media"])]
        if method in ("sendMessage", "sendPhoto", "sendDocument", "sendInvoice", "copyMessage", "sendVideo",
                      "sendPaidMedia"):
            message = {"message_id": next(self.ids), "date": 1, "chat": {"id": chat_id, "type": "private"},
                       "from": {"id": 1234567, "is_bot": True, "first_name": "Shop"}}
            if method == "sendMessage":
                message["text"] = as_telegram_shows(params["text"])
            elif method == "sendPhoto":
                message["photo"] = [{"file_id": params.get("photo", "upload"), "file_unique_id": "u", "width": 1,
                                     "height": 1}]
                message["caption"] = as_telegram_shows(params.get("caption"))
            elif method == "sendDocument":
                message["document"] = {"file_id": str(params.get("document", "upload")), "file_unique_id": "u"}
                message["caption"] = as_telegram_shows(params.get("caption"))
            elif method == "sendVideo":
                message["video"] = {"file_id": params["video"], "file_unique_id": "v", "width": 1, "height": 1,
                                    "duration": 1}
                message["caption"] = as_telegram_shows(params.get("caption"))
            elif method == "sendPaidMedia":  # the bot sees what it sent; the customer, blurred previews
                message["paid_media"] = {"star_count": int(params["star_count"]), "paid_media": [
                    {"type": "preview"} for _ in json.loads(params["media"])]}
                message["caption"] = as_telegram_shows(params.get("caption"))
                message["payload"] = params.get("payload")
            elif method == "sendInvoice":
                message["invoice"] = {"title": params["title"], "description": params["description"],
                                      "start_parameter": "", "currency": params["currency"],
                                      "total_amount": json.loads(params["prices"])[0]["amount"]}
                message["payload"] = params["payload"]
            else:
                message["copy_of"] = int(params["message_id"])
            if markup:
                message["reply_markup"] = markup
            self.chats.setdefault(chat_id, {})[message["message_id"]] = message
            return {"message_id": message["message_id"]} if method == "copyMessage" else message
        if method == "editMessageText":
            message = self.chats[chat_id][int(params["message_id"])]
            message.update(text=as_telegram_shows(params["text"]))
            message.pop("reply_markup", None)
            if markup:
                message["reply_markup"] = markup
            return message
        if method == "deleteMessage":
            self.chats.get(chat_id, {}).pop(int(params["message_id"]), None)
        if method == "getStarTransactions":
            offset, limit = int(params.get("offset") or 0), int(params.get("limit") or 100)
            return {"transactions": self.star_transactions[offset:offset + limit]}
        if method == "getMyStarBalance":  # the ledger's sum, to the nanostar (StarAmount)
            nanos = sum((t["amount"] * 10**9 + t.get("nanostar_amount", 0)) * (1 if "source" in t else -1)
                        for t in self.star_transactions)
            whole = abs(nanos) // 10**9
            return {"amount": whole if nanos >= 0 else -whole, "nanostar_amount": (abs(nanos) - whole * 10**9) * (
                1 if nanos >= 0 else -1)}
        if method == "getFile":
            return {"file_id": params["file_id"], "file_unique_id": "u", "file_path": f"documents/{params['file_id']}"}
        if method == "getMe":
            return {"id": 1234567, "is_bot": True, "first_name": "Shop", "username": "test_shop_bot"}
        if method == "getWebhookInfo":  # polling: no webhook, and the updates Telegram holds for the bot
            return {"url": "", "has_custom_certificate": False, "pending_update_count": self.pending_updates}
        return True

    def ledger_payment(self, person: Person, amount: int, payload: str, charge_id: str,
                       date: int = 1_790_000_000) -> None:
        """A Stars payment in Telegram's ledger (whether or not the shop heard of it), made at ``date``."""
        self.star_transactions.append({"id": charge_id, "amount": amount, "date": date, "source": {
            "type": "user", "transaction_type": "invoice_payment", "user": person.user, "invoice_payload": payload}})

    def ledger_refund(self, person: Person, amount: int, charge_id: str) -> None:
        """Telegram refunded a payment: an outgoing transaction with the payment's id."""
        self.star_transactions.append({"id": charge_id, "amount": amount, "date": 1_790_000_100,
                                       "receiver": {"type": "user", "user": person.user}})

    def watched_download(self, file_path: str) -> bytes:
        if any(watch.in_transaction() for watch in self.watches):
            self.calls_in_transaction.append("download_file")
        return self.files[file_path]

    # --- what was sent ---------------------------------------------------------

    def of(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    def messages(self, chat_id: int) -> list[dict]:
        """The chat as the user sees it now, oldest first."""
        return [m for _, m in sorted(self.chats.get(chat_id, {}).items())]


def read_upload(value) -> tuple[str, bytes]:
    """An uploaded file as (name, bytes), read while the bot still has it open."""
    name, handle = value if isinstance(value, tuple) else ("file", value)
    return name, handle.read()


def as_telegram_shows(html_text: str | None) -> str | None:
    """Telegram parses the HTML we send and shows (and returns) the plain text."""
    return None if html_text is None else screens.html_to_plain(html_text).strip()


def visible_text(message: dict) -> str:
    return message.get("text") or message.get("caption") or ""


def buttons(message: dict | None) -> list[dict]:
    if not message or not message.get("reply_markup"):
        return []
    return [b for row in message["reply_markup"]["inline_keyboard"] for b in row]


class Person:
    """A Telegram user talking to the shop in a private chat."""

    update_ids = itertools.count(1)

    def __init__(self, shop: ShopUnderTest, telegram_id: int, first_name: str, username: str | None = None,
                 language_code: str = "en"):
        self.shop, self.api = shop, shop.api
        self.user = {"id": telegram_id, "is_bot": False, "first_name": first_name, "language_code": language_code}
        if username:
            self.user["username"] = username
        self.id = telegram_id
        self.message_ids = itertools.count(1)

    # --- doing things ---------------------------------------------------------------

    def feed(self, kind: str, payload: dict) -> None:
        update = types.Update.de_json({"update_id": next(self.update_ids), kind: payload})
        self.shop.bot.process_new_updates([update])

    def message(self, **content) -> dict:
        return {"message_id": next(self.message_ids), "date": 1, "from": self.user,
                "chat": {"id": self.id, "type": "private", "first_name": self.user["first_name"]}, **content}

    def sends(self, text: str) -> None:
        content = {"text": text}
        if text.startswith("/"):
            content["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
        self.feed("message", self.message(**content))

    def sends_photo(self, file_id: str = "PHOTO-1", caption: str | None = None) -> None:
        photo = [{"file_id": file_id + "-small", "file_unique_id": "s", "width": 90, "height": 90},
                 {"file_id": file_id, "file_unique_id": "b", "width": 800, "height": 800}]
        self.feed("message", self.message(photo=photo, **({"caption": caption} if caption else {})))

    def sends_document(self, file_id: str = "DOC-1", file_name: str = "file.pdf", caption: str | None = None,
                       content: bytes = b"%PDF-1.4", mime_type: str | None = None):
        self.api.files[f"documents/{file_id}"] = content
        document = {"file_id": file_id, "file_unique_id": "d", "file_name": file_name, "file_size": len(content)}
        if mime_type:
            document["mime_type"] = mime_type
        self.feed("message", self.message(document=document, **({"caption": caption} if caption else {})))

    def sends_content(self, **content) -> None:
        """Any other kind of message: voice, contact, location..."""
        self.feed("message", self.message(**content))

    def sends_video(self, file_id: str = "VIDEO-1") -> None:
        video = {"file_id": file_id, "file_unique_id": "v", "width": 1280, "height": 720, "duration": 12}
        self.feed("message", self.message(video=video))

    def buys_paid_media(self, payload: str | None = None) -> str:
        """Pay the latest paid media the bot sent: Telegram unlocks it and sends purchased_paid_media. Its payload."""
        payload = payload or [m for m in self.api.messages(self.id) if "paid_media" in m][-1]["payload"]
        self.feed("purchased_paid_media", {"from": self.user, "paid_media_payload": payload})
        return payload

    def sends_sticker(self) -> None:
        sticker = {"file_id": "STICKER", "file_unique_id": "st", "type": "regular", "width": 512, "height": 512,
                   "is_animated": False, "is_video": False}
        self.feed("message", self.message(sticker=sticker))

    def taps_data(self, data: str, message: dict | None = None) -> str:
        """Tap a button with this callback data (as a modified client could send anything)."""
        message = message or self.last_with_buttons() or {"message_id": 1, "date": 0, "text": "old",
                                                            "chat": {"id": self.id, "type": "private"}}
        query_id = f"q{next(self.update_ids)}"
        self.feed("callback_query", {"id": query_id, "from": self.user, "chat_instance": "ci", "data": data,
                                     "message": message})
        return query_id

    def taps(self, label_part: str) -> str:
        """Tap the inline button whose label contains ``label_part`` on the latest message that has it."""
        for message in reversed(self.api.messages(self.id)):
            for b in buttons(message):
                if label_part.lower() in b["text"].lower() and "callback_data" in b:
                    return self.taps_data(b["callback_data"], message)
        raise AssertionError(f"no button {label_part!r}; buttons: {self.button_labels()}")

    def pays(self, invoice: dict | None = None, amount: int | None = None, payload: str | None = None,
             currency: str | None = None, charge_id: str | None = None) -> dict:
        """Pay the latest invoice: pre-checkout, then (if allowed) the successful payment."""
        invoice = invoice or self.last_invoice()
        amount = invoice["invoice"]["total_amount"] if amount is None else amount
        payload = invoice["payload"] if payload is None else payload
        currency = currency or invoice["invoice"]["currency"]
        answer = self.pre_checkout(amount, payload, currency)
        if answer["ok"] in (True, "True", "true"):
            self.payment_lands(amount, payload, currency, charge_id or f"charge-{answer['pre_checkout_query_id']}")
        return answer

    def pre_checkout(self, amount: int, payload: str, currency: str = "XTR") -> dict:
        """Telegram asks the shop whether this payment may go ahead; returns the shop's answer."""
        query_id = f"pc{next(self.update_ids)}"
        self.feed("pre_checkout_query", {"id": query_id, "from": self.user, "currency": currency,
                                         "total_amount": amount, "invoice_payload": payload})
        return [c for c in self.api.of("answerPreCheckoutQuery")
                if c.params["pre_checkout_query_id"] == query_id][-1].params

    def payment_lands(self, amount: int, payload: str, currency: str, charge_id: str) -> None:
        """Telegram's successful_payment message: the money has been taken."""
        self.payment = {"currency": currency, "total_amount": amount, "invoice_payload": payload,
                        "telegram_payment_charge_id": charge_id, "provider_payment_charge_id": f"provider-{charge_id}"}
        self.feed("message", self.message(successful_payment=self.payment))

    def repeats_payment(self) -> None:
        """Telegram delivering the same successful payment again."""
        self.feed("message", self.message(successful_payment=self.payment))

    # --- what they see ------------------------------------------------------------------

    def last(self) -> dict:
        return self.api.messages(self.id)[-1]

    def last_text(self) -> str:
        return visible_text(self.last())

    def all_texts(self) -> str:
        return "\n".join(visible_text(m) for m in self.api.messages(self.id))

    def last_with_buttons(self) -> dict | None:
        return next((m for m in reversed(self.api.messages(self.id)) if buttons(m)), None)

    def button_labels(self) -> list[str]:
        return [b["text"] for b in buttons(self.last_with_buttons())]

    def last_invoice(self) -> dict:
        return [m for m in self.api.messages(self.id) if "invoice" in m][-1]

    def callback_answers(self) -> list[dict]:
        return [c.params for c in self.api.of("answerCallbackQuery")]

    def last_toast(self) -> str | None:
        return self.callback_answers()[-1].get("text")


class ShopUnderTest:
    """The bot under test plus shortcuts to stock it and inspect the database."""

    def __init__(self, bot, api: FakeApi):
        self.bot, self.api = bot, api
        self.Session = bot.shop.Session
        api.watches += [ConnectionWatch(factory.kw["bind"]) for factory in (bot.shop.Session, bot.shop.QuickSession)]

    def has_read_the_ledger(self, offset: int = 0) -> None:
        """The shop has run before and read Telegram's Stars ledger this far (a new database has not: ledger.py)."""
        with self.Session() as session:
            put_setting(session, "ledger_offset", str(offset))
            session.commit()

    def close(self) -> None:
        for factory in (self.Session, self.bot.shop.QuickSession):
            factory.kw["bind"].dispose()

    def add_category(self, name: str = "Keys", position: int = 0) -> Category:
        with self.Session() as session:
            category = Category(name=name, position=position)
            session.add(category)
            session.commit()
            return category

    def add_product(self, name: str = "Pro license", price: int = 25, hidden: str = "KEY-123",
                    category: Category | None = None, **fields) -> Product:
        with self.Session() as session:
            if category is None:
                category = session.query(Category).order_by(Category.id).first() or Category(name="Keys")
                session.add(category)
                session.flush()
            product = Product(name=name, price=price, hidden_content=hidden, category_id=category.id,
                              description=fields.pop("description", f"About {name}"), **fields)
            session.add(product)
            session.commit()
            return product

    def add_promo(self, code: str = "SAVE20", **fields) -> PromoCode:
        """A promo code, 20 % off everything unless ``fields`` say otherwise (promos.py)."""
        with self.Session() as session:
            promo = PromoCode(code=code, **({"percent": 20} if "amount" not in fields else {}) | fields)
            session.add(promo)
            session.commit()
            return promo

    def finish_background(self) -> None:
        """Wait for broadcasts and restock notices running in the background."""
        for thread in self.bot.shop.background:
            thread.join(timeout=30)

    def purchases(self) -> list[tuple]:
        with self.Session() as session:
            rows = session.query(User.username, Product.name, Purchase.price, Purchase.payment_type) \
                .join(Purchase.user).join(Purchase.product).order_by(Purchase.id)
            return [tuple(row) for row in rows]



def refund_echo(person: Person, charge_id: str, amount: int = 25) -> None:
    """Telegram's refunded_payment service message in the buyer's chat: for its own refunds, and the shop's."""
    person.feed("message", person.message(refunded_payment={
        "currency": "XTR", "total_amount": amount, "invoice_payload": "shop1:1:1001",
        "telegram_payment_charge_id": charge_id}))


def echoes_refunds_at_once(monkeypatch, shop: ShopUnderTest, buyer: Person) -> None:
    """From now on Telegram's refunded_payment echo of each refundStarPayment is handled before the call returns,
    as a worker may take it while the shop still waits for Telegram's answer."""
    def send(http_method, url, params=None, **kwargs):
        response = shop.api(http_method, url, params=params, **kwargs)
        if url.endswith("/refundStarPayment") and response.payload["ok"]:
            refund_echo(buyer, params["telegram_payment_charge_id"])
        return response
    monkeypatch.setattr(apihelper, "CUSTOM_REQUEST_SENDER", send)


def make_config(database_url: str, **overrides) -> Config:
    return Config(token=TOKEN, admin_ids=frozenset({ADMIN_ID}), database_url=database_url, **overrides)


POSTGRES_URL = os.environ.get("TEST_DATABASE_URL")
BACKENDS = ["sqlite"] + (["postgresql"] if POSTGRES_URL else [])


@contextlib.contextmanager
def fresh_postgres_schema():
    """A database URL whose connections see only a new, empty schema; dropped afterwards."""
    schema = f"test_{uuid.uuid4().hex[:12]}"
    server = sqlalchemy.create_engine(POSTGRES_URL, poolclass=sqlalchemy.pool.NullPool)
    with server.begin() as connection:
        connection.execute(sqlalchemy.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield POSTGRES_URL + ("&" if "?" in POSTGRES_URL else "?") + f"options=-csearch_path%3D{schema}"
    finally:
        with server.begin() as connection:
            connection.execute(sqlalchemy.text(f'DROP SCHEMA "{schema}" CASCADE'))
        server.dispose()


@pytest.fixture(params=BACKENDS)
def database_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'shop.db'}"
    else:
        with fresh_postgres_schema() as url:
            yield url


@pytest.fixture
def api(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(journal, "SERVER_JOURNAL_FOLDER", str(tmp_path))  # a database server's payment journal
    fake = FakeApi()
    monkeypatch.setattr(apihelper, "CUSTOM_REQUEST_SENDER", fake)
    # telebot downloads files with a plain GET, not through CUSTOM_REQUEST_SENDER
    monkeypatch.setattr(apihelper, "download_file", lambda token, file_path: fake.watched_download(file_path))
    yield fake
    assert fake.calls_in_transaction == [], "Telegram was called while a database transaction was open"


@pytest.fixture
def config(database_url):
    return make_config(database_url)


@pytest.fixture
def shop(config, api):
    bot = shopbot.create_bot(config, threaded=False)
    bot.shop.sleep = lambda seconds: None  # flood-control waits are counted, not slept
    shop = ShopUnderTest(bot, api)
    shop.has_read_the_ledger()
    yield shop
    shop.close()


@pytest.fixture
def sqlite_shop(tmp_path, api):
    """A shop on SQLite only, for what only SQLite can tell (query plans, memory of an upload)."""
    bot = shopbot.create_bot(make_config(f"sqlite:///{tmp_path / 'plans.db'}"), threaded=False)
    shop = ShopUnderTest(bot, api)
    yield shop
    shop.close()


@pytest.fixture
def alice(shop):
    return Person(shop, 1001, "Alice", "alice")


@pytest.fixture
def bob(shop):
    return Person(shop, 1002, "Bob", "bob")


@pytest.fixture
def seller(shop):
    """The shop's admin, who has opened the bot (so the bot may write to them)."""
    person = Person(shop, ADMIN_ID, "Seller", "seller")
    person.sends("/start")
    return person


VOICE = {"voice": {"file_id": "VOICE", "file_unique_id": "v", "duration": 3}}


CONTACT = {"contact": {"phone_number": "+100", "first_name": "X"}}


LOCATION = {"location": {"latitude": 1.0, "longitude": 2.0}}


@pytest.fixture
def card_shop(database_url, api):
    """A shop that takes card payments in US dollars through a provider."""
    bot = shopbot.create_bot(make_config(database_url, provider_token="prov:1", currency="USD"), threaded=False)
    shop = ShopUnderTest(bot, api)
    yield shop
    shop.close()


def admin_texts(shop) -> str:
    return "\n".join(visible_text(m) for m in shop.api.messages(ADMIN_ID))


def set_product(shop, product_id, **values):
    with shop.Session() as session:
        product = session.get(Product, product_id)
        for name, value in values.items():
            setattr(product, name, value)
        session.commit()


def start_adding_a_product(seller, category: str, kind: str = "The same content") -> None:
    """/admin → ➕ Add product → a category → a kind (the same content for everyone, by default)."""
    seller.sends("/admin")
    seller.taps("Add product")
    seller.taps(category)
    seller.taps(kind)


def add_stock(shop, product, *contents):
    """Give a product unique items to sell, one per buyer (it becomes stocked, as the seller's 🔑 choice makes it)."""
    with shop.Session() as session:
        session.get(Product, product.id).kind = STOCKED
        session.add_all(StockItem(product_id=product.id, content=c) for c in contents)
        session.commit()


def buys(person, product):
    """Tap Buy on the product and pay the invoice (or take it, if free)."""
    person.taps_data(callback("buy", product.id))
    return person.pays() if product.price else None


def upload_stock(seller, product, send):
    """📥 Upload stock, send what ``send`` sends, and ✅ Done when the bot offers it (not after an error)."""
    seller.taps_data(callback("admin_product", product.id))
    seller.taps("Upload stock")
    send(seller)
    if "✅ Done" in seller.button_labels():
        seller.taps("Done")


def stock_of(shop, product) -> list[str]:
    with shop.Session() as session:
        return session.scalars(select(StockItem.content).where(StockItem.product_id == product.id)
                               .order_by(StockItem.id)).all()


@pytest.fixture
def session(config):
    """A plain session on a fresh database, for model tests."""
    factory = open_database(config.database_url)
    with factory() as session:
        yield session
    factory.kw["bind"].dispose()



# ---------------------------------------------------------------------------
# A Bot API over real HTTP, for the tests that start `python shopbot.py`
# ---------------------------------------------------------------------------

class TelegramRefusal(Exception):
    """Raised by a fake server's answer() to reply with a Bot API error, e.g. 401 Unauthorized."""

    def __init__(self, code: int, description: str):
        super().__init__(description)
        self.code, self.description = code, description


class BadGateway(TelegramRefusal):
    """502, as Telegram answers when it is unwell."""

    def __init__(self):
        super().__init__(502, "Bad Gateway")


class NotTheBotApi(Exception):
    """Raised by a fake server's answer() to reply with a body that is not the Bot API's (a proxy's HTML page)."""

    def __init__(self, status: int, body: str, content_type: str = "text/html"):
        super().__init__(body)
        self.status, self.body, self.content_type = status, body, content_type


class FakeBotApiServer:
    """A tiny HTTP Bot API: records the methods called (with each request's path and body)."""

    def __init__(self, port: int = 0):
        self.calls: list[tuple[str, float, dict]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):  # telebot posts every call
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode(errors="replace")
                method = self.path.rsplit("/", 1)[1].split("?")[0]
                server.calls.append((method, time.monotonic(), {"path": self.path, "body": body}))
                params = {k: v[-1] for k, v in parse_qs(urlsplit(self.path).query).items()}
                params.update({k: v[-1] for k, v in parse_qs(body).items()})
                content_type = "application/json"
                try:
                    status, payload = 200, {"ok": True, "result": server.answer(method, params)}
                    data = json.dumps(payload).encode()
                except TelegramRefusal as refusal:
                    status, payload = refusal.code, {"ok": False, "error_code": refusal.code,
                                                     "description": refusal.description}
                    data = json.dumps(payload).encode()
                except NotTheBotApi as odd:
                    status, data, content_type = odd.status, odd.body.encode(), odd.content_type
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the bot was stopped
                    self.wfile.write(data)

            do_GET = do_POST

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def answer(self, method: str, params: dict):
        if method == "getUpdates":
            time.sleep(0.2)  # a long poll with nothing new
            return []
        if method == "getMe":
            return {"id": 1, "is_bot": True, "first_name": "Shop", "username": "shop_bot"}
        if method == "getStarTransactions":
            return {"transactions": []}
        return True

    def methods(self):
        return [method for method, _, _ in self.calls]


def free_port() -> int:
    """A local TCP port nobody listens on (yet)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# ---------------------------------------------------------------------------
# Channels the bot administers, invoice links and Stars subscriptions (subscriptions.py)
# ---------------------------------------------------------------------------

CHANNEL_ID = -1001234567890
BOT = {"id": 1234567, "is_bot": True, "first_name": "Shop", "username": "test_shop_bot"}  # as getMe answers
ADMIN_RIGHTS = {"can_be_edited": False, "is_anonymous": False, "can_manage_chat": True, "can_delete_messages": True,
                "can_manage_video_chats": False, "can_restrict_members": True, "can_promote_members": False,
                "can_change_info": False, "can_invite_users": True, "can_post_stories": False,
                "can_edit_stories": False, "can_delete_stories": False}


def is_true(value) -> bool:
    return str(value).lower() in ("true", "1")


@dataclass
class FakeChat:
    """A channel or supergroup as Telegram keeps it: the bot's standing, members, invite links, join requests."""

    id: int
    title: str
    type: str = "channel"
    username: str | None = None
    bot_status: str = "administrator"  # or "member", "left"
    rights: dict = field(default_factory=lambda: dict(ADMIN_RIGHTS))
    members: dict[int, str] = field(default_factory=dict)  # user id -> creator, administrator, member, kicked
    links: dict[str, dict] = field(default_factory=dict)  # invite link -> its fields and who joined through it
    requests: dict[int, str] = field(default_factory=dict)  # user id -> the link of their pending join request

    def json(self) -> dict:
        return {"id": self.id, "type": self.type, "title": self.title,
                **({"username": self.username} if self.username else {})}

    def can(self, right: str) -> bool:
        return self.bot_status == "administrator" and self.rights.get(right, False)


class FakeChannels:
    """Telegram's side of the chats the bot administers, of invoice links, and of Stars subscriptions."""

    METHODS = {"getChat", "getChatMember", "createChatInviteLink", "approveChatJoinRequest", "declineChatJoinRequest",
               "banChatMember", "unbanChatMember", "createInvoiceLink", "editUserStarSubscription"}
    NO_LINK_RIGHTS = "Bad Request: not enough rights to manage chat invite link"
    NO_BAN_RIGHTS = "Bad Request: not enough rights to restrict/unrestrict chat member"

    def __init__(self):
        self.chats: dict[int, FakeChat] = {}
        self.invoice_links: dict[str, dict] = {}
        self.subscriptions: dict[str, dict] = {}  # first payment's charge id -> {"user": id, "canceled": bool}

    def add(self, chat_id: int = CHANNEL_ID, title: str = "VIP signals", **fields) -> FakeChat:
        self.chats[chat_id] = FakeChat(chat_id, title, **fields)
        return self.chats[chat_id]

    def find(self, reference) -> FakeChat | None:
        reference = str(reference)
        return next((chat for chat in self.chats.values() if str(chat.id) == reference
                     or (chat.username and "@" + chat.username == reference)), None)

    def refusal(self, method: str, params: dict) -> tuple | None:
        """Telegram's refusals: an unknown chat, a bot that is not in it or lacks a right, a wrong request."""
        if method == "createInvoiceLink":
            period, amount = params.get("subscription_period"), json.loads(params["prices"])[0]["amount"]
            if period and (int(period) != 2592000 or params["currency"] != "XTR" or amount > 10000):
                return 400, "Bad Request: SUBSCRIPTION_PERIOD_INVALID", None
            return None
        if method == "editUserStarSubscription":
            known = self.subscriptions.get(params["telegram_payment_charge_id"])
            return None if known and known["user"] == int(params["user_id"]) else (
                400, "Bad Request: CHARGE_ID_INVALID", None)
        chat = self.find(params["chat_id"])
        if chat is None:
            return 400, "Bad Request: chat not found", None
        if chat.bot_status == "left" and not (method == "getChat" and chat.username):
            return 403, f"Forbidden: bot is not a member of the {chat.type} chat", None
        return self.member_refusal(method, chat, int(params.get("user_id") or 0))

    def post_refusal(self, chat_id: int) -> tuple | None:
        """sendPaidMedia into a channel: the bot must be an administrator allowed to post there."""
        chat = self.chats.get(chat_id)
        if chat is None:
            return 400, "Bad Request: chat not found", None
        if not chat.can("can_post_messages"):
            return 400, "Bad Request: need administrator rights in the channel chat", None
        return None

    def member_refusal(self, method: str, chat: FakeChat, user_id: int) -> tuple | None:
        if method in ("createChatInviteLink", "approveChatJoinRequest", "declineChatJoinRequest") and not chat.can(
                "can_invite_users"):
            return 400, self.NO_LINK_RIGHTS, None
        if method in ("banChatMember", "unbanChatMember") and not chat.can("can_restrict_members"):
            return 400, self.NO_BAN_RIGHTS, None
        if method in ("banChatMember", "unbanChatMember") and chat.members.get(user_id) in ("creator", "administrator"):
            return 400, "Bad Request: user is an administrator of the chat", None
        if method == "approveChatJoinRequest" and chat.members.get(user_id) in ("creator", "administrator", "member"):
            return 400, "Bad Request: USER_ALREADY_PARTICIPANT", None
        if method in ("approveChatJoinRequest", "declineChatJoinRequest") and user_id not in chat.requests:
            return 400, "Bad Request: HIDE_REQUESTER_MISSING", None
        return None

    def result(self, method: str, params: dict):
        if method == "createInvoiceLink":
            link = f"https://t.me/$invoice{len(self.invoice_links) + 1}"
            self.invoice_links[link] = {"amount": json.loads(params["prices"])[0]["amount"],
                                        "payload": params["payload"], "period": params.get("subscription_period")}
            return link
        if method == "editUserStarSubscription":
            self.subscriptions[params["telegram_payment_charge_id"]]["canceled"] = is_true(params["is_canceled"])
            return True
        chat, user_id = self.find(params["chat_id"]), int(params.get("user_id") or 0)
        if method == "getChat":
            return chat.json()
        if method == "getChatMember":
            return self.member_json(chat, user_id)
        if method == "createChatInviteLink":
            return self.new_link(chat, params)
        return self.change_member(method, chat, user_id, params)

    def member_json(self, chat: FakeChat, user_id: int) -> dict:
        user = {"id": user_id, "is_bot": user_id == BOT["id"], "first_name": "Someone"}
        if user_id == BOT["id"]:
            return {"user": BOT, "status": chat.bot_status, **(chat.rights if chat.bot_status == "administrator"
                                                                 else {})}
        status = chat.members.get(user_id, "left")
        return {"user": user, "status": status, **({"until_date": 0} if status == "kicked" else {})}

    def new_link(self, chat: FakeChat, params: dict) -> dict:
        link = {"invite_link": f"https://t.me/+link{len(chat.links) + 1}", "creator": BOT, "is_primary": False,
                "is_revoked": False, "creates_join_request": is_true(params.get("creates_join_request")),
                "member_limit": int(params.get("member_limit") or 0), "name": params.get("name") or ""}
        chat.links[link["invite_link"]] = {**link, "joined": []}
        return link

    def change_member(self, method: str, chat: FakeChat, user_id: int, params: dict) -> bool:
        if method == "approveChatJoinRequest":
            chat.links[chat.requests.pop(user_id)]["joined"].append(user_id)
            chat.members[user_id] = "member"
        elif method == "declineChatJoinRequest":
            chat.requests.pop(user_id)
        elif method == "banChatMember":
            chat.members[user_id] = "kicked"
        elif method == "unbanChatMember" and (chat.members.get(user_id) == "kicked" or not is_true(
                params.get("only_if_banned"))):
            chat.members.pop(user_id, None)
        return True

    def joins(self, person: Person, link: str) -> str:
        """The person opens an invite link, as Telegram handles it: "joined", "approved", "declined",
        "requested" (still pending), "limit_reached" (member_limit: counted among those still in) or "banned"."""
        chat = next(chat for chat in self.chats.values() if link in chat.links)
        record = chat.links[link]
        if chat.members.get(person.id) == "kicked":
            return "banned"
        if record["member_limit"] and sum(chat.members.get(uid) == "member" for uid in record["joined"]) >= \
                record["member_limit"]:
            return "limit_reached"
        if not record["creates_join_request"]:
            record["joined"].append(person.id)
            chat.members[person.id] = "member"
            return "joined"
        chat.requests[person.id] = link
        person.feed("chat_join_request", {"chat": chat.json(), "from": person.user, "user_chat_id": person.id,
                                          "date": 1, "invite_link": {k: v for k, v in record.items()
                                                                     if k != "joined"}})
        if person.id in chat.requests:
            return "requested"
        return "approved" if chat.members.get(person.id) == "member" else "declined"


def subscription_lands(person: Person, amount: int, payload: str, charge_id: str, expires: int,
                       first: bool = True) -> None:
    """Telegram's successful_payment for a Stars subscription: the first one, or a renewal (first=False)."""
    person.payment = {"currency": "XTR", "total_amount": amount, "invoice_payload": payload,
                      "telegram_payment_charge_id": charge_id, "provider_payment_charge_id": "",
                      "is_recurring": True, "subscription_expiration_date": expires,
                      **({"is_first_recurring": True} if first else {})}
    if first:
        person.api.channels.subscriptions[charge_id] = {"user": person.id, "canceled": False}
    person.feed("message", person.message(successful_payment=person.payment))


def pays_link(person: Person, link: str, charge_id: str, expires: int) -> dict:
    """Open a subscription's invoice link and pay it: pre-checkout, then (if allowed) the first payment."""
    invoice = person.api.channels.invoice_links[link]
    answer = person.pre_checkout(invoice["amount"], invoice["payload"])
    if answer["ok"] in (True, "True", "true"):
        subscription_lands(person, invoice["amount"], invoice["payload"], charge_id, expires)
    return answer
