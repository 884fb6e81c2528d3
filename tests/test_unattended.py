"""A shop that runs for months unattended (issue 26): odd updates, odd answers, a second copy, a restore, /status.

Each test here is something a service meets sooner or later, and which
must not end the process, start a restart loop, or run the shop twice.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from telebot import apihelper

from conftest import FakeBotApiServer, FakeResponse, NotTheBotApi
from shopkit import bot as shopkit_bot
from shopkit import service

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
