"""💾 Backup (backups.py): a copy now, a copy every day, seven kept, and no pretending on a database server."""
from __future__ import annotations

import gzip
import sqlite3
import time
from datetime import UTC, datetime

import pytest

import backups
from conftest import ADMIN_ID
from shopkit import callback

DAY = 24 * 60 * 60


class Enough(BaseException):
    """Ends the daily loop, which goes on through any Exception, as a background job must."""


class FakeClock:
    """Days pass at once: sleep() moves the time on, and stops the loop once ``days`` have passed."""

    def __init__(self, days: float, start: float | None = None):
        self.now = time.time() if start is None else start
        self.end = self.now + days * DAY

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        if self.now > self.end:
            raise Enough


def run_daily_backups(shop, clock: FakeClock) -> None:
    with pytest.raises(Enough):
        backups.daily_backups(shop.bot.shop, clock)


def daily_documents(shop) -> list[tuple[str, bytes]]:
    return [call.files["document"] for call in shop.api.of("sendDocument")
            if int(call.params["chat_id"]) == ADMIN_ID]


def taken_at(name: str) -> float:
    """shop-backup-2025-01-31-120000.db.gz -> its Unix time."""
    stamp = name.removeprefix("shop-backup-").removesuffix(".db.gz")
    return datetime.strptime(stamp, "%Y-%m-%d-%H%M%S").replace(tzinfo=UTC).timestamp()


def products_in(data: bytes, tmp_path) -> list[tuple[str]]:
    (tmp_path / "restored.db").write_bytes(gzip.decompress(data))
    with sqlite3.connect(tmp_path / "restored.db") as copy:
        return copy.execute("SELECT name FROM products").fetchall()


@pytest.fixture
def sqlite_shop(shop):
    if shop.Session.kw["bind"].dialect.name != "sqlite":
        pytest.skip("a database server is backed up with its own tools (see the pg_dump test)")
    return shop


def test_backup_is_a_consistent_sqlite_copy(shop, seller, tmp_path):
    shop.add_product("Pro")
    seller.taps_data(callback("backup"))
    if shop.Session.kw["bind"].dialect.name != "sqlite":  # a database server: its own tools back it up
        assert "pg_dump" in seller.last_text() and not shop.api.of("sendDocument")
        return
    name, data = shop.api.of("sendDocument")[-1].files["document"]
    assert name.startswith("shop-backup-") and name.endswith(".db.gz")
    assert products_in(data, tmp_path) == [("Pro",)]
    assert (tmp_path / "backups" / name).exists()  # kept beside the database too


def test_daily_copies_arrive_compressed_once_a_day_and_the_last_seven_are_kept(sqlite_shop, seller, tmp_path):
    sqlite_shop.add_product("Pro")
    seller.sends("/admin")
    seller.taps("Backup")
    assert "🔁 Daily to me: off" in seller.button_labels()
    seller.taps("Daily to me")
    assert seller.last_toast().startswith("🔁 Daily copies on") and "🔁 Daily to me: on" in seller.button_labels()
    before = len(daily_documents(sqlite_shop))

    run_daily_backups(sqlite_shop, FakeClock(days=9))  # a look every 10 minutes for 9 days

    sent = daily_documents(sqlite_shop)[before:]
    assert len(sent) == 10  # at start, then once a day
    times = [taken_at(name) for name, _ in sent]
    assert [later - earlier for earlier, later in zip(times, times[1:], strict=False)] == [DAY] * 9
    assert all(products_in(data, tmp_path) == [("Pro",)] for _, data in sent)
    kept = sorted(path.name for path in (tmp_path / "backups").iterdir())
    assert kept == [name for name, _ in sent[-7:]]


def test_daily_copies_are_off_until_an_admin_turns_them_on_and_stop_when_turned_off(sqlite_shop, seller):
    run_daily_backups(sqlite_shop, FakeClock(days=2))
    assert daily_documents(sqlite_shop) == []
    seller.taps_data(callback("daily_backup"))
    run_daily_backups(sqlite_shop, FakeClock(days=0.5))
    assert len(daily_documents(sqlite_shop)) == 1
    seller.taps_data(callback("daily_backup"))
    assert seller.last_toast() == "Daily copies off."
    run_daily_backups(sqlite_shop, FakeClock(days=3, start=time.time() + DAY))
    assert len(daily_documents(sqlite_shop)) == 1


def test_a_copy_that_could_not_be_sent_is_kept_and_tried_again_the_next_day(sqlite_shop, seller, tmp_path, caplog):
    seller.taps_data(callback("daily_backup"))
    sqlite_shop.api.fail("sendDocument", 500, "Internal Server Error")
    run_daily_backups(sqlite_shop, FakeClock(days=0.9))
    assert len(sqlite_shop.api.of("sendDocument")) == 1  # one try, not one every 10 minutes
    assert "Could not send backup shop-backup-" in caplog.text and "500 Internal Server Error" in caplog.text
    assert len(list((tmp_path / "backups").iterdir())) == 1
    run_daily_backups(sqlite_shop, FakeClock(days=0.2, start=time.time() + DAY))
    assert len(daily_documents(sqlite_shop)) == 2


def test_a_copy_over_telegrams_upload_limit_stays_on_the_server_and_the_admin_is_told_where(
        sqlite_shop, seller, tmp_path, monkeypatch):
    monkeypatch.setattr(backups, "UPLOAD_LIMIT", 100)  # a real shop needs 50 MB for this
    seller.taps_data(callback("backup"))
    assert not sqlite_shop.api.of("sendDocument")
    [copy] = (tmp_path / "backups").iterdir()
    assert "more than the 50 MB Telegram lets a bot send" in seller.last_text() and str(copy) in seller.last_text()


def test_on_a_database_server_backup_explains_pg_dump_and_makes_nothing(shop, seller):
    if shop.Session.kw["bind"].dialect.name == "sqlite":
        pytest.skip("on SQLite the shop makes the copies itself")
    seller.sends("/admin")
    seller.taps("Backup")
    assert "pg_dump" in seller.last_text() and not any("Daily" in label for label in seller.button_labels())
    seller.taps_data(callback("daily_backup"))
    assert "pg_dump" in seller.last_text()
    backups.start_daily_backups(shop.bot.shop)
    assert shop.bot.shop.background == [] and not shop.api.of("sendDocument")
