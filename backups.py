"""Backups: 💾 Backup sends the seller a copy of the shop, at once or every day.

Reading order: ... broadcast.py → **backups.py** → status.py → ...

On SQLite the whole shop is one file, shop.db. A copy is made with SQLite's
backup API, consistent even while customers buy, and compressed with gzip,
which makes it several times smaller. Copies are kept in a ``backups/`` folder
beside the database and sent to the admin's chat:

- **💾 Backup** in the panel sends a copy at once: ``shop-backup-<time>.db.gz``.
- **🔁 Daily to me**, a switch on the panel, sends that admin a copy when the
  shop starts and then whenever their last one is more than 24 hours old:
  ``shop-daily-<time>.db.gz``.
- The newest 7 of each kind stay in ``backups/``: taps on 💾 Backup never push
  out the daily copies.
- A copy over Telegram's 50 MB upload limit stays in ``backups/``, and the
  admin is told where.

A copy never fills the disk: it is made only when the disk has room for it and
some to spare, and one that fails half-way is removed. A daily copy that
failed is tried again later and later (10 minutes, 20, 40... at most every 6
hours); the admins hear of it once, and again only after a copy was made and
another failed.

A database server (PostgreSQL) is backed up with its own tools: the panel
explains ``pg_dump``, and nothing pretends to be a backup.
"""
from __future__ import annotations

import gzip
import logging
import os
import shutil
import sqlite3
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session
from telebot import TeleBot, types

from menus import ADMIN, BACKUP, DAILY_BACKUP, TOGGLE_DAILY_BACKUP, admin_panel
from models import User
from shopkit import (
    CALL_FAILED,
    After,
    Handlers,
    Progress,
    Screen,
    Setting,
    Shop,
    add_handlers,
    backup_sqlite,
    call_api,
    chat_of,
    keyboard,
    label,
    language_for_code,
    notify_admins,
    send,
    short_reason,
    sqlite_file,
    text,
    with_toast,
)

logger = logging.getLogger("shopbot")
handlers = Handlers(admin=True)

KEEP = 7  # copies of each kind kept in backups/
MANUAL, DAILY_COPY = "backup", "daily"  # the kinds, in the names: shop-backup-<time>.db.gz, shop-daily-<time>.db.gz
MARGIN = 50 * 1024 ** 2  # free space a copy must leave on the disk, so that the shop goes on taking payments
DAY = 24 * 60 * 60
CHECK_EVERY = 10 * 60  # seconds between two looks at who is due a daily copy
RETRY_AT_MOST = 6 * 60 * 60  # a daily copy that keeps failing is tried again this often, at most
UPLOAD_LIMIT = 50 * 1024 * 1024  # the largest file a bot may send
DAILY = DAILY_BACKUP  # Setting "daily_backup:<admin id>": "on", or "off" (the default); the switch is on the panel
LAST_SENT = "daily_backup_sent"  # Setting "daily_backup_sent:<admin id>": Unix time of their last daily copy
copying = threading.Lock()  # one copy at a time, so that the leftovers of a killed one can be removed safely

# ---------------------------------------------------------------------------
# A copy, and sending it
# ---------------------------------------------------------------------------


class NoRoom(Exception):
    """The disk has no room for a copy: nothing was written."""

    def __init__(self, folder: Path, free: int, needed: int):
        super().__init__(f"{free / 1024 ** 2:.0f} MB free in {folder}, a copy needs {needed / 1024 ** 2:.0f} MB")
        self.values = dict(folder=str(folder), free=f"{free / 1024 ** 2:.0f}", needed=f"{needed / 1024 ** 2:.0f}")


def room_needed(database: Path) -> int:
    """Bytes a copy takes at its largest: the plain copy (about the database and its -wal) and its gzip (smaller),
    side by side for a moment, and the MARGIN left for the shop."""
    size = sum(path.stat().st_size for path in (database, Path(f"{database}-wal")) if path.exists())
    return 2 * size + MARGIN


def check_room(shop: Shop, database: Path, folder: Path) -> None:
    """NoRoom unless the disk of ``folder`` can take a copy of ``database`` and keep some to spare."""
    free, needed = shop.free_bytes(str(folder)), room_needed(database)
    if free < needed:
        raise NoRoom(folder, free, needed)


def remove_leftovers(folder: Path, stem: str) -> None:
    """Remove what a copy killed half-way (a stop, a crash) left behind: shop-*.db.tmp, its journal, *.gz.tmp."""
    for leftover in folder.glob(f"{stem}-*.tmp*"):
        logger.info("Removing %s, left by a copy that did not finish", leftover.name)
        leftover.unlink(missing_ok=True)


class Watched:
    """A file being read, that reports how far: ``report(bytes read, size)`` after each read."""

    def __init__(self, handle, report):
        self.handle, self.report, self.size = handle, report, os.fstat(handle.fileno()).st_size

    def read(self, size: int = -1) -> bytes:
        data = self.handle.read(size)
        self.report(self.size + self.handle.tell(), self.size)  # gzip is the work's second half
        return data


def write_copy(database: Path, copy: Path, progress: Progress | None = None) -> None:
    """The database through SQLite's backup API, then gzip: ``copy`` is in backups/ whole, or not at all.

    ``progress`` hears how far it got: the copy is the first half of the work, gzip the second."""
    plain, packed = copy.with_suffix(".tmp"), copy.with_suffix(".gz.tmp")
    half = (lambda done, total: progress.update(done, 2 * total)) if progress else None
    try:
        backup_sqlite(str(database), str(plain), half)  # a failed one removes what it wrote
        with open(plain, "rb") as source, gzip.open(packed, "wb") as target:
            shutil.copyfileobj(Watched(source, half) if half else source, target)
        os.replace(packed, copy)
    finally:
        plain.unlink(missing_ok=True)
        packed.unlink(missing_ok=True)  # there only when gzip failed (a full disk)


def make_copy(shop: Shop, kind: str, now: float, progress: Progress | None = None) -> Path:
    """A consistent, gzip-compressed copy in backups/ beside the database; only the newest KEEP of ``kind`` stay.

    NoRoom when the disk cannot take it; a copy that fails half-way leaves nothing behind.
    """
    database = Path(sqlite_file(shop.config.database_url)).resolve()
    folder = database.parent / "backups"
    folder.mkdir(exist_ok=True)
    copy = folder / f"{database.stem}-{kind}-{datetime.fromtimestamp(now, UTC):%Y-%m-%d-%H%M%S}.db.gz"
    with copying:
        remove_leftovers(folder, database.stem)
        check_room(shop, database, folder)
        write_copy(database, copy, progress)
        for old in sorted(folder.glob(f"{database.stem}-{kind}-*.db.gz"))[:-KEEP]:  # the names sort by date
            old.unlink()
    return copy


def why_no_copy(error: Exception):
    """Why a copy was not made, in plain words in each admin's language (a value for screens.text)."""
    if isinstance(error, NoRoom):
        return lambda lang: label(lang, "backup_no_room", **error.values)
    return lambda lang: str(error) or type(error).__name__


def send_copy(shop: Shop, chat_id: int, lang: str, copy: Path) -> bool:
    """Send a copy to an admin, or tell them where it is when Telegram would refuse its size; False if blocked."""
    size = copy.stat().st_size
    if size > UPLOAD_LIMIT:
        note = text(lang, "backup_too_big", size=f"{size / 1024 ** 2:.0f}", path=str(copy))
        return send(shop, chat_id, note) is not None
    with open(copy, "rb") as handle:
        sent = call_api(shop, chat_id, shop.bot.send_document, chat_id, handle, visible_file_name=copy.name,
                        caption=text(lang, "backup_caption", folder=str(copy.parent)))
    return sent is not None


COPY_FAILED = (NoRoom, OSError, sqlite3.Error)  # a full disk, a folder the shop may not write in, a damaged file


def send_fresh_copy(shop: Shop, chat_id: int, lang: str) -> None:
    """A fresh copy of the shop, made and sent once the handler's session is closed; or why there is none."""
    progress = Progress(shop, chat_id, lambda percent: text(lang, "progress_backup", percent=percent))
    try:
        copy = make_copy(shop, MANUAL, time.time(), progress)
    except COPY_FAILED as error:
        logger.warning("No backup was made: %s", error)
        send(shop, chat_id, text(lang, "backup_failed", reason=why_no_copy(error)))
        return
    progress.finish()
    send_copy(shop, chat_id, lang, copy)


# ---------------------------------------------------------------------------
# 💾 Backup and 🔁 Daily to me
# ---------------------------------------------------------------------------

def per_admin(session: Session, setting: str, admin_ids) -> dict[int, str]:
    """The value of a per-admin setting, for each of ``admin_ids`` that has one: {admin id: value}."""
    rows = session.execute(select(Setting.key, Setting.value)
                           .where(Setting.key.in_([f"{setting}:{admin_id}" for admin_id in admin_ids])))
    return {int(key.rpartition(":")[2]): value for key, value in rows}


def backup_screen(lang: str, database_path: str) -> Screen:
    """What the copies are and where they are kept (🔁 Daily to me is on the panel)."""
    folder = Path(database_path).resolve().parent / "backups"
    return Screen(text(lang, "admin_backup", folder=str(folder), keep=KEEP),
                  keyboard([ADMIN.button(label(lang, "btn_back"))]))


def server_screen(lang: str) -> Screen:
    """A database server is backed up with its own tools; say which, and make nothing."""
    return Screen(text(lang, "admin_backup_server"), keyboard([ADMIN.button(label(lang, "btn_back"))]))


@handlers.tap(BACKUP)
def tap_backup(shop: Shop, call: types.CallbackQuery, session: Session, lang: str):
    """💾 Backup: a copy of the shop now."""
    lang, path = lang, sqlite_file(shop.config.database_url)
    if path is None:
        return server_screen(lang)
    return backup_screen(lang, path), After(send_fresh_copy, chat_of(call), lang)


@handlers.tap(TOGGLE_DAILY_BACKUP)
def tap_daily_backup(shop: Shop, call: types.CallbackQuery, session: Session, lang: str) -> Screen:
    """🔁 Daily to me, on the panel: on or off, for this admin only."""
    if sqlite_file(shop.config.database_url) is None:
        return server_screen(lang)
    key = f"{DAILY}:{call.from_user.id}"
    setting = session.get(Setting, key) or Setting(key=key, value="off")
    setting.value = "off" if setting.value == "on" else "on"
    session.add(setting)
    session.commit()
    return with_toast(admin_panel(session, lang, call.from_user.id),
                      text(lang, "daily_backup_on" if setting.value == "on" else "daily_backup_off"))


# ---------------------------------------------------------------------------
# Every day, in the background
# ---------------------------------------------------------------------------

class Clock:
    """The time and waiting, in one object: tests give the daily backups a clock on which days pass at once."""

    def time(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


def admins_due(session: Session, admin_ids, now: float) -> dict[int, str]:
    """Admins with Daily to me on, who can be written to, and whose last daily copy is 24 hours old: {id: language}."""
    daily_on = [admin_id for admin_id, value in per_admin(session, DAILY, admin_ids).items() if value == "on"]
    last_sent = per_admin(session, LAST_SENT, daily_on)
    reachable = session.execute(select(User.telegram_id, User.language_code)
                                .where(User.telegram_id.in_(daily_on), User.is_blocked.is_(False)))
    return {admin_id: language_for_code(code) for admin_id, code in reachable
            if now - float(last_sent.get(admin_id, 0)) >= DAY}


def send_to(shop: Shop, admin_id: int, lang: str, copy: Path) -> bool:
    """One admin's daily copy; a failure is logged (the copy stays in backups/) and tried again tomorrow."""
    try:
        return send_copy(shop, admin_id, lang, copy)
    except CALL_FAILED as error:
        logger.warning("Could not send backup %s to admin %s (%s); it is kept in %s", copy.name, admin_id,
                       short_reason(error), copy.parent)
        return False


def send_daily_backups(shop: Shop, clock: Clock) -> bool:
    """One look at the calendar: if any admin is due a daily copy, make one and send it to them.

    True when a copy was made; False when nobody was due. A copy that could not be made raises.
    """
    now = clock.time()
    with shop.Session() as session:
        due = admins_due(session, shop.config.admin_ids, now)
    if not due:
        return False
    copy = make_copy(shop, DAILY_COPY, now)
    sent = [admin_id for admin_id, lang in sorted(due.items()) if send_to(shop, admin_id, lang, copy)]
    with shop.Session() as session:  # tried, sent or not: the copy is on disk, and one a day is the promise
        for admin_id in due:
            session.merge(Setting(key=f"{LAST_SENT}:{admin_id}", value=str(int(now))))
        session.commit()
    logger.info("Daily backup %s (%s bytes) sent to admins %s", copy.name, copy.stat().st_size, sent)
    return True


def wait_after(failures: int) -> float:
    """Seconds until the next look: CHECK_EVERY, or after failures in a row 10 minutes, 20, 40... at most 6 hours."""
    return CHECK_EVERY if failures == 0 else min(CHECK_EVERY * 2 ** (failures - 1), RETRY_AT_MOST)


def tell_admins_no_copy(shop: Shop, error: Exception, wait: float) -> None:
    """The daily copy failed: the admins hear it (once: the caller knows when), and when the next try is."""
    try:
        notify_admins(shop, "daily_backup_failed", reason=why_no_copy(error), minutes=round(wait / 60))
    except CALL_FAILED as failure:  # Telegram cannot be reached either: the log has it
        logger.warning("Could not tell the admins that the daily backup failed: %s", short_reason(failure))


def daily_backups(shop: Shop, clock: Clock) -> None:
    """The background job: look every CHECK_EVERY seconds, the first time at once (so a copy goes out at start).

    A copy that cannot be made (a full disk, say) is tried again later and later, never filling the disk with
    attempts; the admins hear of it at the first failure, and again only after a copy was made and one failed anew.
    """
    failures = 0
    while True:
        try:
            if send_daily_backups(shop, clock):
                failures = 0
        except Exception as error:  # logged, told, and tried again later: the job must go on
            failures += 1
            if isinstance(error, COPY_FAILED):
                logger.warning("The daily backup failed (%s in a row): %s", failures, error)
            else:
                logger.exception("The daily backup failed (%s in a row)", failures)
            if failures == 1:
                tell_admins_no_copy(shop, error, wait_after(failures))
        clock.sleep(wait_after(failures))


def start_daily_backups(shop: Shop, clock: Clock | None = None) -> None:
    """At start: daily copies, on SQLite (a database server has its own tools) when the shop has admins."""
    if sqlite_file(shop.config.database_url) and shop.config.admin_ids:
        shop.start_background(daily_backups, clock or Clock())


def register(bot: TeleBot, shop: Shop) -> None:
    """Wire 💾 Backup and 🔁 Daily to me into the bot; the daily copies start with the shop."""
    shop.jobs_at_start.append(start_daily_backups)
    add_handlers(shop, handlers)
