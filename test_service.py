"""Running the shop for real (config.py, database.py): settings, money, logs and the database.

A currency Telegram does not take, a damaged database: each is one clear
line. And no secret ever reaches the log.
"""
from __future__ import annotations

import logging
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

import config as config_module
from config import ConfigError, RedactSecrets, load_config
from conftest import (
    TOKEN,
    FakeBotApiServer,
)
from database import DatabaseError, close_database, describe_database, open_database
from models import Category, Product, User
from screens import decimals, format_price, parse_price

HERE = Path(__file__).parent
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


def test_a_token_that_is_not_one_is_refused_before_asking_telegram():
    with pytest.raises(ConfigError, match="copy it again from @BotFather"):
        load_config({"BOT_TOKEN": "123456789AAE-no-colon"})


# ---------------------------------------------------------------------------
# The currency: CURRENCY checked, money counted the way Telegram counts it
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
    assert format_price(150050, "RUB") == "1\u00a0500,50\u00a0₽"
    assert format_price(99000, "RUB") == "990\u00a0₽" and format_price(123456700, "RUB") == "1\u00a0234\u00a0567\u00a0₽"
    assert parse_price("1 500,50", "RUB") == parse_price("1\u00a0500,50", "RUB") == 150050  # as format_price writes it


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


# ---------------------------------------------------------------------------
# Logs: the level, and no secret ever
# ---------------------------------------------------------------------------

def test_a_customer_browsing_logs_nothing_at_info(shop, alice, caplog):
    product = shop.add_product("Pro", price=25)
    caplog.set_level(logging.INFO)
    alice.sends("/start")
    alice.taps("Catalog")
    alice.taps("Keys")
    alice.taps("Pro")
    alice.taps("Back")
    assert alice.last_text().startswith("🗂 Keys") and product.id in [int(n) for n in "1"]
    assert caplog.records == []


def test_log_level_is_read_and_checked():
    assert load_config({"BOT_TOKEN": TOKEN}).log_level == "INFO"
    assert load_config({"BOT_TOKEN": TOKEN, "LOG_LEVEL": "warning"}).log_level == "WARNING"
    with pytest.raises(ConfigError, match="LOG_LEVEL"):
        load_config({"BOT_TOKEN": TOKEN, "LOG_LEVEL": "LOUD"})


def test_every_threads_crash_goes_through_the_filter():
    script = f"""
import threading, config
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
