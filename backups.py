"""Backups: 💾 Backup sends the seller a copy of the shop, at once or every day.

Reading order: ... broadcast.py → **backups.py** → pricing.py → ...

On SQLite the whole shop is one file, shop.db. A copy is made with SQLite's
backup API, consistent even while customers buy, and compressed with gzip,
which makes it several times smaller. Every copy is kept in a ``backups/``
folder beside the database (the newest 7) and sent to the admin's chat:

- **💾 Backup** in the panel sends a copy at once, and shows the admin's own
  **Daily to me** switch.
- With **Daily to me** on, the shop sends that admin a copy when it starts and
  then whenever their last one is more than 24 hours old.
- A copy over Telegram's 50 MB upload limit stays in ``backups/``, and the
  admin is told where.

A database server (PostgreSQL) is backed up with its own tools: the panel
explains ``pg_dump``, and nothing pretends to be a backup.
"""
from __future__ import annotations

import gzip
import logging
import os
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session
from telebot import TeleBot, types

from menus import ADMIN, BACKUP
from models import User
from shopkit import (
    CALL_FAILED,
    After,
    Handlers,
    Screen,
    Setting,
    Shop,
    Tap,
    add_handlers,
    backup_sqlite,
    call_api,
    chat_of,
    keyboard,
    label,
    language_for_code,
    language_of,
    send,
    short_reason,
    sqlite_file,
    text,
    with_toast,
)

logger = logging.getLogger("shopbot")
handlers = Handlers(admin=True)

# The button that turns daily copies on and off.
DAILY_BACKUP = Tap("daily_backup")

KEEP = 7  # copies kept in backups/
DAY = 24 * 60 * 60
CHECK_EVERY = 10 * 60  # seconds between two looks at who is due a daily copy
UPLOAD_LIMIT = 50 * 1024 * 1024  # the largest file a bot may send
DAILY = "daily_backup"  # Setting "daily_backup:<admin id>": "on", or "off" (the default)
LAST_SENT = "daily_backup_sent"  # Setting "daily_backup_sent:<admin id>": Unix time of their last daily copy

# ---------------------------------------------------------------------------
# A copy, and sending it
# ---------------------------------------------------------------------------


def make_copy(database_path: str, now: float) -> Path:
    """A consistent, gzip-compressed copy in backups/ beside the database; only the newest KEEP copies stay."""
    database = Path(database_path).resolve()
    folder = database.parent / "backups"
    folder.mkdir(exist_ok=True)
    copy = folder / f"{database.stem}-backup-{datetime.fromtimestamp(now, UTC):%Y-%m-%d-%H%M%S}.db.gz"
    plain, packed = copy.with_suffix(".tmp"), copy.with_suffix(".gz.tmp")
    backup_sqlite(str(database), str(plain))
    with open(plain, "rb") as source, gzip.open(packed, "wb") as target:
        shutil.copyfileobj(source, target)
    os.replace(packed, copy)  # a copy is in backups/ whole, or not at all
    plain.unlink()
    for old in sorted(folder.glob(f"{database.stem}-backup-*.db.gz"))[:-KEEP]:  # the names sort by date
        old.unlink()
    return copy


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


def send_fresh_copy(shop: Shop, chat_id: int, database_path: str, lang: str) -> None:
    """A fresh copy of the shop, made and sent once the handler's session is closed."""
    send_copy(shop, chat_id, lang, make_copy(database_path, time.time()))


# ---------------------------------------------------------------------------
# 💾 Backup and 🔁 Daily to me
# ---------------------------------------------------------------------------

def per_admin(session: Session, setting: str, admin_ids) -> dict[int, str]:
    """The value of a per-admin setting, for each of ``admin_ids`` that has one: {admin id: value}."""
    rows = session.execute(select(Setting.key, Setting.value)
                           .where(Setting.key.in_([f"{setting}:{admin_id}" for admin_id in admin_ids])))
    return {int(key.rpartition(":")[2]): value for key, value in rows}


def backup_screen(session: Session, lang: str, admin_id: int, database_path: str) -> Screen:
    """What the copies are, where they are kept, and this admin's Daily to me switch."""
    daily = per_admin(session, DAILY, [admin_id]).get(admin_id) == "on"
    folder = Path(database_path).resolve().parent / "backups"
    return Screen(text(lang, "admin_backup", folder=str(folder), keep=KEEP), keyboard(
        [DAILY_BACKUP.button(label(lang, "btn_daily_on" if daily else "btn_daily_off"))],
        [ADMIN.button(label(lang, "btn_back"))]))


def server_screen(lang: str) -> Screen:
    """A database server is backed up with its own tools; say which, and make nothing."""
    return Screen(text(lang, "admin_backup_server"), keyboard([ADMIN.button(label(lang, "btn_back"))]))


@handlers.tap(BACKUP)
def tap_backup(shop: Shop, call: types.CallbackQuery, session: Session):
    """💾 Backup: a copy of the shop now, and the Daily to me switch."""
    lang, path = language_of(call.from_user), sqlite_file(shop.config.database_url)
    if path is None:
        return server_screen(lang)
    return backup_screen(session, lang, call.from_user.id, path), After(send_fresh_copy, chat_of(call), path, lang)


@handlers.tap(DAILY_BACKUP)
def tap_daily_backup(shop: Shop, call: types.CallbackQuery, session: Session) -> Screen:
    """🔁 Daily to me: on or off, for this admin only."""
    lang, path = language_of(call.from_user), sqlite_file(shop.config.database_url)
    if path is None:
        return server_screen(lang)
    key = f"{DAILY}:{call.from_user.id}"
    setting = session.get(Setting, key) or Setting(key=key, value="off")
    setting.value = "off" if setting.value == "on" else "on"
    session.add(setting)
    session.commit()
    return with_toast(backup_screen(session, lang, call.from_user.id, path),
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


def send_daily_backups(shop: Shop, clock: Clock) -> None:
    """One look at the calendar: if any admin is due a daily copy, make one and send it to them."""
    now = clock.time()
    with shop.Session() as session:
        due = admins_due(session, shop.config.admin_ids, now)
    if not due:
        return
    copy = make_copy(sqlite_file(shop.config.database_url), now)
    sent = [admin_id for admin_id, lang in sorted(due.items()) if send_to(shop, admin_id, lang, copy)]
    with shop.Session() as session:  # tried, sent or not: the copy is on disk, and one a day is the promise
        for admin_id in due:
            session.merge(Setting(key=f"{LAST_SENT}:{admin_id}", value=str(int(now))))
        session.commit()
    logger.info("Daily backup %s (%s bytes) sent to admins %s", copy.name, copy.stat().st_size, sent)


def daily_backups(shop: Shop, clock: Clock) -> None:
    """The background job: look every CHECK_EVERY seconds, the first time at once (so a copy goes out at start)."""
    while True:
        try:
            send_daily_backups(shop, clock)
        except Exception:  # a full disk, say: logged, and the next look tries again
            logger.exception("The daily backup failed")
        clock.sleep(CHECK_EVERY)


def start_daily_backups(shop: Shop, clock: Clock | None = None) -> None:
    """At start: daily copies, on SQLite (a database server has its own tools) when the shop has admins."""
    if sqlite_file(shop.config.database_url) and shop.config.admin_ids:
        shop.start_background(daily_backups, clock or Clock())


def register(bot: TeleBot, shop: Shop) -> None:
    """Wire 💾 Backup and 🔁 Daily to me into the bot; the daily copies start with the shop."""
    shop.jobs_at_start.append(start_daily_backups)
    add_handlers(shop, handlers)
