"""No payment lost or doubled (ledger.py, lanes.py): the journal, retries, redelivery, Telegram's ledger, refunds."""
from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy
from sqlalchemy import insert, select, text
from sqlalchemy.engine import make_url
from telebot import types

import checkout
import ledger
import models
import shopbot
from conftest import (
    ADMIN_ID,
    Person,
    ShopUnderTest,
    add_stock,
    admin_texts,
    buttons,
    echoes_refunds_at_once,
    refund_echo,
)
from models import Purchase, StockItem, User
from shopkit import Setting, callback, connect, journal, put_setting

HERE = Path(__file__).resolve().parent.parent  # the project's root


def payment_message(person: Person, product, charge_id: str, amount: int = 25) -> types.Message:
    """The successful_payment message Telegram sends (here: before the shop could handle it)."""
    return types.Message.de_json(person.message(successful_payment={
        "currency": "XTR", "total_amount": amount, "invoice_payload": checkout.invoice_payload(product.id, person.id),
        "telegram_payment_charge_id": charge_id, "provider_payment_charge_id": ""}))


def purchase_row(shop, charge_id: str):
    with shop.Session() as session:
        return session.scalar(select(Purchase).where(Purchase.payment_id == charge_id))


# ---------------------------------------------------------------------------
# The journal, and retrying until a payment is recorded
# ---------------------------------------------------------------------------

def test_every_payment_is_logged_first_and_journaled_until_recorded(shop, alice, caplog):
    caplog.set_level(logging.INFO, logger="shopbot")
    product = shop.add_product("Pro", price=25, hidden="TOP-SECRET")
    alice.taps_data(callback("buy", product.id))
    alice.pays(charge_id="ch-1")
    assert (f"Payment received: user 1001, payload 'shop1:{product.id}:1001', 25 XTR, charge ch-1, "
            "provider charge provider-ch-1") in caplog.text
    assert caplog.text.index("Payment received") < caplog.text.index("recorded as purchase")
    assert "TOP-SECRET" not in caplog.text
    payments = shop.bot.shop.journal
    assert payments.pending() == [] and '"charge": "ch-1"' in Path(payments.path).read_text()


class FailingTimes:
    """Stands in for checkout.on_successful_payment: the database refuses the first ``times`` attempts."""

    def __init__(self, times: int):
        self.times = times

    def __call__(self, *args):
        if self.times:
            self.times -= 1
            raise sqlalchemy.exc.OperationalError("INSERT", {}, Exception("database is locked"))
        return checkout.on_successful_payment(*args)


def test_a_payment_that_cannot_be_recorded_is_retried_until_it_is(shop, seller, alice, monkeypatch):
    product = shop.add_product("Pro", price=25, hidden="KEY-1")
    monkeypatch.setattr(shop.bot.shop, "record_payment", FailingTimes(2))
    alice.taps_data(callback("buy", product.id))
    alice.pays(charge_id="ch-late")
    assert "We have received your payment" in alice.all_texts()
    shop.finish_background()  # the retries
    assert purchase_row(shop, "ch-late") is not None and "KEY-1" in alice.all_texts()
    assert shop.bot.shop.journal.pending() == []
    assert "could be recorded only after a retry" in admin_texts(shop)


@contextlib.contextmanager
def database_locked(url: str):
    """Another program holds the database's write lock (SQLite) or the purchases table (PostgreSQL)."""
    if make_url(url).get_backend_name() == "sqlite":
        raw = sqlite3.connect(make_url(url).database, isolation_level=None)
        raw.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            raw.execute("ROLLBACK")
            raw.close()
        return
    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    with engine.connect() as connection:
        connection.execute(text("LOCK TABLE purchases, settings IN ACCESS EXCLUSIVE MODE"))
        yield
        connection.rollback()
    engine.dispose()


@pytest.fixture
def impatient_shop(config, api):
    """A shop whose database connections wait for a lock 0.3 seconds only (15 s in production)."""
    bot = shopbot.create_bot(config, threaded=False)
    for factory in (bot.shop.Session, bot.shop.QuickSession):
        factory.kw["bind"].dispose()
    bot.shop.Session = connect(config.database_url, busy_timeout=0.3)
    bot.shop.QuickSession = connect(config.database_url, busy_timeout=0.3)
    shop = ShopUnderTest(bot, api)
    yield shop
    shop.close()


def test_a_payment_landing_while_the_database_is_locked_is_recorded_once_it_unlocks(impatient_shop, config):
    shop = impatient_shop
    alice = Person(shop, 1001, "Alice", "alice")
    product = shop.add_product("Pro", price=25, hidden="KEY-1")
    alice.taps_data(callback("buy", product.id))
    assert alice.pre_checkout(25, alice.last_invoice()["payload"])["ok"] is True
    shop.bot.shop.sleep = time.sleep  # real backoff: 1 s, 2 s...
    with database_locked(config.database_url):
        alice.payment_lands(25, alice.last_invoice()["payload"], "XTR", "ch-locked")
        assert "We have received your payment" in alice.last_text() and len(shop.bot.shop.journal.pending()) == 1
    shop.finish_background()
    assert shop.purchases() == [("alice", "Pro", 25, "stars")] and "KEY-1" in alice.all_texts()


def test_pre_checkout_says_no_while_the_database_cannot_take_the_payment(impatient_shop, config):
    shop = impatient_shop
    alice = Person(shop, 1001, "Alice", "alice")
    product = shop.add_product("Pro", price=25)
    alice.taps_data(callback("buy", product.id))
    with database_locked(config.database_url):
        started = time.monotonic()
        answer = alice.pre_checkout(25, alice.last_invoice()["payload"])
    assert answer["ok"] is False and "try again in a minute" in answer["error_message"]
    assert time.monotonic() - started < 2.5 and shop.purchases() == []


def test_a_payment_journaled_just_before_a_crash_is_recorded_at_the_next_start(shop, alice):
    product = shop.add_product("Pro", price=25, hidden="KEY-1")
    shop.bot.shop.journal.write(payment_message(alice, product, "ch-crash"))  # ...and then kill -9
    journal.retry_until_recorded(shop.bot.shop, wait=0.0)  # what the next start does first
    assert purchase_row(shop, "ch-crash") is not None and "KEY-1" in alice.all_texts()
    shop.bot.shop.journal.compact()  # keeps only that it was recorded (a restored older database learns from it)
    assert [entry["done"] for entry in shop.bot.shop.journal.entries()] == ["ch-crash"]
    assert shop.bot.shop.journal.pending() == []


def test_a_torn_last_line_of_the_journal_is_skipped(shop, alice):
    product = shop.add_product("Pro", price=25)
    payments = shop.bot.shop.journal
    payments.write(payment_message(alice, product, "ch-1"))
    with open(payments.path, "a") as file:
        file.write('{"charge": "ch-2", "mess')  # the power went out mid-line
    assert [m["successful_payment"]["telegram_payment_charge_id"] for m in payments.pending()] == ["ch-1"]


# ---------------------------------------------------------------------------
# Delivery at least once
# ---------------------------------------------------------------------------

def test_a_purchase_recorded_but_not_delivered_is_delivered_at_the_next_start(shop, alice):
    product = shop.add_product("Pro", price=25, hidden="KEY-1")
    alice.taps_data(callback("buy", product.id))
    shop.api.fail("sendMessage", 500, "Internal Server Error", times=2)  # the delivery, and the apology
    alice.pays(charge_id="ch-1")
    assert purchase_row(shop, "ch-1").delivered_at is None and "KEY-1" not in alice.all_texts()
    assert ledger.deliver_what_was_not(shop.bot.shop) == 1
    assert "Sorry for the wait" in alice.all_texts() and "KEY-1" in alice.all_texts()
    assert purchase_row(shop, "ch-1").delivered_at is not None
    assert ledger.deliver_what_was_not(shop.bot.shop) == 0


def test_at_start_every_undelivered_purchase_of_the_last_week_is_sent_and_older_ones_wait(shop):
    product = shop.add_product("Pro", price=25, hidden="KEY-1")
    now = models.utcnow()
    with shop.Session() as session:  # more buyers than one batch, left undelivered by a long outage
        session.execute(insert(User), [{"telegram_id": 5000 + n, "username": f"b{n}"} for n in range(151)])
        session.execute(insert(Purchase), [
            {"user_id": n + 1, "product_id": product.id, "price": 25, "currency": "XTR", "payment_type": "stars",
             "payment_id": f"ch-{n}", "created_at": now - timedelta(days=8 if n == 0 else 1)} for n in range(151)])
        session.commit()
    assert ledger.deliver_what_was_not(shop.bot.shop) == 150
    delivered_to = {int(call.params["chat_id"]) for call in shop.api.of("sendMessage")
                    if "KEY-1" in call.params["text"]}
    assert delivered_to == {5000 + n for n in range(1, 151)}
    assert purchase_row(shop, "ch-0").delivered_at is None  # a week late: it waits in My purchases


# ---------------------------------------------------------------------------
# Telegram's Stars ledger, and refunds made by Telegram
# ---------------------------------------------------------------------------

def test_a_payment_telegram_has_but_the_shop_never_heard_of_is_recorded_and_delivered(shop, seller, alice):
    product = shop.add_product("Pro", price=25, hidden="KEY-LATE")
    shop.api.ledger_payment(alice, 25, checkout.invoice_payload(product.id, alice.id), "ch-lost")
    check = ledger.check_ledger(shop.bot.shop)
    assert check.recorded == ["ch-lost"]
    assert "reached the shop only now" in alice.all_texts() and "KEY-LATE" in alice.all_texts()
    assert shop.purchases() == [("alice", "Pro", 25, "stars")]
    assert "1 payment recorded and delivered, 0 refunds applied" in admin_texts(shop)
    messages = len(shop.api.of("sendMessage"))
    assert ledger.check_ledger(shop.bot.shop).recorded == []  # read again: nothing new, nothing doubled
    assert len(shop.purchases()) == 1 and len(shop.api.of("sendMessage")) == messages


def test_a_payment_sent_again_after_a_restart_is_delivered_once(shop, seller, alice):
    product = shop.add_product("Pro", price=25, hidden="KEY-1")
    alice.taps_data(callback("buy", product.id))
    alice.pays(charge_id="ch-1")
    # The bot stopped before confirming the update: at the next start Telegram sends it again, and the ledger
    # shows the payment, read while that update is still on its way.
    shop.api.ledger_payment(alice, 25, alice.payment["invoice_payload"], "ch-1", date=int(time.time()))
    starts_again(shop)
    alice.repeats_payment()
    assert alice.all_texts().count("KEY-1") == 1 and "only now" not in alice.all_texts()
    assert "retry" not in admin_texts(shop) and "missed" not in admin_texts(shop)


def test_a_payment_recorded_but_not_delivered_before_a_crash_is_delivered_once_at_start(shop, seller, alice):
    product = shop.add_product("Pro", price=25, hidden="KEY-1")
    message = payment_message(alice, product, "ch-1")
    shop.bot.shop.journal.write(message)
    with shop.Session() as session:
        checkout.on_successful_payment(shop.bot.shop, message, session, "en")  # committed... and then kill -9
    starts_again(shop)
    alice.feed("message", message.json)  # Telegram sends the update again
    assert alice.all_texts().count("KEY-1") == 1 and "only now" not in alice.all_texts()
    assert "could be recorded only after a retry" not in admin_texts(shop)


class LedgerLoopSleeps(Exception):
    pass


def starts_again(shop) -> None:
    """What the next start does beside the first polls (ledger.catch_up), until its ledger loop first sleeps."""
    def sleep(seconds: float) -> None:
        if seconds == ledger.LEDGER_EVERY:
            raise LedgerLoopSleeps

    shop.bot.shop.sleep = sleep
    with pytest.raises(LedgerLoopSleeps):
        ledger.catch_up(shop.bot.shop)


@pytest.mark.parametrize("paid", [0, 3600], ids=["during the restart", "an hour before the start"])
def test_a_payment_the_ledger_shows_while_its_update_may_still_come_is_left_to_it(shop, seller, alice, paid):
    product = shop.add_product("Pro", price=25, hidden="KEY-1")
    alice.taps_data(callback("buy", product.id))
    payload = alice.last_invoice()["payload"]
    assert alice.pre_checkout(25, payload)["ok"] is True
    shop.api.ledger_payment(alice, 25, payload, "ch-1", date=int(time.time()) - paid)
    started = time.time()
    assert ledger.check_ledger(shop.bot.shop, polling_since=started).read == 0 and shop.purchases() == []
    alice.payment_lands(25, payload, "XTR", "ch-1")  # the update, fetched by the first polls
    check = ledger.check_ledger(shop.bot.shop, polling_since=started)  # read again: recorded, nothing to do
    assert check.read == 1 and check.recorded == []
    assert alice.all_texts().count("KEY-1") == 1 and "only now" not in alice.all_texts()
    assert "ledger showed" not in admin_texts(shop)


def test_a_payment_whose_update_never_came_is_recorded_from_the_ledger_once_it_was_due(shop, seller, alice):
    product = shop.add_product("Pro", price=25, hidden="KEY-1")
    shop.api.ledger_payment(alice, 25, checkout.invoice_payload(product.id, alice.id), "ch-lost",
                            date=int(time.time()) - int(ledger.UPDATE_GRACE) - 60)
    assert ledger.check_ledger(shop.bot.shop, polling_since=time.time() - ledger.UPDATE_GRACE).recorded == ["ch-lost"]
    assert "reached the shop only now" in alice.all_texts() and alice.all_texts().count("KEY-1") == 1


def test_the_ledger_applies_a_refund_the_shop_did_not_know_of(shop, seller, alice):
    product = shop.add_product("Pro", price=25, hidden="KEY-1")
    alice.taps_data(callback("buy", product.id))
    alice.pays(charge_id="ch-1")
    shop.api.ledger_payment(alice, 25, checkout.invoice_payload(product.id, alice.id), "ch-1")
    shop.api.ledger_refund(alice, 25, "ch-1")
    assert ledger.check_ledger(shop.bot.shop).refunded == ["ch-1"]
    assert purchase_row(shop, "ch-1").refunded_at is not None
    assert "Telegram has refunded your payment for Pro" in alice.all_texts()


def test_a_payment_telegram_refunded_before_the_shop_heard_of_it_is_recorded_refunded(shop, alice):
    product = shop.add_product("Pro", price=25, hidden="KEY-1")
    shop.api.ledger_payment(alice, 25, checkout.invoice_payload(product.id, alice.id), "ch-gone")
    shop.api.ledger_refund(alice, 25, "ch-gone")
    ledger.check_ledger(shop.bot.shop)
    assert purchase_row(shop, "ch-gone").refunded_at is not None and "KEY-1" not in alice.all_texts()


def test_a_stocked_payment_telegram_refunded_before_the_shop_heard_of_it_gives_its_key_back(shop, alice):
    product = shop.add_product("Key", price=10)
    add_stock(shop, product, "KEY-A")
    shop.api.ledger_payment(alice, 10, checkout.invoice_payload(product.id, alice.id), "ch-gone")
    shop.api.ledger_refund(alice, 10, "ch-gone")
    ledger.check_ledger(shop.bot.shop)
    assert "KEY-A" not in alice.all_texts()  # nobody saw it: it is on sale again
    with shop.Session() as session:
        assert models.stock_left(session, session.get(models.Product, product.id)) == 1


def test_a_refund_by_telegram_removes_access(shop, seller, alice):
    product = shop.add_product("Pro", price=25, hidden="KEY-1")
    alice.taps_data(callback("buy", product.id))
    alice.pays(charge_id="ch-1")
    refund_echo(alice, "ch-1")
    assert purchase_row(shop, "ch-1").refunded_at is not None
    assert "Telegram has refunded your payment for Pro" in alice.last_text()
    assert "Telegram refunded purchase #1 (Pro)" in admin_texts(shop)
    alice.sends("/purchases")
    alice.taps("Pro")
    assert alice.last_toast() == "This purchase was refunded."


def test_telegram_reporting_the_shops_own_refund_changes_nothing(shop, seller, alice):
    product = shop.add_product("Pro", price=25)
    alice.taps_data(callback("buy", product.id))
    alice.pays(charge_id="ch-1")
    seller.taps_data(callback("confirm_refund", 1))
    sent = len(shop.api.of("sendMessage"))
    refund_echo(alice, "ch-1")
    assert len(shop.api.of("sendMessage")) == sent


def test_a_key_shown_before_a_refund_is_never_sold_again(shop, alice, bob):
    product = shop.add_product("Key", price=10)
    add_stock(shop, product, "KEY-A", "KEY-B")
    alice.taps_data(callback("buy", product.id))
    alice.pays(charge_id="ch-1")
    refund_echo(alice, "ch-1", amount=10)
    bob.taps_data(callback("buy", product.id))
    bob.pays()
    assert "KEY-B" in bob.all_texts() and "KEY-A" not in bob.all_texts()
    with shop.Session() as session:
        assert session.scalar(select(StockItem.purchase_id).where(StockItem.content == "KEY-A")) == 1


# ---------------------------------------------------------------------------
# One refund, one message: the buyer hears once who refunded, whoever closes the purchase
# ---------------------------------------------------------------------------

def refund_messages(person: Person) -> list[str]:
    return [line for line in person.all_texts().splitlines() if "refunded" in line or "refunding" in line]


@pytest.mark.parametrize("echo", ["after the answer", "before the answer"])
def test_the_sellers_refund_tells_the_buyer_once_whenever_its_echo_comes(shop, seller, alice, monkeypatch, echo):
    product = shop.add_product("Pro", price=25)
    add_stock(shop, product, "KEY-A")
    alice.taps_data(callback("buy", product.id))
    alice.pays(charge_id="ch-1")
    if echo == "before the answer":
        echoes_refunds_at_once(monkeypatch, shop, alice)
    seller.taps_data(callback("confirm_refund", 1))
    assert refund_messages(alice) == ["↩️ The shop has refunded your payment for Pro: the Stars are back on your "
                                      "account, and the purchase is closed."]
    refund_echo(alice, "ch-1")  # (again, or for the first time)
    assert len(refund_messages(alice)) == 1 and "Telegram" not in alice.all_texts()
    assert "Telegram refunded" not in admin_texts(shop) and seller.last_toast() == "✅ Refunded: the Stars are " \
                                                                                    "back with the buyer."
    assert purchase_row(shop, "ch-1").refunded_by == "shop" and len(shop.api.of("refundStarPayment")) == 1


def test_a_refund_telegram_refuses_leaves_the_purchase_to_telegrams_own_refund(shop, seller, alice):
    product = shop.add_product("Pro", price=25)
    alice.taps_data(callback("buy", product.id))
    alice.pays(charge_id="ch-1")
    shop.api.fail("refundStarPayment", 400, "Bad Request: CHARGE_NOT_FOUND")
    seller.taps_data(callback("confirm_refund", 1))
    assert "Telegram refused the refund" in seller.last_toast() and refund_messages(alice) == []
    refund_echo(alice, "ch-1")  # Telegram's support refunds it later
    assert refund_messages(alice) == ["↩️ Telegram has refunded your payment for Pro, so the purchase is closed."]
    assert "Telegram refunded purchase #1 (Pro)" in admin_texts(shop)


def test_a_refund_by_telegram_found_twice_tells_the_buyer_once(shop, seller, alice):
    product = shop.add_product("Pro", price=25)
    alice.taps_data(callback("buy", product.id))
    alice.pays(charge_id="ch-1")
    shop.api.ledger_payment(alice, 25, checkout.invoice_payload(product.id, alice.id), "ch-1")
    shop.api.ledger_refund(alice, 25, "ch-1")
    refund_echo(alice, "ch-1")
    ledger.check_ledger(shop.bot.shop)
    assert refund_messages(alice) == ["↩️ Telegram has refunded your payment for Pro, so the purchase is closed."]
    assert admin_texts(shop).count("Telegram refunded purchase #1") == 1
    assert purchase_row(shop, "ch-1").refunded_by == "telegram"


def test_the_seller_withdrawing_a_free_product_tells_its_owner(shop, seller, alice):
    product = shop.add_product("Guide", price=0)
    alice.taps_data(callback("buy", product.id))
    seller.taps_data(callback("confirm_refund", 1))
    assert "The shop has taken back Guide: it no longer opens. Nothing was paid for it, so there is nothing to " \
           "refund." in alice.last_text()


def test_the_seller_marking_a_card_payment_refunded_tells_its_buyer(card_shop):
    product = card_shop.add_product("Course", price=999)
    alice, seller = Person(card_shop, 1001, "Alice", "alice"), Person(card_shop, ADMIN_ID, "Seller")
    seller.sends("/start")
    alice.taps_data(callback("buy", product.id))
    alice.pays(charge_id="card-1")
    seller.taps_data(callback("confirm_refund", 1))
    assert refund_messages(alice) == ["↩️ The shop is refunding your payment for Course through the payment "
                                      "provider, and the purchase is closed."]


@pytest.mark.parametrize("echo", [False, True])
def test_the_last_key_sold_a_moment_before_is_refunded_and_told_once_as_automatic(shop, seller, alice, bob,
                                                                                 monkeypatch, echo):
    product = shop.add_product("Key", price=10)
    add_stock(shop, product, "KEY-A")
    alice.taps_data(callback("buy", product.id))
    bob.taps_data(callback("buy", product.id))
    bob_invoice = bob.last_invoice()
    alice.pays(charge_id="ch-alice")
    if echo:
        echoes_refunds_at_once(monkeypatch, shop, bob)
    bob.payment_lands(10, bob_invoice["payload"], "XTR", "ch-bob")  # paid before alice's sale took the key
    assert refund_messages(bob) == ["😔 Someone bought the last one a moment before you. Your payment has been "
                                    "refunded."]
    refund_echo(bob, "ch-bob", amount=10)
    assert len(refund_messages(bob)) == 1 and "Telegram" not in bob.all_texts()
    admins = admin_texts(shop)
    assert admins.count("It was refunded automatically") == 1 and "Telegram refunded" not in admins
    assert purchase_row(shop, "ch-bob").refunded_by == "auto"


# ---------------------------------------------------------------------------
# Lanes: payments first, everyone in turn
# ---------------------------------------------------------------------------

@pytest.fixture
def threaded_shop(config, api):
    """The shop as it runs for real: updates wait in lanes, handled by worker threads."""
    bot = shopbot.create_bot(config, threaded=True)
    shop = ShopUnderTest(bot, api)
    yield shop
    bot.lanes.stop()
    shop.close()


def wait_for(condition, timeout: float = 20.0) -> float:
    """Seconds until ``condition()`` held."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, "timed out"
        time.sleep(0.005)
    return time.monotonic() - started


def taps(person: Person, data: str, count: int) -> list[types.Update]:
    message = {"message_id": 1, "date": 1, "chat": {"id": person.id, "type": "private"}, "text": "x"}
    return [types.Update.de_json({"update_id": 10_000 + n, "callback_query": {
        "id": f"flood-{n}", "from": person.user, "chat_instance": "c", "data": data, "message": message}})
        for n in range(count)]


def test_a_flood_of_taps_does_not_delay_another_customers_pre_checkout(threaded_shop):
    shop = threaded_shop
    shop.api.latency = 0.001  # each Bot API call takes a millisecond, as a fast Telegram would
    mallory, alice = Person(shop, 666, "Mallory"), Person(shop, 1001, "Alice")
    product = shop.add_product("Pro", price=25)
    shop.bot.process_new_updates(taps(mallory, callback("catalog"), 2000))
    started = time.monotonic()
    shop.bot.process_new_updates([types.Update.de_json({"update_id": 99_999, "pre_checkout_query": {
        "id": "alice-pays", "from": alice.user, "currency": "XTR", "total_amount": 25,
        "invoice_payload": checkout.invoice_payload(product.id, alice.id)}})])
    wait_for(lambda: any(c.params.get("pre_checkout_query_id") == "alice-pays"
                         for c in shop.api.of("answerPreCheckoutQuery")))
    assert time.monotonic() - started < 2.0
    wait_for(lambda: len(shop.api.of("answerCallbackQuery")) == 2000)  # and every tap is answered


def test_one_customer_tapping_too_fast_is_trimmed_with_one_note(threaded_shop):
    shop = threaded_shop
    now = [1000.0]
    shop.bot.lanes.clock = lambda: now[0]  # a frozen clock: all 30 taps in the same instant
    alice = Person(shop, 1001, "Alice")
    shop.bot.process_new_updates(taps(alice, callback("catalog"), 30))
    wait_for(lambda: len(shop.api.of("answerCallbackQuery")) == 30)
    notes = [c for c in shop.api.of("answerCallbackQuery") if "lot of taps" in c.params.get("text", "")]
    assert len(notes) == 1
    handled = len(shop.api.of("sendMessage"))  # each a catalog, sent anew: the tapped message is not editable
    assert handled == 10  # the burst, not the flood
    now[0] += 2  # two seconds later, a tap is served again, without a note
    shop.bot.process_new_updates(taps(alice, callback("help"), 1))
    wait_for(lambda: len(shop.api.of("answerCallbackQuery")) == 31)
    assert not shop.api.of("answerCallbackQuery")[-1].params.get("text")


def test_admins_are_never_trimmed(threaded_shop):
    shop = threaded_shop
    shop.bot.lanes.clock = lambda: 1000.0
    seller = Person(shop, ADMIN_ID, "Seller")
    shop.bot.process_new_updates(taps(seller, callback("catalog"), 30))
    wait_for(lambda: len(shop.api.of("answerCallbackQuery")) == 30)
    assert not any(c.params.get("text") for c in shop.api.of("answerCallbackQuery"))


def test_a_users_messages_are_handled_one_at_a_time_in_order(threaded_shop):
    shop = threaded_shop
    shop.api.latency = 0.002
    alice = Person(shop, 1001, "Alice")
    updates = [types.Update.de_json({"update_id": 500 + n, "message": alice.message(text=f"word{n}")})
               for n in range(8)]
    shop.bot.process_new_updates(updates)
    wait_for(lambda: len(shop.api.of("sendMessage")) == 8)
    searched = [c.params["text"] for c in shop.api.of("sendMessage")]
    assert all(f"word{n}" in searched[n] for n in range(8))


# ---------------------------------------------------------------------------
# Safety nets that never hurt (issue 24): a new or restored database, a damaged or unwritable journal
# ---------------------------------------------------------------------------

def messages_to(shop, person: Person) -> list[str]:
    return [c.params["text"] for c in shop.api.of("sendMessage") if int(c.params["chat_id"]) == person.id]


def forget_the_ledger(shop) -> None:
    """A database that has never read Telegram's ledger: a fresh one, a copy of shop.db.example, new tables..."""
    with shop.Session() as session:
        session.execute(sqlalchemy.delete(Setting).where(Setting.key == "ledger_offset"))
        session.commit()


def test_a_new_database_leaves_the_payments_in_the_ledger_before_it_alone_and_tells_the_admins_once(
        shop, alice, bob):
    seller = Person(shop, ADMIN_ID, "Seller")  # who has not written to this new database yet
    pro, key = shop.add_product("Pro", price=25, hidden="KEY-PRO"), shop.add_product("Key", price=10)
    add_stock(shop, key)  # stocked, none left
    shop.api.ledger_payment(alice, 25, checkout.invoice_payload(pro.id, alice.id), "old-1")
    shop.api.ledger_payment(bob, 10, checkout.invoice_payload(key.id, bob.id), "old-2")
    shop.api.ledger_payment(bob, 40, checkout.invoice_payload(999, bob.id), "old-3")  # a product this one never had
    forget_the_ledger(shop)
    to_buyers = len(messages_to(shop, alice)) + len(messages_to(shop, bob))

    ledger.check_ledger(shop.bot.shop)
    ledger.check_ledger(shop.bot.shop)  # ten minutes later

    assert shop.api.of("refundStarPayment") == [] and shop.purchases() == []
    assert len(messages_to(shop, alice)) + len(messages_to(shop, bob)) == to_buyers
    told = [t for t in messages_to(shop, seller) if "left alone" in t]
    assert len(told) == 1 and "3 payments made before it" in told[0]
    shop.api.ledger_payment(alice, 25, checkout.invoice_payload(pro.id, alice.id), "new-1")  # from now on: its own
    assert ledger.check_ledger(shop.bot.shop).recorded == ["new-1"] and "KEY-PRO" in alice.all_texts()


def restore_older_copy(shop, ledger_read: int) -> None:
    """shop.db replaced by a copy made when nothing was sold and no key was uploaded (the journal stays)."""
    with shop.Session() as session:
        session.execute(sqlalchemy.delete(StockItem))
        session.execute(sqlalchemy.delete(Purchase))
        put_setting(session, "ledger_offset", str(ledger_read))
        session.commit()


def test_a_restored_copy_records_the_later_sales_again_without_writing_to_their_buyers(shop, seller, alice, bob):
    pro, key = shop.add_product("Pro", price=25, hidden="KEY-PRO"), shop.add_product("Key", price=10)
    add_stock(shop, key, "KEY-A")  # uploaded after the copy was made
    alice.taps_data(callback("buy", pro.id))
    alice.pays(charge_id="ch-1")
    bob.taps_data(callback("buy", key.id))
    bob.pays(charge_id="ch-2")
    for person, product, amount, charge in ((alice, pro, 25, "ch-1"), (bob, key, 10, "ch-2")):
        shop.api.ledger_payment(person, amount, checkout.invoice_payload(product.id, person.id), charge)
    ledger.check_ledger(shop.bot.shop)
    shop.bot.shop.journal.compact()  # a restart
    restore_older_copy(shop, ledger_read=0)
    to_buyers = len(messages_to(shop, alice)) + len(messages_to(shop, bob))

    check = ledger.check_ledger(shop.bot.shop)

    assert check.restored == ["ch-1", "ch-2"] and check.recorded == []
    assert len(messages_to(shop, alice)) + len(messages_to(shop, bob)) == to_buyers
    assert shop.api.of("refundStarPayment") == []
    assert shop.purchases() == [("alice", "Pro", 25, "stars"), ("bob", "Key", 10, "stars")]
    assert purchase_row(shop, "ch-2").delivered_at is not None and not purchase_row(shop, "ch-2").refund_due
    summary = [t for t in messages_to(shop, seller) if "recorded again" in t]
    assert len(summary) == 1 and "2 payments" in summary[0]
    assert "Bob" in summary[0] and "ch-2" in summary[0] and "its key is not in this database" in summary[0]
    assert ledger.deliver_what_was_not(shop.bot.shop) == 0


def test_a_restored_copy_records_the_sales_of_the_last_minutes_again_at_its_first_reading(shop, seller, alice):
    """A sale the journal says was recorded has had its update: waiting for one (UPDATE_GRACE) would only leave
    it out of the database for minutes, so the first reading after the start records it again."""
    pro = shop.add_product("Pro", price=25, hidden="KEY-PRO")
    alice.taps_data(callback("buy", pro.id))
    alice.pays(charge_id="ch-1")
    just_now = int(time.time()) - 30
    shop.api.ledger_payment(alice, 25, checkout.invoice_payload(pro.id, alice.id), "ch-1", date=just_now)
    restore_older_copy(shop, ledger_read=0)

    check = ledger.check_ledger(shop.bot.shop, polling_since=time.time(), now=time.time())  # at start

    assert check.restored == ["ch-1"] and shop.purchases() == [("alice", "Pro", 25, "stars")]


def test_a_torn_line_in_the_middle_of_the_journal_is_set_aside_and_the_rest_replayed(shop, alice, caplog):
    product = shop.add_product("Pro", price=25, hidden="KEY-1")
    payments = shop.bot.shop.journal
    payments.write(payment_message(alice, product, "ch-1"))
    with open(payments.path, "ab") as file:
        file.write(b'{"charge": "ch-x", "mess')  # the disk filled up mid-line...
    payments.write(payment_message(alice, product, "ch-2"))  # ...and the next payment came after
    with open(payments.path, "ab") as file:
        file.write(b'\xff\xfe garbage\n')  # a bad sector
    payments.write(payment_message(alice, product, "ch-3"))

    journal.retry_until_recorded(shop.bot.shop, wait=0.0)
    payments.compact()

    assert {purchase_row(shop, charge) is not None for charge in ("ch-1", "ch-2", "ch-3")} == {True}
    assert payments.pending() == [] and sorted(e["done"] for e in payments.entries()) == ["ch-1", "ch-2", "ch-3"]
    assert "unreadable lines" in caplog.text


class FullDisk:
    """Stands in for PaymentJournal.append: the disk is full."""

    def __init__(self):
        self.tries = 0

    def __call__(self, entry: dict) -> None:
        self.tries += 1
        raise OSError(28, "No space left on device")


def test_a_journal_that_cannot_be_written_does_not_stop_the_shop_and_the_admins_hear_once(
        shop, seller, alice, monkeypatch):
    pro, extra = shop.add_product("Pro", price=25, hidden="KEY-1"), shop.add_product("Extra", price=5, hidden="KEY-2")
    full = FullDisk()
    monkeypatch.setattr(shop.bot.shop.journal, "append", full)
    for product, charge in ((pro, "ch-1"), (extra, "ch-2")):
        alice.taps_data(callback("buy", product.id))
        alice.payment_lands(product.price, alice.last_invoice()["payload"], "XTR", charge)  # pre-checkout passed
    shop.finish_background()

    assert full.tries == 4  # each payment, and each "recorded"
    assert shop.purchases() == [("alice", "Pro", 25, "stars"), ("alice", "Extra", 5, "stars")]
    assert "KEY-1" in alice.all_texts() and "KEY-2" in alice.all_texts()
    assert len([t for t in messages_to(shop, seller) if "cannot be written" in t]) == 1
    alice.sends("/purchases")  # and the shop goes on serving
    assert any(label.startswith("Pro") for label in alice.button_labels())


def test_pre_checkout_says_no_while_the_journal_cannot_be_written(shop, alice):
    product = shop.add_product("Pro", price=25)
    Path(shop.bot.shop.journal.path).mkdir()  # not a file it can append to (as a read-only folder is not)
    alice.taps_data(callback("buy", product.id))
    answer = alice.pre_checkout(25, alice.last_invoice()["payload"])
    assert answer["ok"] is False and "try again in a minute" in answer["error_message"]


def test_the_journal_lies_beside_the_database_whatever_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert journal.journal_path("sqlite:///shop.db") == str(tmp_path / "shop.db.payments.jsonl")
    server = journal.journal_path("postgresql+psycopg://shop@db/shop")
    assert server == str(HERE / "shopbot-payments.jsonl")  # beside shopbot.py


def test_compacting_the_journal_loses_no_entry_appended_meanwhile(tmp_path):
    payments = journal.PaymentJournal(str(tmp_path / "shop.db.payments.jsonl"))

    def appends(thread: int) -> None:
        for n in range(300):
            charge = f"ch-{thread}-{n}"
            payment = {"successful_payment": {"telegram_payment_charge_id": charge}}
            payments.append({"charge": charge, "message": payment})

    threads = [threading.Thread(target=appends, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    while any(thread.is_alive() for thread in threads):
        payments.compact()
    for thread in threads:
        thread.join()
    assert len(payments.pending()) == 1200


def test_a_payment_the_ledger_finds_but_cannot_honour_is_left_to_the_admins_with_a_refund_button(
        shop, seller, alice, bob):
    key = shop.add_product("Key", price=10)
    add_stock(shop, key)  # sold out
    shop.api.ledger_payment(alice, 10, checkout.invoice_payload(key.id, alice.id), "ch-sold-out")
    shop.api.ledger_payment(bob, 40, checkout.invoice_payload(999, bob.id), "ch-gone")  # its product was deleted

    check = ledger.check_ledger(shop.bot.shop)

    assert [p.reason for p in check.unhonoured] == ["ledger_sold_out", "ledger_gone"]
    assert shop.api.of("refundStarPayment") == [] and messages_to(shop, alice) == [] and messages_to(shop, bob) == []
    assert purchase_row(shop, "ch-sold-out").refund_due
    listing = [t for t in messages_to(shop, seller) if "cannot honour" in t]
    assert len(listing) == 1 and "Alice" in listing[0] and "sold out" in listing[0] and "ch-gone" in listing[0]
    assert seller.button_labels() == ["↩️ Refund 1", "↩️ Refund 2"]
    gone = [b["callback_data"] for b in buttons(seller.last_with_buttons())][1]

    bob.taps_data(gone)  # a customer with the button's data: refused
    assert shop.api.of("refundStarPayment") == []

    seller.taps("↩️ Refund 2")
    seller.taps("↩️ Refund 1")  # the purchase's own refund, as from 🧾 Purchases: asked, then confirmed
    seller.taps("Yes")
    refunded = [(int(c.params["user_id"]), c.params["telegram_payment_charge_id"])
                for c in shop.api.of("refundStarPayment")]
    assert refunded == [(bob.id, "ch-gone"), (alice.id, "ch-sold-out")]
    assert purchase_row(shop, "ch-sold-out").refunded_at is not None
