"""Running the shop for real (service.py, shopbot.py's main, config.py): the first hour of a new seller.

A mistyped token, no network, no ADMIN_IDS, another currency, a damaged
database: each is one clear line. Also --check, --reprice, the systemd unit,
and what reaches the log.
"""
from __future__ import annotations

import logging
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path

import pytest
import requests
from sqlalchemy import select
from telebot import apihelper

import pricing
import shopbot
from conftest import (
    ADMIN_ID,
    TOKEN,
    FakeBotApiServer,
    FakeResponse,
    Person,
    ShopUnderTest,
    TelegramRefusal,
    free_port,
    make_config,
)
from models import SUBSCRIPTION, Category, Product, Purchase, User
from shopkit import (
    Config,
    ConfigError,
    DatabaseError,
    RedactSecrets,
    Setting,
    close_database,
    counted,
    decimals,
    describe_database,
    format_price,
    load_config,
    number,
    open_database,
    parse_price,
    service,
)
from shopkit import bot as shopkit_bot
from shopkit import config as config_module

HERE = Path(__file__).resolve().parent.parent  # the project's root
REJECTED = "shopbot: Telegram rejected BOT_TOKEN: copy it again from @BotFather\n"
# A token of this test run's own: a shop started here must not find another run's shop holding the instance lock.
RUN_TOKEN = f"{os.getpid()}:TEST-service-token"


def shopbot_env(tmp_path: Path, api_url: str, **settings) -> dict:
    clean = {k: v for k, v in os.environ.items() if k not in ("ADMIN_IDS", "CURRENCY", "PAYMENT_PROVIDER_TOKEN")}
    return {**clean, "BOT_TOKEN": RUN_TOKEN, "TELEGRAM_API_URL": api_url,
            "DATABASE_URL": f"sqlite:///{tmp_path / 'shop.db'}", **settings}


def run_shopbot(env: dict, *arguments: str, timeout: float = 20) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(HERE / "shopbot.py"), *arguments], env=env, capture_output=True,
                          text=True, timeout=timeout, cwd=HERE)


def start_shopbot(env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(HERE / "shopbot.py")], env=env, cwd=HERE,
                            stderr=subprocess.PIPE, text=True)


def wait_for(condition, seconds: float = 15) -> bool:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    return condition()


def stop(process: subprocess.Popen) -> str:
    """SIGTERM, as systemd stops it; returns its log."""
    process.send_signal(signal.SIGTERM)
    _, log = process.communicate(timeout=10)
    assert process.returncode == 0 and "Traceback" not in log
    return log


def serve_until(server: FakeBotApiServer, env: dict, method: str) -> str:
    """Start the shop on ``server``, stop it once it has called ``method``; returns its log."""
    process = start_shopbot(env)
    try:
        assert wait_for(lambda: method in server.methods()), f"the shop never called {method}"
        return stop(process)
    finally:
        process.kill()
        server.httpd.shutdown()


class Refusing(FakeBotApiServer):
    """A Bot API that answers one method with an error, e.g. getMe with 401 Unauthorized."""

    def __init__(self, method: str, code: int, description: str):
        self.refused = (method, code, description)
        super().__init__()

    def answer(self, method: str, params: dict):
        if method == self.refused[0]:
            raise TelegramRefusal(*self.refused[1:])
        return super().answer(method, params)


# ---------------------------------------------------------------------------
# The token, and an unreachable Telegram
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("code, description", [(401, "Unauthorized"), (404, "Not Found")])
def test_a_rejected_token_is_one_line_and_exit_code_2(tmp_path, code, description):
    server = Refusing("getMe", code, description)  # Telegram gives 404 for a malformed token
    try:
        result = run_shopbot(shopbot_env(tmp_path, server.url))
    finally:
        server.httpd.shutdown()
    assert (result.returncode, result.stderr) == (2, REJECTED)
    assert server.methods() == ["getMe"]  # checked first: nothing else was tried, and nothing polls
    assert not (tmp_path / "shop.db").exists()


def test_a_token_that_is_not_one_is_refused_before_asking_telegram():
    with pytest.raises(ConfigError, match="copy it again from @BotFather"):
        load_config({"BOT_TOKEN": "123456789AAE-no-colon"})


def test_an_unreachable_telegram_is_logged_once_and_its_return_once(tmp_path):
    port = free_port()  # nobody listens there yet: every call is refused
    process = start_shopbot(shopbot_env(tmp_path, f"http://127.0.0.1:{port}"))
    try:
        time.sleep(2.5)  # the shop retries at 0.5, 1.5, 3.5 s...
        server = FakeBotApiServer(port)  # ...and Telegram comes back
        assert wait_for(lambda: "getUpdates" in server.methods()), "the shop never polled"
        log = stop(process)
    finally:
        process.kill()
    assert log.count(f"cannot reach Telegram at 127.0.0.1:{port} (connection refused), retrying") == 1
    assert log.count("answers again") == 1
    assert "urllib3" not in log and "/bot" not in log and "Max retries" not in log
    assert "Started as @shop_bot: open https://t.me/shop_bot" in log
    assert log.count("No ADMIN_IDS: nobody can open /admin") == 1
    server.httpd.shutdown()


class Outage:
    """getUpdates as a dead network answers it: ``failures`` connection errors, then nothing new (and stop)."""

    def __init__(self, api, failures: int, stop: threading.Event):
        self.api, self.failures, self.stop = api, failures, stop

    def __call__(self, http_method, url, **kwargs):
        if not url.endswith("/getUpdates"):
            return self.api(http_method, url, **kwargs)
        if self.failures:
            self.failures -= 1
            raise requests.ConnectionError(f"HTTPSConnectionPool(host='api.telegram.org', port=443): Max retries "
                                           f"exceeded with url: /bot{TOKEN}/getUpdates (Caused by "
                                           "NameResolutionError(\"Failed to resolve 'api.telegram.org'\"))")
        self.stop.set()
        return FakeResponse(200, {"ok": True, "result": []})


def test_polling_waits_out_an_outage_with_growing_pauses_and_says_so_once(shop, monkeypatch, caplog):
    waits, stopped = [], threading.Event()
    monkeypatch.setattr(apihelper, "CUSTOM_REQUEST_SENDER", Outage(shop.api, failures=9, stop=stopped))
    shopkit_bot.poll(shop.bot, service.TelegramLink(None, sleep=waits.append), stopped)
    assert waits == [0.5, 1, 2, 4, 8, 16, 32, 60, 60]  # up to a minute
    assert caplog.text.count("cannot reach Telegram at api.telegram.org (name not resolved: no DNS?), retrying") == 1
    assert caplog.text.count("answers again") == 1 and TOKEN not in caplog.text and "Max retries" not in caplog.text


def test_a_failed_command_menu_is_registered_later(shop, caplog):
    now = [1000.0]
    menu = shopkit_bot.CommandMenu(shop.bot, clock=lambda: now[0])
    shop.api.fail("setMyCommands", 502, "Bad Gateway")
    menu.register_if_due()
    assert "Could not register the command menu (502 Bad Gateway); trying again in 5 minutes" in caplog.text
    assert "setMyCommands?" not in caplog.text and "/bot" not in caplog.text
    menu.register_if_due()
    assert len(shop.api.of("setMyCommands")) == 1  # not at once...
    now[0] += shopkit_bot.COMMANDS_RETRY
    menu.register_if_due()
    menu.register_if_due()
    assert len(shop.api.of("setMyCommands")) == 3  # ...but later: the failed one, then English and Russian


# ---------------------------------------------------------------------------
# No ADMIN_IDS
# ---------------------------------------------------------------------------

def test_admin_without_any_admin_ids_tells_the_sender_how_to_become_admin(database_url, api, caplog):
    bot = shopbot.create_bot(Config(token=TOKEN, database_url=database_url), threaded=False)
    shop = ShopUnderTest(bot, api)
    seller = Person(shop, 4242, "Seller", language_code="ru")
    seller.sends("/admin")
    assert "set ADMIN_IDS=4242 and restart" in caplog.text
    assert "ADMIN_IDS=4242" in seller.last_text() and "ваш id в Telegram" in seller.last_text()
    assert seller.button_labels()[0] == "🛍 Каталог"
    bot.shop.Session.kw["bind"].dispose()


def test_with_admins_configured_a_strangers_admin_is_only_logged(shop, alice, caplog):
    alice.sends("/admin")
    assert "User 1001 sent /admin, but is not in ADMIN_IDS: shown the customer's menu instead (on_admin). If it " \
           "is you, add 1001 to ADMIN_IDS" in caplog.text and "ADMIN_IDS=" not in caplog.text
    assert "tried admin action" not in caplog.text
    assert "ADMIN_IDS" not in alice.all_texts()


# ---------------------------------------------------------------------------
# python shopbot.py --check
# ---------------------------------------------------------------------------

def test_check_passes_line_by_line_without_polling(tmp_path):
    open_database(f"sqlite:///{tmp_path / 'shop.db'}").kw["bind"].dispose()
    server = FakeBotApiServer()
    server.answer = lambda method, params: {"id": ADMIN_ID, "type": "private", "first_name": "Seller"} \
        if method == "getChat" else FakeBotApiServer.answer(server, method, params)
    try:
        result = run_shopbot(shopbot_env(tmp_path, server.url, ADMIN_IDS=str(ADMIN_ID)), "--check")
    finally:
        server.httpd.shutdown()
    lines = result.stdout.splitlines()
    assert result.returncode == 0, result.stdout
    assert [line.split(":")[0] for line in lines] == ["configuration", "database", "disk", "lock", "journal",
                                                      "telegram", "payments", "backups", f"admin {ADMIN_ID}",
                                                      "All checks passed."]
    assert "revision" in lines[1] and "up to date; quick_check ok" in lines[1]
    assert f"{tmp_path / 'shop.db.payments.jsonl'} is writable" in lines[4]
    assert "@shop_bot" in lines[5] and "Telegram Stars" in lines[6] and "Seller has opened the bot" in lines[8]
    assert server.methods() == ["getMe", "getChat"] and RUN_TOKEN not in result.stdout + result.stderr


def test_check_fails_when_the_payments_journal_cannot_be_written(tmp_path, capsys):
    (tmp_path / "shop.db.payments.jsonl").mkdir()  # not a file it can append to (as a read-only folder is not)
    assert service.check_journal(make_config(f"sqlite:///{tmp_path / 'shop.db'}")) is False
    assert f"journal: FAIL — {tmp_path / 'shop.db.payments.jsonl'} cannot be written" in capsys.readouterr().out


def test_check_creates_no_journal(tmp_path, capsys):
    assert service.check_journal(make_config(f"sqlite:///{tmp_path / 'shop.db'}")) is True
    assert not (tmp_path / "shop.db.payments.jsonl").exists()


def test_check_fails_on_a_rejected_token_and_warns_about_an_admin_who_never_opened_the_bot(tmp_path):
    server = Refusing("getMe", 401, "Unauthorized")
    try:
        rejected = run_shopbot(shopbot_env(tmp_path, server.url), "--check")
        server.refused = ("getChat", 400, "Bad Request: chat not found")
        unopened = run_shopbot(shopbot_env(tmp_path, server.url, ADMIN_IDS="77"), "--check")
    finally:
        server.httpd.shutdown()
    assert rejected.returncode == 1
    assert "telegram: FAIL — Telegram rejected BOT_TOKEN: copy it again from @BotFather" in rejected.stdout
    assert "database: ok — " in rejected.stdout and "does not exist yet" in rejected.stdout
    assert not (tmp_path / "shop.db").exists()  # --check creates nothing
    assert unopened.returncode == 0
    assert "admin 77: WARN — has not opened the bot" in unopened.stdout
    assert "If it is not your id: send /admin to the bot, and its log names your id" in unopened.stdout


def test_check_says_how_to_find_your_own_id_when_there_are_no_admin_ids(capsys):
    assert service.check_admins(Config(token=TOKEN, database_url="sqlite://")) is True
    assert "No ADMIN_IDS: nobody can open /admin. To find your Telegram id, start the shop and send /admin to the " \
           "bot: it answers with your id" in capsys.readouterr().out


def test_check_fails_on_a_bad_setting_or_a_damaged_database(tmp_path):
    bad_setting = run_shopbot(shopbot_env(tmp_path, "http://127.0.0.1:9", CURRENCY="DOLLARS"), "--check")
    assert bad_setting.returncode == 1 and bad_setting.stdout.startswith("configuration: FAIL — CURRENCY=DOLLARS")
    (tmp_path / "shop.db").write_bytes(b"not a database at all" * 100)
    server = FakeBotApiServer()
    try:
        damaged = run_shopbot(shopbot_env(tmp_path, server.url), "--check")
    finally:
        server.httpd.shutdown()
    assert damaged.returncode == 1 and "database: FAIL — the database is damaged" in damaged.stdout


# ---------------------------------------------------------------------------
# The currency: CURRENCY checked, the catalog's currency recorded, --reprice
# ---------------------------------------------------------------------------

def test_a_currency_telegram_does_not_take_is_one_line_and_exit_code_2(tmp_path):
    env = shopbot_env(tmp_path, "http://127.0.0.1:9", CURRENCY="DOLLARS", PAYMENT_PROVIDER_TOKEN="1:TEST:x")
    result = run_shopbot(env)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "CURRENCY=DOLLARS is not a currency Telegram accepts" in result.stderr
    for currency in ("XXX", "BTC", "rubles"):
        with pytest.raises(ConfigError, match="is not a currency Telegram accepts"):
            load_config({"BOT_TOKEN": TOKEN, "CURRENCY": currency, "PAYMENT_PROVIDER_TOKEN": "1:TEST:x"})


def test_money_follows_telegrams_currency_table():
    assert (decimals("XTR"), decimals("JPY"), decimals("KRW"), decimals("EUR"), decimals("UZS")) == (0, 0, 0, 2, 2)
    assert load_config({"BOT_TOKEN": TOKEN, "CURRENCY": "jpy", "PAYMENT_PROVIDER_TOKEN": "1:LIVE:x"}).currency == "JPY"
    assert format_price(1500, "JPY") == "1500 JPY" and format_price(999, "USD") == "$9.99"


def test_roubles_show_the_russian_way():
    assert format_price(150050, "RUB") == "1500,50\u00a0₽" and format_price(1500050, "RUB") == "15\u202f000,50\u00a0₽"
    assert format_price(99000, "RUB") == "990\u00a0₽" and format_price(123456700, "RUB") == "1\u202f234\u202f567\u00a0₽"
    assert parse_price("1 500,50", "RUB") == parse_price("1\u00a0500,50", "RUB") == 150050
    assert parse_price("10\u202f000", "RUB") == 1000000  # as format_price writes it


def test_one_number_format_everywhere_in_both_languages():
    """Thousands apart by a narrow no-break space (U+202F) from 10 000 up, in prices and counts alike."""
    assert format_price(10000, "XTR") == "10\u202f000 ⭐" and format_price(1000000, "USD") == "$10\u202f000"
    assert counted("en", "n_sales", 12345) == "12\u202f345 sales" and counted("ru", "n_sales", 10000).startswith(
        "10\u202f000 ")
    assert number(9999) == "9999" and number(1234567) == "1\u202f234\u202f567"
    assert parse_price(format_price(10000, "XTR").removesuffix(" ⭐"), "XTR") == 10000


def test_the_catalog_currency_is_recorded_and_another_currency_refused(session):
    session.add(Product(name="Pro", price=150, hidden_content="K", category=Category(name="Keys")))
    session.commit()
    pricing.check_catalog_currency(session, "XTR")
    assert session.get(Setting, pricing.CATALOG_CURRENCY).value == "XTR"
    with pytest.raises(service.StartRefused, match=r"priced in XTR but CURRENCY is USD.*--reprice"):
        pricing.check_catalog_currency(session, "USD")
    session.rollback()
    assert session.get(Setting, pricing.CATALOG_CURRENCY).value == "XTR"


def test_a_free_catalog_may_change_currency_and_an_old_shop_is_known_by_its_sales(session):
    session.add(Product(name="Guide", price=0, hidden_content="G", category=Category(name="Free")))
    session.commit()
    pricing.check_catalog_currency(session, "XTR")
    pricing.check_catalog_currency(session, "USD")  # nothing has a price: nothing changes meaning
    assert session.get(Setting, pricing.CATALOG_CURRENCY).value == "USD"
    session.delete(session.get(Setting, pricing.CATALOG_CURRENCY))  # a shop from before the currency was recorded
    product = Product(name="Pro", price=150, hidden_content="K", category=Category(name="Keys"))
    session.add(Purchase(user=User(telegram_id=5), product=product, price=150, currency="XTR", payment_id="c1"))
    session.commit()
    with pytest.raises(service.StartRefused, match="priced in XTR"):
        pricing.check_catalog_currency(session, "USD")


def test_starting_with_another_currency_is_refused_in_one_line(tmp_path):
    with open_database(f"sqlite:///{tmp_path / 'shop.db'}")() as session:
        session.add(Product(name="Pro", price=150, hidden_content="K", category=Category(name="Keys")))
        session.add(Setting(key=pricing.CATALOG_CURRENCY, value="XTR"))
        session.commit()
        session.get_bind().dispose()
    server = FakeBotApiServer()
    try:
        result = run_shopbot(shopbot_env(tmp_path, server.url, CURRENCY="USD", PAYMENT_PROVIDER_TOKEN="1:TEST:x"))
    finally:
        server.httpd.shutdown()
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "priced in XTR but CURRENCY is USD" in result.stderr and "python shopbot.py --reprice" in result.stderr
    assert "getUpdates" not in server.methods()


def test_reprice_converts_the_catalog_once(database_url, capsys):
    with open_database(database_url)() as session:
        keys = Category(name="Keys")
        session.add_all([Product(name="Pro", price=450, hidden_content="K", category=keys),
                         Product(name="Tiny", price=1, hidden_content="T", category=keys),
                         Product(name="Guide", price=0, hidden_content="G", category=keys),
                         Setting(key=pricing.CATALOG_CURRENCY, value="XTR")])
        session.commit()
        session.get_bind().dispose()
    usd = make_config(database_url, provider_token="1:TEST:x", currency="USD")
    assert pricing.reprice(usd, "0.013") == 0
    with open_database(database_url)() as session:
        assert session.scalars(select(Product.price).order_by(Product.id)).all() == [585, 1, 0]  # a paid one stays paid
        assert session.get(Setting, pricing.CATALOG_CURRENCY).value == "USD"
        session.get_bind().dispose()
    printed = capsys.readouterr().out
    assert "Pro: 450 ⭐ -> $5.85" in printed
    assert "Warning: under $1, the least the shop charges in USD (Telegram refuses smaller payments): #2 Tiny " \
           "($0.01)." in printed
    with pytest.raises(service.StartRefused, match="already priced in USD"):
        pricing.reprice(usd, "0.013")


def test_reprice_leaves_a_subscription_in_stars_and_says_so(database_url, capsys):
    with open_database(database_url)() as session:
        keys = Category(name="Keys")
        session.add_all([Product(name="Pro", price=450, hidden_content="K", category=keys),
                         Product(name="VIP", price=300, kind=SUBSCRIPTION, chat_id=-100, chat_title="VIP",
                                 hidden_content="", category=keys),
                         Setting(key=pricing.CATALOG_CURRENCY, value="XTR")])
        session.commit()
        session.get_bind().dispose()
    assert pricing.reprice(make_config(database_url, provider_token="1:TEST:x", currency="USD"), "0.013") == 0
    with open_database(database_url)() as session:
        assert session.scalars(select(Product.price).order_by(Product.id)).all() == [585, 300]
        session.get_bind().dispose()
    printed = capsys.readouterr().out
    assert "#2 VIP: 300 ⭐ a month, left in Stars (Telegram bills subscriptions in Stars only)" in printed
    assert "$3.90" not in printed and "Repriced 1 products" in printed


def test_reprice_refuses_a_rate_that_breaks_telegrams_limits_and_changes_nothing(session, database_url):
    session.add(Product(name="Pro", price=450, hidden_content="K", category=Category(name="Keys")))
    session.add(Setting(key=pricing.CATALOG_CURRENCY, value="XTR"))
    session.commit()
    usd = make_config(database_url, provider_token="1:TEST:x", currency="USD")
    with pytest.raises(service.StartRefused, match="over the"):
        pricing.reprice(usd, "1000")
    with pytest.raises(service.StartRefused, match="e.g. --reprice 0.013"):
        pricing.reprice(usd, "-1")
    session.expire_all()
    assert session.scalar(select(Product.price)) == 450
    assert pricing.convert(450, Decimal("0.013"), "XTR", "USD") == 585


# ---------------------------------------------------------------------------
# The database: damaged, missing, and a clean stop
# ---------------------------------------------------------------------------

def damage_quietly(path: Path) -> None:
    """Break a B-tree page the way a bad disk does, leaving a file that still opens and answers queries."""
    data = bytearray(path.read_bytes())
    for page in range(2, len(data) // 4096):
        broken = bytearray(data)
        broken[page * 4096 + 3: page * 4096 + 5] = b"\x00\x01"  # a wrong count of cells in the page
        path.write_bytes(broken)
        with sqlite3.connect(path) as raw:
            if raw.execute("PRAGMA quick_check").fetchone() != ("ok",):
                raw.execute("SELECT count(*) FROM products").fetchone()  # it still answers
                return
    raise AssertionError("no page to damage")


def test_a_damaged_database_that_still_opens_is_refused_in_one_line(tmp_path):
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    with open_database(url)() as session:
        session.add_all(Product(name=f"P{n}", price=1, hidden_content="x" * 200, description="d" * 300,
                                category=Category(name=f"C{n}")) for n in range(300))
        session.commit()
        session.get_bind().dispose()
    damage_quietly(tmp_path / "shop.db")
    with pytest.raises(DatabaseError, match="damaged") as refused:
        open_database(url)
    assert "\n" not in str(refused.value) and "quick_check" in str(refused.value)


def test_a_missing_folder_a_folder_or_garbage_is_one_line(tmp_path):
    (tmp_path / "garbage.db").write_bytes(os.urandom(5000))
    cases = {"missing/shop.db": "does not exist: create it", ".": "is a folder, not a database file",
             "garbage.db": "damaged or is not a SQLite database"}
    for name, says in cases.items():
        url = f"sqlite:///{tmp_path / name}"
        for attempt in (open_database, describe_database):
            with pytest.raises(DatabaseError, match=says) as refused:
                attempt(url)
            assert "\n" not in str(refused.value)
    assert not (tmp_path / "missing").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file")
def test_an_unreadable_database_is_one_line(tmp_path):
    (tmp_path / "shop.db").write_bytes(b"")
    (tmp_path / "shop.db").chmod(0)
    with pytest.raises(DatabaseError, match="may not read and write"):
        open_database(f"sqlite:///{tmp_path / 'shop.db'}")


def test_a_damaged_database_stops_the_start_in_one_line(tmp_path):
    (tmp_path / "shop.db").write_bytes(os.urandom(8192))
    server = FakeBotApiServer()
    try:
        result = run_shopbot(shopbot_env(tmp_path, server.url))
    finally:
        server.httpd.shutdown()
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("shopbot: the database is damaged") and "getUpdates" not in server.methods()


class OneCustomer(FakeBotApiServer):
    """A Bot API with one customer who sends /start."""

    def answer(self, method: str, params: dict):
        if method == "getUpdates" and int(params.get("offset") or 0) <= 1:
            user = {"id": 77, "is_bot": False, "first_name": "Eve"}
            return [{"update_id": 1, "message": {"message_id": 1, "date": 1, "from": user, "text": "/start",
                                                 "chat": {"id": 77, "type": "private"},
                                                 "entities": [{"type": "bot_command", "offset": 0, "length": 6}]}}]
        if method == "sendMessage":
            return {"message_id": 2, "date": 1, "chat": {"id": 77, "type": "private"}, "text": "hi"}
        return super().answer(method, params)


def test_closing_the_database_moves_the_write_ahead_log_into_shop_db(tmp_path):
    sessions = open_database(f"sqlite:///{tmp_path / 'shop.db'}")
    with sessions() as session:
        session.add(User(telegram_id=77))
        session.commit()
    (tmp_path / "copied").mkdir()
    shutil.copy(tmp_path / "shop.db", tmp_path / "copied" / "before.db")  # the data is still in shop.db-wal
    close_database(sessions)
    shutil.copy(tmp_path / "shop.db", tmp_path / "copied" / "after.db")
    with sqlite3.connect(tmp_path / "copied" / "before.db") as before, \
            sqlite3.connect(tmp_path / "copied" / "after.db") as after:
        assert before.execute("SELECT count(*) FROM users").fetchone() == (0,)
        assert after.execute("SELECT telegram_id FROM users").fetchall() == [(77,)]
    assert not (tmp_path / "shop.db-wal").exists() or (tmp_path / "shop.db-wal").stat().st_size == 0


def test_a_clean_stop_leaves_everything_in_shop_db_alone(tmp_path):
    server = OneCustomer()
    serve_until(server, shopbot_env(tmp_path, server.url), "sendMessage")
    assert not (tmp_path / "shop.db-wal").exists() or (tmp_path / "shop.db-wal").stat().st_size == 0
    (tmp_path / "copied").mkdir()
    shutil.copy(tmp_path / "shop.db", tmp_path / "copied" / "shop.db")  # what a seller who copies the file gets
    with sqlite3.connect(tmp_path / "copied" / "shop.db") as copy:
        assert copy.execute("SELECT telegram_id FROM users").fetchall() == [(77,)]


# ---------------------------------------------------------------------------
# Logs: the level, and no secret ever
# ---------------------------------------------------------------------------

def test_a_customer_browsing_logs_nothing_at_info(shop, alice, caplog):
    shop.add_product("Pro", price=25)
    caplog.set_level(logging.INFO)
    alice.sends("/start")
    alice.taps("Catalog")
    alice.taps("Keys")
    alice.taps("Pro")
    alice.taps("Back")
    assert alice.last_text().startswith("🗂 Keys")  # back from the product card
    assert caplog.records == []


def test_log_level_is_read_and_checked():
    assert load_config({"BOT_TOKEN": TOKEN}).log_level == "INFO"
    assert load_config({"BOT_TOKEN": TOKEN, "LOG_LEVEL": "warning"}).log_level == "WARNING"
    with pytest.raises(ConfigError, match="LOG_LEVEL"):
        load_config({"BOT_TOKEN": TOKEN, "LOG_LEVEL": "LOUD"})


def test_every_threads_crash_goes_through_the_filter():
    script = f"""
import threading
from shopkit import config
config.setup_logging("INFO", {TOKEN!r}, "PROVIDER-SECRET")
def die():
    raise ConnectionError("Max retries exceeded with url: /bot{TOKEN}/sendInvoice?provider_token=PROVIDER-SECRET")
thread = threading.Thread(target=die, name="background")
thread.start()
thread.join()
raise RuntimeError("https://api.telegram.org/bot{TOKEN}/sendMessage?text=HIDDEN-CONTENT")
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=HERE, timeout=20)
    assert "Uncaught error in thread background" in result.stderr and "Uncaught error in thread main" in result.stderr
    assert result.stderr.count("<BOT_TOKEN>") == 2
    for secret in (TOKEN, "PROVIDER-SECRET", "HIDDEN-CONTENT"):
        assert secret not in result.stderr


def test_the_filter_hides_tokens_and_every_query_string():
    record = logging.LogRecord("TeleBot", 40, __file__, 1, "Failed: %s", (
        f"url: https://api.telegram.org/bot{TOKEN}/sendMessage?chat_id=1&text=KEY-123 and PROVIDER",), None)
    RedactSecrets(TOKEN, "PROVIDER", "").filter(record)
    message = record.getMessage()
    assert "KEY-123" not in message and TOKEN not in message and "PROVIDER" not in message
    assert message == "Failed: url: https://api.telegram.org/bot<BOT_TOKEN>/sendMessage?<query hidden> and <secret>"


def test_parameters_travel_in_the_request_body(tmp_path):
    server = FakeBotApiServer()
    log = serve_until(server, shopbot_env(tmp_path, server.url, PAYMENT_PROVIDER_TOKEN="1:TEST:PROVIDER-SECRET",
                                          CURRENCY="USD"), "getUpdates")
    assert "PROVIDER-SECRET" not in log
    paths = [call["path"] for _, _, call in server.calls]
    assert paths and all("?" not in path for path in paths)
    assert any("commands" in call["body"] for method, _, call in server.calls if method == "setMyCommands")


def test_secrets_of_a_configuration():
    settings = {"BOT_TOKEN": TOKEN, "PAYMENT_PROVIDER_TOKEN": "1:LIVE:abc", "CURRENCY": "EUR",
                "DATABASE_URL": "postgresql+psycopg://shop:s3cret@db/shop"}
    assert config_module.secrets_of(load_config(settings)) == [TOKEN, "1:LIVE:abc", "s3cret"]


# ---------------------------------------------------------------------------
# The systemd unit
# ---------------------------------------------------------------------------

UNIT = HERE / "deploy" / "shopbot.service"


def test_the_service_file_runs_the_check_first_as_its_own_user_with_the_settings_outside_it():
    lines = UNIT.read_text().splitlines()
    for line in ("User=shopbot", "WorkingDirectory=/opt/shopbot", "EnvironmentFile=/etc/shopbot.env",
                 "ExecStartPre=/opt/shopbot/.venv/bin/python shopbot.py --check",
                 "ExecStart=/opt/shopbot/.venv/bin/python shopbot.py", "Restart=on-failure"):
        assert line in lines
    assert not [line for line in lines if line.startswith(("Environment=", "User=root"))]  # the token: not here


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_the_service_file_passes_systemd_analyze_verify(tmp_path):
    # verify checks that the programs exist: point the unit at this machine's python instead of /opt/shopbot's.
    unit = tmp_path / "shopbot.service"
    unit.write_text(UNIT.read_text().replace("/opt/shopbot/.venv/bin/python", sys.executable))
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stderr == "", result.stderr
