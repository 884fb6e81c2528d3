"""The shop end to end: configuration, start-up, polling, crashes and restarts, and a customer's whole journey."""
from __future__ import annotations

import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from telebot.apihelper import ApiTelegramException

import shopbot
from conftest import (
    TOKEN,
    BadGateway,
    FakeBotApiServer,
    Person,
    ShopUnderTest,
    add_stock,
    admin_texts,
    buys,
    make_config,
)
from models import Category, Product
from shopkit import ConfigError, RedactSecrets, load_config, open_database
from shopkit import bot as shopkit_bot
from shopkit.instance import hold_instance_lock

HERE = Path(__file__).resolve().parent.parent  # the project's root


def test_a_customer_finds_buys_and_opens_again_what_they_bought(shop, seller, alice):
    """The whole journey, as the README tells it: catalog, card, pay with Stars, delivery, My purchases."""
    keys = shop.add_category("🔑 Software keys")
    product = shop.add_product("Windows 11 Pro", price=450, hidden="Activate in Settings.", category=keys)
    add_stock(shop, product, "W11P-KEY-1")
    alice.sends("/start")
    alice.taps("Catalog")
    alice.taps("Software keys")
    alice.taps("Windows 11 Pro")
    assert "450 ⭐" in alice.last_text() and "W11P-KEY-1" not in alice.all_texts()
    alice.taps("Buy")
    assert alice.pays()["ok"] is True
    assert "Thank you for your purchase" in alice.all_texts() and "W11P-KEY-1" in alice.all_texts()
    assert "New sale: Windows 11 Pro — 450 ⭐" in admin_texts(shop)
    alice.sends("/purchases")
    alice.taps("Windows 11 Pro")
    assert alice.all_texts().count("W11P-KEY-1") == 2 and "Activate in Settings." in alice.last_text()
    assert shop.purchases() == [("alice", "Windows 11 Pro", 450, "stars")]


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
    config = load_config({"BOT_TOKEN": TOKEN, "ADMIN_IDS": " 1, 22 ,"})
    assert config.admin_ids == {1, 22}
    assert (config.currency, config.provider_token, config.payment_type) == ("XTR", "", "stars")
    assert config.database_url == "sqlite:///shop.db" and config.api_url is None


def test_config_with_a_card_provider():
    config = load_config({"BOT_TOKEN": TOKEN, "PAYMENT_PROVIDER_TOKEN": "pay:1", "CURRENCY": "eur"})
    assert (config.currency, config.payment_type) == ("EUR", "card")
    with pytest.raises(ConfigError, match="PAYMENT_PROVIDER_TOKEN"):
        load_config({"BOT_TOKEN": TOKEN, "CURRENCY": "USD"})


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
    record = logging.LogRecord("TeleBot", 40, __file__, 1, "Failed: %s", (
        f"HTTPSConnectionPool: Max retries exceeded with url: /bot{TOKEN}/getUpdates",), None)
    RedactSecrets(TOKEN).filter(record)
    assert TOKEN not in record.getMessage() and "<BOT_TOKEN>" in record.getMessage()


def test_commands_are_registered_in_english_and_russian(shop):
    shopkit_bot.register_commands(shop.bot)
    calls = shop.api.of("setMyCommands")
    assert [c.params.get("language_code") for c in calls] == [None, "ru"]
    assert all(len(json.loads(c.params["commands"])) == 6 for c in calls)


def test_a_second_instance_on_the_same_database_refuses_to_start(database_url):
    first = hold_instance_lock(database_url)
    try:
        assert first is not None
        assert hold_instance_lock(database_url) is None
    finally:
        first.close()
    hold_instance_lock(database_url).close()  # free again once the first has gone


def test_a_polling_conflict_is_explained(caplog):
    conflict = ApiTelegramException("getUpdates", None, {
        "error_code": 409, "description": "Conflict: terminated by other getUpdates request"})
    handler = shopkit_bot.PollingErrors()
    assert handler.handle(conflict) and handler.handle(conflict)
    assert caplog.text.count("Another instance of this bot is running") == 1
    assert not handler.handle(ValueError("other"))


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
    with open_database(f"sqlite:///{database}")() as session:
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


@pytest.mark.skipif(not os.environ.get("TEST_DATABASE_RESTART"),
                    reason="set by .ci/postgres: a command that restarts the test PostgreSQL server")
def test_the_shop_keeps_serving_across_a_postgres_restart(api, caplog):
    from conftest import fresh_postgres_schema
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
        shop.close()
