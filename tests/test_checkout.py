"""Checkout (checkout.py): invoices, pre-checkout, payments, delivery, My purchases."""
from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

import pytest
from sqlalchemy import select

import checkout
from conftest import (
    ADMIN_ID,
    Person,
    add_stock,
    admin_texts,
    buys,
    set_product,
    visible_text,
)
from models import Purchase
from shopkit import callback, screens

HERE = Path(__file__).resolve().parent.parent  # the project's root


def test_buying_with_stars_delivers_the_hidden_content(shop, alice, seller):
    product = shop.add_product("Pro license", price=25, hidden="KEY-123")
    alice.sends(f"/start p_{product.id}")
    assert "KEY-123" not in alice.all_texts()
    alice.taps("Buy")
    invoice = shop.api.of("sendInvoice")[-1].params
    assert (invoice["currency"], json.loads(invoice["prices"])) == ("XTR", [{"label": "Pro license", "amount": 25}])
    assert "provider_token" not in invoice or not invoice["provider_token"]
    assert "KEY-123" not in json.dumps(invoice) and "KEY-123" not in json.dumps(alice.callback_answers())

    answer = alice.pays()

    assert answer["ok"] is True
    assert "Thank you for your purchase" in alice.all_texts() and "KEY-123" in alice.last_text()
    assert shop.purchases() == [("alice", "Pro license", 25, "stars")]
    with shop.Session() as session:
        purchase = session.scalar(select(Purchase))
        assert (purchase.currency, purchase.payment_id) == ("XTR", alice.payment["telegram_payment_charge_id"])
    assert "New sale" in visible_text(shop.api.messages(ADMIN_ID)[-1])


def test_admins_who_never_opened_the_bot_are_not_messaged(shop, alice):
    product = shop.add_product("Guide", price=0)
    alice.taps_data(callback("buy", product.id))
    assert [c for c in shop.api.of("sendMessage") if c.params["chat_id"] == str(ADMIN_ID)] == []


def test_invoice_fits_telegrams_limits(shop, alice):
    product = shop.add_product("N" * 64, price=100000, description="d" * 3000)
    alice.taps_data(callback("buy", product.id))
    invoice = shop.api.of("sendInvoice")[-1].params
    assert len(invoice["title"]) == 32 and len(invoice["description"]) == 255
    assert invoice["title"].endswith("…")


def test_a_card_provider_invoice_uses_its_token_and_currency(card_shop):
    product = card_shop.add_product("Course", price=999)
    alice = Person(card_shop, 1001, "Alice", "alice")
    alice.sends(f"/start p_{product.id}")
    assert alice.button_labels()[0] == "Buy for $9.99"
    alice.taps("Buy")
    invoice = card_shop.api.of("sendInvoice")[-1].params
    assert (invoice["provider_token"], invoice["currency"]) == ("prov:1", "USD")
    assert alice.pays()["ok"] is True
    assert card_shop.purchases() == [("alice", "Course", 999, "card")]


@pytest.mark.parametrize("change, reason", [
    (lambda shop, p, pay: pay(payload="garbage"), "no longer valid"),
    (lambda shop, p, pay: pay(payload=f"shop1:{p.id}:999"), "no longer valid"),  # another buyer's invoice
    (lambda shop, p, pay: pay(payload="shop1:999999:1001"), "no longer on sale"),
    (lambda shop, p, pay: pay(amount=1), "price has changed"),
    (lambda shop, p, pay: pay(currency="USD"), "price has changed"),
    (lambda shop, p, pay: (set_product(shop, p.id, price=30), pay())[1], "price has changed"),
    (lambda shop, p, pay: (set_product(shop, p.id, is_active=False), pay())[1], "no longer on sale"),
])
def test_pre_checkout_refuses_with_a_reason(shop, alice, change, reason):
    product = shop.add_product("Pro", price=25)
    alice.taps_data(callback("buy", product.id))
    answer = change(shop, product, alice.pays)
    assert answer["ok"] is False and reason in answer["error_message"]
    assert shop.purchases() == []


def test_pre_checkout_refuses_what_the_buyer_already_owns(shop, alice):
    product = shop.add_product("Pro", price=25)
    alice.taps_data(callback("buy", product.id))
    invoice = alice.last_invoice()
    alice.pays(invoice)
    answer = alice.pays(invoice)
    assert answer["ok"] is False and "already own" in answer["error_message"]
    assert len(shop.purchases()) == 1


def test_a_repeated_payment_is_recorded_once_and_delivered_once(shop, alice, seller):
    product = shop.add_product("Pro", price=25, hidden="KEY-1")
    alice.taps_data(callback("buy", product.id))
    alice.pays()
    messages = len(alice.api.messages(alice.id))
    alice.repeats_payment()  # as Telegram does after a restart, for an update the bot had not confirmed
    assert len(shop.purchases()) == 1
    assert alice.all_texts().count("KEY-1") == 1 and len(alice.api.messages(alice.id)) == messages
    assert len([m for m in shop.api.messages(ADMIN_ID) if "New sale" in visible_text(m)]) == 1


def test_the_purchase_is_committed_before_delivery(shop, alice):
    product = shop.add_product("Pro", price=25, hidden="KEY-1")
    alice.taps_data(callback("buy", product.id))
    shop.api.fail("sendMessage", 500, "Internal Server Error", times=2)  # the delivery and the apology
    alice.pays()
    assert shop.purchases() == [("alice", "Pro", 25, "stars")]  # delivery failed, the sale is kept
    alice.sends("/purchases")
    alice.taps("Pro")
    assert "KEY-1" in alice.last_text()


def test_a_payment_for_a_product_hidden_meanwhile_is_still_delivered(shop, alice):
    product = shop.add_product("Pro", price=25, hidden="KEY-1")
    alice.taps_data(callback("buy", product.id))
    invoice = alice.last_invoice()
    alice.pays(invoice)  # approved...
    set_product(shop, product.id, is_active=False)
    alice.repeats_payment()  # ...and the payment lands after the seller hid it
    assert "KEY-1" in alice.last_text()


def test_a_payment_for_a_deleted_product_is_refunded(shop, alice, seller):
    shop.add_product("Pro", price=25)
    alice.pays({"invoice": {"total_amount": 25, "currency": "XTR"}, "payload": "shop1:999:1001"})
    alice.payment = {"currency": "XTR", "total_amount": 25, "invoice_payload": "shop1:999:1001",
                     "telegram_payment_charge_id": "ch-gone", "provider_payment_charge_id": "p"}
    alice.repeats_payment()
    refund = shop.api.of("refundStarPayment")[-1].params
    assert (refund["user_id"], refund["telegram_payment_charge_id"]) == (1001, "ch-gone")
    assert "refunded" in alice.last_text()
    assert "refunded automatically" in visible_text(shop.api.messages(ADMIN_ID)[-1])


def test_free_products_are_delivered_once(shop, alice):
    product = shop.add_product("Guide", price=0, hidden="https://example.com/guide")
    alice.taps_data(callback("buy", product.id))
    alice.taps_data(callback("buy", product.id))
    assert shop.purchases() == [("alice", "Guide", 0, "free")]
    assert alice.all_texts().count("https://example.com/guide") == 2  # the second tap shows it again
    assert not shop.api.of("sendInvoice")


def test_a_hidden_file_is_delivered_by_file_id(shop, alice):
    product = shop.add_product("Ebook", price=0, hidden="Enjoy!", hidden_file_id="DOC-42",
                               hidden_file_type="document")
    alice.taps_data(callback("buy", product.id))
    assert shop.api.of("sendDocument")[-1].params["document"] == "DOC-42"
    assert "Enjoy!" in alice.all_texts()


def test_a_rejected_file_is_explained_and_the_purchase_kept(shop, alice, seller, caplog):
    product = shop.add_product("Ebook", price=25, hidden="", hidden_file_id="GONE", hidden_file_type="document")
    alice.taps_data(callback("buy", product.id))
    shop.api.fail("sendDocument", 400, "Bad Request: wrong file identifier/HTTP URL specified")
    alice.pays()
    assert "seller" in alice.last_text() and "will contact you" in alice.last_text()
    assert len(shop.purchases()) == 1
    assert "Could not send the file of purchase 1" in caplog.text
    assert "Telegram refused the file" in admin_texts(shop)


def test_long_hidden_content_is_split_into_messages_telegram_accepts(shop, alice):
    secret = ("line with <tags> & 🎁 emoji\n" * 400).strip()  # about 10,000 UTF-16 units
    product = shop.add_product("Big", price=0, hidden=secret)
    alice.taps_data(callback("buy", product.id))
    pieces = [screens.html_to_plain(c.params["text"]) for c in shop.api.of("sendMessage")[1:]]
    assert all(screens.utf16_len(p) <= 4096 for p in pieces) and len(pieces) == 3
    assert "\n".join(p.strip("\n") for p in pieces) == secret


def test_my_purchases_pages_and_reopens_content(shop, alice):
    for n in range(10):
        shop.add_product(f"Guide {n}", price=0, hidden=f"SECRET-{n}")
    for product_id in range(1, 11):
        alice.taps_data(callback("buy", product_id))
    alice.sends("/purchases")
    labels = alice.button_labels()
    # Each purchase with its ⭐ (a review: reviews.py) beside it, eight a page.
    assert labels[0].startswith("Guide 9 · ") and labels[1] == "⭐" and labels[16:] == ["1/2", "Next ▶️", "⬅️ Back"]
    alice.taps("Next")
    day = labels[0].split(" · ")[1]  # today: every purchase was made now
    assert alice.button_labels()[:4] == [f"Guide 1 · {day}", "⭐", f"Guide 0 · {day}", "⭐"]
    alice.taps("Guide 0")
    assert alice.last_text() == "SECRET-0"


def test_nobody_opens_someone_elses_purchase(shop, alice, bob):
    product = shop.add_product("Guide", price=0, hidden="ALICE-ONLY")
    alice.taps_data(callback("buy", product.id))
    bob.taps_data(callback("open_purchase", 1))
    assert "ALICE-ONLY" not in bob.all_texts()
    assert bob.last_toast() == "This purchase is not available."


def test_a_refunded_purchase_is_marked_and_no_longer_opens(shop, alice, seller):
    product = shop.add_product("Pro", price=25, hidden="KEY-1")
    alice.taps_data(callback("buy", product.id))
    alice.pays()
    seller.taps_data(callback("confirm_refund", 1))
    alice.sends("/purchases")
    assert alice.button_labels()[0] == "↩️ Pro (refunded)"
    before = alice.all_texts().count("KEY-1")
    alice.taps("Pro")
    assert alice.last_toast() == "This purchase was refunded."
    assert alice.all_texts().count("KEY-1") == before


def pay_at_once(pairs) -> None:
    """Several successful payments landing at the same moment, as Telegram's workers may send them."""
    start = threading.Barrier(len(pairs))

    def land(person, arguments):
        start.wait()
        person.payment_lands(*arguments)

    threads = [threading.Thread(target=land, args=pair) for pair in pairs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)


def test_two_invoices_paid_at_once_make_one_live_purchase_and_a_refund(shop, seller, alice):
    product = shop.add_product("Course", price=450, hidden="COURSE-LINK")
    alice.taps_data(callback("buy", product.id))
    alice.taps_data(callback("buy", product.id))
    payload = alice.last_invoice()["payload"]
    assert alice.pre_checkout(450, payload)["ok"] is True and alice.pre_checkout(450, payload)["ok"] is True
    pay_at_once([(alice, (450, payload, "XTR", "charge-A")), (alice, (450, payload, "XTR", "charge-B"))])
    with shop.Session() as session:
        rows = session.execute(select(Purchase.payment_id, Purchase.refunded_at.is_(None))
                               .order_by(Purchase.payment_id)).all()
    assert len(rows) == 2 and sorted(live for _, live in rows) == [False, True]  # every charge has its row
    refunded = [charge for charge, live in rows if not live]
    assert [c.params["telegram_payment_charge_id"] for c in shop.api.of("refundStarPayment")] == refunded
    assert "so this second payment has been refunded" in alice.all_texts() and "COURSE-LINK" in alice.all_texts()
    assert "paid a second time" in admin_texts(shop)


def test_a_second_card_payment_for_something_owned_is_left_to_the_seller_to_refund(card_shop):
    product = card_shop.add_product("Course", price=999)
    alice, seller = Person(card_shop, 1001, "Alice", "alice"), Person(card_shop, ADMIN_ID, "Seller")
    seller.sends("/start")
    alice.taps_data(callback("buy", product.id))
    payload = alice.last_invoice()["payload"]
    alice.payment_lands(999, payload, "USD", "card-1")
    alice.payment_lands(999, payload, "USD", "card-2")
    assert not card_shop.api.of("refundStarPayment")
    assert "The seller has been told and will refund this second payment" in alice.last_text()
    assert "provider charge provider-card-2" in admin_texts(card_shop)
    assert len(card_shop.purchases()) == 2


@pytest.mark.parametrize("stocked", [False, True], ids=["unlimited", "stocked"])
def test_thirty_taps_on_get_for_free_at_once_give_one_purchase(shop, alice, stocked):
    product = shop.add_product("Promo", price=0, hidden="FREE-GUIDE")
    if stocked:
        add_stock(shop, product, *[f"CODE-{n}" for n in range(10)])
    start = threading.Barrier(30)

    def tap():
        start.wait()
        alice.taps_data(callback("buy", product.id))

    threads = [threading.Thread(target=tap) for _ in range(30)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert shop.purchases() == [("alice", "Promo", 0, "free")]
    if stocked:
        assert sum(f"CODE-{n}" in alice.all_texts() for n in range(10)) == 1


def test_a_pre_checkout_repeated_after_a_restart_is_answered_once_without_an_error(shop, alice, caplog):
    caplog.set_level(logging.INFO, logger="shopbot")
    product = shop.add_product("Pro", price=25)
    alice.taps_data(callback("buy", product.id))
    assert alice.pre_checkout(25, alice.last_invoice()["payload"])["ok"] is True
    shop.api.fail("answerPreCheckoutQuery", 400, "Bad Request: QUERY_ID_INVALID")  # Telegram: answered already
    alice.pre_checkout(25, alice.last_invoice()["payload"])
    assert "Error handling" not in caplog.text and "could not be answered: Bad Request: QUERY_ID_INVALID" in caplog.text


@pytest.mark.parametrize("amount, currency, paid", [(1, "XTR", "1 ⭐"), (25, "USD", "$0.25")],
                         ids=["amount", "currency"])
def test_a_payment_the_shop_did_not_ask_for_is_recorded_and_the_admins_told(shop, alice, bob, seller, amount,
                                                                            currency, paid):
    product = shop.add_product("Pro license", price=25, hidden="KEY-123")
    buys(bob, product)  # the price asked: no alert
    alice.sends(f"/start p_{product.id}")
    alice.taps("Buy")
    alice.payment_lands(amount, alice.last_invoice()["payload"], currency, "charge-odd")
    assert ("alice", "Pro license", amount, "stars") in shop.purchases()
    with shop.Session() as session:
        assert session.scalar(select(Purchase.currency).where(Purchase.payment_id == "charge-odd")) == currency
    assert admin_texts(shop).count("but the shop asked") == 1
    assert f"(id {alice.id}) was paid {paid}, but the shop asked 25 ⭐" in admin_texts(shop)


def wait_for_background(shop) -> None:
    for thread in list(shop.bot.shop.background):
        thread.join(timeout=10)


def test_a_disk_that_fills_refuses_checkout_politely_tells_the_admins_once_and_goes_on_when_freed(
        shop, alice, seller, monkeypatch):
    monkeypatch.setattr(checkout, "DISK_TRUSTED", 0)  # every pre-checkout looks at the disk
    free = {"bytes": 5 * 1024 ** 2}  # 5 MB left: a payment might not be recorded
    shop.bot.shop.free_bytes = lambda folder: free["bytes"]
    on_sqlite = shop.Session.kw["bind"].dialect.name == "sqlite"
    product = shop.add_product("Pro", price=25, hidden="KEY-1")
    alice.taps_data(callback("buy", product.id))

    answers = [alice.pays() for _ in range(3)]
    wait_for_background(shop)
    if not on_sqlite:  # a database server keeps its own disk: the shop's is not its business
        assert answers[0]["ok"] is True and "disk" not in admin_texts(shop)
        return
    assert all(answer["ok"] is False for answer in answers) and shop.purchases() == []  # nobody charged
    assert "try again in a minute: nothing was charged" in answers[0]["error_message"]
    assert admin_texts(shop).count("disk is nearly full") == 1 and "5 MB free" in admin_texts(shop)

    free["bytes"] = 5_000 * 1024 ** 2  # space returns: the shop goes on by itself
    assert alice.pays()["ok"] is True and "KEY-1" in alice.last_text()
    alice.taps_data(callback("buy", shop.add_product("Pro 2", price=30).id))
    assert alice.pays()["ok"] is True
    wait_for_background(shop)
    assert admin_texts(shop).count("disk has room again") == 1 and admin_texts(shop).count("nearly full") == 1


def test_invoice_sent_is_said_only_once_telegram_took_the_invoice(shop, alice):
    product = shop.add_product("Pro", price=25)
    shop.api.fail("sendInvoice", 400, "Bad Request: CURRENCY_TOTAL_AMOUNT_INVALID")
    alice.taps_data(callback("buy", product.id))
    assert len(alice.callback_answers()) == 1 and not alice.last_toast()  # answered, and no promise
    assert "Sorry, something went wrong" in alice.last_text() and "Invoice sent" not in alice.all_texts()

    alice.taps_data(callback("buy", product.id))  # Telegram takes it this time
    assert alice.last_toast() == "Invoice sent below 👇"
    assert [call.method for call in shop.api.calls][-2:] == ["sendInvoice", "answerCallbackQuery"]  # in this order
