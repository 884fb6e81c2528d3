"""Ledger: no payment is ever lost or doubled, whatever happens to the machine.

Reading order: ... paid_media.py → **ledger.py** → gifts.py → ...

checkout.py records each payment once per Telegram charge id and commits it
before delivering. On a real server that is not enough: telebot tells
Telegram an update has arrived (by asking for the next ones) before a worker
has handled it, so a crash, a locked database or a full disk at the wrong
moment would lose the payment for good. Four guarantees close the gaps:

1. **The journal** (shopkit/journal.py, the machinery). Every successful
   payment is appended to a file beside the database before the bot asks
   Telegram for the next updates, and marked done once the purchase is
   committed. If recording fails it is retried with backoff; the next start
   replays what was never recorded (catch_up, below). The charge id stays
   unique, so a replay is harmless.
2. **Delivery at least once.** A purchase remembers when it was delivered;
   the next start delivers what was recorded but never sent.
3. **Telegram's Stars ledger is the source of truth.** On start and every 10
   minutes the shop reads the transactions it has not checked yet
   (getStarTransactions): a payment it never heard of is recorded and
   delivered with an apology, and a refund it did not know of is applied.
   It acts only on payments this database could have seen: a new one starts
   at the ledger's end; a payment the journal says was recorded (the database
   was restored from an older copy) is recorded again without a word to the
   buyer; and one it cannot honour is never refunded from here, but listed for
   the admins with a ↩️ Refund button.
4. **Refunds made by Telegram** arrive as a refunded_payment message: the
   purchase is marked refunded and its content no longer opens.
5. **Revenue net of Telegram's cuts.** Every transaction read is kept
   (StarLedgerEntry) with its kind: a payment (the bot's share, and the
   affiliate's commission when the seller joined Telegram's affiliate program),
   a refund, a paid-broadcast fee, a withdrawal, gifts, ads... 📊 Sales sums
   them per period into gross, commissions, fees and net, which is the
   ledger's own sum. A kind the shop does not know yet is counted and logged,
   never acted on, and never stops the reading.

📸 Paid media (paid_media.py) is paid without an invoice, and its update
carries no charge id: the ledger gives each paid-media purchase its charge id
(or records one whose update never came), so that its refund, found here like
any other, ends it.

Card payments have no ledger to read; the journal and the retries cover them.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import requests
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session
from telebot import TeleBot, apihelper, types
from telebot.apihelper import ApiException, ApiTelegramException

import paid_media
import subscriptions
from checkout import on_successful_payment, parse_invoice_payload, record_payment, refund_at_once, refund_unmatched
from models import Product, Purchase, StarLedgerEntry, User, save_user, stock_item_of
from purchases import TELEGRAM, close_refund, deliver, mark_delivered
from shopkit import (
    NANOSTARS,
    NOT_RECORDED,
    STARS,
    After,
    Handlers,
    Setting,
    Shop,
    Tap,
    add_handlers,
    counted,
    describe_user,
    format_price,
    format_stars,
    keyboard,
    label,
    language_for_code,
    language_of,
    notify_admins,
    put_setting,
    recorded_reply,
    replies,
    retry_until_recorded,
    send,
    show_reply,
    telegram_error,
    text,
    utcnow,
)

logger = logging.getLogger("shopbot")
handlers = Handlers()  # what Telegram tells the shop: its refunds
# ↩️ Refund beside a payment the ledger found: a purchase's own refund (sales.py answers it), or the Stars of a
# payment at its place in Telegram's ledger, when the shop could record nothing.
REFUND = Tap("refund", "purchase_id")
LEDGER_REFUND = Tap("ledger_refund", "index")
seller = Handlers(admin=True)  # the admins' ↩️ Refund beside a payment the ledger found

# Older purchases left undelivered are not sent out of the blue at start: they wait in My purchases.
REDELIVER_WITHIN = timedelta(days=7)
LEDGER_EVERY = 600.0  # seconds between two readings of Telegram's Stars ledger
LEDGER_PAGE = 100  # transactions per getStarTransactions call, Telegram's maximum
# Telegram sends a payment's update at once, and again after a restart if the bot had not confirmed it: a payment
# the ledger shows but the shop has not recorded is left to its update until the shop has been running this long
# since it was made. Only then was the update lost; acting sooner would deliver it twice, with a false apology.
UPDATE_GRACE = 300.0  # seconds
# Why a payment the ledger found cannot be honoured, as the admins' list says it (checkout's reason -> text key).
# A late renewal of a replaced subscription ("superseded") pays for time the buyer owns already.
LEDGER_REASONS = {"sold_out": "ledger_sold_out", "owned": "ledger_owned", "promo": "ledger_promo",
                  "superseded": "ledger_owned"}
UNHONOURED_SHOWN = 30  # payments listed (each with its ↩️ Refund) in one message to the admins

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


@handlers.message("refunded_payment")
def on_refunded_payment(shop: Shop, message: types.Message, session: Session, lang: str):
    """Telegram's refunded_payment message: the payment was refunded (by Telegram's support, or by us)."""
    return refunded_by_telegram(session, message.refunded_payment.telegram_payment_charge_id)


@dataclass
class Unhonoured:
    """A payment the ledger showed that the shop cannot honour (or, after a restore, could not record again)."""

    index: int  # its place in Telegram's ledger: the ↩️ Refund button finds it there
    transaction: types.StarTransaction
    reason: str  # a text key: why
    purchase_id: int | None = None  # set aside for refund (refund_due); None when nothing could be recorded

    def line(self, lang: str) -> str:
        """One plain line for the admins' list: who paid what, and why it is here."""
        source = self.transaction.source
        return label(lang, "ledger_item", amount=format_price(self.transaction.amount, STARS),
                     who=describe_user(source.user), id=source.user.id, why=label(lang, self.reason),
                     charge=self.transaction.id, purchase=f"#{self.purchase_id}" if self.purchase_id else "—")

    def refund_button(self, lang: str, number: int):
        """↩️ Refund: the purchase's own refund (sales.py) when there is one; else Stars straight back."""
        if self.purchase_id:
            return REFUND.button(label(lang, "btn_refund_payment", number=number), purchase_id=self.purchase_id)
        return LEDGER_REFUND.button(label(lang, "btn_refund_payment", number=number), index=self.index)


@dataclass
class LedgerCheck:
    """What one reading of Telegram's Stars ledger found and fixed."""

    read: int = 0
    recorded: list[str] = field(default_factory=list)  # charge ids of payments the shop never heard of
    refunded: list[str] = field(default_factory=list)  # charge ids of refunds it did not know of
    restored: list[str] = field(default_factory=list)  # recorded by an older copy of the database: again, silently
    unhonoured: list[Unhonoured] = field(default_factory=list)  # found, set aside, for the admins to refund
    keyless: list[Unhonoured] = field(default_factory=list)  # recorded again, but their key or product is gone
    entries: list[StarLedgerEntry] = field(default_factory=list)  # every transaction read, for 📊 Sales


def ledger_offset(shop: Shop) -> int | None:
    """How far the ledger has been read; None for a database that has never read it."""
    with shop.Session() as session:
        setting = session.get(Setting, "ledger_offset")
        return int(setting.value) if setting else None


def new_transactions(shop: Shop, offset: int) -> list:
    """Every transaction after the first ``offset``, oldest first (Telegram's order)."""
    found = []
    while True:
        page = read_transactions(shop, offset + len(found), LEDGER_PAGE)
        found += page
        if len(page) < LEDGER_PAGE:
            return found


@dataclass
class UnknownPartner:
    """The other side of a transaction this telebot cannot read (a kind Telegram added since): its type alone."""

    type: str
    transaction_type: None = None  # so that nothing takes it for a user's payment or refund
    invoice_payload: None = None


def read_transactions(shop: Shop, offset: int, limit: int) -> list:
    """A page of Telegram's Stars ledger, each transaction read on its own from the JSON.

    Workaround (pyTelegramBotAPI 4.37.1): telebot raises ValueError on a
    transaction partner type it does not know, and reading the page with it
    (bot.get_star_transactions) would lose the whole page, and every check
    after it. Such a transaction keeps its partner's type alone (UnknownPartner).
    """
    page = apihelper.get_star_transactions(shop.bot.token, offset=offset, limit=limit)["transactions"]
    return [read_transaction(raw) for raw in page]


def read_transaction(raw: dict):
    try:
        return types.StarTransaction.de_json(raw)
    except (ValueError, KeyError, TypeError) as error:
        partners = {side: UnknownPartner(str(raw[side].get("type"))) for side in ("source", "receiver") if side in raw}
        logger.info("Telegram's ledger: transaction %s is of a kind telebot cannot read (%s)", raw.get("id"), error)
        return types.StarTransaction(raw["id"], raw["amount"], raw["date"], nanostar_amount=raw.get("nanostar_amount"),
                                     **partners)


# What each transaction is to the shop, by its partner's type (TransactionPartner); a user's are sorted by kind_of.
PARTNER_KINDS = {"telegram_api": "fee",  # paid broadcasts (allow_paid_broadcast), billed by Telegram
                 "fragment": "withdrawal",  # the seller's Stars out to Fragment (or back, if it failed)
                 "affiliate_program": "affiliate_program",  # the bot's own earnings as an affiliate of other bots
                 "telegram_ads": "ads", "chat": "chat", "other": "other"}
SALE_TYPES = ("invoice_payment", "paid_media_payment", None)  # a user's transactions that are sales (None: older)


def kind_of(transaction) -> str:
    """payment, refund, fee, withdrawal, gift (Stars spent on Telegram's gifts, Premium, transfers)... or unknown."""
    partner = transaction.source or transaction.receiver
    if isinstance(partner, UnknownPartner) or partner is None:
        return "unknown"
    if partner.type == "user":
        if partner.transaction_type not in SALE_TYPES:
            return "gift"
        return "payment" if transaction.source is not None else "refund"
    return PARTNER_KINDS.get(partner.type, "unknown")


def nanostars_of(amount) -> int:
    """A StarAmount-like amount (amount, nanostar_amount of the same sign) in nanostars."""
    return amount.amount * NANOSTARS + (amount.nanostar_amount or 0)


def ledger_entry(position: int, transaction) -> StarLedgerEntry:
    """How 📊 Sales keeps a transaction: its kind, what it brought (+) or took (-), the affiliate's commission."""
    partner = transaction.source or transaction.receiver
    affiliate = getattr(partner, "affiliate", None)
    return StarLedgerEntry(
        position=position, transaction_id=transaction.id, kind=kind_of(transaction),
        partner=str(getattr(partner, "type", "none"))[:40],
        date=datetime.fromtimestamp(transaction.date, UTC).replace(tzinfo=None),
        nanostars=nanostars_of(transaction) * (1 if transaction.source is not None else -1),
        commission_nanostars=nanostars_of(affiliate) if affiliate else 0)


def our_payment(transaction) -> bool:
    """An incoming payment, from a user, for one of the shop's own invoices."""
    return kind_of(transaction) == "payment" and parse_invoice_payload(transaction.source.invoice_payload) is not None


def paid_by_customer(transaction) -> int:
    """What the customer paid, in Stars: the ledger shows the bot's share, the affiliate's commission apart."""
    affiliate = transaction.source.affiliate
    return round((nanostars_of(transaction) + (nanostars_of(affiliate) if affiliate else 0)) / NANOSTARS)


def as_payment_message(transaction, renews: bool) -> types.Message:
    """The successful_payment message Telegram would have sent for a payment in its ledger."""
    user = transaction.source.user.to_dict()
    payment = {"currency": "XTR", "total_amount": paid_by_customer(transaction),
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


def cannot_honour(reply) -> After | None:
    """The step of checkout's reply that would refund the payment at once (the product gone, sold out...)."""
    return next((part for part in replies(reply)
                 if isinstance(part, After) and part.function in (refund_at_once, refund_unmatched)), None)


def record_late(shop: Shop, transaction, index: int, refunded: bool, check: LedgerCheck) -> bool:
    """A payment nobody recorded: recorded, and delivered with an apology unless Telegram refunded it.

    One the shop cannot honour is never refunded from here: it is set aside
    (refund_due) and listed for the admins, who decide (save_check).
    """
    if refunded:
        return record_refunded(shop, transaction, never_delivered=True)
    renews = renewal(shop, transaction)
    message = as_payment_message(transaction, renews)
    reply = recorded_reply(shop, message)
    if reply is NOT_RECORDED:
        return False
    if problem := cannot_honour(reply):
        if problem.function is refund_at_once:  # (message, purchase id, reason, lang): set aside for refund
            _message, purchase_id, reason, _lang = problem.args
            check.unhonoured.append(Unhonoured(index, transaction, LEDGER_REASONS[reason], purchase_id))
        else:  # the product is gone: nothing could be recorded
            check.unhonoured.append(Unhonoured(index, transaction, "ledger_gone"))
        # A second subscription is not renewed again (that charges nobody); the refund is the admins' to make.
        show_reply(shop, message, tuple(part for part in replies(reply)
                                        if isinstance(part, After) and part.function is subscriptions.edit_renewal))
        return True
    if not renews:  # a renewal delivers nothing: no apology either
        paid = datetime.fromtimestamp(transaction.date).strftime("%Y-%m-%d %H:%M")
        send(shop, message.chat.id, text(language_of(message.from_user), "paid_late", date=paid))
    show_reply(shop, message, reply)
    check.recorded.append(transaction.id)
    return True


def record_refunded(shop: Shop, transaction, never_delivered: bool) -> bool:
    """A payment Telegram refunded before the shop heard of it: recorded, then closed at once; nothing to deliver."""
    message = as_payment_message(transaction, renewal(shop, transaction))
    try:
        with shop.Session() as session:
            on_successful_payment(shop, message, session, language_of(message.from_user))  # not shown: refunded
    except Exception:
        logger.exception("Could not record refunded payment %s yet", transaction.id)
        return False
    apply_refund(shop, transaction.id, never_delivered)  # a key nobody saw goes back, access ends...
    return True


def record_again(shop: Shop, transaction, index: int, refunded: bool, check: LedgerCheck) -> bool:
    """A payment this shop recorded before (its journal says so) that the database lacks: it was restored from
    an older copy. The buyer has their goods: recorded again without a word to them; the admins get a summary."""
    if refunded:
        return record_refunded(shop, transaction, never_delivered=False)
    message = as_payment_message(transaction, renewal(shop, transaction))
    payment, payload = message.successful_payment, parse_invoice_payload(transaction.source.invoice_payload)
    try:
        with shop.Session() as session:
            product = session.get(Product, payload.product_id)
            if product is None:  # made after the copy: the sale cannot be recorded, and the admins hear of it
                check.keyless.append(Unhonoured(index, transaction, "ledger_product_missing"))
                return True
            purchase, _ = record_payment(session, save_user(session, message.from_user), product, payment,
                                         shop.config.payment_type, payload)
            if product.stocked and stock_item_of(session, purchase.id) is None:  # uploaded after the copy
                check.keyless.append(Unhonoured(index, transaction, "ledger_key_missing", purchase.id))
            mark_delivered(session, purchase)  # it was, by the older copy; this commits
    except Exception:
        logger.exception("Could not record payment %s again yet", transaction.id)
        return False
    check.restored.append(transaction.id)
    return True


def recorded_before(shop: Shop) -> set[str]:
    """The charges the journal says this shop recorded lately; none if it cannot be read (nothing is then silent)."""
    try:
        return shop.journal.recorded()
    except OSError as error:
        logger.error("Could not read the payments journal %s: %s", shop.journal.path, error)
        return set()


def update_may_still_come(transaction, polling_since: float, now: float) -> bool:
    """Whether the shop may yet hear of this payment from its own update: too recent to call it missed."""
    return now - max(transaction.date, polling_since) < UPDATE_GRACE


def check_ledger(shop: Shop, polling_since: float = 0.0, now: float | None = None) -> LedgerCheck:
    """Read the transactions not checked yet and act on what the shop missed; safe to run again.

    ``polling_since``: when this process began to fetch updates (catch_up);
    ``now``: the moment of reading, as a Unix time (tests move it).
    """
    offset, check, now = ledger_offset(shop), LedgerCheck(), now or time.time()
    if offset is None:
        return start_at_the_end(shop)
    transactions = new_transactions(shop, offset)
    refunds = {t.id for t in transactions if kind_of(t) == "refund"}
    with shop.Session() as session:
        known = set(session.scalars(select(Purchase.payment_id).where(
            Purchase.payment_id.in_([t.id for t in transactions]))))
    journal = recorded_before(shop) if any(our_payment(t) and t.id not in known for t in transactions) else set()
    for index, transaction in enumerate(transactions, start=offset):
        if paid_media.paid_in_ledger(transaction) and transaction.id not in known:
            known.add(transaction.id)  # its refund, if any, is found below like an invoice payment's
            if paid_media.record_from_ledger(shop, transaction):
                check.recorded.append(transaction.id)
        if our_payment(transaction) and transaction.id not in known:
            recorded_by_an_older_copy = transaction.id in journal  # its update came and went: nothing will come
            if not recorded_by_an_older_copy and update_may_still_come(transaction, polling_since, now):
                break  # keep the offset here: the next reading looks again
            again = record_again if recorded_by_an_older_copy else record_late
            if not again(shop, transaction, index, transaction.id in refunds, check):
                break  # keep the offset here: the next reading tries again
        elif transaction.id in refunds and apply_refund(shop, transaction.id):
            check.refunded.append(transaction.id)
        check.entries.append(ledger_entry(index, transaction))
        check.read += 1
    save_check(shop, offset + check.read, check)
    return check


def start_at_the_end(shop: Shop) -> LedgerCheck:
    """A database that has never read the ledger (a new one, another copy) starts at its end: the payments
    before it were made to another database, and are none of this one's business. The admins hear how many."""
    transactions = new_transactions(shop, 0)
    left_alone = sum(1 for transaction in transactions if our_payment(transaction))
    with shop.Session() as session:
        put_setting(session, "ledger_offset", str(len(transactions)))
        session.commit()
    logger.warning("Telegram's Stars ledger is read from now on: %s earlier payments were left alone", left_alone)
    if left_alone:
        notify_admins(shop, "admin_ledger_started", unmet_too=True,
                      payments=lambda lang: counted(lang, "n_payments", left_alone))
    return LedgerCheck()


def apply_refund(shop: Shop, charge_id: str, never_delivered: bool = False) -> bool:
    with shop.Session() as session:
        replies = refunded_by_telegram(session, charge_id, never_delivered)
    if replies is None:
        return False
    show_reply(shop, None, replies)
    return True


def save_check(shop: Shop, offset: int, check: LedgerCheck) -> None:
    """Remember how far the ledger was read, when, and what it fixed (📊 Sales shows it); tell the admins."""
    summary = f"{len(check.recorded)} {len(check.refunded)}"
    with shop.Session() as session:
        for key, value in (("ledger_offset", str(offset)), ("ledger_checked_at", utcnow().isoformat()),
                           ("ledger_fixed", summary)):
            put_setting(session, key, value)
        keep_entries(session, check.entries)
        session.commit()
    if check.recorded or check.refunded:
        logger.warning("Telegram's ledger: %s payments recorded late, %s refunds applied",
                       len(check.recorded), len(check.refunded))
        notify_admins(shop, "admin_ledger_fixed",
                      payments=lambda lang: counted(lang, "n_payments", len(check.recorded)),
                      refunds=lambda lang: counted(lang, "n_refunds", len(check.refunded)))
    if check.restored or check.keyless:
        tell_admins_restored(shop, check)
    if check.unhonoured:
        tell_admins_unhonoured(shop, check.unhonoured)


def keep_entries(session: Session, entries: list[StarLedgerEntry]) -> None:
    """Keep the transactions read for 📊 Sales (again at the same place: the same row), each purchase's affiliate
    commission with it; a kind the shop does not know is logged, and only counted."""
    for entry in entries:
        session.merge(entry)
        if entry.kind == "payment" and entry.commission_nanostars:
            session.execute(update(Purchase).where(Purchase.payment_id == entry.transaction_id)
                            .values(commission_nanostars=entry.commission_nanostars))
        if entry.kind == "unknown":
            logger.warning("Telegram's ledger: transaction %s (%s, %s) is of a kind the shop does not know; counted, "
                           "left alone", entry.transaction_id, entry.partner, format_stars(entry.nanostars))


def listed(lang: str, payments: list[Unhonoured]) -> str:
    """The admins' list of payments, one plain line each (escaped as any value is)."""
    return "\n".join(f"{number}. {payment.line(lang)}" for number, payment in enumerate(payments, start=1))


def tell_admins_restored(shop: Shop, check: LedgerCheck) -> None:
    """One summary after a restore: how many sales were recorded again, and which lack their key or product."""
    logger.warning("Telegram's ledger: %s payments recorded again without a word to their buyers (a database "
                   "restored from an older copy); %s lack their key or product", len(check.restored),
                   len(check.keyless))
    notify_admins(shop, "admin_ledger_restored", payments=lambda lang: counted(lang, "n_payments", len(check.restored)),
                  missing=lambda lang: listed(lang, check.keyless) if check.keyless else "—")


def tell_admins_unhonoured(shop: Shop, payments: list[Unhonoured]) -> None:
    """One message listing each payment the shop cannot honour, with a ↩️ Refund button each: the admins decide."""
    logger.warning("Telegram's ledger: %s payments the shop cannot honour are set aside for the admins",
                   len(payments))
    shown = payments[:UNHONOURED_SHOWN]  # a message holds 4,096 characters
    notify_admins(shop, "admin_ledger_unhonoured", count=len(payments), payments=lambda lang: listed(lang, shown),
                  markup=lambda lang: keyboard(*[[payment.refund_button(lang, number)]
                                                 for number, payment in enumerate(shown, start=1)]))


@seller.tap(LEDGER_REFUND)
def tap_ledger_refund(shop: Shop, call: types.CallbackQuery, session: Session, lang: str, index: int):
    """↩️ Refund, beside a payment whose product the shop no longer has: the Stars go back to the buyer."""
    return After(refund_from_ledger, call.from_user.id, index, lang)


def refund_from_ledger(shop: Shop, admin_id: int, index: int, lang: str) -> None:
    """Find the payment at its place in Telegram's ledger, refund it, and tell the admin how it went."""
    found = read_transactions(shop, index, 1)
    if not found or not our_payment(found[0]):
        send(shop, admin_id, text(lang, "admin_refund_failed", error=telegram_error("CHARGE_NOT_FOUND")))
        return
    payment = found[0]
    try:
        shop.bot.refund_star_payment(payment.source.user.id, payment.id)
    except ApiTelegramException as error:  # refunded already, say
        logger.warning("Telegram refused to refund ledger payment %s: %s", payment.id, error.description)
        send(shop, admin_id, text(lang, "admin_refund_failed", error=telegram_error(error.description)))
        return
    logger.info("Admin %s refunded ledger payment %s", admin_id, payment.id)
    send(shop, admin_id, text(lang, "admin_refunded"))


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
# 5. Revenue net of Telegram's cuts, for 📊 Sales
# ---------------------------------------------------------------------------

@dataclass
class StarsFigures:
    """A period's Stars, in nanostars: what customers paid (less refunds), the affiliates' commissions on it, and
    Telegram's fees for paid broadcasts. The net is what the ledger itself shows for those transactions."""

    gross: int = 0
    commissions: int = 0
    fees: int = 0

    @property
    def net(self) -> int:
        return self.gross - self.commissions - self.fees


def stars_since(session: Session, since: datetime) -> StarsFigures:
    """The figures of the transactions read from the ledger since ``since`` (ledger dates, Telegram's clock)."""
    entry = StarLedgerEntry
    rows = session.execute(
        select(entry.kind, func.sum(entry.nanostars), func.sum(entry.commission_nanostars))
        .where(entry.date >= since, entry.kind.in_(("payment", "refund", "fee"))).group_by(entry.kind)).all()
    figures = StarsFigures()
    for kind, nanostars, commission in rows:  # PostgreSQL sums bigints as numeric: int() them
        if kind == "fee":
            figures.fees -= int(nanostars)  # outgoing: negative in the ledger
        else:  # the ledger shows the bot's share; the customer paid the affiliate's commission too
            figures.gross += int(nanostars) + int(commission)
            figures.commissions += int(commission)
    return figures


def star_balance(shop: Shop) -> int | None:
    """The bot's Stars balance now (getMyStarBalance), in nanostars; None when Telegram does not answer.
    A call to Telegram: made before the caller's first query, never inside a transaction."""
    try:
        return nanostars_of(shop.bot.get_my_star_balance())
    except (ApiException, requests.RequestException) as error:
        logger.warning("Could not read the bot's Stars balance: %s", error)
        return None


def stars_report(session: Session, lang: str, periods: dict, balance: int | None, now: datetime) -> str:
    """📊 Sales' Stars from Telegram's ledger: for each period (sales.PERIODS), gross − commissions − fees = net;
    the balance; and how many transactions of a kind the shop does not know it has met."""
    lines = [text(lang, "admin_stars")]
    for period, start in periods.items():
        figures = stars_since(session, start(now))
        lines.append(text(lang, "admin_stars_line", period=label(lang, period), gross=format_stars(figures.gross),
                          commissions=format_stars(figures.commissions), fees=format_stars(figures.fees),
                          net=format_stars(figures.net)))
    lines.append(text(lang, "admin_stars_balance", balance=format_stars(balance)) if balance is not None
                 else text(lang, "admin_stars_balance_unknown"))
    if unknown := session.scalar(select(func.count()).where(StarLedgerEntry.kind == "unknown")):
        lines.append(text(lang, "admin_stars_unknown", count=unknown))
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# At start, and wiring
# ---------------------------------------------------------------------------

def catch_up(shop: Shop) -> None:
    """At start, beside the first polls: replay the journal, deliver what was not, keep reading the ledger.

    The journal is a second chance, never a gate: whatever is wrong with it, delivery and the ledger go on.
    """
    polling_since = time.time()  # from now on, the updates Telegram kept for the bot come in (shopkit/bot.py)
    retry_until_recorded(shop, wait=0.0, tell_admins=False)
    try:
        shop.journal.compact()
    except OSError as error:
        logger.error("Could not compact the payments journal %s: %s", shop.journal.path, error)
    if delivered := deliver_what_was_not(shop):
        logger.info("Delivered %s purchases that had been recorded but not delivered", delivered)
    if shop.config.payment_type == "stars":
        keep_checking_ledger(shop, polling_since)


def register(bot: TeleBot, shop: Shop) -> None:
    """Wire Telegram's refunds and the ↩️ Refund beside a payment the ledger found; catch up at start."""
    shop.jobs_at_start.append(lambda shop: shop.start_background(catch_up))
    add_handlers(shop, handlers)
    add_handlers(shop, seller)
