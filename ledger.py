"""Ledger: no payment is ever lost or doubled, whatever happens to the machine.

Reading order: ... checkout.py → **ledger.py** → gifts.py → ...

checkout.py records each payment once per Telegram charge id and commits it
before delivering. On a real server that is not enough: telebot tells
Telegram an update has arrived (by asking for the next ones) before a worker
has handled it, so a crash, a locked database or a full disk at the wrong
moment would lose the payment for good. Four guarantees close the gaps:

1. **The journal.** Every successful payment is appended to a file beside the
   database before the bot asks Telegram for the next updates
   (shopbot.ShopBot), and marked done once the purchase is committed. If
   recording fails it is retried with backoff; the next start replays what was
   never recorded. The charge id stays unique, so a replay is harmless.
2. **Delivery at least once.** A purchase remembers when it was delivered;
   the next start delivers what was recorded but never sent.
3. **Telegram's Stars ledger is the source of truth.** On start and every 10
   minutes the shop reads the transactions it has not checked yet
   (getStarTransactions): a payment it never heard of is recorded and
   delivered with an apology, and a refund it did not know of is applied.
4. **Refunds made by Telegram** arrive as a refunded_payment message: the
   purchase is marked refunded and its content no longer opens.

Card payments have no ledger to read; the journal and the retries cover them.
"""
from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session
from telebot import TeleBot, types
from telebot.apihelper import ApiException

import subscriptions
from checkout import on_successful_payment, parse_invoice_payload
from models import Product, Purchase, User
from purchases import TELEGRAM, close_refund, deliver
from shopkit import (
    AdminNotice,
    Setting,
    Shop,
    counted,
    describe_user,
    format_price,
    handles_errors,
    language_for_code,
    language_of,
    notify_admins,
    on_message,
    put_setting,
    send,
    show_reply,
    text,
    utcnow,
)

logger = logging.getLogger("shopbot")

RETRY_LONGEST = 60.0  # seconds: the slowest a failing payment is retried
# Older purchases left undelivered are not sent out of the blue at start: they wait in My purchases.
REDELIVER_WITHIN = timedelta(days=7)
LEDGER_EVERY = 600.0  # seconds between two readings of Telegram's Stars ledger
LEDGER_PAGE = 100  # transactions per getStarTransactions call, Telegram's maximum
# Telegram sends a payment's update at once, and again after a restart if the bot had not confirmed it: a payment
# the ledger shows but the shop has not recorded is left to its update until the shop has been running this long
# since it was made. Only then was the update lost; acting sooner would deliver it twice, with a false apology.
UPDATE_GRACE = 300.0  # seconds

# ---------------------------------------------------------------------------
# 1. The journal: payments written down before Telegram forgets them
# ---------------------------------------------------------------------------


def journal_path(database_url: str) -> str:
    """shop.db.payments.jsonl beside a SQLite file; in the working directory for a database server."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        return url.database + ".payments.jsonl"
    return "shopbot-payments.jsonl"


class PaymentJournal:
    """An append-only file: one line per payment as Telegram sent it, and one when it is recorded."""

    def __init__(self, path: str):
        self.path, self.lock = path, threading.Lock()

    def append(self, entry: dict) -> None:
        with self.lock, open(self.path, "a", encoding="utf-8") as journal:
            journal.write(json.dumps(entry, ensure_ascii=False) + "\n")
            journal.flush()
            os.fsync(journal.fileno())  # on the disk before Telegram is told we have it

    def write(self, message: types.Message) -> None:
        self.append({"charge": message.successful_payment.telegram_payment_charge_id, "message": message.json})

    def done(self, charge_id: str) -> None:
        self.append({"done": charge_id})

    def pending(self) -> list[dict]:
        """The payments (as Telegram sent them) that were written down but never recorded."""
        if not os.path.exists(self.path):
            return []
        waiting: dict[str, dict] = {}
        with self.lock, open(self.path, encoding="utf-8") as journal:
            for line in journal:
                entry = json.loads(line) if line.strip().endswith("}") else {}  # a torn last line: kill -9
                if "done" in entry:
                    waiting.pop(entry["done"], None)
                elif "charge" in entry:
                    waiting[entry["charge"]] = entry["message"]
        return list(waiting.values())

    def compact(self) -> None:
        """Rewrite the file with only what is still pending (at start, so it does not grow forever)."""
        pending = self.pending()
        with self.lock, open(self.path + ".new", "w", encoding="utf-8") as journal:
            for message in pending:
                journal.write(json.dumps({"charge": message["successful_payment"]["telegram_payment_charge_id"],
                                          "message": message}, ensure_ascii=False) + "\n")
        os.replace(self.path + ".new", self.path)


def is_payment(update) -> bool:
    """A pre-checkout query, or a message about money: these never wait behind anyone's taps."""
    return isinstance(update, types.PreCheckoutQuery) or (isinstance(update, types.Message) and (
        update.successful_payment is not None or update.refunded_payment is not None))


def journal_payment(shop: Shop, update) -> None:
    """Called for every update before it is handled: a successful payment is written to the journal."""
    if isinstance(update, types.Message) and update.successful_payment is not None:
        payment = update.successful_payment
        logger.info("Payment received: user %s, payload %r, %s %s, charge %s, provider charge %s",
                    update.from_user.id, payment.invoice_payload, payment.total_amount, payment.currency,
                    payment.telegram_payment_charge_id, payment.provider_payment_charge_id or "-")
        shop.journal.write(update)


def record(shop: Shop, message: types.Message) -> bool:
    """Record a payment and show what follows (delivery); False when recording failed, to be retried."""
    charge_id = message.successful_payment.telegram_payment_charge_id
    try:
        with shop.Session() as session:
            reply = on_successful_payment(shop, message, session)
    except Exception:
        logger.exception("Could not record payment %s yet: it stays in the journal and will be retried", charge_id)
        return False
    shop.journal.done(charge_id)
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
        while pending := shop.journal.pending():
            shop.sleep(wait)
            for message_json in pending:
                message = types.Message.de_json(message_json)
                if record(shop, message) and tell_admins:
                    late_notice(message).show(shop, message)
            wait = min(max(wait, 0.5) * 2, RETRY_LONGEST)
    finally:
        shop.retrying.release()


def late_notice(message: types.Message) -> AdminNotice:
    """Tell the admins a payment was recorded only after a retry (the provider's charge id for card refunds)."""
    payment = message.successful_payment
    return AdminNotice("admin_payment_recorded_late", dict(
        charge=payment.telegram_payment_charge_id, provider=payment.provider_payment_charge_id or "—",
        amount=format_price(payment.total_amount, payment.currency), who=describe_user(message.from_user),
        id=message.from_user.id))


# ---------------------------------------------------------------------------
# 2. Delivery at least once
# ---------------------------------------------------------------------------

def undelivered(shop: Shop, after_id: int) -> list:
    """The next purchases recorded in the last week but never delivered, in order of id."""
    with shop.Session() as session:
        return session.execute(
            select(Purchase.id, User.telegram_id, User.language_code, Product.name)
            .join(User, Purchase.user_id == User.id).join(Product, Purchase.product_id == Product.id)
            .where(Purchase.delivered_at.is_(None), Purchase.refunded_at.is_(None), Purchase.id > after_id,
                   Purchase.created_at > utcnow() - REDELIVER_WITHIN)
            .order_by(Purchase.id).limit(100)).all()


def deliver_what_was_not(shop: Shop) -> int:
    """Deliver the purchases recorded but never delivered (the bot stopped in between); how many."""
    count, after_id = 0, 0
    while batch := undelivered(shop, after_id):
        for purchase_id, telegram_id, language_code, name in batch:
            lang = language_for_code(language_code)
            deliver(shop, telegram_id, purchase_id, text(lang, "delivery_late", name=name), lang)
        count, after_id = count + len(batch), batch[-1][0]
    return count


# ---------------------------------------------------------------------------
# 3 and 4. Refunds made by Telegram, and Telegram's Stars ledger
# ---------------------------------------------------------------------------

def refunded_by_telegram(session: Session, charge_id: str, never_delivered: bool = False):
    """Close the purchase of a charge Telegram refunded; its replies, or None when there is nothing to do.

    Telegram also reports the shop's own refunds (refundStarPayment) this way,
    sometimes before its answer to the shop: such a refund was written down
    first, and is closed in the shop's name, once (purchases.close_refund).
    """
    purchase = session.scalar(select(Purchase).where(Purchase.payment_id == charge_id))
    if purchase is None:
        return None
    replies = close_refund(session, purchase, TELEGRAM, never_delivered)
    session.commit()
    return replies


def on_refunded_payment(shop: Shop, message: types.Message, session: Session):
    """Telegram's refunded_payment message: the payment was refunded (by Telegram's support, or by us)."""
    return refunded_by_telegram(session, message.refunded_payment.telegram_payment_charge_id)


@dataclass
class LedgerCheck:
    """What one reading of Telegram's Stars ledger found and fixed."""

    read: int = 0
    recorded: list[str] = field(default_factory=list)  # charge ids of payments the shop never heard of
    refunded: list[str] = field(default_factory=list)  # charge ids of refunds it did not know of


def ledger_offset(shop: Shop) -> int:
    with shop.Session() as session:
        setting = session.get(Setting, "ledger_offset")
        return int(setting.value) if setting else 0


def new_transactions(shop: Shop, offset: int) -> list:
    """Every transaction after the first ``offset``, oldest first (Telegram's order)."""
    found = []
    while True:
        page = shop.bot.get_star_transactions(offset=offset + len(found), limit=LEDGER_PAGE).transactions
        found += page
        if len(page) < LEDGER_PAGE:
            return found


def our_payment(transaction) -> bool:
    """An incoming payment, from a user, for one of the shop's own invoices."""
    source = transaction.source
    return (source is not None and source.type == "user" and source.transaction_type == "invoice_payment"
            and parse_invoice_payload(source.invoice_payload) is not None)


def as_payment_message(transaction, renews: bool) -> types.Message:
    """The successful_payment message Telegram would have sent for a payment in its ledger."""
    user = transaction.source.user.to_dict()
    payment = {"currency": "XTR", "total_amount": transaction.amount,
               "invoice_payload": transaction.source.invoice_payload,
               "telegram_payment_charge_id": transaction.id, "provider_payment_charge_id": ""}
    if transaction.source.subscription_period:  # a subscription's payment: it pays until one period later
        payment.update(is_recurring=True, is_first_recurring=not renews,
                       subscription_expiration_date=transaction.date + transaction.source.subscription_period)
    return types.Message.de_json({
        "message_id": 0, "date": transaction.date, "from": user, "chat": {"id": user["id"], "type": "private"},
        "successful_payment": payment})


def renewal(shop: Shop, transaction) -> bool:
    """A subscription's payment (subscriptions.py) that renewed the customer's subscription: Telegram's ledger
    does not say, so its date decides, as Telegram's is_first_recurring would have."""
    product_id = parse_invoice_payload(transaction.source.invoice_payload)[0]
    paid_at = datetime.fromtimestamp(transaction.date, UTC).replace(tzinfo=None)
    return bool(transaction.source.subscription_period) and subscriptions.renewed_by(
        shop, transaction.source.user.id, product_id, paid_at)


def record_late(shop: Shop, transaction, refunded: bool) -> bool:
    """A payment the shop never heard of: recorded, and delivered with an apology unless Telegram refunded it."""
    renews = renewal(shop, transaction)
    message = as_payment_message(transaction, renews)
    if not refunded:
        if not renews:  # a renewal delivers nothing: no apology either
            paid = datetime.fromtimestamp(transaction.date).strftime("%Y-%m-%d %H:%M")
            send(shop, message.chat.id, text(language_of(message.from_user), "paid_late", date=paid))
        return record(shop, message)
    try:
        with shop.Session() as session:
            on_successful_payment(shop, message, session)  # nothing to deliver or refund: Telegram refunded it
    except Exception:
        logger.exception("Could not record refunded payment %s yet", transaction.id)
        return False
    apply_refund(shop, transaction.id, never_delivered=True)  # a key nobody saw goes back, access ends...
    return True


def update_may_still_come(transaction, polling_since: float, now: float) -> bool:
    """Whether the shop may yet hear of this payment from its own update: too recent to call it missed."""
    return now - max(transaction.date, polling_since) < UPDATE_GRACE


def check_ledger(shop: Shop, polling_since: float = 0.0, now: float | None = None) -> LedgerCheck:
    """Read the transactions not checked yet and act on what the shop missed; safe to run again.

    ``polling_since``: when this process began to fetch updates (catch_up);
    ``now``: the moment of reading, as a Unix time (tests move it).
    """
    offset, check, now = ledger_offset(shop), LedgerCheck(), now or time.time()
    transactions = new_transactions(shop, offset)
    refunds = {t.id for t in transactions if t.receiver is not None and t.receiver.type == "user"}
    with shop.Session() as session:
        known = set(session.scalars(select(Purchase.payment_id).where(
            Purchase.payment_id.in_([t.id for t in transactions]))))
    for transaction in transactions:
        if our_payment(transaction) and transaction.id not in known:
            if update_may_still_come(transaction, polling_since, now):
                break  # keep the offset here: the next reading looks again
            if not record_late(shop, transaction, refunded=transaction.id in refunds):
                break  # keep the offset here: the next reading tries again
            check.recorded.append(transaction.id)
        elif transaction.id in refunds and apply_refund(shop, transaction.id):
            check.refunded.append(transaction.id)
        check.read += 1
    save_check(shop, offset + check.read, check)
    return check


def apply_refund(shop: Shop, charge_id: str, never_delivered: bool = False) -> bool:
    with shop.Session() as session:
        replies = refunded_by_telegram(session, charge_id, never_delivered)
    if replies is None:
        return False
    show_reply(shop, None, replies)
    return True


def save_check(shop: Shop, offset: int, check: LedgerCheck) -> None:
    """Remember how far the ledger was read, when, and what it fixed (📊 Sales shows it)."""
    summary = f"{len(check.recorded)} {len(check.refunded)}"
    with shop.Session() as session:
        for key, value in (("ledger_offset", str(offset)), ("ledger_checked_at", utcnow().isoformat()),
                           ("ledger_fixed", summary)):
            put_setting(session, key, value)
        session.commit()
    if check.recorded or check.refunded:
        logger.warning("Telegram's ledger: %s payments recorded late, %s refunds applied",
                       len(check.recorded), len(check.refunded))
        notify_admins(shop, "admin_ledger_fixed",
                      payments=lambda lang: counted(lang, "n_payments", len(check.recorded)),
                      refunds=lambda lang: counted(lang, "n_refunds", len(check.refunded)))


def keep_checking_ledger(shop: Shop, polling_since: float = 0.0) -> None:
    """Read Telegram's Stars ledger now and every 10 minutes; a failed reading is tried again next time."""
    while True:
        try:
            check_ledger(shop, polling_since)
        except ApiException as error:  # Telegram unreachable, or unwell: the next reading catches up
            logger.warning("Could not read Telegram's Stars ledger: %s", error)
        except Exception:
            logger.exception("Reading Telegram's Stars ledger failed; trying again in 10 minutes")
        shop.sleep(LEDGER_EVERY)


# ---------------------------------------------------------------------------
# At start, and wiring
# ---------------------------------------------------------------------------

def catch_up(shop: Shop) -> None:
    """At start, beside the first polls: replay the journal, deliver what was not, keep reading the ledger."""
    polling_since = time.time()  # from now on, the updates Telegram kept for the bot come in (shopbot.py)
    if shop.journal.pending():
        retry_until_recorded(shop, wait=0.0, tell_admins=False)
    shop.journal.compact()
    if delivered := deliver_what_was_not(shop):
        logger.info("Delivered %s purchases that had been recorded but not delivered", delivered)
    if shop.config.payment_type == "stars":
        keep_checking_ledger(shop, polling_since)


def register(bot: TeleBot, shop: Shop) -> None:
    """Wire the payment updates into the bot: successful payments and Telegram's refunds."""
    private = {"chat_types": ["private"]}
    bot.register_message_handler(lambda message: take_payment(shop, message), content_types=["successful_payment"],
                                 **private)
    bot.register_message_handler(on_message(shop, on_refunded_payment), content_types=["refunded_payment"],
                                 **private)
