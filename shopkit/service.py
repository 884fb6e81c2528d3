"""Service: running the shop for real — what it checks before it serves.

A new seller's first hour decides whether they keep the shop, so every
first-hour mistake gets one clear line instead of a retry loop:

- **The token** is the first thing asked of Telegram, with ``getMe``: a token
  Telegram rejects stops the start (exit code 2) with "copy it again from
  @BotFather". (Only the database, which needs no network, is checked before.)
- **An unreachable Telegram** (no network, a firewall) is said once, waited
  for with growing pauses up to a minute, and its return said once: not one
  raw urllib3 error every 3 seconds (``TelegramLink``).
- **The shop's own checks** (the catalog's currency: currency.py) are handed
  in by the chapters and run beside these.
- ``python shopbot.py --check`` checks everything a deployment needs, one
  line per item (free disk space and whether a copy is running among them),
  and exits 0 or 1 without polling: systemd runs it before each start
  (deploy/shopbot.service).
- **How the shop is doing**: free disk space, the code's version, for
  --check and for /status (status.py).
"""
from __future__ import annotations

import functools
import logging
import os
import shutil
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit

import requests
from telebot import apihelper, types
from telebot.apihelper import ApiHTTPException, ApiInvalidJSONException, ApiTelegramException

from .config import STARS, TELEGRAM_API, Config, NotTheBotApisAnswer
from .database import DatabaseError, describe_database, sqlite_file
from .instance import hold_instance_lock
from .journal import PaymentJournal, journal_path
from .shop import CALL_FAILED, retry_after

logger = logging.getLogger("shopbot")

# ---------------------------------------------------------------------------
# Is Telegram there?
# ---------------------------------------------------------------------------

FIRST_WAIT = 0.5  # seconds before the first retry; doubled after every failure...
LONGEST_WAIT = 60  # ...up to a minute
# Clues in a connection error's long text, and what they mean in a few words.
NETWORK_CLUES = [("Failed to resolve", "name not resolved: no DNS?"), ("Connection refused", "connection refused"),
                 ("Network is unreachable", "network unreachable"), ("timed out", "timed out")]


class StartRefused(Exception):
    """The shop must not start as configured; the message says why and what to do, in one line."""


class TokenRejected(StartRefused):
    def __init__(self):
        super().__init__("Telegram rejected BOT_TOKEN: copy it again from @BotFather")


def rejects_token(error: Exception) -> bool:
    """401 Unauthorized for a revoked or mistyped token; 404 Not Found for a malformed one."""
    return isinstance(error, ApiTelegramException) and error.error_code in (401, 404)


def short_reason(error: Exception) -> str:
    """A few words on why a call failed: no URL (it holds the token) and none of urllib3's long story."""
    if isinstance(error, ApiTelegramException):
        return f"{error.error_code} {error.description}"
    if isinstance(error, NotTheBotApisAnswer):  # a proxy's page, a cut-off body (config.bot_api_answer)
        return f"HTTP {error.result.status_code} {error.result.reason}, not the Bot API's answer"
    if isinstance(error, ApiHTTPException):
        return f"HTTP {error.result.status_code} {error.result.reason}"
    if isinstance(error, ApiInvalidJSONException):
        return "the answer was not the Bot API's"
    if isinstance(error, requests.Timeout):
        return "timed out"
    if isinstance(error, requests.exceptions.SSLError):
        return "TLS error: check the machine's clock and certificates"
    text = str(error)
    for clue, reason in NETWORK_CLUES:
        if clue in text:
            return reason
    return "connection failed" if isinstance(error, requests.ConnectionError) else type(error).__name__


class TelegramLink:
    """Calls to Telegram that wait out its absence: the outage is logged once when it starts, once when it ends.

    ``sleep`` is injectable, as ``shop.sleep`` is, so that tests need not wait.
    """

    def __init__(self, api_url: str | None, sleep=time.sleep):
        self.host = urlsplit(api_url or TELEGRAM_API).netloc
        self.sleep = sleep
        self.down_since: float | None = None
        self.wait = FIRST_WAIT

    def failed(self, error: Exception) -> None:
        if self.down_since is None:
            refused = isinstance(error, ApiTelegramException) and error.error_code < 500  # not a network's fault
            what = "Telegram refused a call" if refused else "cannot reach Telegram"
            logger.warning("%s at %s (%s), retrying", what, self.host, short_reason(error))
            self.down_since = time.monotonic()
        self.sleep(self.wait)
        self.wait = min(self.wait * 2, LONGEST_WAIT)

    def answered(self) -> None:
        if self.down_since is not None:
            logger.warning("Telegram at %s answers again, after %.0f s", self.host, time.monotonic() - self.down_since)
        self.down_since, self.wait = None, FIRST_WAIT

    def call(self, method, *args, **kwargs):
        """``method(*args, **kwargs)`` until Telegram answers. TokenRejected for a rejected token; a 409 Conflict
        is raised for the caller to explain; a flood limit is waited out (``retry_after``, as shop.call_api does);
        anything else is retried, for ever: polling has nothing better to do."""
        while True:
            try:
                result = method(*args, **kwargs)
            except ApiTelegramException as error:
                if rejects_token(error):
                    raise TokenRejected() from None
                if error.error_code == 409:
                    raise
                if error.error_code == 429:
                    self.sleep(retry_after(error))
                else:
                    self.failed(error)
                continue
            except CALL_FAILED as error:
                self.failed(error)
                continue
            self.answered()
            return result


# ---------------------------------------------------------------------------
# How the shop is doing: for /status (status.py) and --check
# ---------------------------------------------------------------------------

LOW_DISK = 100 * 1024 * 1024  # below this much free space, --check warns: copies and the journal need room
PROJECT = Path(__file__).resolve().parent.parent  # the shop's folder, a git checkout if it was cloned


def data_folder(database_url: str) -> str:
    """Where the shop writes: the SQLite file's folder; the working directory beside a database server."""
    path = sqlite_file(database_url)
    return os.path.dirname(os.path.abspath(path)) if path else os.getcwd()


def free_space(folder: str) -> int:
    """Bytes free on the disk that holds ``folder``."""
    return shutil.disk_usage(folder).free


def megabytes(size: int) -> str:
    return f"{size / 1024 ** 2:,.1f} MB"


@functools.cache
def code_version() -> str | None:
    """``git describe`` of the shop's code (a tag, or the commit), or None when it was not cloned with git."""
    try:
        done = subprocess.run(["git", "describe", "--tags", "--always", "--dirty"], cwd=PROJECT, timeout=5,
                              capture_output=True, text=True)
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.strip() or None


def check_disk(config: Config) -> bool:
    folder = data_folder(config.database_url)
    if not os.path.isdir(folder):
        return True  # the database line has said that the folder is missing
    free = free_space(folder)
    status = "WARN" if free < LOW_DISK else "ok"
    return check_line("disk", status, f"{megabytes(free)} free in {folder}" +
                      ("; backups and the payments journal need room" if status == "WARN" else ""))


def check_lock(config: Config) -> bool:
    """Is a copy serving this shop now? (Asked without leaving anything behind: the lock is let go at once.)"""
    path = sqlite_file(config.database_url)
    if path and not os.path.exists(path + ".lock"):
        return check_line("lock", "ok", "no copy of the shop is running")  # a running copy has made the file
    try:
        lock = hold_instance_lock(config.database_url)
    except DatabaseError as error:
        return check_line("lock", "FAIL", str(error))
    if lock is None:
        return check_line("lock", "WARN", "another copy of the shop is serving this database now")
    unclean = lock.unclean_stop
    lock.close()
    return check_line("lock", "ok", "no copy of the shop is running" + (
        "; the last one did not stop cleanly: the next start checks the whole database" if unclean else ""))


# ---------------------------------------------------------------------------
# python shopbot.py --check
# ---------------------------------------------------------------------------

def check_line(item: str, status: str, detail: str) -> bool:
    """Print one line of the check; True unless it failed."""
    print(f"{item}: {status} — {detail}")
    return status != "FAIL"


def check_configuration(config: Config) -> bool:
    payments = "Telegram Stars" if config.currency == STARS else f"cards in {config.currency}"
    return check_line("configuration", "ok", f"{len(config.admin_ids)} admin(s), {payments}, "
                                             f"LOG_LEVEL={config.log_level}")


def check_database(config: Config) -> bool:
    try:
        return check_line("database", "ok", describe_database(config.database_url))
    except DatabaseError as error:
        return check_line("database", "FAIL", str(error))


def check_journal(config: Config) -> bool:
    """The payments journal (journal.py): where it is, and whether a payment could be written to it now."""
    journal = PaymentJournal(journal_path(config.database_url))
    folder = os.path.dirname(journal.path)
    if not os.path.isdir(folder):
        return check_line("journal", "FAIL", f"{journal.path}: its folder does not exist")
    existed = os.path.exists(journal.path)
    writable = journal.writable()
    if not existed and os.path.exists(journal.path):
        os.remove(journal.path)  # --check creates nothing
    if not writable:
        return check_line("journal", "FAIL", f"{journal.path} cannot be written (a read-only folder, or a full "
                                             "disk): pre-checkout would refuse every payment")
    return check_line("journal", "ok", f"{journal.path} is writable")


def check_token(config: Config) -> types.User | None:
    """getMe, once: the bot it names, or None (the failure is printed)."""
    try:
        me = types.User.de_json(apihelper.get_me(config.token))
    except CALL_FAILED as error:
        host = urlsplit(config.api_url or TELEGRAM_API).netloc
        check_line("telegram", "FAIL", str(TokenRejected()) if rejects_token(error)
                   else f"cannot reach Telegram at {host} ({short_reason(error)})")
        return None
    check_line("telegram", "ok", f"the token is @{me.username}'s: https://t.me/{me.username}")
    return me


def check_admins(config: Config) -> bool:
    """Each admin must have opened the bot: Telegram lets a bot write only to people who have."""
    if not config.admin_ids:
        return check_line("admins", "WARN", "No ADMIN_IDS: nobody can open /admin. To find your Telegram id, start "
                                            "the shop and send /admin to the bot: it answers with your id and the "
                                            "setting to add (or ask @userinfobot)")
    return all([check_admin(config, admin_id) for admin_id in sorted(config.admin_ids)])


def check_admin(config: Config, admin_id: int) -> bool:
    """getChat answers only for someone who has opened the bot."""
    item = f"admin {admin_id}"
    try:
        chat = apihelper.get_chat(config.token, admin_id)
    except ApiTelegramException as error:
        return check_line(item, "WARN", f"has not opened the bot ({error.description}): send it /start from that "
                                        "account, or the shop cannot write to them. If it is not your id: send "
                                        "/admin to the bot, and its log names your id (or ask @userinfobot)")
    except CALL_FAILED as error:
        return check_line(item, "FAIL", f"could not ask Telegram ({short_reason(error)})")
    return check_line(item, "ok", f"{chat.get('first_name', '')} has opened the bot")


def run_checks(config: Config, shop_checks=()) -> int:
    """Everything a deployment needs, one line each; 0 when nothing failed (warnings are fine), else 1.

    ``shop_checks`` are the shop's own, each a function of the configuration (the catalog's currency).
    """
    passed = [check_configuration(config), check_database(config), check_disk(config), check_lock(config),
              check_journal(config)]
    me = check_token(config)
    passed += [me is not None, *(check(config) for check in shop_checks)]
    if me is not None:
        passed.append(check_admins(config))
    print("All checks passed." if all(passed) else "Some checks FAILED.")
    return 0 if all(passed) else 1
