"""shopbot's tests: the bot is driven with updates as Telegram sends them.

Run them with:  pip install -r requirements.txt && python -m pytest

The fixtures (conftest.py) give each test a fresh SQLite file, a bot built with
``threaded=False`` and a recorder of every Bot API call. The people in the
tests (``alice``, ``bob``, the ``seller``) send messages, tap buttons and pay;
the tests check what they see and what the database holds.
"""
from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import create_engine, func, inspect, select
from sqlalchemy import event as sqlalchemy_event
from sqlalchemy.exc import IntegrityError

import models
import shopbot
from conftest import ADMIN_ID, TOKEN, Person, ShopUnderTest, make_config, visible_text
from models import Base, Category, Product, Purchase, User, connect

HERE = Path(__file__).parent
VOICE = {"voice": {"file_id": "VOICE", "file_unique_id": "v", "duration": 3}}
CONTACT = {"contact": {"phone_number": "+100", "first_name": "X"}}
LOCATION = {"location": {"latitude": 1.0, "longitude": 2.0}}


# ===========================================================================
# The data model (the spec's usage must keep working as written)
# ===========================================================================

def test_spec_usage_works_as_written(session):
    session.add(Category(name="Keys"))
    user = User(telegram_id=123456789, username='username')
    product = Product(name='Товар 1', description='Описание товара 1', price=100, category_id=1)
    session.add_all([user, product])
    session.commit()

    products = session.query(Product).filter(Product.name == 'Товар 1').all()

    assert repr(products) == "[<Product 1 'Товар 1' 100>]"
    assert repr(user) == "<User 1 123456789 @username>"
    assert product.is_active and product.hidden_content == "" and product.description_file_id is None


def test_every_model_has_a_readable_repr(session):
    category = Category(name="Keys")
    user = User(telegram_id=5, username=None)
    product = Product(name="Key", price=5, category=category)
    purchase = Purchase(user=user, product=product, price=5, payment_id="ch-1")
    session.add(purchase)
    session.commit()
    assert repr(category) == "<Category 1 'Keys'>"
    assert repr(purchase) == "<Purchase 1 user=1 product=1 5 XTR>"


def test_telegram_ids_beyond_32_bits_are_stored(session):
    session.add(User(telegram_id=2**40 + 7))
    session.commit()
    assert session.scalar(select(User.telegram_id)) == 2**40 + 7


def test_telegram_id_is_unique(session):
    session.add_all([User(telegram_id=1), User(telegram_id=1)])
    with pytest.raises(IntegrityError):
        session.commit()


def test_payment_id_is_unique_but_free_purchases_have_none(session):
    product = Product(name="Key", category=Category(name="Keys"))
    user = User(telegram_id=1)
    session.add_all([Purchase(user=user, product=product, payment_type="free"),
                     Purchase(user=user, product=product, payment_type="free")])
    session.commit()  # two NULL payment ids are fine
    session.add_all([Purchase(user=user, product=product, payment_id="charge-1"),
                     Purchase(user=user, product=product, payment_id="charge-1")])
    with pytest.raises(IntegrityError):
        session.commit()


def test_a_sold_product_and_a_full_category_cannot_be_deleted(session):
    category = Category(name="Keys")
    product = Product(name="Key", category=category)
    session.add(Purchase(user=User(telegram_id=1), product=product))
    session.commit()
    session.delete(product)
    with pytest.raises(IntegrityError):
        session.commit()
    session.rollback()
    with pytest.raises(IntegrityError):  # bypassing the ORM: the database itself refuses
        session.execute(Category.__table__.delete())


def test_demo_database_matches_the_models():
    # Read-only: a missing table must fail this test, not be created in the shipped file.
    engine = create_engine(f"sqlite:///file:{HERE / 'shop.db.example'}?mode=ro&uri=true")
    try:
        inspector = inspect(engine)
        for table in Base.metadata.sorted_tables:
            columns = {c["name"] for c in inspector.get_columns(table.name)}
            assert columns == set(table.columns.keys()), table.name
        with sqlite3.connect(HERE / "shop.db.example") as db:
            assert db.execute("SELECT count(*) FROM categories").fetchone() == (3,)
            assert db.execute("SELECT count(*) FROM products").fetchone() == (8,)
            assert db.execute("SELECT count(*) FROM products WHERE price = 0").fetchone() == (1,)
            assert db.execute("SELECT count(*) FROM products WHERE hidden_content = ''").fetchone() == (0,)
    finally:
        engine.dispose()


def test_demo_database_is_what_the_code_builds(tmp_path):
    subprocess.run([sys.executable, str(HERE / "models.py"), str(tmp_path / "demo.db")], check=True,
                   capture_output=True)
    query = "SELECT c.name, p.name, p.price, p.description, p.hidden_content FROM products p " \
            "JOIN categories c ON c.id = p.category_id ORDER BY p.id"
    with sqlite3.connect(tmp_path / "demo.db") as built, sqlite3.connect(HERE / "shop.db.example") as shipped:
        assert built.execute(query).fetchall() == shipped.execute(query).fetchall()


# ===========================================================================
# Configuration and start-up
# ===========================================================================

def run_shopbot(env: dict, timeout: float = 10) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("BOT_TOKEN", "ADMIN_IDS", "DATABASE_URL")}
    return subprocess.run([sys.executable, str(HERE / "shopbot.py")], env={**clean, **env}, capture_output=True,
                          text=True, timeout=timeout, cwd=HERE)


def test_missing_token_prints_one_line_and_exits_2():
    result = run_shopbot({})
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "BOT_TOKEN" in result.stderr
    assert "Traceback" not in result.stderr


def test_malformed_admin_ids_are_a_clear_error():
    result = run_shopbot({"BOT_TOKEN": TOKEN, "ADMIN_IDS": "123,alice"})
    assert result.returncode == 2
    assert "ADMIN_IDS" in result.stderr and "'alice'" in result.stderr and "Traceback" not in result.stderr


def test_config_defaults_to_telegram_stars_and_a_local_sqlite_file():
    config = shopbot.load_config({"BOT_TOKEN": TOKEN, "ADMIN_IDS": " 1, 22 ,"})
    assert config.admin_ids == {1, 22}
    assert (config.currency, config.provider_token, config.payment_type) == ("XTR", "", "stars")
    assert config.database_url == "sqlite:///shop.db" and config.api_url is None


def test_config_with_a_card_provider():
    config = shopbot.load_config({"BOT_TOKEN": TOKEN, "PAYMENT_PROVIDER_TOKEN": "pay:1", "CURRENCY": "eur"})
    assert (config.currency, config.payment_type) == ("EUR", "card")
    with pytest.raises(shopbot.ConfigError, match="PAYMENT_PROVIDER_TOKEN"):
        shopbot.load_config({"BOT_TOKEN": TOKEN, "CURRENCY": "USD"})


class BadGateway(Exception):
    """Raised by a fake server's answer() to reply 502, as Telegram does when it is unwell."""


class FakeBotApiServer:
    """A tiny HTTP Bot API for the start-up test: records the methods called."""

    def __init__(self):
        self.calls: list[tuple[str, float, dict]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):  # telebot posts every call
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode()
                method = self.path.rsplit("/", 1)[1].split("?")[0]
                server.calls.append((method, time.monotonic(), {"path": self.path, "body": body}))
                params = {k: v[-1] for k, v in parse_qs(urlsplit(self.path).query).items()}
                params.update({k: v[-1] for k, v in parse_qs(body).items()})
                try:
                    status, payload = 200, {"ok": True, "result": server.answer(method, params)}
                except BadGateway:
                    status, payload = 502, {"ok": False, "error_code": 502, "description": "Bad Gateway"}
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the bot was stopped
                    self.wfile.write(data)

            do_GET = do_POST

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def answer(self, method: str, params: dict):
        if method == "getUpdates":
            time.sleep(0.2)  # a long poll with nothing new
            return []
        if method == "getMe":
            return {"id": 1, "is_bot": True, "first_name": "Shop", "username": "shop_bot"}
        return True

    def methods(self):
        return [method for method, _, _ in self.calls]


def test_bot_polls_the_configured_api_and_stops_cleanly_on_sigterm(tmp_path):
    server = FakeBotApiServer()
    env = {**os.environ, "BOT_TOKEN": TOKEN, "TELEGRAM_API_URL": server.url,
           "DATABASE_URL": f"sqlite:///{tmp_path / 'shop.db'}"}
    started = time.monotonic()
    process = subprocess.Popen([sys.executable, str(HERE / "shopbot.py")], env=env, cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        while "getUpdates" not in server.methods() and time.monotonic() - started < 10:
            time.sleep(0.05)
        first_poll = next(t for m, t, _ in server.calls if m == "getUpdates")
        assert first_poll - started < 2.0
        poll = next(c for m, _, c in server.calls if m == "getUpdates")
        asked_for = poll["path"] + poll["body"]
        assert "callback_query" in asked_for and "pre_checkout_query" in asked_for
        assert "setMyCommands" in server.methods()
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=5)
    finally:
        process.kill()
        server.httpd.shutdown()
    assert process.returncode == 0
    assert "Traceback" not in stderr and TOKEN not in stderr
    assert "Telegram API: " + server.url in stderr


def test_the_token_never_reaches_the_log():
    record = shopbot.logging.LogRecord("TeleBot", 40, __file__, 1, "Failed: %s", (
        f"HTTPSConnectionPool: Max retries exceeded with url: /bot{TOKEN}/getUpdates",), None)
    shopbot.RedactSecrets(TOKEN).filter(record)
    assert TOKEN not in record.getMessage() and "<BOT_TOKEN>" in record.getMessage()


# ===========================================================================
# The storefront
# ===========================================================================

def test_start_greets_by_name_and_saves_the_user(shop, alice):
    alice.user["first_name"] = "<b>Al & Co</b>"
    alice.sends("/start")
    assert "Hello, <b>Al & Co</b>!" in alice.last_text()
    assert alice.button_labels() == ["🛍 Catalog", "📦 My purchases", "❓ Help"]
    with shop.Session() as session:
        assert session.scalar(select(User.username).where(User.telegram_id == alice.id)) == "alice"


def test_start_updates_a_changed_username_and_language(shop, alice):
    alice.sends("/start")
    alice.user.update(username="alice2", language_code="ru")
    alice.sends("/start")
    with shop.Session() as session:
        user = session.scalar(select(User).where(User.telegram_id == alice.id))
        assert (user.username, user.language_code) == ("alice2", "ru")
        assert session.query(User).count() == 1
    assert "Здравствуйте" in alice.last_text()


def test_a_customer_reaches_a_product_in_three_taps_and_goes_back(shop, alice):
    shop.add_product("Netflix 1 month", price=150, description="One month of Netflix.")
    alice.sends("/start")
    alice.taps("Catalog")
    assert alice.button_labels() == ["Keys (1)", "⬅️ Back"]
    alice.taps("Keys")
    assert alice.button_labels() == ["Netflix 1 month — 150 ⭐", "⬅️ Back"]
    alice.taps("Netflix")
    assert alice.last_text() == "Netflix 1 month\n💰 150 ⭐\n\nOne month of Netflix."
    assert alice.button_labels() == ["Buy for 150 ⭐", "⬅️ Back"]
    alice.taps("Back")
    assert "Keys" in alice.last_text()
    assert len(shop.api.messages(alice.id)) == 1  # one message, edited in place


def test_catalog_hides_empty_categories_and_counts_products_on_sale(shop, alice):
    games = shop.add_category("Games", position=2)
    keys = shop.add_category("Keys", position=1)
    shop.add_category("Empty", position=0)
    shop.add_product("A", category=games)
    shop.add_product("B", category=keys)
    shop.add_product("C", category=keys)
    shop.add_product("Hidden", category=keys, is_active=False)
    alice.sends("/catalog")
    assert alice.button_labels() == ["Keys (2)", "Games (1)", "⬅️ Back"]


def test_an_empty_shop_says_it_is_being_stocked(shop, alice):
    alice.sends("/catalog")
    assert "being stocked" in alice.last_text()
    assert alice.button_labels() == ["⬅️ Back"]


def test_a_category_of_20_products_has_three_pages(shop, alice):
    category = shop.add_category("Keys")
    for n in range(20):
        shop.add_product(f"Key {n:02d}", price=10 + n, category=category)
    alice.sends("/catalog")
    alice.taps("Keys")
    assert alice.button_labels()[:8] == [f"Key {n:02d} — {10 + n} ⭐" for n in range(8)]
    assert alice.button_labels()[8:] == ["1/3", "Next ▶️", "⬅️ Back"]
    alice.taps("Next")
    assert alice.button_labels()[0] == "Key 08 — 18 ⭐"
    assert alice.button_labels()[8:] == ["◀️ Prev", "2/3", "Next ▶️", "⬅️ Back"]
    alice.taps("Next")
    assert alice.button_labels() == [f"Key {n} — {10 + n} ⭐" for n in range(16, 20)] + ["◀️ Prev", "3/3",
                                                                                        "⬅️ Back"]
    alice.taps("Key 17")
    alice.taps("Back")  # back to the page the customer came from
    assert "3/3" in alice.button_labels()
    alice.taps("3/3")  # the page indicator does nothing, but is answered
    assert shop.api.of("answerCallbackQuery")[-1].params == {"callback_query_id": shop.api.calls[-1].params[
        "callback_query_id"]}


def test_a_page_that_no_longer_exists_shows_the_last_one(shop, alice):
    category = shop.add_category("Keys")
    for n in range(10):
        shop.add_product(f"Key {n}", category=category)
    alice.taps_data(f"1:cat:{category.id}:7")
    assert alice.button_labels() == ["Key 8 — 25 ⭐", "Key 9 — 25 ⭐", "◀️ Prev", "2/2", "⬅️ Back"]
    assert alice.last_toast() == "That page no longer exists."


def test_product_card_with_a_photo_is_sent_as_a_photo_with_caption(shop, alice):
    shop.add_product("Poster", description_file_id="PHOTO-9", description_file_type="photo")
    alice.sends("/catalog")
    alice.taps("Keys")
    alice.taps("Poster")
    photo = shop.api.of("sendPhoto")[-1].params
    assert photo["photo"] == "PHOTO-9" and "Poster" in photo["caption"]
    assert alice.button_labels() == ["Buy for 25 ⭐", "⬅️ Back"]
    assert shop.api.of("deleteMessage")  # the old text screen made way for the photo
    alice.taps("Back")
    assert "Choose a product" in alice.last_text()


def test_a_long_card_with_a_document_puts_the_text_below_the_file(shop, alice):
    shop.add_product("Manual", description="x" * 2000, description_file_id="DOC-9",
                     description_file_type="document")
    alice.sends("/catalog")
    alice.taps("Keys")
    alice.taps("Manual")
    document = shop.api.of("sendDocument")[-1].params
    assert document["document"] == "DOC-9" and not document.get("caption")
    assert alice.last_text().startswith("Manual") and alice.button_labels()[0] == "Buy for 25 ⭐"


def test_deep_link_opens_the_product_card(shop, alice):
    product = shop.add_product("Netflix", price=150)
    alice.sends(f"/start p_{product.id}")
    assert alice.last_text().startswith("Netflix")
    assert alice.button_labels() == ["Buy for 150 ⭐", "⬅️ Back"]


@pytest.mark.parametrize("argument", ["p_999", "p_", "p_-1", "p_12abc", "junk<>&", "p_" + "9" * 40, "p_²"])
def test_a_deep_link_to_nothing_says_so_and_shows_the_menu(shop, alice, argument):
    shop.add_product("Hidden", is_active=False)
    alice.sends(f"/start {argument}")
    assert alice.button_labels() == ["🛍 Catalog", "📦 My purchases", "❓ Help"]
    if argument.startswith("p_") and shopbot.is_id(argument[2:]):
        assert "not available" in alice.last_text()


def test_deep_link_to_a_hidden_product_says_it_is_gone(shop, alice):
    product = shop.add_product("Hidden", is_active=False)
    alice.sends(f"/start p_{product.id}")
    assert "not available any more" in alice.last_text()


def test_seller_text_is_escaped_everywhere(shop, alice):
    category = shop.add_category("<i>Tom & Jerry</i>")
    shop.add_product("<b>&", price=5, description="<script>alert(1)</script> & co", category=category)
    alice.sends("/catalog")
    assert alice.button_labels()[0] == "<i>Tom & Jerry</i> (1)"
    alice.taps("Tom")
    assert "<i>Tom & Jerry</i>" in alice.last_text()
    alice.taps("<b>&")
    assert alice.last_text() == "<b>&\n💰 5 ⭐\n\n<script>alert(1)</script> & co"
    assert "&lt;b&gt;&amp;" in shop.api.of("editMessageText")[-1].params["text"]


def test_free_and_owned_products_have_the_right_button(shop, alice):
    free = shop.add_product("Guide", price=0)
    alice.sends(f"/start p_{free.id}")
    assert alice.button_labels()[0] == "Get for free"
    assert "Free" in alice.last_text()
    alice.taps("Get for free")
    alice.sends(f"/start p_{free.id}")
    assert alice.button_labels()[0] == "✅ Yours — open"


def test_russian_speakers_get_russian(shop):
    ivan = Person(shop, 2001, "Иван", language_code="ru")
    shop.add_product("Ключ", price=100)
    ivan.sends("/start")
    assert "Здравствуйте, Иван" in ivan.last_text()
    assert ivan.button_labels() == ["🛍 Каталог", "📦 Мои покупки", "❓ Помощь"]
    ivan.taps("Каталог")
    ivan.taps("Keys")
    ivan.taps("Ключ")
    assert ivan.button_labels() == ["Купить за 100 ⭐", "⬅️ Назад"]


def test_help_and_commands(shop, alice):
    alice.sends("/help")
    assert "/paysupport" in alice.last_text() and "/purchases" in alice.last_text()
    alice.taps("Help")
    assert "How it works" in alice.last_text()
    alice.sends("/terms")
    assert "Terms of sale" in alice.last_text()


def test_commands_are_registered_in_english_and_russian(shop):
    shopbot.register_commands(shop.bot)
    calls = shop.api.of("setMyCommands")
    assert [c.params.get("language_code") for c in calls] == [None, "ru"]
    assert all(len(json.loads(c.params["commands"])) == 6 for c in calls)


@pytest.mark.parametrize("send", [
    lambda p: p.sends_sticker(), lambda p: p.sends_photo(), lambda p: p.sends_document(),
    lambda p: p.sends("/unknown"), lambda p: p.sends_content(**VOICE),
], ids=["sticker", "photo", "document", "unknown command", "voice"])
def test_anything_else_gets_a_hint_and_the_menu(shop, alice, send):
    send(alice)
    assert "/help" in alice.last_text()
    assert alice.button_labels() == ["🛍 Catalog", "📦 My purchases", "❓ Help"]


def test_tapping_the_screen_you_are_on_edits_nothing(shop, alice, caplog):
    alice.sends("/catalog")
    alice.taps("Back")
    alice.taps("Catalog")
    edits = len(shop.api.of("editMessageText"))
    alice.taps_data("1:cats")  # the same screen again: Telegram would say "message is not modified"
    assert len(shop.api.of("editMessageText")) == edits
    assert len(alice.callback_answers()) == 3


def test_a_message_is_not_modified_answer_is_not_an_error(shop, alice, caplog):
    alice.sends("/start")
    shop.api.fail("editMessageText", 400, "Bad Request: message is not modified: specified new message content "
                  "and reply markup are exactly the same as a current content and reply markup of the message")
    alice.taps("Catalog")
    assert "Error" not in caplog.text and alice.last_toast() is None


def test_a_screen_that_cannot_be_edited_is_sent_anew(shop, alice):
    alice.sends("/start")
    gone = {"message_id": 99999, "date": 1, "chat": {"id": alice.id, "type": "private"}, "text": "old"}
    alice.taps_data("1:cats", gone)
    assert "being stocked" in alice.last_text()


# ===========================================================================
# Checkout and delivery
# ===========================================================================

def test_buying_with_stars_delivers_the_hidden_content(shop, alice, seller):
    product = shop.add_product("Pro license", price=25, hidden="KEY-123")
    alice.sends(f"/start p_{product.id}")
    assert "KEY-123" not in alice.all_texts()
    alice.taps("Buy")
    invoice = shop.api.of("sendInvoice")[-1].params
    assert (invoice["currency"], json.loads(invoice["prices"])) == ("XTR", [{"label": "Pro license", "amount": 25}])
    assert "provider_token" not in invoice or not invoice["provider_token"]
    assert "KEY-123" not in json.dumps(invoice) and "KEY-123" not in json.dumps(alice.callback_answers())

    answer = alice.pays()

    assert answer["ok"] is True
    assert "Thank you for your purchase" in alice.all_texts() and "KEY-123" in alice.last_text()
    assert shop.purchases() == [("alice", "Pro license", 25, "stars")]
    with shop.Session() as session:
        purchase = session.scalar(select(Purchase))
        assert (purchase.currency, purchase.payment_id) == ("XTR", alice.payment["telegram_payment_charge_id"])
    assert "New sale" in visible_text(shop.api.messages(ADMIN_ID)[-1])


def test_admins_who_never_opened_the_bot_are_not_messaged(shop, alice):
    product = shop.add_product("Guide", price=0)
    alice.taps_data(f"1:buy:{product.id}")
    assert [c for c in shop.api.of("sendMessage") if c.params["chat_id"] == str(ADMIN_ID)] == []


def test_invoice_fits_telegrams_limits(shop, alice):
    product = shop.add_product("N" * 64, price=100000, description="d" * 3000)
    alice.taps_data(f"1:buy:{product.id}")
    invoice = shop.api.of("sendInvoice")[-1].params
    assert len(invoice["title"]) == 32 and len(invoice["description"]) == 255
    assert invoice["title"].endswith("…")


@pytest.fixture
def card_shop(database_url, api):
    """A shop that takes card payments in US dollars through a provider."""
    bot = shopbot.create_bot(make_config(database_url, provider_token="prov:1", currency="USD"), threaded=False)
    yield ShopUnderTest(bot, api)
    bot.shop.Session.kw["bind"].dispose()


def test_a_card_provider_invoice_uses_its_token_and_currency(card_shop):
    product = card_shop.add_product("Course", price=999)
    alice = Person(card_shop, 1001, "Alice", "alice")
    alice.sends(f"/start p_{product.id}")
    assert alice.button_labels()[0] == "Buy for $9.99"
    alice.taps("Buy")
    invoice = card_shop.api.of("sendInvoice")[-1].params
    assert (invoice["provider_token"], invoice["currency"]) == ("prov:1", "USD")
    assert alice.pays()["ok"] is True
    assert card_shop.purchases() == [("alice", "Course", 999, "card")]


@pytest.mark.parametrize("change, reason", [
    (lambda shop, p, pay: pay(payload="garbage"), "no longer valid"),
    (lambda shop, p, pay: pay(payload=f"shop1:{p.id}:999"), "no longer valid"),  # another buyer's invoice
    (lambda shop, p, pay: pay(payload="shop1:999999:1001"), "no longer on sale"),
    (lambda shop, p, pay: pay(amount=1), "price has changed"),
    (lambda shop, p, pay: pay(currency="USD"), "price has changed"),
    (lambda shop, p, pay: (set_product(shop, p.id, price=30), pay())[1], "price has changed"),
    (lambda shop, p, pay: (set_product(shop, p.id, is_active=False), pay())[1], "no longer on sale"),
])
def test_pre_checkout_refuses_with_a_reason(shop, alice, change, reason):
    product = shop.add_product("Pro", price=25)
    alice.taps_data(f"1:buy:{product.id}")
    answer = change(shop, product, alice.pays)
    assert answer["ok"] is False and reason in answer["error_message"]
    assert shop.purchases() == []


def admin_texts(shop) -> str:
    return "\n".join(visible_text(m) for m in shop.api.messages(ADMIN_ID))


def set_product(shop, product_id, **values):
    with shop.Session() as session:
        product = session.get(Product, product_id)
        for name, value in values.items():
            setattr(product, name, value)
        session.commit()


def test_pre_checkout_refuses_what_the_buyer_already_owns(shop, alice):
    product = shop.add_product("Pro", price=25)
    alice.taps_data(f"1:buy:{product.id}")
    invoice = alice.last_invoice()
    alice.pays(invoice)
    answer = alice.pays(invoice)
    assert answer["ok"] is False and "already own" in answer["error_message"]
    assert len(shop.purchases()) == 1


def test_a_repeated_payment_is_recorded_once_and_delivered_again(shop, alice, seller):
    product = shop.add_product("Pro", price=25, hidden="KEY-1")
    alice.taps_data(f"1:buy:{product.id}")
    alice.pays()
    alice.repeats_payment()
    assert len(shop.purchases()) == 1
    assert alice.all_texts().count("KEY-1") == 2
    assert len([m for m in shop.api.messages(ADMIN_ID) if "New sale" in visible_text(m)]) == 1


def test_the_purchase_is_committed_before_delivery(shop, alice):
    product = shop.add_product("Pro", price=25, hidden="KEY-1")
    alice.taps_data(f"1:buy:{product.id}")
    shop.api.fail("sendMessage", 500, "Internal Server Error", times=2)  # the delivery and the apology
    alice.pays()
    assert shop.purchases() == [("alice", "Pro", 25, "stars")]  # delivery failed, the sale is kept
    alice.sends("/purchases")
    alice.taps("Pro")
    assert "KEY-1" in alice.last_text()


def test_a_payment_for_a_product_hidden_meanwhile_is_still_delivered(shop, alice):
    product = shop.add_product("Pro", price=25, hidden="KEY-1")
    alice.taps_data(f"1:buy:{product.id}")
    invoice = alice.last_invoice()
    alice.pays(invoice)  # approved...
    set_product(shop, product.id, is_active=False)
    alice.repeats_payment()  # ...and the payment lands after the seller hid it
    assert "KEY-1" in alice.last_text()


def test_a_payment_for_a_deleted_product_is_refunded(shop, alice, seller):
    shop.add_product("Pro", price=25)
    alice.pays({"invoice": {"total_amount": 25, "currency": "XTR"}, "payload": "shop1:999:1001"})
    alice.payment = {"currency": "XTR", "total_amount": 25, "invoice_payload": "shop1:999:1001",
                     "telegram_payment_charge_id": "ch-gone", "provider_payment_charge_id": "p"}
    alice.repeats_payment()
    refund = shop.api.of("refundStarPayment")[-1].params
    assert (refund["user_id"], refund["telegram_payment_charge_id"]) == (1001, "ch-gone")
    assert "refunded" in alice.last_text()
    assert "refunded automatically" in visible_text(shop.api.messages(ADMIN_ID)[-1])


def test_free_products_are_delivered_once(shop, alice):
    product = shop.add_product("Guide", price=0, hidden="https://example.com/guide")
    alice.taps_data(f"1:buy:{product.id}")
    alice.taps_data(f"1:buy:{product.id}")
    assert shop.purchases() == [("alice", "Guide", 0, "free")]
    assert alice.all_texts().count("https://example.com/guide") == 2  # the second tap shows it again
    assert not shop.api.of("sendInvoice")


def test_a_hidden_file_is_delivered_by_file_id(shop, alice):
    product = shop.add_product("Ebook", price=0, hidden="Enjoy!", hidden_file_id="DOC-42",
                               hidden_file_type="document")
    alice.taps_data(f"1:buy:{product.id}")
    assert shop.api.of("sendDocument")[-1].params["document"] == "DOC-42"
    assert "Enjoy!" in alice.all_texts()


def test_a_rejected_file_is_explained_and_the_purchase_kept(shop, alice, seller, caplog):
    product = shop.add_product("Ebook", price=25, hidden="", hidden_file_id="GONE", hidden_file_type="document")
    alice.taps_data(f"1:buy:{product.id}")
    shop.api.fail("sendDocument", 400, "Bad Request: wrong file identifier/HTTP URL specified")
    alice.pays()
    assert "seller" in alice.last_text() and "will contact you" in alice.last_text()
    assert len(shop.purchases()) == 1
    assert "Could not send the file of purchase 1" in caplog.text
    assert "Telegram refused the file" in admin_texts(shop)


def test_long_hidden_content_is_split_into_messages_telegram_accepts(shop, alice):
    secret = ("line with <tags> & 🎁 emoji\n" * 400).strip()  # about 10,000 UTF-16 units
    product = shop.add_product("Big", price=0, hidden=secret)
    alice.taps_data(f"1:buy:{product.id}")
    pieces = [shopbot.html_to_plain(c.params["text"]) for c in shop.api.of("sendMessage")[1:]]
    assert all(shopbot.utf16_len(p) <= 4096 for p in pieces) and len(pieces) == 3
    assert "\n".join(p.strip("\n") for p in pieces) == secret


def test_my_purchases_pages_and_reopens_content(shop, alice):
    for n in range(10):
        shop.add_product(f"Guide {n}", price=0, hidden=f"SECRET-{n}")
    for product_id in range(1, 11):
        alice.taps_data(f"1:buy:{product_id}")
    alice.sends("/purchases")
    labels = alice.button_labels()
    assert labels[0].startswith("Guide 9 · ") and labels[8:] == ["1/2", "Next ▶️", "⬅️ Back"]
    alice.taps("Next")
    assert alice.button_labels()[:2] == [labels[0].replace("9", "1"), labels[0].replace("9", "0")]
    alice.taps("Guide 0")
    assert alice.last_text() == "SECRET-0"


def test_nobody_opens_someone_elses_purchase(shop, alice, bob):
    product = shop.add_product("Guide", price=0, hidden="ALICE-ONLY")
    alice.taps_data(f"1:buy:{product.id}")
    bob.taps_data("1:open:1")
    assert "ALICE-ONLY" not in bob.all_texts()
    assert bob.last_toast() == "This purchase is not available."


def test_a_refunded_purchase_is_marked_and_no_longer_opens(shop, alice, seller):
    product = shop.add_product("Pro", price=25, hidden="KEY-1")
    alice.taps_data(f"1:buy:{product.id}")
    alice.pays()
    seller.taps_data("1:arefok:1")
    alice.sends("/purchases")
    assert alice.button_labels()[0] == "↩️ Pro (refunded)"
    before = alice.all_texts().count("KEY-1")
    alice.taps("Pro")
    assert alice.last_toast() == "This purchase was refunded."
    assert alice.all_texts().count("KEY-1") == before


def test_paysupport_tells_the_admins_with_latest_purchases(shop, alice, seller):
    product = shop.add_product("Pro", price=25)
    alice.taps_data(f"1:buy:{product.id}")
    alice.pays()
    alice.sends("/paysupport")
    assert "seller has been told" in alice.last_text()
    note = admin_texts(shop)
    assert "Alice (@alice)" in note and "1001" in note and "#1 Pro — 25 ⭐" in note


def test_a_support_conversation_goes_both_ways(shop, alice, seller):
    alice.sends("/paysupport")
    alice.sends_photo("SCREENSHOT", caption="The key does not work")
    assert "Sent to the seller" in alice.last_text()
    copied = shop.api.of("copyMessage")[-1].params
    assert (copied["chat_id"], copied["from_chat_id"]) == (ADMIN_ID, alice.id)
    assert "Alice (@alice) (id 1001) writes:" in admin_texts(shop)
    alice.sends("hello")  # the conversation is over: back to the shop (a search)
    assert "Nothing found" in alice.last_text()

    seller.taps("Reply")
    seller.sends("Sorry! Here is a new key: NEW-KEY")
    assert "Your answer was delivered" in seller.last_text()
    assert "A message from the seller" in alice.all_texts()
    answer = shop.api.of("copyMessage")[-1].params
    assert (answer["chat_id"], answer["from_chat_id"]) == (alice.id, ADMIN_ID)


def test_paysupport_can_be_cancelled(shop, alice, seller):
    alice.sends("/paysupport")
    alice.taps("Cancel")
    alice.sends("hello")
    assert "Nothing found" in alice.last_text() and not shop.api.of("copyMessage")


# ===========================================================================
# Callback data is validated; every tap is answered
# ===========================================================================

@pytest.mark.parametrize("data", [
    "", "garbage", "x" * 64, "1", "1:", "2:cats", "1:nope", "1:cat", "1:cat:1", "1:cat:a:0", "1:cat:-1:0",
    "1:cat:1:0:0", "1:prod:99999:0", "1:open:424242", "1:buy:77", "1:cat:" + "9" * 30 + ":0", "1:mine:999",
    "1:cat:²:0", "1:prod:١٢:0", "1:cat:9223372036854775808:0",
    "1:adm", "1:aref:1", "1:arefok:1", "1:abcgo", "1:abak", "1:acsv", "1:ap:1",
])
def test_forged_or_stale_callback_data_gets_a_polite_answer(shop, alice, data, caplog):
    shop.add_product("Guide", price=0, hidden="SECRET")
    alice.sends("/start")
    alice.taps_data(data)
    assert len(alice.callback_answers()) == 1
    assert "SECRET" not in alice.all_texts()
    assert "Traceback" not in caplog.text and "Error handling" not in caplog.text
    assert not shop.api.of("refundStarPayment") and not shop.api.of("sendDocument")
    assert shop.purchases() == []


def test_all_our_callback_data_fits_64_bytes():
    biggest = shopbot.MAX_ID
    assert len(shopbot.callback("arefok", biggest).encode()) <= 64
    assert len(shopbot.callback("aedit", biggest, 4).encode()) <= 64
    assert shopbot.parse_callback(shopbot.callback("cat", biggest, 3)) == ("cat", [biggest, 3])


def test_a_crashing_handler_apologises_and_the_bot_keeps_serving(shop, alice, bob, caplog, monkeypatch):
    monkeypatch.setattr(shopbot.Shop, "catalog_screen", lambda *a: 1 / 0)
    alice.taps_data("1:cats")
    assert alice.last_toast() == "😔 Sorry, something went wrong on our side. Please try again in a moment."
    assert "ZeroDivisionError" in caplog.text and "CallbackQuery from user 1001" in caplog.text
    bob.sends("/help")
    assert "How it works" in bob.last_text()


# ===========================================================================
# The admin panel
# ===========================================================================

@pytest.mark.parametrize("command", ["/admin", "/refund ch-1", "/grant 1001 1"])
def test_non_admins_get_the_customer_menu_for_admin_commands(shop, alice, command, caplog):
    shop.add_product("Pro")
    alice.sends(command)
    assert alice.button_labels() == ["🛍 Catalog", "📦 My purchases", "❓ Help"]
    assert "tried admin action" in caplog.text
    assert shop.purchases() == []


ADMIN_ACTIONS = ["aadd", "aaddc", "aalerts", "abak", "abc", "abcgo", "acancel", "acats", "acdel", "acdn", "aclear",
                 "aclearok", "acren", "acsv", "acup", "adel", "adelok", "adm", "aedit", "ahide", "anewc", "ap", "apc",
                 "aprods", "apur", "aref", "arefok", "arecent", "areply", "asales", "asave", "astock"]


def test_the_admin_action_list_below_covers_every_admin_button(shop):
    assert sorted(ADMIN_ACTIONS) == sorted(a for a in shop.bot.shop.routes if a.startswith("a"))


@pytest.mark.parametrize("action", ADMIN_ACTIONS)
def test_non_admins_cannot_use_any_admin_button(shop, alice, action, caplog):
    product = shop.add_product("Pro", price=25)
    alice.taps_data(f"1:buy:{product.id}")
    alice.pays()
    nargs = shop.bot.shop.routes[action][1]
    alice.taps_data(shopbot.callback(action, *[1] * nargs))
    assert "tried admin action" in caplog.text
    assert alice.button_labels() == ["🛍 Catalog", "📦 My purchases", "❓ Help"]
    assert not shop.api.of("refundStarPayment") and not shop.api.of("sendDocument")
    with shop.Session() as session:
        assert session.get(Product, product.id).is_active and session.get(Purchase, 1).refunded_at is None


def start_adding_a_product(seller, category: str) -> None:
    seller.sends("/admin")
    seller.taps("Add product")
    seller.taps(category)


def test_seller_adds_a_product_with_a_photo_and_a_hidden_file(shop, seller, alice):
    seller.sends("/admin")
    seller.taps("Add product")
    seller.taps("New category")
    seller.sends("E-books")
    assert "product's name" in seller.last_text()
    seller.sends("Python <3")
    seller.sends("4.5")
    assert "whole numbers" in seller.last_text()  # Stars have no fractions: asked again
    seller.sends("45")
    seller.sends("A friendly book & exercises.")
    seller.sends_photo("COVER")
    seller.sends_document("BOOK-PDF", caption="Your password: py3")
    assert "Preview" in seller.all_texts()
    preview = shop.api.of("sendPhoto")[-1].params
    assert preview["photo"] == "COVER" and "Python &lt;3" in preview["caption"] and "45 ⭐" in preview["caption"]
    seller.taps("Save")
    with shop.Session() as session:
        product = session.scalar(select(Product))
        assert (product.name, product.price, product.category.name) == ("Python <3", 45, "E-books")
        assert (product.description_file_id, product.description_file_type) == ("COVER", "photo")
        assert (product.hidden_file_id, product.hidden_file_type, product.hidden_content) == (
            "BOOK-PDF", "document", "Your password: py3")
        assert product.is_active
    alice.sends("/catalog")
    assert alice.button_labels()[0] == "E-books (1)"


@pytest.mark.parametrize("field, bad, reason", [
    ("name", "N" * 65, "at most 64"),
    ("name", None, "need a text"),  # a sticker
    ("price", "ten", "not a price"),
    ("price", "1²", "not a price"),
    ("price", "-5", "not a price"),
    ("price", "1.5", "Stars are whole numbers"),
    ("price", "100001", "at most 100000 ⭐"),
    ("description", "d" * 3501, "at most 3500"),
    ("description_file", "a text", "photo or a document"),
    ("hidden", None, "need a text"),
])
def test_bad_input_is_explained_and_asked_again(shop, seller, field, bad, reason):
    shop.add_category("Keys")
    answers = {"name": "Key", "price": "10", "description": "About", "description_file": "/skip"}
    start_adding_a_product(seller, "Keys")
    for step, value in answers.items():
        if step == field:
            break
        seller.sends(value)
    seller.sends_sticker() if bad is None else seller.sends(bad)
    assert reason in seller.last_text() and "/cancel" in seller.last_text()
    seller.sends("/cancel")
    assert "Cancelled" in seller.last_text()
    seller.sends("Key")  # no dialog any more: a plain text
    with shop.Session() as session:
        assert session.query(Product).count() == 0


def test_a_free_product_and_skipping_the_description_file(shop, seller):
    shop.add_category("Keys")
    start_adding_a_product(seller, "Keys")
    for answer in ["Guide", "0", "Free guide", "/skip", "https://example.com/guide"]:
        seller.sends(answer)
    assert "Get for free" not in seller.all_texts()  # the preview is the card, without the buy button
    seller.taps("Save")
    with shop.Session() as session:
        product = session.scalar(select(Product))
        assert (product.price, product.description_file_id, product.hidden_content) == (
            0, None, "https://example.com/guide")


@pytest.mark.parametrize("command, leaves", [("/admin", True), ("/start", True), ("/help", False),
                                              ("/catalog", False)])
def test_a_command_is_never_taken_as_a_dialog_answer(shop, seller, command, leaves):
    shop.add_category("Keys")
    start_adding_a_product(seller, "Keys")
    seller.sends(command)
    seller.sends("Pro")
    if leaves:  # no dialog any more: a plain text is a search
        assert "Nothing found for «Pro»" in seller.last_text()
    else:  # the dialog goes on: "Pro" is the product's name, the price comes next
        assert "Send the price" in seller.last_text()
    with shop.Session() as session:
        assert session.query(Product).count() == 0


def test_text_sent_where_buttons_are_expected_is_explained(shop, seller):
    shop.add_category("Keys")
    start_adding_a_product(seller, "Keys")
    for answer in ["Guide", "1", "About", "/skip", "KEY"]:
        seller.sends(answer)
    seller.sends("save please")
    assert "Use the buttons" in seller.last_text()
    seller.taps("Save")
    with shop.Session() as session:
        assert session.query(Product).count() == 1


def test_seller_edits_a_price_with_the_same_validation(shop, seller, alice):
    product = shop.add_product("Pro", price=25, hidden="KEY-1")
    seller.taps_data(f"1:ap:{product.id}")
    assert "KEY-1" in seller.last_text() and "Sold: 0" in seller.last_text()
    seller.taps("Price")
    seller.sends("abc")
    assert "not a price" in seller.last_text()
    seller.sends("30")
    assert "Price: 30 ⭐" in seller.last_text()
    alice.sends(f"/start p_{product.id}")
    assert alice.button_labels()[0] == "Buy for 30 ⭐"


def test_hiding_showing_and_deleting_products(shop, seller, alice):
    sold = shop.add_product("Sold", price=0)
    unsold = shop.add_product("Unsold", price=5)
    alice.taps_data(f"1:buy:{sold.id}")
    seller.taps_data(f"1:ap:{unsold.id}")
    seller.taps("Hide")
    assert "hidden" in seller.last_text()
    alice.sends(f"/start p_{unsold.id}")
    assert "not available" in alice.last_text()
    seller.taps_data(f"1:ap:{unsold.id}")
    seller.taps("Show")
    seller.taps("Delete")
    assert "for good" in seller.last_text()
    seller.taps("Delete")
    seller.taps_data(f"1:ap:{sold.id}")
    seller.taps("Delete")
    assert "hidden instead" in seller.last_toast()
    with shop.Session() as session:
        assert session.get(Product, unsold.id) is None
        assert session.get(Product, sold.id).is_active is False
    alice.sends("/purchases")
    alice.taps("Sold")
    assert "KEY-123" in alice.last_text()  # buyers keep their access


def test_products_list_marks_hidden_ones(shop, seller):
    category = shop.add_category("Keys")
    shop.add_product("Visible", category=category)
    shop.add_product("Secret", category=category, is_active=False)
    seller.sends("/admin")
    seller.taps("Products")
    seller.taps("Keys")
    assert seller.button_labels()[:2] == ["Visible — 25 ⭐", "🙈 Secret — 25 ⭐"]


def test_categories_rename_reorder_and_delete_when_empty(shop, seller):
    first, second = shop.add_category("First", 0), shop.add_category("Second", 0)
    shop.add_product("P", category=first)
    seller.sends("/admin")
    seller.taps("Categories")
    assert [b for b in seller.button_labels() if "(" in b] == ["First (1)", "Second (0)"]
    seller.taps_data(f"1:acdn:{first.id}")
    assert [b for b in seller.button_labels() if "(" in b] == ["Second (0)", "First (1)"]
    seller.taps_data(f"1:acren:{second.id}")
    seller.sends("First")
    assert "already exists" in seller.last_text()
    seller.sends("Renamed")
    assert "Renamed (0)" in seller.button_labels()
    seller.taps_data(f"1:acdel:{first.id}")
    assert seller.last_toast() == "Only an empty category can be deleted."
    seller.taps_data(f"1:acdel:{second.id}")
    with shop.Session() as session:
        assert [c.name for c in session.scalars(select(Category))] == ["First"]
    seller.taps("New category")
    seller.sends("Third")
    assert [b for b in seller.button_labels() if "(" in b] == ["First (1)", "Third (0)"]  # no product dialog
    seller.sends("Not a product")
    assert "Nothing found" in seller.last_text()


def test_sales_figures_match_the_rows(shop, seller, alice, bob):
    cheap, dear = shop.add_product("Cheap", price=10), shop.add_product("Dear", price=100)
    for person, product in [(alice, cheap), (alice, dear), (bob, cheap)]:
        person.taps_data(f"1:buy:{product.id}")
        person.pays()
    seller.taps_data("1:arefok:2")  # Dear is refunded
    with shop.Session() as session:
        old = session.get(Purchase, 3)
        old.created_at = models.utcnow().replace(year=2020)
        session.commit()
    seller.sends("/admin")
    seller.taps("Sales")
    report = seller.last_text()
    assert "Today: 1 sales · 10 ⭐" in report
    assert "All time: 2 sales · 20 ⭐" in report
    assert "refunds: 1" in report
    assert "Top products, 30 days" in report and "1. Cheap — 1" in report  # the 2020 sale is too old


def test_recent_purchases_and_a_stars_refund(shop, seller, alice):
    product = shop.add_product("Pro", price=25)
    alice.taps_data(f"1:buy:{product.id}")
    alice.pays()
    seller.sends("/admin")
    seller.taps("Recent purchases")
    seller.taps("#1 Pro")
    assert "Alice (@alice)" in seller.last_text() and "1001" in seller.last_text()
    seller.taps("Refund")
    assert not shop.api.of("refundStarPayment")  # a confirmation first
    seller.taps("Yes, refund")
    refund = shop.api.of("refundStarPayment")[-1].params
    assert refund["telegram_payment_charge_id"] == alice.payment["telegram_payment_charge_id"]
    assert "Refunded" in seller.last_text()
    assert seller.last_toast() == "✅ Refunded: the Stars are back with the buyer."
    with shop.Session() as session:
        assert session.get(Purchase, 1).refunded_at is not None


def test_a_refund_telegram_rejects_changes_nothing(shop, seller, alice):
    product = shop.add_product("Pro", price=25)
    alice.taps_data(f"1:buy:{product.id}")
    alice.pays()
    shop.api.fail("refundStarPayment", 400, "Bad Request: CHARGE_ALREADY_REFUNDED")
    seller.sends(f"/refund {alice.payment['telegram_payment_charge_id']}")
    assert "refused the refund: Bad Request: CHARGE_ALREADY_REFUNDED" in seller.last_text()
    with shop.Session() as session:
        assert session.get(Purchase, 1).refunded_at is None


def test_card_prices_are_read_the_human_way(card_shop):
    seller = Person(card_shop, ADMIN_ID, "Seller")
    seller.sends("/start")
    card_shop.add_category("Courses")
    start_adding_a_product(seller, "Courses")
    seller.sends("Course")
    seller.sends("9.999")
    assert "2 decimal places" in seller.last_text()
    seller.sends("9,99")  # a decimal comma is fine
    seller.sends("About")
    seller.sends("/skip")
    seller.sends("https://example.com/course")
    assert "💰 $9.99" in seller.all_texts()
    seller.taps("Save")
    with card_shop.Session() as session:
        assert session.scalar(select(Product.price)) == 999


def test_a_card_refund_is_marked_only(card_shop):
    product = card_shop.add_product("Course", price=999)
    alice, seller = Person(card_shop, 1001, "Alice", "alice"), Person(card_shop, ADMIN_ID, "Seller")
    alice.taps_data(f"1:buy:{product.id}")
    alice.pays()
    seller.sends(f"/refund {alice.payment['telegram_payment_charge_id']}")
    assert "payment provider" in seller.last_text() and not card_shop.api.of("refundStarPayment")
    with card_shop.Session() as session:
        assert session.get(Purchase, 1).refunded_at is not None


def test_grant_gives_and_delivers_a_product(shop, seller, alice):
    product = shop.add_product("Pro", price=25, hidden="KEY-9")
    alice.sends("/start")
    seller.sends(f"/grant {alice.id} {product.id}")
    assert "Granted" in seller.last_text()
    assert "KEY-9" in alice.last_text()
    assert shop.purchases() == [("alice", "Pro", 0, "manual")]
    seller.sends(f"/grant {alice.id} {product.id}")
    assert "already owns" in seller.last_text()
    seller.sends("/grant alice")
    assert "Usage" in seller.last_text()


def test_sale_alerts_can_be_switched_off(shop, seller, alice):
    product = shop.add_product("Pro", price=0)
    seller.sends("/admin")
    seller.taps("Sale alerts: on")
    assert "🔕 Sale alerts: off" in seller.button_labels()
    alice.taps_data(f"1:buy:{product.id}")
    product2 = shop.add_product("Pro 2", price=5)
    alice.taps_data(f"1:buy:{product2.id}")
    alice.pays()
    assert "New sale" not in admin_texts(shop)


def test_broadcast_reaches_everyone_and_reports_blocked_users(shop, seller, alice, bob):
    carol = Person(shop, 1003, "Carol")
    for person in (alice, bob, carol):
        person.sends("/start")
    seller.sends("/admin")
    seller.taps("Broadcast")
    seller.sends("🎉 New arrivals!")
    assert shop.api.of("copyMessage")  # the preview
    assert "Send it to 4 customers?" in seller.last_text()  # the seller is a user too
    shop.api.fail("copyMessage", 429, "Too Many Requests: retry after 1", retry_after=1)
    shop.api.fail("copyMessage", 403, "Forbidden: bot was blocked by the user")
    seller.taps("Send")
    shop.finish_background()
    assert "3 sent, 1 blocked the bot, 0 failed" in seller.last_text()
    with shop.Session() as session:
        blocked = session.scalars(select(User.telegram_id).where(User.is_blocked)).all()
    assert len(blocked) == 1
    # the preview, then 4 recipients, one of them tried twice because of the 429
    assert len(shop.api.of("copyMessage")) == 1 + 4 + 1


def test_only_one_broadcast_at_a_time(shop, seller):
    shop.bot.shop.broadcast_lock.acquire()
    seller.sends("/admin")
    seller.taps("Broadcast")
    seller.sends("Hello")
    seller.taps("Send")
    assert seller.last_toast() == "A broadcast is already running."


def test_export_csv_lists_every_purchase(shop, seller, alice):
    product = shop.add_product("Course, part \"1\"", price=25)
    alice.taps_data(f"1:buy:{product.id}")
    alice.pays()
    seller.taps_data("1:acsv")
    name, data = shop.api.of("sendDocument")[-1].files["document"]
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert name.startswith("purchases-") and name.endswith(".csv")
    assert rows[0] == ["date", "purchase_id", "buyer_id", "username", "product", "price", "currency",
                       "payment_type", "payment_id", "refunded_at"]
    assert rows[1][1:] == ["1", "1001", "alice", 'Course, part "1"', "25", "XTR", "stars",
                           alice.payment["telegram_payment_charge_id"], ""]


def test_backup_is_a_consistent_sqlite_copy(shop, seller, tmp_path):
    shop.add_product("Pro")
    seller.taps_data("1:abak")
    if shop.Session.kw["bind"].dialect.name != "sqlite":  # a database server: its own tools back it up
        assert "pg_dump" in seller.last_text() and not shop.api.of("sendDocument")
        return
    name, data = shop.api.of("sendDocument")[-1].files["document"]
    assert name.startswith("shop-backup-")
    (tmp_path / "copy.db").write_bytes(data)
    with sqlite3.connect(tmp_path / "copy.db") as copy:
        assert copy.execute("SELECT name FROM products").fetchall() == [("Pro",)]


# ===========================================================================
# Hardening: hostile input, Telegram errors, crashes, threads
# ===========================================================================

def shop_contents(shop) -> list:
    """Everything a hostile update must leave alone."""
    with shop.Session() as session:
        return [session.execute(select(*table.__table__.columns)).all() for table in (Category, Product, Purchase)]


STRANGE_NAME = "\u202eevil\u200b 𝕏 <b>"  # right-to-left override, zero-width space, astral letter, a tag

HOSTILE_CUSTOMER_INPUTS = {
    "4096 characters": lambda p: p.sends("я" * 4096),
    "emoji only": lambda p: p.sends("🔥🛍️👨‍👩‍👧"),
    "zero-width and RTL": lambda p: p.sends("\u200b\u200f\u202e"),
    "voice": lambda p: p.sends_content(**VOICE),
    "contact": lambda p: p.sends_content(**CONTACT),
    "location": lambda p: p.sends_content(**LOCATION),
    "sticker": lambda p: p.sends_sticker(),
    "photo": lambda p: p.sends_photo(),
    "junk deep link": lambda p: p.sends("/start p_1'; DROP TABLE products;--"),
    "huge deep link": lambda p: p.sends("/start " + "p_" + "9" * 4000),
    "junk command": lambda p: p.sends("/" + "x" * 100),
    "empty callback": lambda p: p.taps_data(""),
    "64 bytes of junk": lambda p: p.taps_data("\x00" * 64),
    "someone else's purchase": lambda p: p.taps_data("1:open:1"),
    "an id that never existed": lambda p: p.taps_data("1:prod:123456789:0"),
    "a refund": lambda p: p.taps_data("1:arefok:1"),
    "forged pre-checkout": lambda p: p.pays({"invoice": {"total_amount": 1, "currency": "XTR"}, "payload": "x"}),
}


@pytest.mark.parametrize("case", HOSTILE_CUSTOMER_INPUTS, ids=list(HOSTILE_CUSTOMER_INPUTS))
def test_hostile_customer_input_is_answered_and_changes_nothing(shop, alice, bob, case, caplog):
    product = shop.add_product("Pro", price=0, hidden="BOB-SECRET")
    bob.taps_data(f"1:buy:{product.id}")
    alice.user["first_name"] = STRANGE_NAME
    alice.user.pop("username")
    before, calls = shop_contents(shop), len(shop.api.calls)

    HOSTILE_CUSTOMER_INPUTS[case](alice)

    answers = [c for c in shop.api.calls[calls:] if c.method in (
        "sendMessage", "editMessageText", "answerCallbackQuery", "answerPreCheckoutQuery")]
    assert answers, "every input gets an answer"
    assert "BOB-SECRET" not in alice.all_texts()
    assert "Error handling" not in caplog.text
    assert shop_contents(shop) == before


@pytest.mark.parametrize("content", [VOICE, CONTACT, LOCATION, {"text": "\u200b\u200f"}, {"text": "  "}],
                         ids=["voice", "contact", "location", "invisible", "blank"])
def test_hostile_input_in_an_admin_dialog_is_explained(shop, seller, content, caplog):
    shop.add_category("Keys")
    start_adding_a_product(seller, "Keys")
    seller.sends_content(**content)
    assert "I need a text here" in seller.last_text()
    assert "Error handling" not in caplog.text
    seller.sends("Real name")
    assert "price" in seller.last_text()


def test_strange_names_are_shown_as_typed(shop, seller, alice):
    alice.user["first_name"] = STRANGE_NAME
    alice.sends("/start")
    assert f"Hello, {STRANGE_NAME}!" in alice.last_text()
    shop.add_category("Keys")
    start_adding_a_product(seller, "Keys")
    seller.sends(STRANGE_NAME)
    assert "price" in seller.last_text()


def test_in_groups_the_shop_points_to_the_private_chat_once(shop, alice):
    group = {"id": -100123, "type": "supergroup", "title": "Chat"}
    alice.feed("message", {"message_id": 5, "date": 1, "from": alice.user, "chat": group, "text": "/start",
                           "entities": [{"type": "bot_command", "offset": 0, "length": 6}]})
    alice.feed("message", {"message_id": 6, "date": 1, "from": alice.user, "chat": group, "text": "hi all"})
    replies = [c for c in shop.api.of("sendMessage") if c.params["chat_id"] == "-100123"]
    assert len(replies) == 1 and "https://t.me/test_shop_bot" in replies[0].params["text"]


def test_edited_messages_and_channel_posts_are_ignored(shop, alice, caplog):
    alice.feed("edited_message", {**alice.message(text="/start"), "edit_date": 2})
    alice.feed("channel_post", {"message_id": 1, "date": 1, "chat": {"id": -100, "type": "channel"}, "text": "x"})
    assert shop.api.calls == [] and "Error" not in caplog.text


def test_a_flood_limit_is_waited_out_and_the_message_sent(shop, alice):
    waits = []
    shop.bot.shop.sleep = waits.append
    shop.api.fail("sendMessage", 429, "Too Many Requests: retry after 7", retry_after=7)
    alice.sends("/help")
    assert waits == [7.0]
    assert "How it works" in alice.last_text()


def test_a_flood_limit_on_an_edit_is_waited_out_too(shop, alice):
    alice.sends("/start")
    shop.api.fail("editMessageText", 429, "Too Many Requests: retry after 2", retry_after=2)
    alice.taps("Catalog")
    assert "being stocked" in alice.last_text()


def test_a_user_who_blocked_the_bot_is_marked_and_nothing_breaks(shop, alice, caplog):
    alice.sends("/start")
    shop.api.fail("sendMessage", 403, "Forbidden: bot was blocked by the user")
    alice.sends("/help")
    with shop.Session() as session:
        assert session.scalar(select(User.is_blocked).where(User.telegram_id == alice.id)) is True
    assert "Error handling" not in caplog.text
    alice.sends("/start")  # they unblocked us and wrote again
    with shop.Session() as session:
        assert session.scalar(select(User.is_blocked).where(User.telegram_id == alice.id)) is False


def test_logs_at_info_hold_no_hidden_content(shop, seller, alice, caplog):
    caplog.set_level("DEBUG", logger="shopbot")
    product = shop.add_product("Pro", price=25, hidden="TOP-SECRET-KEY")
    alice.taps_data(f"1:buy:{product.id}")
    alice.pays()
    alice.repeats_payment()
    seller.taps_data(f"1:ap:{product.id}")
    assert "TOP-SECRET-KEY" in alice.all_texts()
    assert "TOP-SECRET-KEY" not in caplog.text


def test_database_errors_do_not_print_the_hidden_content(session):
    session.add(Product(name="X", category_id=999, hidden_content="TOP-SECRET-KEY"))  # no such category
    with pytest.raises(IntegrityError) as error:
        session.commit()
    assert "TOP-SECRET-KEY" not in str(error.value)


def test_a_second_instance_on_the_same_machine_refuses_to_start():
    token = "777:lock-test"
    first = shopbot.hold_instance_lock(token)
    try:
        assert first is not None
        assert shopbot.hold_instance_lock(token) is None
    finally:
        first.close()
    shopbot.hold_instance_lock(token).close()  # free again once the first has gone


def test_a_polling_conflict_is_explained(caplog):
    conflict = shopbot.ApiTelegramException("getUpdates", None, {
        "error_code": 409, "description": "Conflict: terminated by other getUpdates request"})
    handler = shopbot.PollingErrors()
    assert handler.handle(conflict) and handler.handle(conflict)
    assert caplog.text.count("Another instance of this bot is running") == 1
    assert not handler.handle(ValueError("other"))


def test_many_customers_buying_and_browsing_at_once(shop, seller, caplog):
    """Threads share one SQLite file, as telebot's workers do, while a broadcast runs."""
    products = [shop.add_product(f"Item {n}", price=5 + n) for n in range(4)]
    people = [Person(shop, 5000 + n, f"User {n}") for n in range(8)]
    for person in people:
        person.sends("/start")
    seller.taps_data("1:abc")
    seller.sends("Sale today!")
    seller.taps("Send")

    def shop_around(person):
        for product in products:
            person.sends("/catalog")
            person.taps("Keys")
            person.taps(product.name)
            person.taps("Buy")
            person.pays()
            person.sends("/purchases")

    threads = [threading.Thread(target=shop_around, args=(p,)) for p in people]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    shop.finish_background()

    assert "locked" not in caplog.text and "Error handling" not in caplog.text
    with shop.Session() as session:
        charges = session.scalars(select(Purchase.payment_id)).all()
    assert len(charges) == len(set(charges)) == len(people) * len(products)
    taps = len(people) * len(products) * 3 + 2  # and the seller's two taps to start the broadcast
    assert len(shop.api.of("answerCallbackQuery")) == taps
    assert "9 sent, 0 blocked the bot, 0 failed" in admin_texts(shop)


class UpdateServer(FakeBotApiServer):
    """A Bot API that hands out queued updates the way getUpdates does (offset confirms)."""

    def __init__(self):
        self.updates: list[dict] = []
        self.sent_messages = threading.Event()
        self.failures = 0  # how many getUpdates calls to answer with 502 Bad Gateway first
        super().__init__()

    def answer(self, method: str, params: dict):
        if method == "getUpdates" and self.failures:
            self.failures -= 1
            raise BadGateway
        if method == "getUpdates":
            offset = int(params.get("offset") or 0)
            pending = [u for u in self.updates if u["update_id"] >= offset][:20]
            if not pending:
                time.sleep(0.2)
            return pending
        if method == "sendMessage":
            self.sent_messages.set()
            return {"message_id": 1, "date": 1, "chat": {"id": int(params["chat_id"]), "type": "private"},
                    "text": "ok"}
        return super().answer(method, params)


def test_polling_survives_telegram_5xx_answers(tmp_path):
    server = UpdateServer()
    server.failures = 3  # Telegram answers 502 Bad Gateway three times, then recovers
    user = {"id": 77, "is_bot": False, "first_name": "Eve"}
    server.updates = [{"update_id": 1, "message": {
        "message_id": 1, "date": 1, "from": user, "chat": {"id": 77, "type": "private"}, "text": "/start",
        "entities": [{"type": "bot_command", "offset": 0, "length": 6}]}}]
    env = {**os.environ, "BOT_TOKEN": "4243:flaky", "TELEGRAM_API_URL": server.url,
           "DATABASE_URL": f"sqlite:///{tmp_path / 'shop.db'}"}
    process = subprocess.Popen([sys.executable, str(HERE / "shopbot.py")], env=env, cwd=tmp_path,
                               stderr=subprocess.PIPE, text=True)
    try:
        assert server.sent_messages.wait(15), "the bot never answered after Telegram recovered"
    finally:
        process.send_signal(signal.SIGTERM)
        _, log = process.communicate(timeout=10)
        server.httpd.shutdown()
    assert server.failures == 0 and "502" in log and "4243:flaky" not in log and process.returncode == 0


def payment_update(update_id: int, user_id: int, product_id: int, charge: str) -> dict:
    user = {"id": user_id, "is_bot": False, "first_name": f"Buyer {user_id}"}
    return {"update_id": update_id, "message": {
        "message_id": update_id, "date": 1, "from": user, "chat": {"id": user_id, "type": "private"},
        "successful_payment": {"currency": "XTR", "total_amount": 10,
                               "invoice_payload": f"shop1:{product_id}:{user_id}",
                               "telegram_payment_charge_id": charge, "provider_payment_charge_id": "p"}}}


def test_kill_9_mid_purchase_loses_nothing_and_the_next_start_serves(tmp_path):
    database = tmp_path / "shop.db"
    with connect(f"sqlite:///{database}")() as session:
        session.add(Product(name="Key", price=10, hidden_content="KEY", category=Category(name="Keys")))
        session.commit()
        session.get_bind().dispose()
    server = UpdateServer()
    server.updates = [payment_update(n, 7000 + n, 1, f"charge-{n}") for n in range(1, 41)]
    env = {**os.environ, "BOT_TOKEN": "4242:crash", "TELEGRAM_API_URL": server.url,
           "DATABASE_URL": f"sqlite:///{database}"}
    command = [sys.executable, str(HERE / "shopbot.py")]
    try:
        first = subprocess.Popen(command, env=env, cwd=tmp_path, stderr=subprocess.DEVNULL)
        assert server.sent_messages.wait(10), "the bot never delivered anything"
        first.kill()  # SIGKILL while payments are being recorded and delivered
        first.wait()
        with sqlite3.connect(database) as raw:
            assert raw.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        started = time.monotonic()
        polls = len([m for m in server.methods() if m == "getUpdates"])
        second = subprocess.Popen(command, env=env, cwd=tmp_path, stderr=subprocess.DEVNULL)
        while len([m for m in server.methods() if m == "getUpdates"]) == polls and time.monotonic() - started < 10:
            time.sleep(0.02)
        assert time.monotonic() - started < 2.0, "the restarted bot serves at once"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with sqlite3.connect(database) as raw:
                if raw.execute("SELECT count(*) FROM purchases").fetchone()[0] == 40:
                    break
            time.sleep(0.1)
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=10)
    finally:
        for process in ("first", "second"):
            if process in locals():
                locals()[process].kill()
        server.httpd.shutdown()
    with sqlite3.connect(database) as raw:
        charges = [row[0] for row in raw.execute("SELECT payment_id FROM purchases")]
    assert sorted(charges) == sorted(f"charge-{n}" for n in range(1, 41))  # each payment exactly once


# ===========================================================================
# Unique stock: one key per buyer, uploads, restock alerts, search
# ===========================================================================

def add_stock(shop, product, *contents):
    with shop.Session() as session:
        session.add_all(models.StockItem(product_id=product.id, content=c) for c in contents)
        session.commit()


def buys(person, product):
    """Tap Buy on the product and pay the invoice (or take it, if free)."""
    person.taps_data(f"1:buy:{product.id}")
    return person.pays() if product.price else None


def test_spec_style_stock_item_is_complete_as_written(session):
    session.add(Product(name="Key", category=Category(name="Keys")))
    session.add(models.StockItem(product_id=1, content='KEY-1'))
    session.commit()
    assert repr(session.scalar(select(models.StockItem))) == "<StockItem 1 product=1 unsold>"


def test_each_buyer_of_a_stocked_product_gets_a_different_key(shop, alice, bob):
    product = shop.add_product("Windows key", price=10, hidden="Activate in Settings.")
    add_stock(shop, product, "KEY-A", "KEY-B", "KEY-C")
    buys(alice, product)
    buys(bob, product)
    assert "KEY-A" in alice.all_texts() and "KEY-B" not in alice.all_texts()
    assert "KEY-B" in bob.all_texts() and "KEY-A" not in bob.all_texts()
    assert "Activate in Settings." in alice.all_texts()  # the shared instructions reach everyone
    alice.sends(f"/start p_{product.id}")
    assert "📦 1 in stock" in alice.last_text()
    assert alice.button_labels() == ["Buy for 10 ⭐", "✅ Yours — open", "⬅️ Back"]  # a second key is fine
    buys(alice, product)
    assert "KEY-C" in alice.all_texts()
    with shop.Session() as session:
        sold = session.execute(select(models.StockItem.content, models.StockItem.purchase_id)).all()
    assert sorted(sold) == [("KEY-A", 1), ("KEY-B", 2), ("KEY-C", 3)]


def test_an_unlimited_product_gives_everyone_the_same_content(shop, alice, bob):
    product = shop.add_product("Guide", price=10, hidden="SAME-FOR-ALL")
    buys(alice, product)
    buys(bob, product)
    assert "SAME-FOR-ALL" in alice.all_texts() and "SAME-FOR-ALL" in bob.all_texts()
    alice.sends(f"/start p_{product.id}")
    assert "in stock" not in alice.last_text() and alice.button_labels()[0] == "✅ Yours — open"


def test_a_sold_out_product_offers_notify_me_and_no_buy_button(shop, alice, seller):
    product = shop.add_product("Gift card", price=10)
    add_stock(shop, product, "ONLY-ONE")
    buys(alice, product)
    assert "has sold out" in admin_texts(shop)
    bob = Person(shop, 1002, "Bob")
    bob.sends("/catalog")
    bob.taps("Keys")
    assert bob.button_labels()[0] == "Gift card — sold out"
    bob.taps("Gift card")
    assert "❌ Sold out" in bob.last_text()
    assert bob.button_labels() == ["🔔 Notify me", "⬅️ Back"]
    bob.taps_data(f"1:buy:{product.id}")  # an old Buy button
    assert bob.last_toast() == "Sorry, it has just sold out." and not shop.api.of("sendInvoice")[1:]


def test_pre_checkout_refuses_when_none_is_left(shop, alice, bob):
    product = shop.add_product("Gift card", price=10)
    add_stock(shop, product, "ONLY-ONE")
    alice.taps_data(f"1:buy:{product.id}")
    bob.taps_data(f"1:buy:{product.id}")
    alice.pays()
    answer = bob.pays()
    assert answer["ok"] is False and "sold out" in answer["error_message"]


def test_the_last_item_paid_for_at_once_goes_to_one_buyer_and_the_rest_are_refunded(shop, seller):
    """Everyone passed pre-checkout while one item was left; their payments land together."""
    product = shop.add_product("Last key", price=10)
    add_stock(shop, product, "THE-KEY")
    buyers = [Person(shop, 3000 + n, f"Buyer {n}") for n in range(6)]
    payments = []
    for buyer in buyers:
        buyer.taps_data(f"1:buy:{product.id}")
        payments.append(dict(buyer.last_invoice()))
    start = threading.Barrier(len(buyers))

    def pay(buyer, invoice):
        start.wait()
        buyer.payment = {"currency": "XTR", "total_amount": 10, "invoice_payload": invoice["payload"],
                         "telegram_payment_charge_id": f"race-{buyer.id}", "provider_payment_charge_id": "p"}
        buyer.repeats_payment()

    threads = [threading.Thread(target=pay, args=pair) for pair in zip(buyers, payments, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    winners = [b for b in buyers if "THE-KEY" in b.all_texts()]
    assert len(winners) == 1
    refunds = {c.params["user_id"] for c in shop.api.of("refundStarPayment")}
    assert refunds == {b.id for b in buyers} - {winners[0].id}
    with shop.Session() as session:
        purchases = session.scalars(select(Purchase)).all()
        assert len(purchases) == 6 and sum(p.refunded_at is None for p in purchases) == 1
    assert all("refunded" in b.last_text() for b in buyers if b is not winners[0])
    assert admin_texts(shop).count("refunded automatically") == 5


def test_free_stocked_products_hand_out_one_item_each(shop, alice, bob):
    product = shop.add_product("Promo code", price=0)
    add_stock(shop, product, "PROMO-1")
    alice.taps_data(f"1:buy:{product.id}")
    bob.taps_data(f"1:buy:{product.id}")
    assert "PROMO-1" in alice.all_texts()
    assert bob.last_toast() == "Sorry, it has just sold out." and "PROMO-1" not in bob.all_texts()
    assert shop.purchases() == [("alice", "Promo code", 0, "free")]


def test_a_free_item_goes_once_to_each_customer(shop, alice, bob):
    product = shop.add_product("Promo code", price=0)
    add_stock(shop, product, "PROMO-1", "PROMO-2", "PROMO-3")
    alice.taps_data(f"1:buy:{product.id}")
    alice.taps_data(f"1:buy:{product.id}")  # again: she sees her code, she gets no second one
    bob.taps_data(f"1:buy:{product.id}")
    assert alice.all_texts().count("PROMO-1") == 2 and "PROMO-2" not in alice.all_texts()
    assert "PROMO-2" in bob.all_texts()
    assert stock_of(shop, product) == ["PROMO-1", "PROMO-2", "PROMO-3"] and len(shop.purchases()) == 2
    alice.sends(f"/start p_{product.id}")
    assert alice.button_labels() == ["✅ Yours — open", "⬅️ Back"]


def test_a_stocked_product_deleted_before_any_sale_takes_its_stock_along(shop, seller):
    product = shop.add_product("Key")
    add_stock(shop, product, "K1", "K2")
    seller.taps_data(f"1:adel:{product.id}")
    seller.taps_data(f"1:adelok:{product.id}")
    with shop.Session() as session:
        assert session.get(Product, product.id) is None
        assert session.scalar(select(func.count(models.StockItem.id))) == 0


def test_low_stock_alert_reaches_the_admins(shop, seller, alice):
    product = shop.add_product("Key", price=0)
    add_stock(shop, product, *[f"K{n}" for n in range(4)])
    alice.taps_data(f"1:buy:{product.id}")
    assert "running low: 3 left" in admin_texts(shop)


def upload_stock(seller, product, send):
    seller.taps_data(f"1:ap:{product.id}")
    seller.taps("Upload stock")
    send(seller)


def stock_of(shop, product) -> list[str]:
    with shop.Session() as session:
        return session.scalars(select(models.StockItem.content).where(models.StockItem.product_id == product.id)
                               .order_by(models.StockItem.id)).all()


def test_pasted_lines_become_items_without_blanks_or_duplicates(shop, seller):
    product = shop.add_product("Key")
    add_stock(shop, product, "OLD-1")
    upload_stock(seller, product, lambda s: s.sends("NEW-1\n\n  NEW-2  \nNEW-1\nOLD-1\n\u200b"))
    assert "Added 2 items, skipped 2 duplicates" in seller.last_text()
    assert stock_of(shop, product) == ["OLD-1", "NEW-1", "NEW-2"]
    assert "Stock: 3 unsold items" in seller.last_text()


def test_a_text_file_with_crlf_and_a_bom_is_read_line_by_line(shop, seller):
    product = shop.add_product("Key")
    content = "\ufeffKEY-1\r\nKEY-2\r\n\r\nKEY-2\r\nКЛЮЧ-3\r\n".encode()
    upload_stock(seller, product, lambda s: s.sends_document("LIST", "keys.txt", content=content))
    assert stock_of(shop, product) == ["KEY-1", "KEY-2", "КЛЮЧ-3"]
    assert "Added 3 items, skipped 1 duplicates" in seller.last_text()


def test_a_csv_from_russian_windows_excel_is_read(shop, seller):
    product = shop.add_product("Account")
    content = "логин1;пароль1\r\nлогин2;пароль2\r\n".encode("cp1251")
    upload_stock(seller, product, lambda s: s.sends_document("CSV", "accounts.csv", content=content))
    assert stock_of(shop, product) == ["логин1;пароль1", "логин2;пароль2"]


def test_a_10000_line_file_is_added_in_one_go(shop, seller):
    product = shop.add_product("Key")
    content = "\n".join(f"KEY-{n:05d}" for n in range(10_000)).encode()
    started = time.monotonic()
    upload_stock(seller, product, lambda s: s.sends_document("BIG", "keys.txt", content=content))
    assert time.monotonic() - started < 5
    assert "Added 10000 items" in seller.last_text()
    assert len(stock_of(shop, product)) == 10_000


def test_a_binary_file_named_txt_is_refused(shop, seller):
    product = shop.add_product("Key")
    upload_stock(seller, product, lambda s: s.sends_document("BIN", "keys.txt", content=b"\x89PNG\x00\x01"))
    assert "not text" in seller.last_text()
    assert stock_of(shop, product) == []


def test_a_file_telegram_cannot_hand_over_is_asked_for_again(shop, seller):
    product = shop.add_product("Key")
    shop.api.fail("getFile", 400, "Bad Request: invalid file_id")
    upload_stock(seller, product, lambda s: s.sends_document("LIST", "keys.txt", content=b"K1\nK2"))
    assert "could not download that file" in seller.last_text()
    seller.sends_document("LIST", "keys.txt", content=b"K1\nK2")
    assert stock_of(shop, product) == ["K1", "K2"]


def test_any_other_file_is_one_item_delivered_by_file_id(shop, seller, alice):
    product = shop.add_product("Ticket", price=0, hidden="")
    upload_stock(seller, product, lambda s: s.sends_document("TICKET-PDF", "ticket-17.pdf", caption="Seat 17"))
    alice.taps_data(f"1:buy:{product.id}")
    assert shop.api.of("sendDocument")[-1].params["document"] == "TICKET-PDF"
    assert "Seat 17" in alice.all_texts()


def test_removing_unsold_items_keeps_the_sold_ones(shop, seller, alice):
    product = shop.add_product("Key", price=0)
    add_stock(shop, product, "K1", "K2", "K3")
    alice.taps_data(f"1:buy:{product.id}")
    seller.taps_data(f"1:ap:{product.id}")
    seller.taps("Remove unsold")
    assert "Remove the 2 unsold items?" in seller.last_text()
    seller.taps("Remove unsold")
    assert seller.last_toast() == "Removed 2 unsold items."
    assert stock_of(shop, product) == ["K1"]
    before = alice.all_texts().count("K1")
    alice.sends("/purchases")
    alice.taps("Key")
    assert alice.all_texts().count("K1") == before + 1


def test_notify_me_tells_each_waiting_customer_once(shop, seller, alice, bob):
    product = shop.add_product("Gift card", price=10)
    add_stock(shop, product, "G1")
    buys(alice, product)
    bob.sends(f"/start p_{product.id}")
    bob.taps("🔔")
    assert bob.last_toast() == "🔔 We will message you when it is back in stock."
    bob.taps("🔔")  # twice: still one message later
    ira = Person(shop, 1003, "Ира", language_code="ru")
    ira.sends(f"/start p_{product.id}")
    ira.taps("🔔")
    upload_stock(seller, product, lambda s: s.sends("G2\nG3"))
    shop.finish_background()
    assert bob.last_text() == "🔔 Gift card is back in stock!"
    assert bob.button_labels() == ["🛍 Open"]
    assert ira.last_text() == "🔔 Gift card снова в наличии!"
    bob.taps("Open")
    assert bob.button_labels()[0] == "Buy for 10 ⭐"
    upload_stock(seller, product, lambda s: s.sends("G4"))
    shop.finish_background()
    notices = [c for c in shop.api.of("sendMessage") if c.params["chat_id"] == str(bob.id)
               and "back in stock" in c.params["text"]]
    assert len(notices) == 1


def test_a_thousand_keys_for_a_thousand_customers(shop, seller):
    """The issue's acceptance story: upload 1,000 keys, sell them all, then the 1,001st customer."""
    product = shop.add_product("License", price=5)
    keys = "\n".join(f"LIC-{n:04d}" for n in range(1000)).encode()
    upload_stock(seller, product, lambda s: s.sends_document("KEYS", "keys.txt", content=keys))
    assert "Added 1000 items" in seller.last_text()
    received = set()
    for n in range(1000):
        customer = Person(shop, 100_000 + n, f"C{n}")
        customer.pays({"invoice": {"total_amount": 5, "currency": "XTR"},
                       "payload": shopbot.invoice_payload(product.id, customer.id)})
        received |= {m["text"] for m in shop.api.messages(customer.id) if m.get("text", "").startswith("LIC-")}
    assert len(received) == 1000
    late = Person(shop, 200_000, "Late")
    late.sends(f"/start p_{product.id}")
    assert "Sold out" in late.last_text() and late.button_labels()[0] == "🔔 Notify me"


@pytest.mark.parametrize("query, found", [
    ("netflix", ["Netflix 1 month"]),
    ("NETFLIX month", ["Netflix 1 month"]),
    ("ключ", ["Ключ Office", "Windows key"]),  # in a name and in a description, any case
    ("КЛЮЧ ОФИС", ["Ключ Office"]),  # one word in the name, the other in the description
    ("netflix ключ", []),  # every word must match
    ("офис", ["Ключ Office"]),
    ("100%", ["Discount"]),  # % is a character here, not a wildcard
    ("_", []),
])
def test_search_finds_products_in_any_case_and_alphabet(shop, alice, query, found):
    shop.add_product("Netflix 1 month", description="Streaming for a month")
    shop.add_product("Ключ Office", description="Лицензия для ОФИСА")
    shop.add_product("Windows key", description="Лицензионный КЛЮЧ")
    shop.add_product("Discount", description="100% off the second")
    shop.add_product("Hidden Netflix", description="ключ", is_active=False)
    alice.sends(query)
    assert [label.rsplit(" — ", 1)[0] for label in alice.button_labels()[:-2]] == found
    alice.sends(f"/search {query}")
    assert [label.rsplit(" — ", 1)[0] for label in alice.button_labels()[:-2]] == found


def test_search_results_are_paginated(shop, alice):
    for n in range(10):
        shop.add_product(f"Course {n}")
    alice.sends("course")
    assert "10 found" in alice.last_text()
    assert alice.button_labels()[8:] == ["1/2", "Next ▶️", "🛍 Catalog", "🏠 Menu"]
    alice.taps("Next")
    assert alice.button_labels()[:2] == ["Course 8 — 25 ⭐", "Course 9 — 25 ⭐"]
    alice.taps("Course 9")
    assert alice.last_text().startswith("Course 9")


def test_nothing_found_says_so_with_a_way_on(shop, alice):
    alice.sends("hello")
    assert "Nothing found for «hello»" in alice.last_text()
    assert alice.button_labels() == ["🛍 Catalog", "🏠 Menu"]
    alice.sends("/search")
    assert "/search netflix" in alice.last_text()


# ===========================================================================
# PostgreSQL: the database server restarts under a running bot
# ===========================================================================

@pytest.mark.skipif(not os.environ.get("TEST_DATABASE_RESTART"),
                    reason="set by .ci/postgres: a command that restarts the test PostgreSQL server")
def test_the_shop_keeps_serving_across_a_postgres_restart(api, caplog):
    from conftest import ShopUnderTest, fresh_postgres_schema
    with fresh_postgres_schema() as url:
        bot = shopbot.create_bot(make_config(url), threaded=False)
        shop = ShopUnderTest(bot, api)
        product = shop.add_product("Pro", price=25, hidden="KEY-AFTER-RESTART")
        alice = Person(shop, 1001, "Alice", "alice")
        alice.sends("/catalog")
        assert alice.button_labels()[0] == "Keys (1)"

        subprocess.run(os.environ["TEST_DATABASE_RESTART"], shell=True, check=True, capture_output=True)

        alice.sends("/catalog")  # the pooled connections died with the server: pre-ping replaces them
        assert alice.last_text().startswith("🛍 Catalog") and alice.button_labels()[0] == "Keys (1)"
        assert len(api.of("sendMessage")) == 2 and "Error handling" not in caplog.text
        buys(alice, product)
        assert "KEY-AFTER-RESTART" in alice.all_texts()
        assert shop.purchases() == [("alice", "Pro", 25, "stars")]
        bot.shop.Session.kw["bind"].dispose()


# ===========================================================================
# Speed that does not depend on the catalog's size (not timing: statements and query plans)
# ===========================================================================

BIG_TABLES = ("products", "purchases", "stock_items", "users", "waitlist", "settings")


class StatementLog:
    """Every SQL statement the bot runs, with its parameters."""

    def __init__(self, engine):
        self.engine, self.statements = engine, []
        sqlalchemy_event.listen(engine, "before_cursor_execute", self.record)

    def record(self, connection, cursor, statement, parameters, context, executemany):
        self.statements.append((statement, parameters))

    def full_scans(self) -> list[str]:
        """Plan lines where SQLite would read a whole big table (or a whole index of one)."""
        raw = self.engine.raw_connection()
        try:
            scans = []
            for statement, parameters in self.statements:
                if statement.lstrip().upper().startswith("SELECT"):
                    for row in raw.cursor().execute("EXPLAIN QUERY PLAN " + statement, parameters):
                        if row[3].startswith(tuple(f"SCAN {table}" for table in BIG_TABLES)):
                            scans.append(f"{row[3]}  <-  {' '.join(statement.split())[:120]}")
            return scans
        finally:
            raw.close()


@pytest.fixture
def sqlite_shop(tmp_path, api):
    bot = shopbot.create_bot(make_config(f"sqlite:///{tmp_path / 'plans.db'}"), threaded=False)
    yield ShopUnderTest(bot, api)
    bot.shop.Session.kw["bind"].dispose()


def test_every_customer_tap_takes_at_most_4_statements_and_no_full_scan(sqlite_shop):
    shop = sqlite_shop
    categories = [shop.add_category(f"Shelf {n}", n) for n in range(3)]
    stocked = shop.add_product("Keys pack", price=5, category=categories[0])
    add_stock(shop, stocked, "K1")
    for n in range(60):
        shop.add_product(f"Item {n}", price=5, category=categories[n % 3])
    for n in range(20):  # other people's purchases
        buys(Person(shop, 50 + n, f"P{n}"), stocked if n == 0 else shop.add_product(f"X{n}", price=0))
    alice = Person(shop, 1001, "Alice", "alice")
    alice.sends("/start")
    log = StatementLog(shop.Session.kw["bind"])
    for label in ("Catalog", "Shelf 0", "Next", "Prev", "Keys pack", "🔔", "Back", "Item 3", "Buy"):
        before = len(log.statements)
        alice.taps(label)
        assert len(log.statements) - before <= 4, f"{label}: {log.statements[before:]}"
    alice.pays()
    for label in ("My purchases", "Item 3", "Back"):
        before = len(log.statements)
        alice.taps(label) if label != "My purchases" else alice.sends("/purchases")
        assert len(log.statements) - before <= 4, label
    assert log.full_scans() == []


def test_the_sales_report_reads_index_ranges_only(sqlite_shop):
    shop = sqlite_shop
    seller = Person(shop, ADMIN_ID, "Seller")
    seller.sends("/start")
    product = shop.add_product("Pro", price=5)
    buys(Person(shop, 7, "Buyer"), product)
    log = StatementLog(shop.Session.kw["bind"])
    seller.taps_data("1:asales")
    assert "1 sales · 5 ⭐" in seller.last_text()
    assert log.full_scans() == []
