"""A shop that runs for months unattended (issue 26): odd updates, odd answers, a second copy, a restore, /status.

Each test here is something a service meets sooner or later, and which
must not end the process, start a restart loop, or run the shop twice.
"""
from __future__ import annotations

import contextlib
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
from telebot import apihelper

import backups
from conftest import ADMIN_ID, FakeBotApiServer, FakeResponse, NotTheBotApi, Person
from models import Category, Product
from shopkit import DatabaseError, close_database, load_config, open_database, service
from shopkit import bot as shopkit_bot
from shopkit import config as config_module
from shopkit.config import ErrorCount
from shopkit.database import head_revision
from shopkit.instance import InstanceLock
from test_shopbot import UpdateServer, payment_update

HERE = Path(__file__).resolve().parent.parent  # the project's root
# A token of this test run's own: a shop started here must not meet another run's shop.
RUN_TOKEN = f"{os.getpid()}:TEST-unattended-token"


def wait_for(condition, seconds: float = 15) -> bool:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    return condition()


def shopbot_env(database: Path, api_url: str, **settings) -> dict:
    clean = {k: v for k, v in os.environ.items() if k not in ("ADMIN_IDS", "CURRENCY", "PAYMENT_PROVIDER_TOKEN")}
    return {**clean, "BOT_TOKEN": RUN_TOKEN, "TELEGRAM_API_URL": api_url, "DATABASE_URL": f"sqlite:///{database}",
            **settings}


def start_shopbot(env: dict, *arguments: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(HERE / "shopbot.py"), *arguments], env=env, cwd=HERE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def stop(process: subprocess.Popen) -> str:
    """SIGTERM, as systemd stops it; returns its log."""
    process.send_signal(signal.SIGTERM)
    _, log = process.communicate(timeout=10)
    return log


# ---------------------------------------------------------------------------
# Polling survives anything Telegram sends
# ---------------------------------------------------------------------------

def start_update(update_id: int, user_id: int) -> dict:
    user = {"id": user_id, "is_bot": False, "first_name": f"User {user_id}"}
    return {"update_id": update_id, "message": {
        "message_id": update_id, "date": 1, "from": user, "chat": {"id": user_id, "type": "private"},
        "text": "/start", "entities": [{"type": "bot_command", "offset": 0, "length": 6}]}}


class OneBatch:
    """getUpdates answers ``batch`` once, then nothing new (and stops polling); every call's offset is kept."""

    def __init__(self, api, batch: list, stop: threading.Event):
        self.api, self.batch, self.stop, self.offsets = api, batch, stop, []

    def __call__(self, http_method, url, params=None, **kwargs):
        if not url.endswith("/getUpdates"):
            return self.api(http_method, url, params=params, **kwargs)
        self.offsets.append((params or {}).get("offset"))
        batch, self.batch = self.batch, []
        if not batch:
            self.stop.set()
        return FakeResponse(200, {"ok": True, "result": batch})


def test_an_unreadable_update_is_skipped_and_the_rest_of_its_batch_served(shop, monkeypatch, caplog):
    no_chat_instance = {"update_id": 11, "callback_query": {
        "id": "q1", "from": {"id": 5, "is_bot": False, "first_name": "Mallory"}, "data": "SECRET-WORDS"}}
    no_date = {"update_id": 12, "message": {"message_id": 3, "chat": {"id": 6, "type": "private"},
                                            "text": "SECRET-WORDS"}}
    stopped = threading.Event()
    telegram = OneBatch(shop.api, [start_update(10, 501), no_chat_instance, no_date, start_update(13, 502)], stopped)
    monkeypatch.setattr(apihelper, "CUSTOM_REQUEST_SENDER", telegram)
    shopkit_bot.poll(shop.bot, service.TelegramLink(None, sleep=lambda _: None), stopped)
    assert shop.api.messages(501) and shop.api.messages(502)  # both customers around the bad ones were served
    assert telegram.offsets == [None, 14]  # past the unreadable ones too: Telegram must not send them again
    assert caplog.text.count("Skipped update 11: it could not be read (no 'chat_instance' field)") == 1
    assert caplog.text.count("Skipped update 12: it could not be read (no 'date' field)") == 1
    assert "SECRET-WORDS" not in caplog.text  # a customer's words never reach the log


class OddAnswers(FakeBotApiServer):
    """A Bot API behind a proxy that is having a bad day: each method first answers what is queued for it."""

    def __init__(self, odd: dict[str, list[NotTheBotApi]]):
        self.odd, self.served = odd, threading.Event()
        super().__init__()

    def answer(self, method: str, params: dict):
        if self.odd.get(method):
            raise self.odd[method].pop(0)
        if method == "getUpdates":
            if int(params.get("offset") or 0) <= 1:
                return [start_update(1, 77)]
            time.sleep(0.2)
            return []
        if method == "sendMessage":
            self.served.set()
            return {"message_id": 1, "date": 1, "chat": {"id": 77, "type": "private"}, "text": "ok"}
        return super().answer(method, params)


PROXY_PAGE = NotTheBotApi(502, "<html><body><h1>502 Bad Gateway</h1>nginx</body></html>")
NO_OK = NotTheBotApi(500, '{"message": "Internal Server Error"}', "application/json")
CUT_OFF = NotTheBotApi(200, '{"ok": true, "result": [{"update_id": 1, "mess', "application/json")


def test_answers_that_are_not_the_bot_apis_are_waited_out_like_an_outage(tmp_path):
    server = OddAnswers({"getMe": [PROXY_PAGE, NO_OK], "setMyCommands": [NO_OK],
                         "getUpdates": [NO_OK, PROXY_PAGE, CUT_OFF, NotTheBotApi(500, "")]})
    process = start_shopbot(shopbot_env(tmp_path / "shop.db", server.url))
    try:
        assert server.served.wait(20), "the shop never served after the odd answers"
        assert process.poll() is None
        log = stop(process)
    finally:
        process.kill()
        server.httpd.shutdown()
    assert process.returncode == 0 and "Traceback" not in log and "KeyError" not in log, log
    assert not any(server.odd.values())  # every odd answer was met, and outlived
    assert log.count("cannot reach Telegram") == 2  # once at getMe, once while polling: not once per answer
    assert "HTTP 500" in log and "Could not register the command menu (HTTP 500" in log
    assert "<html>" not in log and RUN_TOKEN not in log


# ---------------------------------------------------------------------------
# One shop, one running copy, whatever the temp folder
# ---------------------------------------------------------------------------

def test_a_second_copy_with_another_temp_folder_refuses_to_serve_the_same_shop(tmp_path, database_url):
    server = FakeBotApiServer()
    env = {**shopbot_env(tmp_path / "unused.db", server.url), "DATABASE_URL": database_url}
    (tmp_path / "service-tmp").mkdir()
    (tmp_path / "by-hand-tmp").mkdir()
    # systemd's PrivateTmp: the service sees a temp folder of its own, which a copy started by hand never sees.
    service_copy = start_shopbot({**env, "TMPDIR": str(tmp_path / "service-tmp")})
    try:
        assert wait_for(lambda: "getUpdates" in server.methods()), "the first copy never polled"
        by_hand = subprocess.run([sys.executable, str(HERE / "shopbot.py")], capture_output=True, text=True,
                                 env={**env, "TMPDIR": str(tmp_path / "by-hand-tmp")}, cwd=HERE, timeout=30)
        assert service_copy.poll() is None  # the first copy serves on
        log = stop(service_copy)
    finally:
        service_copy.kill()
        server.httpd.shutdown()
    assert by_hand.returncode == 1
    assert by_hand.stderr == "shopbot: another copy of the shop is serving this database; stop it first (exiting)\n"
    assert server.methods().count("getMe") == 1  # the second copy never reached Telegram
    assert service_copy.returncode == 0 and "Traceback" not in log


# ---------------------------------------------------------------------------
# Restore is one command; after a stop that was not clean, the whole database is checked
# ---------------------------------------------------------------------------

def shop_database(path: Path) -> Path:
    """A shop with one product, closed, every write in the file itself."""
    session_factory = open_database(f"sqlite:///{path}")
    with session_factory() as session:
        session.add(Product(name="Key", price=10, hidden_content="KEY", category=Category(name="Keys")))
        session.commit()
    close_database(session_factory)
    return path


def count_purchases(database: Path) -> int:
    with contextlib.closing(sqlite3.connect(database)) as raw:
        return raw.execute("SELECT count(*) FROM purchases").fetchone()[0]


def run_shopbot(env: dict, *arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(HERE / "shopbot.py"), *arguments], env=env, capture_output=True,
                          text=True, cwd=HERE, timeout=30)


def test_restore_puts_back_a_copy_taken_before_a_kill_9_and_keeps_the_crashed_database_aside(tmp_path):
    database = shop_database(tmp_path / "shop.db")
    copy = tmp_path / "backups" / "shop-daily-copy.db.gz"  # the daily copy, as backups.py makes it
    copy.parent.mkdir()
    backups.write_copy(database, copy)
    server = UpdateServer()
    server.updates = [payment_update(n, 7000 + n, 1, f"charge-{n}") for n in range(1, 6)]
    env = shopbot_env(database, server.url)
    crashed = start_shopbot(env)
    try:
        assert wait_for(lambda: count_purchases(database) == 5), "the shop never recorded the payments"
        refused = run_shopbot(env, "--restore", str(copy))  # not while a copy serves
        crashed.kill()  # SIGKILL: the last writes are in shop.db-wal only
        crashed.wait()
    finally:
        crashed.kill()
        server.httpd.shutdown()
    assert refused.returncode == 1 and "another copy of the shop is serving" in refused.stderr
    assert (tmp_path / "shop.db-wal").exists()
    restored = run_shopbot(env, "--restore", str(copy))
    assert restored.returncode == 0, restored.stderr
    kept = next(tmp_path.glob("shop.db.before-restore-*[0-9]"))
    assert restored.stdout.splitlines()[:2] == [f"Restored {database} from {copy} (integrity_check ok).",
                                                f"The database before is kept as {kept}."]
    assert "The next start: revision" in restored.stdout and "up to date" in restored.stdout
    assert not (tmp_path / "shop.db-wal").exists() and not (tmp_path / "shop.db-shm").exists()
    assert count_purchases(database) == 0  # the copy's state, not the crashed one's log applied to it
    assert count_purchases(kept) == 5  # nothing lost: the database before, with its -wal, is beside it
    with contextlib.closing(sqlite3.connect(database)) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_restore_refuses_a_damaged_copy_and_changes_nothing(tmp_path):
    database = shop_database(tmp_path / "shop.db")
    copy = tmp_path / "shop-backup-copy.db.gz"
    backups.write_copy(database, copy)
    cut_off = tmp_path / "cut-off.db.gz"
    cut_off.write_bytes(copy.read_bytes()[:200])
    before = database.read_bytes()
    refused = run_shopbot(shopbot_env(database, "http://127.0.0.1:9"), "--restore", str(cut_off))
    assert refused.returncode == 2 and refused.stderr.startswith(f"shopbot: cannot read {cut_off}")
    assert refused.stderr.count("\n") == 1 and "nothing was changed" in refused.stderr
    assert database.read_bytes() == before and not list(tmp_path.glob("shop.db.*restor*"))


def test_restore_on_a_database_server_points_to_pg_restore(tmp_path):
    env = {**shopbot_env(tmp_path / "shop.db", "http://127.0.0.1:9"), "DATABASE_URL": "postgresql://nobody@/shop"}
    with pytest.raises(DatabaseError, match="pg_restore"):
        shopkit_bot.restore(load_config(env), str(tmp_path / "copy.db.gz"), InstanceLock())


def damage_an_index(database: Path) -> None:
    """Change the category's name in its unique index only: the pages stay sound (quick_check), the index
    no longer matches its table (integrity_check), as an older copy restored over a crashed -wal left it."""
    with contextlib.closing(sqlite3.connect(database)) as raw:
        raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        root = raw.execute("SELECT rootpage FROM sqlite_master "
                           "WHERE name = 'sqlite_autoindex_categories_1'").fetchone()[0]
        page_size = raw.execute("PRAGMA page_size").fetchone()[0]
    data = bytearray(database.read_bytes())
    page = slice((root - 1) * page_size, root * page_size)
    assert bytes(data[page]).count(b"Keys") == 1
    data[page] = bytes(data[page]).replace(b"Keys", b"Keyz")
    database.write_bytes(data)
    with contextlib.closing(sqlite3.connect(database)) as raw:
        assert raw.execute("PRAGMA quick_check").fetchone() == ("ok",)
        assert raw.execute("PRAGMA integrity_check").fetchone() != ("ok",)


@pytest.fixture
def killed_shop(tmp_path):
    """A shop that was serving when it was SIGKILLed (no clean stop), and its Bot API: (database, server, env)."""
    database = shop_database(tmp_path / "shop.db")
    server = FakeBotApiServer()
    env = shopbot_env(database, server.url)
    killed = start_shopbot(env)
    try:
        assert wait_for(lambda: "getUpdates" in server.methods()), "the shop never polled"
    finally:
        killed.kill()
        killed.wait()
    yield database, server, env
    server.httpd.shutdown()


def test_after_a_stop_that_was_not_clean_a_damaged_index_is_refused_in_one_line(killed_shop):
    database, _, env = killed_shop
    damage_an_index(database)
    started = run_shopbot(env)
    assert started.returncode == 2
    assert started.stderr.splitlines()[-1].startswith("shopbot: the database is damaged (SQLite's integrity_check: "
                                                      "row 1 missing from index sqlite_autoindex_categories_1)")
    assert "--restore" in started.stderr.splitlines()[-1] and "Traceback" not in started.stderr


def test_a_clean_stop_is_followed_by_the_quick_check_only(killed_shop):
    _, server, env = killed_shop
    polls = server.methods().count("getUpdates")  # the killed copy's
    cleanly = start_shopbot(env)
    assert wait_for(lambda: server.methods().count("getUpdates") > polls and cleanly.poll() is None)
    first_log = stop(cleanly)
    polls = server.methods().count("getUpdates")
    again = start_shopbot(env)
    assert wait_for(lambda: server.methods().count("getUpdates") > polls)
    second_log = stop(again)
    assert "did not stop cleanly last time" in first_log  # after kill -9: the whole database is checked...
    assert "did not stop cleanly" not in second_log  # ...and after a clean stop, only its pages


@pytest.fixture
def sqlite_shop(shop):
    """The shop, on SQLite only: a database server is backed up, and restored, with its own tools."""
    if shop.Session.kw["bind"].dialect.name != "sqlite":
        pytest.skip("a database server is backed up with its own tools")
    return shop


def test_the_backup_screen_points_to_restore_in_english_and_russian(sqlite_shop, seller):
    seller.sends("/admin")
    seller.taps("Backup")
    assert "python shopbot.py --restore backups/" in seller.all_texts() and "gunzip" not in seller.all_texts()
    russian_seller = Person(sqlite_shop, ADMIN_ID, "Продавец", language_code="ru")
    russian_seller.sends("/admin")
    russian_seller.taps("Резервная копия")
    assert "python shopbot.py --restore backups/КОПИЯ.db.gz" in russian_seller.all_texts()
    assert "остановите магазин" in russian_seller.all_texts()


# ---------------------------------------------------------------------------
# The seller can see that it is healthy: /status and --check
# ---------------------------------------------------------------------------

def test_status_tells_the_seller_how_the_shop_is_doing(shop, seller, alice, caplog):
    shop.api.pending_updates = 3
    logging.getLogger("shopbot").error("Something went wrong")  # one error in the last day
    seller.sends("/status")
    status = seller.last_text()
    assert status.startswith("🩺 Status")
    lines = status.splitlines()
    assert lines[2].startswith("Running since 20") and lines[2].endswith(" UTC")
    assert lines[3].startswith(f"Version: revision {head_revision()}")
    assert lines[4].startswith("Database: ") and " MB free on its disk" in lines[4]
    assert lines[5] in ("Last backup: none yet", "Last backup: made with the database server's own tools (pg_dump), "
                                                 "which the shop does not see")
    assert "Telegram's Stars ledger" in lines[6]
    assert lines[7] == "Updates waiting at Telegram: 3"
    assert int(lines[8].removeprefix("Errors in the last 24 hours: ")) >= 1
    alice.sends("/status")  # admins only
    assert "Status" not in alice.all_texts()
    assert shop.api.of("getWebhookInfo") and len(shop.api.of("getWebhookInfo")) == 1


def test_status_in_russian_shows_the_last_backup_and_survives_telegram_not_answering(sqlite_shop, seller, tmp_path):
    seller.sends("/admin")
    seller.taps("Backup")  # a copy in backups/
    russian_seller = Person(sqlite_shop, ADMIN_ID, "Продавец", language_code="ru")
    sqlite_shop.api.fail("getWebhookInfo", 502, "Bad Gateway")
    russian_seller.sends("/status")
    status = russian_seller.last_text()
    assert status.startswith("🩺 Состояние") and "Последняя копия: 20" in status and ".db.gz" in status
    assert "Обновлений ждёт в Telegram: неизвестно (502 Bad Gateway)" in status


def test_errors_of_the_last_day_are_counted():
    count = ErrorCount()
    count.emit(logging.LogRecord("shopbot", logging.ERROR, __file__, 1, "old", (), None))
    count.times[0] -= 25 * 60 * 60  # a day and an hour ago
    count.emit(logging.LogRecord("shopbot", logging.ERROR, __file__, 1, "new", (), None))
    assert count.in_last_day() == 1


def test_check_reports_the_disk_the_lock_the_journal_and_the_backups_folder(tmp_path):
    database = shop_database(tmp_path / "shop.db")
    server = FakeBotApiServer()
    env = shopbot_env(database, server.url)
    try:
        idle = run_shopbot(env, "--check")
        serving = start_shopbot(env)
        assert wait_for(lambda: "getUpdates" in server.methods())
        while_serving = run_shopbot(env, "--check")
        stop(serving)
        (tmp_path / "backups").mkdir(mode=0o500)
        locked_out = run_shopbot(env, "--check")
    finally:
        server.httpd.shutdown()
    lines = {line.split(":")[0]: line for line in idle.stdout.splitlines()}
    assert lines["disk"].startswith("disk: ok — ") and f"MB free in {tmp_path}" in lines["disk"]
    assert lines["lock"] == "lock: ok — no copy of the shop is running"
    assert lines["journal"] == f"journal: ok — {database}.payments.jsonl is writable"
    assert lines["backups"] == f"backups: ok — {tmp_path / 'backups'} can be written"
    assert idle.returncode == 0, idle.stdout
    assert "lock: WARN — another copy of the shop is serving this database now" in while_serving.stdout
    if os.geteuid() != 0:  # root may write anywhere
        assert "backups: WARN — the shop may not write" in locked_out.stdout
    assert locked_out.returncode == 0


def test_an_answer_cut_off_mid_way_is_refused_without_its_body(tmp_path):
    """A cut-off answer can echo what was sent, a product's hidden content: the error that reaches the log
    says what went wrong, never what the body held."""
    server = OddAnswers({"sendMessage": [NotTheBotApi(200, '{"ok": true, "result": {"text": "KEY-SECRET', "text/plain"),
                                         NO_OK]})
    url = f"{server.url}/bot{RUN_TOKEN}/sendMessage"
    try:
        with pytest.raises(apihelper.ApiException) as cut_off:
            config_module.send_in_body("get", url, params={"chat_id": 77, "text": "KEY-SECRET"})
        with pytest.raises(apihelper.ApiException) as no_ok:
            config_module.send_in_body("get", url, params={"chat_id": 77, "text": "hello"})
        answered = config_module.send_in_body("get", url, params={"chat_id": 77, "text": "hello"})
    finally:
        server.httpd.shutdown()
    assert "KEY-SECRET" not in str(cut_off.value) and "sendMessage: HTTP 200 OK" in str(cut_off.value)
    assert service.short_reason(no_ok.value) == "HTTP 500 Internal Server Error, not the Bot API's answer"
    assert answered.json()["ok"] is True


class Updates:
    """getUpdates over a fixed list of updates: each call gets those at or past its offset, as Telegram answers."""

    def __init__(self, api, updates: list, stop: threading.Event):
        self.api, self.updates, self.stop, self.offsets = api, updates, stop, []

    def __call__(self, http_method, url, params=None, **kwargs):
        if not url.endswith("/getUpdates"):
            return self.api(http_method, url, params=params, **kwargs)
        offset = int((params or {}).get("offset") or 0)
        self.offsets.append(offset)
        batch = [update for update in self.updates if update["update_id"] >= offset]
        if not batch:
            self.stop.set()
        return FakeResponse(200, {"ok": True, "result": batch})
