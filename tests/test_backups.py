"""💾 Backup (backups.py): a copy now, a copy every day, seven kept, and no pretending on a database server."""
from __future__ import annotations

import gzip
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

import backups
from conftest import ADMIN_ID, admin_texts
from shopkit import callback

DAY = 24 * 60 * 60
ROOT = Path(__file__).resolve().parent.parent  # the project's root


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
    """shop-daily-2025-01-31-120000.db.gz (or shop-backup-..., made with 💾 Backup) -> its Unix time."""
    stamp = name.removeprefix("shop-daily-").removeprefix("shop-backup-").removesuffix(".db.gz")
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
    assert "🔁 Daily to me: off" in seller.button_labels()  # one tap from the panel
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
    assert "Could not send backup shop-daily-" in caplog.text and "500 Internal Server Error" in caplog.text
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


# ---------------------------------------------------------------------------
# A copy never fills the disk
# ---------------------------------------------------------------------------

MB = 1024 ** 2


def disk_with(shop, free: dict) -> None:
    """The free-space probe answers ``free["bytes"]``: the test fills and frees the disk by changing it."""
    shop.bot.shop.free_bytes = lambda folder: free["bytes"]


def files_in(folder) -> list[str]:
    return sorted(path.name for path in folder.iterdir()) if folder.exists() else []


def test_a_backup_into_a_nearly_full_disk_writes_nothing_and_says_why(sqlite_shop, seller, tmp_path):
    disk_with(sqlite_shop, {"bytes": 30 * MB})  # less than the 50 MB a copy must leave for the shop
    seller.sends("/admin")
    seller.taps("Backup")
    assert "No copy was made" in seller.last_text() and "only 30 MB free in" in seller.last_text()
    assert not sqlite_shop.api.of("sendDocument") and files_in(tmp_path / "backups") == []


def test_a_copy_that_fails_half_way_leaves_nothing_behind(sqlite_shop, seller, tmp_path, monkeypatch):
    sqlite_shop.add_product("Pro", description="x" * 200_000)  # a database of some size

    def disk_full_half_way(source, target):
        target.write(source.read(50_000))
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(backups.shutil, "copyfileobj", disk_full_half_way)  # gzip's step
    seller.taps_data(callback("backup"))
    assert "No copy was made: [Errno 28] No space left on device" in seller.last_text()
    assert files_in(tmp_path / "backups") == []


def test_a_real_full_disk_in_sqlites_copy_leaves_no_partial_file(sqlite_shop, tmp_path):
    """A process that may write at most 64 KB to a file: SQLite's backup fails for real, half-way."""
    sqlite_shop.add_product("Pro", description="x" * 300_000)
    child = f"""
import resource, signal, sys, types
import backups
shop = types.SimpleNamespace(config=types.SimpleNamespace(database_url={sqlite_shop.bot.shop.config.database_url!r}),
                             free_bytes=lambda folder: 10 ** 12)
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG) instead of killing us
resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, resource.RLIM_INFINITY))
try:
    backups.make_copy(shop, backups.MANUAL, 0)
except Exception as error:
    print(type(error).__name__, error)
"""
    done = subprocess.run([sys.executable, "-c", child], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.stdout.startswith(("OperationalError", "DatabaseError")), done.stdout + done.stderr
    assert files_in(tmp_path / "backups") == []  # no shop-backup-...db.tmp, no -journal


def test_taps_on_backup_never_push_out_the_daily_copies(sqlite_shop, seller, tmp_path):
    seller.taps_data(callback("daily_backup"))
    run_daily_backups(sqlite_shop, FakeClock(days=7.5, start=time.time() - 8 * DAY))  # 8 daily copies
    for hours in range(7, 0, -1):  # 7 copies made with 💾 Backup in the last hours, then an 8th now
        backups.make_copy(sqlite_shop.bot.shop, backups.MANUAL, time.time() - hours * 3600)
    seller.taps_data(callback("backup"))
    kept = files_in(tmp_path / "backups")
    daily = [name for name in kept if name.startswith("shop-daily-")]
    manual = [name for name in kept if name.startswith("shop-backup-")]
    assert len(daily) == 7 and len(manual) == 7 and len(kept) == 14
    assert manual[-1] == sqlite_shop.api.of("sendDocument")[-1].files["document"][0]  # the newest stays
    assert min(map(taken_at, daily)) > time.time() - 7.5 * DAY  # the oldest daily copy went, by its own count


def test_a_daily_backup_that_fails_waits_longer_each_time_and_is_told_once(sqlite_shop, seller, tmp_path, caplog):
    free = {"bytes": 10 * MB}
    disk_with(sqlite_shop, free)
    seller.taps_data(callback("daily_backup"))
    run_daily_backups(sqlite_shop, FakeClock(days=2))
    tries = caplog.text.count("The daily backup failed (")
    assert 10 <= tries <= 15  # 10 minutes, 20, 40... then every 6 hours; not 288 tries in 2 days
    assert admin_texts(sqlite_shop).count("The daily backup failed") == 1
    assert "only 10 MB free" in admin_texts(sqlite_shop) and files_in(tmp_path / "backups") == []

    free["bytes"] = 10_000 * MB  # space returns: a copy is made at the next try, and sent
    run_daily_backups(sqlite_shop, FakeClock(days=0.3))
    assert len(daily_documents(sqlite_shop)) == 1
    free["bytes"] = 10 * MB  # and fails again, a day later: said again, once
    run_daily_backups(sqlite_shop, FakeClock(days=1, start=time.time() + DAY))
    assert admin_texts(sqlite_shop).count("The daily backup failed") == 2
