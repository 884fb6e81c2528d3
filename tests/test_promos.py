"""Promo codes (promos.py, promo_panel.py): prices, limits held and counted, links, and the seller's screens."""
from __future__ import annotations

import csv
import io
import json
import logging
import threading
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select, update

import checkout
import ledger
import promo_panel
import promos
from conftest import ADMIN_ID, Person, add_stock, admin_texts, set_product
from models import PromoCode, PromoHold, Purchase, User
from promos import price_after
from shopkit import callback, utcnow


def types_code(person: Person, product, code: str, button: str = "Promo code") -> None:
    """Open the product's card, tap 🏷 Promo code and type ``code``."""
    person.sends(f"/start p_{product.id}")
    person.taps(button)
    person.sends(code)


def invoice_of(shop) -> tuple[int, str]:
    """(amount, payload) of the latest invoice."""
    invoice = shop.api.of("sendInvoice")[-1].params
    return json.loads(invoice["prices"])[0]["amount"], invoice["payload"]


def card_html(shop, person: Person) -> str:
    """The HTML the bot sent for the person's latest card (FakeApi keeps only what Telegram shows)."""
    return [c.params["text"] for c in shop.api.of("sendMessage") if c.params["chat_id"] == str(person.id)][-1]


def promo_purchases(shop) -> list[tuple]:
    with shop.Session() as session:
        return [tuple(row) for row in session.execute(
            select(Purchase.price, Purchase.list_price, Purchase.promo_code_id, Purchase.refunded_at.is_(None))
            .order_by(Purchase.id))]


# ---------------------------------------------------------------------------
# The price after a code
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("list_price, currency, percent, amount, price", [
    (100, "XTR", 20, None, 80),
    (5, "XTR", 50, None, 2),  # 2.5 off rounds to 3 off: halves go to the customer
    (999, "USD", 15, None, 849),  # 149.85 cents off -> 150
    (100, "XTR", None, 30, 70),
    (2, "XTR", 90, None, 1),  # 1.8 off -> 2 off -> 0, but a paid price stays at 1 Star at least
    (100, "XTR", 100, None, 0),  # 100 %: free
    (100, "XTR", None, 500, 0),  # more off than the price: free
    (150, "USD", 90, None, 100),  # $0.15 is under Telegram's $1 minimum: $1
    (50, "USD", 10, None, 0),  # a 50-cent product cannot reach the $1 minimum at all: free
])
def test_a_discount_is_rounded_one_way_and_never_leaves_less_than_the_minimum(list_price, currency, percent, amount,
                                                                            price):
    assert price_after(list_price, currency, percent, amount) == price


# ---------------------------------------------------------------------------
# On the card and on the invoice
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("discount, new_price, shown", [({"percent": 20}, 80, "−20 %"), ({"amount": 30}, 70, "−30 ⭐")],
                         ids=["percentage", "fixed"])
def test_a_code_lowers_the_card_and_the_invoice(shop, alice, discount, new_price, shown):
    product = shop.add_product("Course", price=100, hidden="COURSE-LINK")
    code = shop.add_promo("SPRING", **discount)
    types_code(alice, product, "spring")  # any case
    assert f"<s>100 ⭐</s> {new_price} ⭐ · 🏷 SPRING {shown}" in card_html(shop, alice)
    assert "Promo code SPRING applied" in alice.last_text()
    assert alice.button_labels()[0] == f"Buy for {new_price} ⭐"
    alice.taps("Buy for")
    assert invoice_of(shop) == (new_price, f"shop2:{product.id}:{alice.id}:{code.id}:0")
    assert alice.pays()["ok"] is True
    assert "COURSE-LINK" in alice.all_texts()
    assert promo_purchases(shop) == [(new_price, 100, code.id, True)]


def test_a_card_currency_code_prices_in_cents(card_shop):
    product = card_shop.add_product("Course", price=999)
    code = card_shop.add_promo("CARD15", percent=15, currency="USD")
    alice = Person(card_shop, 1001, "Alice", "alice")
    types_code(alice, product, "CARD15")
    assert alice.button_labels()[0] == "Buy for $8.49"
    alice.taps("Buy for")
    assert invoice_of(card_shop) == (849, f"shop2:{product.id}:1001:{code.id}:0")
    assert alice.pays()["ok"] is True and promo_purchases(card_shop) == [(849, 999, code.id, True)]


@pytest.mark.parametrize("fields, typed, reason", [
    ({"expires_at": utcnow() - timedelta(minutes=1)}, "OLD", "has expired"),
    ({"is_active": False}, "OLD", "has expired"),
    ({"max_uses": 1}, "OLD", "has been used up"),  # Bob used its one use
    ({"category_id": "other"}, "OLD", "is not for this product"),
    ({}, "NOPE", "There is no such promo code"),
    ({}, "no spaces allowed", "There is no such promo code"),
], ids=["expired", "turned off", "used up", "another product", "unknown", "malformed"])
def test_a_code_that_does_not_apply_says_why_and_the_price_stays(shop, alice, bob, fields, typed, reason):
    product = shop.add_product("Course", price=100)
    if "category_id" in fields:
        fields = {"category_id": shop.add_category("Other", 1).id}
    code = shop.add_promo("OLD", **fields)
    if "max_uses" in fields:
        bob.sends(f"/start promo_{code.code}")
        bob.taps_data(callback("buy", product.id))
        bob.pays()
    types_code(alice, product, typed)
    assert reason in alice.last_text() and "<s>" not in card_html(shop, alice)
    assert alice.button_labels()[0] == "Buy for 100 ⭐"
    alice.taps("Buy for")
    assert invoice_of(shop)[0] == 100


@pytest.mark.parametrize("price, percent", [(1, 50), (9, 5)], ids=["1 star at 50 %", "9 stars at 5 %"])
def test_a_code_that_takes_nothing_off_is_neither_shown_nor_spent(shop, alice, price, percent):
    sticker, course = shop.add_product("Sticker", price=price), shop.add_product("Course", price=100)
    shop.add_promo("ONCE", percent=percent, max_uses=1)
    types_code(alice, sticker, "ONCE")
    assert "would take nothing off" in alice.last_text() and "<s>" not in card_html(shop, alice)
    alice.taps("Buy for")
    assert alice.pays()["ok"] is True and invoice_of(shop)[1] == f"shop1:{sticker.id}:{alice.id}"
    alice.sends(f"/start p_{course.id}")  # the code's one use is still there, for what it lowers
    assert alice.button_labels()[0] == f"Buy for {100 - percent} ⭐"


def test_a_card_price_a_code_cannot_lower_shows_no_discount(card_shop):
    product = card_shop.add_product("Guide", price=100)  # $1.00, Telegram's minimum
    card_shop.add_promo("TEN", percent=10, currency="USD")
    alice = Person(card_shop, 1001, "Alice")
    types_code(alice, product, "TEN")
    assert "<s>" not in card_html(card_shop, alice) and alice.button_labels()[0] == "Buy for $1"
    alice.sends("/start promo_TEN")
    alice.taps_data(callback("buy_gift", product.id))
    assert invoice_of(card_shop) == (100, f"shop2:{product.id}:1001:0:1")


def test_a_code_for_a_category_applies_to_its_products_only(shop, alice):
    keys, books = shop.add_category("Keys"), shop.add_category("Books", 1)
    key, book = shop.add_product("Key", price=100, category=keys), shop.add_product("Book", price=100, category=books)
    shop.add_promo("KEYS", category_id=keys.id)
    types_code(alice, book, "KEYS")
    assert "not for this product" in alice.last_text()
    alice.sends(f"/start p_{key.id}")  # kept for a product it covers
    assert alice.button_labels()[0] == "Buy for 80 ⭐"


def test_pre_checkout_checks_the_code_again(shop, alice):
    product = shop.add_product("Course", price=100)
    code = shop.add_promo("SPRING")
    types_code(alice, product, "SPRING")
    alice.taps("Buy for")
    with shop.Session() as session:
        session.get(PromoCode, code.id).is_active = False
        session.commit()
    answer = alice.pays()
    assert answer["ok"] is False and "expired" in answer["error_message"]
    amount, payload = invoice_of(shop)
    forged = alice.pre_checkout(amount - 10, payload)  # an amount the code does not make
    assert forged["ok"] is False and "price has changed" in forged["error_message"]
    assert shop.purchases() == []


def test_each_customer_uses_a_code_once(shop, alice):
    product = shop.add_product("Key", price=100)
    add_stock(shop, product, "K1", "K2")  # a stocked product may be bought again, but not with the code again
    shop.add_promo("ONCE")
    types_code(alice, product, "ONCE")
    alice.taps("Buy for 80")
    alice.pays()
    types_code(alice, product, "ONCE")
    assert "You have already used this promo code" in alice.last_text()
    assert alice.button_labels()[0] == "Buy for 100 ⭐"


@pytest.mark.parametrize("percent, price_left", [(50, "Buy for 50 ⭐"), (100, "Get for free")])
def test_a_used_code_typed_under_another_card_never_becomes_the_customers_again(shop, alice, percent, price_left):
    key, other = shop.add_product("Key", price=100), shop.add_product("Other", price=100)
    add_stock(shop, key, "K1", "K2")
    code = shop.add_promo("KEYONLY", percent=percent, product_id=key.id)
    types_code(alice, key, "KEYONLY")
    alice.taps(price_left)
    if percent < 100:
        assert alice.pays()["ok"] is True
    types_code(alice, other, "KEYONLY")
    assert "You have already used this promo code" in alice.last_text()
    alice.sends(f"/start p_{key.id}")
    assert alice.button_labels()[0] == "Buy for 100 ⭐" and "<s>" not in card_html(shop, alice)
    with shop.Session() as session:  # chosen anyway (by an older version, say): the card still ignores it
        session.execute(update(User).values(promo_code_id=code.id))
        session.commit()
    alice.sends(f"/start p_{key.id}")
    assert alice.button_labels()[0] == "Buy for 100 ⭐"
    alice.taps("Buy for")
    assert alice.pays()["ok"] is True and "K2" in alice.all_texts()


def test_two_invoices_with_one_code_paid_at_once_count_one_use_and_refund_the_other(shop, seller, alice):
    product = shop.add_product("Key", price=100)
    add_stock(shop, product, "K1", "K2")
    code = shop.add_promo("ONCE")
    types_code(alice, product, "ONCE")
    alice.taps("Buy for 80")
    payload = invoice_of(shop)[1]
    assert alice.pre_checkout(80, payload)["ok"] is True
    alice.payment_lands(80, payload, "XTR", "charge-1")
    alice.payment_lands(80, payload, "XTR", "charge-2")
    assert promo_purchases(shop) == [(80, 100, code.id, True), (80, 100, None, False)]
    assert [c.params["telegram_payment_charge_id"] for c in shop.api.of("refundStarPayment")] == ["charge-2"]
    assert "promo code ran out" in alice.last_text() and "had no use left" in admin_texts(shop)
    assert "K2" not in alice.all_texts()  # the refunded payment took no key


def test_a_promo_payment_telegram_would_not_refund_is_refunded_by_the_seller_here(shop, seller, alice):
    product = shop.add_product("Key", price=100)
    add_stock(shop, product, "K1", "K2")  # may be bought twice, but with the code once
    shop.add_promo("ONCE")
    types_code(alice, product, "ONCE")
    alice.taps("Buy for 80")
    payload = invoice_of(shop)[1]
    alice.payment_lands(80, payload, "XTR", "charge-1")
    shop.api.fail("refundStarPayment", 400, "Bad Request: CHARGE_NOT_FOUND")
    alice.payment_lands(80, payload, "XTR", "charge-2")
    assert "The seller has been told and will refund you" in alice.last_text()
    assert "Telegram refused the automatic refund. Please refund purchase #2 here" in admin_texts(shop)
    assert "provider" not in admin_texts(shop)  # Stars go back from the purchase's screen


def test_a_card_payment_the_code_could_not_cover_opens_nothing_while_it_is_refunded(card_shop):
    """The code's last use went to Bob while Alice paid (her hold had expired): her payment is refunded by the
    seller, and until then it neither delivers nor makes her an owner; she may buy at the full price."""
    product = card_shop.add_product("Guide", price=1000, hidden="GUIDE-TEXT")
    card_shop.add_promo("LAST", currency="USD", max_uses=1)
    alice, bob = Person(card_shop, 1001, "Alice"), Person(card_shop, 1002, "Bob")
    types_code(alice, product, "LAST")
    alice.taps("Buy for")
    payload = invoice_of(card_shop)[1]
    types_code(bob, product, "LAST")
    bob.taps("Buy for")
    assert bob.pays()["ok"] is True
    alice.payment_lands(800, payload, "USD", "ch-alice")
    assert "The seller has been told and will refund you" in alice.last_text()
    alice.repeats_payment()
    alice.sends("/purchases")
    alice.taps("being refunded")
    assert "being refunded" in alice.last_toast() and "GUIDE-TEXT" not in alice.all_texts()
    alice.sends(f"/start p_{product.id}")
    assert alice.button_labels()[0] == "Buy for $10"
    alice.taps("Buy for")
    assert alice.pays()["ok"] is True and "GUIDE-TEXT" in alice.all_texts()


# ---------------------------------------------------------------------------
# The limit is never exceeded
# ---------------------------------------------------------------------------

def all_at_once(work, people) -> None:
    start = threading.Barrier(len(people))

    def run(person):
        start.wait()
        work(person)

    threads = [threading.Thread(target=run, args=(person,)) for person in people]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)


def test_twenty_customers_paying_at_once_for_a_ten_use_code_get_ten_uses(shop):
    product = shop.add_product("Course", price=100, hidden="COURSE-LINK")
    code = shop.add_promo("TEN", max_uses=10)
    people = [Person(shop, 3000 + n, f"Buyer {n}") for n in range(20)]
    for person in people:
        person.sends("/start promo_TEN")
        person.taps_data(callback("buy", product.id))
    answers = {}
    all_at_once(lambda person: answers.update({person.id: person.pays()}), people)
    approved = [pid for pid, answer in answers.items() if answer["ok"] is True]
    refused = [answer["error_message"] for answer in answers.values() if answer["ok"] is not True]
    assert len(approved) == 10 and refused == ["❌ This promo code has been used up."] * 10
    assert promo_purchases(shop) == [(80, 100, code.id, True)] * 10
    assert not shop.api.of("refundStarPayment")
    with shop.Session() as session:
        assert session.scalar(select(func.count(PromoHold.id))) == 0  # every hold became a use


def test_payments_that_lost_their_hold_never_exceed_the_limit(shop):
    """Twenty payments land at once with no hold (expired, or paid without pre-checkout): ten count, ten go back."""
    product = shop.add_product("Course", price=100)
    code = shop.add_promo("TEN", max_uses=10)
    people = [Person(shop, 3000 + n, f"Buyer {n}") for n in range(20)]
    payload = {person.id: checkout.invoice_payload(product.id, person.id, code.id) for person in people}
    all_at_once(lambda p: p.payment_lands(80, payload[p.id], "XTR", f"charge-{p.id}"), people)
    live = [row for row in promo_purchases(shop) if row[3]]
    assert live == [(80, 100, code.id, True)] * 10 and len(promo_purchases(shop)) == 20
    assert len(shop.api.of("refundStarPayment")) == 10


def test_a_hold_keeps_a_use_for_the_customer_who_reached_pre_checkout(shop, alice, bob):
    product = shop.add_product("Course", price=100)
    shop.add_promo("LAST", max_uses=1)
    alice.sends("/start promo_LAST")
    bob.sends("/start promo_LAST")
    alice.taps_data(callback("buy", product.id))
    alice_invoice = alice.last_invoice()
    bob.taps_data(callback("buy", product.id))
    assert alice.pre_checkout(80, alice_invoice["payload"])["ok"] is True
    assert "used up" in bob.pays()["error_message"]  # the last use is held for Alice
    alice.payment_lands(80, alice_invoice["payload"], "XTR", "charge-A")
    assert shop.purchases() == [("alice", "Course", 80, "stars")]


def test_an_unpaid_hold_is_released_after_a_while(shop, alice, bob):
    product = shop.add_product("Course", price=100)
    shop.add_promo("LAST", max_uses=1)
    for person in (alice, bob):
        person.sends("/start promo_LAST")
        person.taps_data(callback("buy", product.id))
    assert alice.pre_checkout(80, alice.last_invoice()["payload"])["ok"] is True  # ...and Alice never pays
    with shop.Session() as session:
        session.scalar(select(PromoHold)).expires_at = utcnow() - timedelta(seconds=1)
        session.commit()
    assert bob.pays()["ok"] is True
    assert shop.purchases() == [("bob", "Course", 80, "stars")]


def frozen_clock(monkeypatch) -> list:
    """promos.py's clock, stopped: move it on with ``clock[0] += timedelta(...)``."""
    clock = [utcnow()]
    monkeypatch.setattr(promos, "utcnow", lambda: clock[0])
    return clock


def test_a_declined_card_holds_the_last_use_two_minutes_and_not_again_at_once(shop, alice, bob, monkeypatch):
    clock = frozen_clock(monkeypatch)
    product = shop.add_product("Course", price=100)
    shop.add_promo("LAST", max_uses=1)
    for person in (alice, bob):
        person.sends("/start promo_LAST")
        person.taps_data(callback("buy", product.id))
    alice_payload = alice.last_invoice()["payload"]
    assert alice.pre_checkout(80, alice_payload)["ok"] is True  # ...and her card is declined
    clock[0] += timedelta(minutes=1)
    assert alice.pre_checkout(80, alice_payload)["ok"] is True  # asked again: the hold is not lengthened
    assert "used up" in bob.pre_checkout(80, bob.last_invoice()["payload"])["error_message"]
    clock[0] += timedelta(minutes=1, seconds=1)
    again = alice.pre_checkout(80, alice_payload)
    assert again["ok"] is False and "about 10 minutes later" in again["error_message"]
    assert bob.pays()["ok"] is True
    assert shop.purchases() == [("bob", "Course", 80, "stars")]


def test_a_payment_landing_after_its_hold_lapsed_is_honoured_and_the_admins_told(shop, seller, alice, bob,
                                                                                monkeypatch):
    clock = frozen_clock(monkeypatch)
    product = shop.add_product("Course", price=100, hidden="COURSE-LINK")
    code = shop.add_promo("LAST", max_uses=1)
    for person in (alice, bob):
        person.sends("/start promo_LAST")
        person.taps_data(callback("buy", product.id))
    alice_payload = alice.last_invoice()["payload"]
    assert alice.pre_checkout(80, alice_payload)["ok"] is True
    clock[0] += timedelta(minutes=3)  # her hold lapses before her payment lands...
    assert bob.pays()["ok"] is True  # ...and Bob takes the last use meanwhile
    alice.payment_lands(80, alice_payload, "XTR", "charge-late")
    assert "COURSE-LINK" in alice.all_texts() and not shop.api.of("refundStarPayment")
    assert promo_purchases(shop) == [(80, 100, code.id, True)] * 2
    assert admin_texts(shop).count("It was honoured at the price paid") == 1
    assert "the code now has 2 uses of 1" in admin_texts(shop)


def test_six_wrong_codes_make_the_customer_wait_and_are_logged_once(shop, alice, caplog, monkeypatch):
    caplog.set_level(logging.INFO, logger="shopbot")
    clock = frozen_clock(monkeypatch)
    product = shop.add_product("Course", price=100)
    shop.add_promo("REAL")
    shop.add_promo("OLD", is_active=False)
    for guess in ("GUESS1", "OLD", "GUESS3", "GUESS4"):
        types_code(alice, product, guess)
        assert "promo code" in alice.last_text() and "try again" not in alice.last_text()
    clock[0] += timedelta(minutes=4)
    types_code(alice, product, "GUESS5")
    assert "There is no such promo code" in alice.last_text()
    clock[0] += timedelta(seconds=30)
    types_code(alice, product, "REAL")  # the 6th: refused, even a real code
    assert "Please try again in 10 min." in alice.last_text() and alice.button_labels()[0] == "Buy for 100 ⭐"
    clock[0] += timedelta(minutes=6)
    types_code(alice, product, "REAL")
    assert "Please try again in 4 min." in alice.last_text()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and str(alice.id) in warnings[0]
    assert not any(guess in warnings[0] for guess in ("GUESS", "OLD", "REAL"))
    clock[0] += timedelta(minutes=4)
    types_code(alice, product, "REAL")
    assert "Promo code REAL applied" in alice.last_text() and alice.button_labels()[0] == "Buy for 80 ⭐"


def test_pre_checkout_prices_only_with_the_code_the_customer_applied(shop, alice, bob):
    product = shop.add_product("Course", price=100)
    small, big = shop.add_promo("SMALL", percent=10), shop.add_promo("BIG", percent=90)
    bob.sends("/start promo_BIG")
    forged = checkout.invoice_payload(product.id, alice.id, big.id)
    answer = alice.pre_checkout(10, forged)  # Alice never applied BIG: it is Bob's
    assert answer["ok"] is False and "a promo code you have not applied" in answer["error_message"]
    alice.sends("/start promo_SMALL")
    answer = alice.pre_checkout(10, forged)  # nor with another code of hers
    assert answer["ok"] is False and "a promo code you have not applied" in answer["error_message"]
    assert alice.pre_checkout(90, checkout.invoice_payload(product.id, alice.id, small.id))["ok"] is True
    with shop.Session() as session:
        assert session.scalars(select(PromoHold.promo_code_id)).all() == [small.id]


# ---------------------------------------------------------------------------
# 100 %, links, the ledger
# ---------------------------------------------------------------------------

def test_a_100_percent_code_delivers_at_once_without_an_invoice(shop, alice):
    product = shop.add_product("Course", price=100, hidden="COURSE-LINK")
    code = shop.add_promo("FREE", percent=100, max_uses=1)
    types_code(alice, product, "FREE")
    assert alice.button_labels()[0] == "Get for free"
    alice.taps("Get for free")
    assert "COURSE-LINK" in alice.all_texts() and not shop.api.of("sendInvoice")
    assert shop.purchases() == [("alice", "Course", 0, "free")]
    assert promo_purchases(shop) == [(0, 100, code.id, True)]
    alice.sends(f"/start p_{product.id}")  # the code is spent: the card is back at its price (and owned)
    assert alice.button_labels()[0] == "✅ Yours — open" and "<s>" not in card_html(shop, alice)


def test_a_promo_link_greets_and_prices_the_next_purchase(shop, alice):
    product = shop.add_product("Course", price=100, hidden="COURSE-LINK")
    code = shop.add_promo("WEEKEND", percent=20)
    alice.sends("/start promo_weekend")
    assert "Your promo code WEEKEND gives you −20 % on everything in the shop" in alice.last_text()
    assert alice.button_labels() == ["📋 Copy", "🛍 Catalog", "📦 My purchases", "❓ Help"]
    alice.taps("Catalog")
    alice.taps("Keys")
    alice.taps("Course")
    assert "<s>100 ⭐</s> 80 ⭐" in [c.params["text"] for c in shop.api.of("editMessageText")][-1]
    alice.taps("Buy for 80")
    assert invoice_of(shop) == (80, f"shop2:{product.id}:1001:{code.id}:0")
    alice.pays()
    assert "COURSE-LINK" in alice.all_texts()


def test_a_link_to_a_code_for_one_product_offers_that_product(shop, alice):
    product = shop.add_product("Course", price=100)
    shop.add_promo("COURSE", product_id=product.id)
    alice.sends("/start promo_COURSE")
    assert "on «Course»" in alice.last_text() and alice.button_labels()[0] == "🛍 Open"
    alice.taps("Open")
    assert alice.button_labels()[0] == "Buy for 80 ⭐"


@pytest.mark.parametrize("link, reason", [("promo_NOPE", "no such promo code"), ("promo_", "no such promo code"),
                                          ("promo_" + "X" * 60, "no such promo code"), ("promo_OLD", "expired")])
def test_a_bad_promo_link_says_why(shop, alice, link, reason):
    shop.add_promo("OLD", is_active=False)
    alice.sends(f"/start {link}")
    assert reason in alice.last_text() and alice.button_labels()[0] == "🛍 Catalog"


def test_a_payment_with_a_code_found_only_in_telegrams_ledger_is_recorded_with_it(shop, alice):
    product = shop.add_product("Course", price=100, hidden="COURSE-LINK")
    code = shop.add_promo("SPRING")
    shop.api.ledger_payment(alice, 80, checkout.invoice_payload(product.id, alice.id, code.id), "ch-lost")
    assert ledger.check_ledger(shop.bot.shop).recorded == ["ch-lost"]
    assert "COURSE-LINK" in alice.all_texts() and promo_purchases(shop) == [(80, 100, code.id, True)]


def test_old_and_new_payloads_are_read(shop):
    assert checkout.parse_invoice_payload("shop1:42:1001") == (42, 1001, 0, False)
    assert checkout.parse_invoice_payload("shop2:42:1001:7:1") == (42, 1001, 7, True)
    biggest = checkout.invoice_payload(2**63 - 1, 2**63 - 1, 2**63 - 1, True)
    assert len(biggest.encode()) <= 128 and checkout.parse_invoice_payload(biggest).gift is True
    for forged in ("shop2:42:1001:7", "shop2:42:1001:7:2", "shop2:42:1001:-7:0", "shop1:42:1001:7:0"):
        assert checkout.parse_invoice_payload(forged) is None


# ---------------------------------------------------------------------------
# The seller's 🏷 Promo codes
# ---------------------------------------------------------------------------

def test_the_seller_makes_a_weekend_code_and_sees_its_uses_and_revenue(shop, seller, alice, caplog):
    caplog.set_level(logging.INFO, logger="shopbot")
    product = shop.add_product("Course", price=100)
    seller.sends("/admin")
    seller.taps("Promo codes")
    seller.taps("New code")
    seller.sends("week end")
    assert "3 to 32 letters" in seller.last_text()
    seller.sends("weekend")
    seller.sends("120%")
    assert "from 1 to 100" in seller.last_text()
    seller.sends("20%")
    seller.sends("anything")
    assert "Choose with the buttons" in seller.last_text()
    seller.taps("The whole shop")
    seller.sends("/skip")
    seller.sends("2020-01-01")
    assert "That day is over" in seller.last_text()
    seller.sends((utcnow() + timedelta(days=2)).strftime("%d.%m.%Y"))
    assert "Saved" in seller.last_text() and "WEEKEND" in seller.last_text()
    assert "https://t.me/test_shop_bot?start=promo_WEEKEND" in seller.last_text()
    alice.sends("/start promo_WEEKEND")
    alice.taps_data(callback("buy", product.id))
    alice.pays()
    seller.sends("/admin")
    seller.taps("Promo codes")
    seller.taps("WEEKEND")
    assert "Used: 1 (each customer once)" in seller.last_text()
    assert "Revenue: 80 ⭐ · discounts given: 20 ⭐" in seller.last_text()
    seller.taps("Turn off")
    assert "⛔ off" in seller.last_text()
    Person(shop, 1009, "Zoe").sends("/start promo_WEEKEND")
    assert "expired" in shop.api.messages(1009)[-1]["text"]
    assert "WEEKEND" not in caplog.text  # a code is never logged


def test_a_code_for_one_product_with_a_limit(shop, seller):
    shop.add_product("Course", price=100)
    seller.sends("/admin")
    seller.taps("Promo codes")
    seller.taps("New code")
    seller.sends("COURSE50")
    seller.sends("50")  # 50 Stars off
    seller.taps("Keys")
    seller.taps("Course")
    seller.sends("25")
    seller.sends("/skip")
    assert "Discount: −50 ⭐ on «Course»" in seller.last_text() and "Used: 0 / 25" in seller.last_text()
    seller.taps("Back")
    seller.taps("New code")
    seller.sends("course50")
    assert "exists already" in seller.last_text()


def test_the_scope_picker_offers_only_products_a_code_can_lower_a_page_at_a_time(shop, seller):
    for n in range(10):
        shop.add_product(f"Course {n}", price=100)
    shop.add_product("Freebie", price=0)
    club = shop.add_product("Club", price=100)
    set_product(shop, club.id, kind="subscription")
    seller.sends("/admin")
    seller.taps("Promo codes")
    seller.taps("New code")
    seller.sends("TEN")
    seller.sends("10%")
    seller.taps("Keys")
    first_page = seller.button_labels()
    assert first_page[1:10] == [f"Course {n}" for n in range(8)] + ["1/2"]
    seller.taps("Next")
    assert seller.button_labels()[1:3] == ["Course 8", "Course 9"]
    assert not {"Freebie", "Club"} & set(seller.button_labels())
    seller.taps("Course 9")
    seller.sends("/skip")
    seller.sends("/skip")
    assert "on «Course 9»" in seller.last_text()
    seller.taps("Back")
    seller.taps("New code")
    seller.sends("CLUB")
    seller.sends("10%")
    seller.taps_data(callback("promo_scope", 2, club.id))  # a stale button, or a forged one
    assert "What does the code apply to?" in seller.last_text()


@pytest.mark.parametrize("change", [{"kind": "subscription"}, {"price": 0}, {"is_active": False}],
                         ids=["subscription", "free", "hidden"])
def test_a_link_to_a_code_that_can_apply_to_nothing_says_so(shop, alice, change):
    product = shop.add_product("Club", price=100)
    set_product(shop, product.id, **change)
    shop.add_promo("CLUB", percent=50, product_id=product.id)
    alice.sends("/start promo_CLUB")
    assert "does not apply to anything on sale" in alice.last_text() and "−50 %" not in alice.last_text()
    with shop.Session() as session:
        assert session.scalar(select(User.promo_code_id)) is None


def test_generated_codes_come_as_a_file_and_each_works_once(shop, seller, alice, bob):
    product = shop.add_product("Course", price=100)
    seller.sends("/admin")
    seller.taps("Promo codes")
    seller.taps("Generate codes")
    seller.sends("10001")
    assert "from 1 to 10000" in seller.last_text()
    seller.sends("5")
    seller.sends("10%")
    seller.taps("The whole shop")
    seller.sends("/skip")
    name, data = shop.api.of("sendDocument")[-1].files["document"]
    lines = data.decode().splitlines()
    assert name.endswith(".txt") and len(lines) == 5 and len({line.split()[0] for line in lines}) == 5
    code, link = lines[0].split()
    assert link == f"https://t.me/test_shop_bot?start=promo_{code}"
    assert "5 one-time codes" in seller.all_texts()
    alice.sends(f"/start promo_{code}")
    alice.taps_data(callback("buy", product.id))
    alice.pays()
    bob.sends(f"/start promo_{code}")
    assert "used up" in bob.last_text()
    seller.sends("/admin")
    seller.taps("Promo codes")
    seller.taps("5 codes")
    assert "Used: 1" in seller.last_text() and "Revenue: 90 ⭐" in seller.last_text()
    seller.taps("Turn off")
    with shop.Session() as session:
        assert not session.scalar(select(func.count()).where(PromoCode.is_active))


def test_ten_thousand_codes_at_once(shop, seller):
    seller.sends("/admin")
    seller.taps("Promo codes")
    seller.taps("Generate codes")
    seller.sends("10000")
    seller.sends("5%")
    seller.taps("The whole shop")
    seller.sends("/skip")
    lines = shop.api.of("sendDocument")[-1].files["document"][1].decode().splitlines()
    assert len(lines) == len(set(lines)) == 10_000


def test_two_admins_generating_at_once_get_two_batches(shop):
    columns = dict(percent=5, amount=None, currency="XTR", category_id=None, product_id=None, expires_at=None)
    batches = []

    def generate(_admin):
        with shop.Session() as session:
            batches.append(promo_panel.generate(session, 500, columns))

    all_at_once(generate, [1, 2])
    with shop.Session() as session:
        sizes = session.execute(select(PromoCode.batch, func.count()).group_by(PromoCode.batch)).all()
    assert len(set(batches)) == 2 and sorted(size for _batch, size in sizes) == [500, 500]


def test_sales_and_the_csv_show_the_discounts(shop, seller, alice, bob):
    product = shop.add_product("Course", price=100)
    shop.add_promo("SPRING")
    alice.sends("/start promo_SPRING")
    for person in (alice, bob):
        person.taps_data(callback("buy", product.id))
        person.pays()
    seller.taps_data(callback("sales"))
    assert "Promo codes, 30 days: 1 sale · 20 ⭐ off list prices" in seller.last_text()
    seller.taps_data(callback("admin_purchase", 1))
    assert "Promo code SPRING (−20 %); list price 100 ⭐" in seller.last_text()
    seller.taps_data(callback("export_csv"))
    rows = list(csv.reader(io.StringIO(shop.api.of("sendDocument")[-1].files["document"][1].decode("utf-8-sig"))))
    assert [row[9] for row in rows[1:]] == ["80", "100"] and [[row[8], row[11], row[12]] for row in rows[1:]] == [
        ["100", "SPRING", ""], ["100", "", ""]]  # the list price, the code, the gift


def test_promo_codes_in_russian(shop):
    ivan = Person(shop, 2001, "Иван", language_code="ru")
    product = shop.add_product("Ключ", price=100)
    shop.add_promo("VESNA")
    ivan.sends("/start promo_vesna")
    assert "Ваш промокод VESNA даёт скидку −20 % на весь магазин" in ivan.last_text()
    types_code(ivan, product, "NOPE", "Промокод")
    assert "Такого промокода нет" in ivan.last_text()
    assert ivan.button_labels()[:3] == ["Купить за 80 ⭐", "🏷 Промокод", "🎁 Купить в подарок"]


def test_a_codes_validity_reads_naturally_in_russian(shop, seller):
    forever, dated = shop.add_promo("FOREVER"), shop.add_promo("DATED", expires_at=datetime(2030, 1, 2))
    ru_seller = Person(shop, ADMIN_ID, "Seller", language_code="ru")
    ru_seller.taps_data(callback("promo", forever.id))
    assert "Срок действия: бессрочно" in ru_seller.last_text() and "Действует до: бессрочно" not in \
        ru_seller.last_text()
    ru_seller.taps_data(callback("promo", dated.id))
    assert "Срок действия: до 2030-01-01" in ru_seller.last_text()
    seller.taps_data(callback("promo", forever.id))
    assert "Expires: never" in seller.last_text()
