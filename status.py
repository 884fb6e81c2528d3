"""/status: the seller sees at a glance that the shop is healthy.

Reading order: ... backups.py → **status.py** → pricing.py → ...

A shop runs for months as a service nobody watches. /status (admins only)
answers with one message: since when it runs, which version, how big the
database is and how much room is left on its disk, the last backup, the last
reading of Telegram's Stars ledger and what it fixed, how many updates wait at
Telegram, and how many errors the last day logged.

Before a start, ``python shopbot.py --check`` says the same about the disk
and the payments journal, and, with the check below, whether the backups
folder can be written.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

from sqlalchemy.orm import Session
from telebot import TeleBot, types

import sales
from shopkit import (
    CALL_FAILED,
    ERRORS,
    After,
    Config,
    Handlers,
    Shop,
    add_handlers,
    check_line,
    code_version,
    data_folder,
    free_space,
    megabytes,
    send,
    short_reason,
    sqlite_file,
    stored_revision,
    text,
)

handlers = Handlers(admin=True)


def when(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(timestamp))


def backups_folder(database_path: str) -> Path:
    """Where backups.py keeps its copies: backups/ beside the database."""
    return Path(database_path).resolve().parent / "backups"


# ---------------------------------------------------------------------------
# What the shop knows about itself
# ---------------------------------------------------------------------------

def database_size(session: Session, database_url: str) -> int:
    """Bytes: the SQLite file with its write-ahead log, or what PostgreSQL counts for the database."""
    path = sqlite_file(database_url)
    if path is None:
        return session.connection().exec_driver_sql("SELECT pg_database_size(current_database())").scalar()
    return sum(os.path.getsize(file) for file in (path, path + "-wal") if os.path.exists(file))


def last_backup(lang: str, database_url: str) -> str:
    """The newest copy in backups/ (manual or daily), or why there is none to show."""
    path = sqlite_file(database_url)
    if path is None:
        return text(lang, "status_backup_server")
    folder = backups_folder(path)
    copies = sorted(folder.glob("*.gz"), key=lambda copy: copy.stat().st_mtime) if folder.is_dir() else []
    if not copies:
        return text(lang, "status_never")
    return text(lang, "status_backup", when=when(copies[-1].stat().st_mtime), name=copies[-1].name)


def version(session: Session) -> str:
    """The database's revision (migrations/versions) and the code's ``git describe``, when it has one."""
    revision = stored_revision(session.connection()) or "?"
    code = code_version()
    return f"revision {revision}" + (f", {code}" if code else "")


def status_facts(shop: Shop, session: Session, lang: str) -> dict:
    """What /status shows, but for the updates waiting at Telegram (asked once the session is closed)."""
    url = shop.config.database_url
    return {"since": when(shop.started_at), "version": version(session),
            "size": megabytes(database_size(session, url)), "free": megabytes(free_space(data_folder(url))),
            "backup": last_backup(lang, url), "ledger": sales.ledger_line(session, lang).strip(),
            "errors": ERRORS.in_last_day()}


def send_status(shop: Shop, chat_id: int, lang: str, facts: dict) -> None:
    """The status, with the updates waiting at Telegram (getWebhookInfo): asked once the session is closed."""
    try:
        pending = str(shop.bot.get_webhook_info().pending_update_count)
    except CALL_FAILED as error:
        pending = text(lang, "status_unknown", why=short_reason(error))
    send(shop, chat_id, text(lang, "status", pending=pending, **facts))


@handlers.command("status")
def on_status(shop: Shop, message: types.Message, session: Session, lang: str) -> After:
    """/status: is the shop healthy? (admins only)"""
    return After(send_status, message.chat.id, lang, status_facts(shop, session, lang))


# ---------------------------------------------------------------------------
# python shopbot.py --check: the backups folder (shopkit checks the journal)
# ---------------------------------------------------------------------------

def writable(path: str) -> bool:
    """A file that can be written, or, if it does not exist yet, a folder it can be made in."""
    if os.path.exists(path):
        return os.access(path, os.W_OK)
    folder = os.path.dirname(os.path.abspath(path))
    return os.path.isdir(folder) and os.access(folder, os.W_OK | os.X_OK)


def check_backups(config: Config) -> bool:
    path = sqlite_file(config.database_url)
    if path is None:
        return check_line("backups", "ok", "a database server: back it up with its own tools (pg_dump)")
    folder = backups_folder(path)
    if not folder.parent.is_dir():
        return True  # the database line has said that the folder is missing
    if not writable(str(folder)):
        return check_line("backups", "WARN", f"the shop may not write {folder}: 💾 Backup and the daily copies "
                                             "would fail; let the user that runs it write there")
    return check_line("backups", "ok", f"{folder} can be written")


CHECKS = [check_backups]  # shopbot.py hands it to --check


def register(bot: TeleBot, shop: Shop) -> None:
    """Wire /status into the bot."""
    add_handlers(shop, handlers)
