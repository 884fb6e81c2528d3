"""The payments journal: every payment written down before Telegram forgets it, and recorded until it is.

Part of shopkit, the machinery under the shop (see __init__.py).

checkout.py records each payment once per Telegram charge id and commits it
before delivering. On a real server that is not enough: telebot tells Telegram
an update has arrived (by asking for the next ones) before a worker has handled
it, so a crash, a locked database or a full disk at the wrong moment would lose
the payment for good. So every successful payment is appended to a file beside
the database before the bot asks Telegram for the next updates (bot.ShopBot),
and marked done once the purchase is committed. If recording fails it is
retried with backoff; the next start replays what was never recorded. The
charge id stays unique, so a replay is harmless.

The journal is a second chance, never a gate: a line it cannot read is set
aside with one warning, and a journal that cannot be written stops nothing (the
database records the payment; the admins hear once). Recording itself is the
shop's: checkout.py hands its handler over with ``@handlers.payment()``
(routes.py), which reaches ``shop.record_payment`` here.
"""
from __future__ import annotations

import json
import logging
import os
import threading
import time
from datetime import timedelta

from sqlalchemy.engine import make_url
from telebot import types

from .routes import handles_errors, show_reply
from .screens import describe_user, format_price, language_of, text
from .shop import Shop, notify_admins, send

logger = logging.getLogger("shopbot")

RETRY_LONGEST = 60.0  # seconds: the slowest a failing payment is retried

JOURNAL_KEEPS = timedelta(days=30)  # a recorded payment's line stays this long: a restored older copy learns from it
# With a database server the journal lives beside shopbot.py (the folder above this one), wherever the shop starts.
SERVER_JOURNAL_FOLDER = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
JOURNAL_ROOM = 64 * 1024  # bytes free on the journal's disk below which pre-checkout says "try again"


def journal_path(database_url: str) -> str:
    """shop.db.payments.jsonl beside a SQLite file; for a database server, shopbot-payments.jsonl beside the code.

    Always an absolute path: started from another folder, the shop still finds its journal.
    """
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        return os.path.abspath(url.database + ".payments.jsonl")
    return os.path.join(SERVER_JOURNAL_FOLDER, "shopbot-payments.jsonl")


class PaymentJournal:
    """An append-only file: one line per payment as Telegram sent it, and one when it is recorded.

    It is a second chance, never a gate: a line it cannot read is set aside
    (with one warning) and the others still count; a write that fails is the
    caller's to report (journal_failed), and the payment goes on.
    """

    def __init__(self, path: str):
        self.path, self.lock = os.path.abspath(path), threading.Lock()
        self.failing = threading.Event()  # set while writes fail: the admins have been told

    def append(self, entry: dict) -> None:
        """Add one line, on the disk before returning; OSError when the disk or the folder refuses."""
        line = (json.dumps(entry | {"at": int(time.time())}, ensure_ascii=False) + "\n").encode()
        with self.lock, open(self.path, "a+b") as journal:
            if journal.seek(0, os.SEEK_END) and not self.ends_a_line(journal):
                line = b"\n" + line  # the last line was torn (a full disk, kill -9): ours starts afresh
            journal.write(line)
            journal.flush()
            os.fsync(journal.fileno())  # on the disk before Telegram is told we have it

    @staticmethod
    def ends_a_line(journal) -> bool:
        journal.seek(-1, os.SEEK_END)
        return journal.read(1) == b"\n"

    def write(self, message: types.Message) -> None:
        self.append({"charge": message.successful_payment.telegram_payment_charge_id, "message": message.json})

    def done(self, charge_id: str) -> None:
        self.append({"done": charge_id})

    def entries(self) -> list[dict]:
        """Every line that can be read; the others are set aside with one warning (a torn write, a bad sector)."""
        with self.lock:
            return self.read_entries()

    def read_entries(self) -> list[dict]:
        """entries(), for a caller that holds the lock."""
        if not os.path.exists(self.path):
            return []
        readable, unreadable = [], 0
        with open(self.path, "rb") as journal:
            for line in journal:
                try:
                    entry = json.loads(line)
                except ValueError:  # not JSON, or not UTF-8
                    unreadable += bool(line.strip())
                    continue
                if isinstance(entry, dict):
                    readable.append(entry)
                else:
                    unreadable += 1
        if unreadable:
            logger.warning("The payments journal %s has %s unreadable lines; they are skipped (Telegram's ledger "
                           "covers Stars payments)", self.path, unreadable)
        return readable

    def pending(self) -> list[dict]:
        """The payments (as Telegram sent them) that were written down but never recorded."""
        return list(waiting_in(self.entries()).values())

    def recorded(self) -> set[str]:
        """The charge ids this shop recorded in the last 30 days (a database restored from an older copy lacks some)."""
        return {entry["done"] for entry in self.entries() if "done" in entry}

    def compact(self) -> None:
        """Rewrite the file with what is pending and what was recorded lately, so that it does not grow forever.

        All under the lock: an entry appended meanwhile waits, and lands in the new file.
        """
        with self.lock:
            entries = self.read_entries()
            waiting, since = waiting_in(entries), time.time() - JOURNAL_KEEPS.total_seconds()
            kept = [entry for entry in entries if "done" in entry and entry.get("at", since) >= since]
            kept += [{"charge": charge, "message": message} for charge, message in waiting.items()]
            with open(self.path + ".new", "w", encoding="utf-8") as journal:
                for entry in kept:
                    journal.write(json.dumps({"at": int(time.time())} | entry, ensure_ascii=False) + "\n")
                journal.flush()
                os.fsync(journal.fileno())
            os.replace(self.path + ".new", self.path)

    def writable(self) -> bool:
        """Whether a payment could be written down right now: the folder takes writes, and the disk has room."""
        try:
            with open(self.path, "ab"):
                pass
            disk = os.statvfs(os.path.dirname(self.path))
        except OSError:
            return False
        return disk.f_bavail * disk.f_frsize >= JOURNAL_ROOM


def waiting_in(entries: list[dict]) -> dict[str, dict]:
    """charge id -> the payment as Telegram sent it, for each written down and never marked done."""
    waiting: dict[str, dict] = {}
    for entry in entries:
        if "done" in entry:
            waiting.pop(entry["done"], None)
        elif "charge" in entry and isinstance(entry.get("message"), dict):
            waiting[entry["charge"]] = entry["message"]
    return waiting


def journal_failed(shop: Shop, error: OSError) -> None:
    """The journal could not be written: the payment goes on (the database records it), and the admins hear
    once, until a write succeeds again."""
    logger.error("Could not write the payments journal %s: %s", shop.journal.path, error)
    if not shop.journal.failing.is_set():
        shop.journal.failing.set()
        shop.start_background(tell_admins_journal_failed, str(error))


def tell_admins_journal_failed(shop: Shop, error: str) -> None:
    notify_admins(shop, "admin_journal_failed", path=shop.journal.path, error=error)


def write_down(shop: Shop, entry) -> None:
    """Write a payment (a Message) or a charge id now recorded (a str) to the journal; never raises."""
    try:
        shop.journal.write(entry) if isinstance(entry, types.Message) else shop.journal.done(entry)
    except OSError as error:
        journal_failed(shop, error)
        return
    shop.journal.failing.clear()


def is_payment(update) -> bool:
    """A pre-checkout query, a message about money, or paid media bought: these never wait behind anyone's taps
    (nor are they dropped with a flood's)."""
    return isinstance(update, types.PreCheckoutQuery | types.PaidMediaPurchased) or (
        isinstance(update, types.Message) and (
            update.successful_payment is not None or update.refunded_payment is not None))


def journal_payment(shop: Shop, update) -> None:
    """Called for every update before it is handled: a successful payment is written to the journal."""
    if isinstance(update, types.Message) and update.successful_payment is not None:
        payment = update.successful_payment
        logger.info("Payment received: user %s, payload %r, %s %s, charge %s, provider charge %s",
                    update.from_user.id, payment.invoice_payload, payment.total_amount, payment.currency,
                    payment.telegram_payment_charge_id, payment.provider_payment_charge_id or "-")
        write_down(shop, update)


NOT_RECORDED = object()  # what recorded_reply() returns when the database refused: the payment is retried


def recorded_reply(shop: Shop, message: types.Message):
    """Record a payment; the replies that follow (delivery), or NOT_RECORDED when recording failed."""
    charge_id = message.successful_payment.telegram_payment_charge_id
    try:
        with shop.Session() as session:
            reply = shop.record_payment(shop, message, session, language_of(message.from_user))
    except Exception:
        logger.exception("Could not record payment %s yet: it stays in the journal and will be retried", charge_id)
        return NOT_RECORDED
    write_down(shop, charge_id)
    return reply


def record(shop: Shop, message: types.Message) -> bool:
    """Record a payment and show what follows (delivery); False when recording failed, to be retried."""
    reply = recorded_reply(shop, message)
    if reply is NOT_RECORDED:
        return False
    show_reply(shop, message, reply)
    return True


@handles_errors
def take_payment(shop: Shop, message: types.Message) -> None:
    """A successful payment: recorded now, or retried until it is; the customer is told either way."""
    if not record(shop, message):
        send(shop, message.chat.id, text(language_of(message.from_user), "delivery_delayed"))
        shop.start_background(retry_until_recorded)


def retry_until_recorded(shop: Shop, wait: float = 1.0, tell_admins: bool = True) -> None:
    """Record the journal's pending payments, retrying with backoff until none is left (one thread at a time).

    The admins hear of each payment recorded late (``tell_admins``), but not at
    start: what the last run took and never recorded is simply recorded now, as
    its update, sent again by Telegram, would have been.
    """
    if not shop.retrying.acquire(blocking=False):
        return
    try:
        recorded_now: set[str] = set()  # if the journal cannot mark them done, they are not recorded twice
        while pending := still_pending(shop, recorded_now):
            shop.sleep(wait)
            for message_json in pending:
                message = types.Message.de_json(message_json)
                if record(shop, message):
                    recorded_now.add(message.successful_payment.telegram_payment_charge_id)
                    if tell_admins:
                        tell_admins_recorded_late(shop, message)
            wait = min(max(wait, 0.5) * 2, RETRY_LONGEST)
    finally:
        shop.retrying.release()


def still_pending(shop: Shop, recorded_now: set[str]) -> list[dict]:
    """The journal's pending payments but those just recorded; none when the journal cannot be read at all."""
    try:
        pending = shop.journal.pending()
    except OSError as error:
        logger.error("Could not read the payments journal %s: %s", shop.journal.path, error)
        return []
    return [message for message in pending
            if message["successful_payment"]["telegram_payment_charge_id"] not in recorded_now]


def tell_admins_recorded_late(shop: Shop, message: types.Message) -> None:
    """Tell the admins a payment was recorded only after a retry (the provider's charge id for card refunds)."""
    payment = message.successful_payment
    notify_admins(shop, "admin_payment_recorded_late", charge=payment.telegram_payment_charge_id,
                  provider=payment.provider_payment_charge_id or "—",
                  amount=format_price(payment.total_amount, payment.currency), who=describe_user(message.from_user),
                  id=message.from_user.id)
