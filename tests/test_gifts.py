"""Gifts (gifts.py): bought for someone else, claimed once with a link, refunded like any purchase."""
from __future__ import annotations

import json
import logging
import re
import threading
import time

import pytest
from sqlalchemy import func, select, update

import checkout
import gifts
import ledger
import purchases
from conftest import Person, add_stock, admin_texts, echoes_refunds_at_once, set_product, stock_of
from models import Gift, Purchase, StockItem, User
from shopkit import callback


def buys_gift(person: Person, product, charge_id: str = "charge-gift") -> str:
    """🎁 Buy as a gift on the card, pay, and return the link the buyer got to forward."""
    person.sends(f"/start p_{product.id}")
    person.taps("Buy as a gift")
    assert person.pays(charge_id=charge_id)["ok"] is True
    return gift_link(person)


def gift_link(person: Person) -> str:
    return re.findall(r"https://t\.me/test_shop_bot\?start=gift_\S+", person.all_texts())[-1]


def opens(person: Person, link: str) -> None:
    person.sends("/start " + link.split("?start=")[1])


def test_a_gift_is_bought_claimed_once_and_refused_after(shop, seller, alice, bob, caplog):
    caplog.set_level(logging.DEBUG, logger="shopbot")
    product = shop.add_product("Course", price=100, hidden="COURSE-LINK")
    link = buys_gift(alice, product)
    invoice = shop.api.of("sendInvoice")[-1].params
    assert invoice["payload"] == f"shop2:{product.id}:{alice.id}:0:1" and invoice["title"] == "🎁 Course"
    assert "Your gift, Course, is ready to give" in alice.all_texts() and "Forward this message" in alice.last_text()
    assert "COURSE-LINK" not in alice.all_texts()  # the buyer never sees the content
    token = link.split("start=gift_")[1]
    assert len(token) >= 22 and token not in caplog.text  # 128 random bits, never logged

    opens(alice, link)
    assert "This is the gift you bought" in alice.last_text() and "COURSE-LINK" not in alice.all_texts()
    alice.sends("/purchases")
    assert alice.button_labels()[0] == "🎁 Gift, not claimed yet: Course"
    alice.taps("Gift, not claimed yet")
    assert gift_link(alice) == link and "COURSE-LINK" not in alice.all_texts()

    opens(bob, link)
    assert "Alice has given you Course" in bob.all_texts() and "COURSE-LINK" in bob.last_text()
    assert "Bob has received your gift, Course" in alice.last_text()
    bob.sends("/purchases")
    bob.taps("Course")
    assert bob.last_text() == "COURSE-LINK"
    carol = Person(shop, 1003, "Carol")
    opens(carol, link)
    assert "already been claimed" in carol.last_text() and "COURSE-LINK" not in carol.all_texts()
    opens(bob, link)
    assert "already been claimed" in bob.last_text()
    alice.sends("/purchases")
    assert alice.button_labels()[0] == "🎁 Gift claimed: Course"
    assert shop.purchases() == [("alice", "Course", 100, "stars"), ("bob", "Course", 0, "gift")]
    assert token not in caplog.text


def test_a_stocked_gift_reserves_its_key_at_payment_and_delivers_it_to_whoever_claims_it(shop, alice, bob):
    product = shop.add_product("Key", price=10, hidden="Activate in Settings.")
    add_stock(shop, product, "KEY-A", "KEY-B")
    link = buys_gift(alice, product)
    assert "KEY-A" not in alice.all_texts()
    carol = Person(shop, 1003, "Carol")
    carol.taps_data(callback("buy", product.id))
    carol.pays()
    assert "KEY-B" in carol.all_texts()  # the gift's key was set aside at payment
    dave = Person(shop, 1004, "Dave")
    dave.sends(f"/start p_{product.id}")
    assert "Sold out" in dave.last_text()
    opens(bob, link)
    assert "KEY-A" in bob.all_texts() and "Activate in Settings." in bob.all_texts()
    with shop.Session() as session:
        owner = session.scalar(select(Purchase.user_id).join(StockItem, StockItem.purchase_id == Purchase.id)
                               .where(StockItem.content == "KEY-A"))
        assert owner == session.scalar(select(Purchase.user_id).where(Purchase.payment_type == "gift"))
    assert stock_of(shop, product) == ["KEY-A", "KEY-B"]


def test_a_gift_does_not_make_its_buyer_an_owner(shop, alice):
    product = shop.add_product("Course", price=100, hidden="COURSE-LINK")
    buys_gift(alice, product)
    alice.sends(f"/start p_{product.id}")
    assert alice.button_labels()[0] == "Buy for 100 ⭐"
    alice.taps("Buy for")
    assert alice.pays()["ok"] is True and "COURSE-LINK" in alice.all_texts()
    buys_gift(alice, product, charge_id="charge-gift-2")  # and an owner may still give it
    assert len(shop.purchases()) == 3


def test_a_gift_with_a_promo_code(shop, alice, bob):
    product = shop.add_product("Course", price=100, hidden="COURSE-LINK")
    code = shop.add_promo("GIFT20")
    alice.sends("/start promo_GIFT20")
    link = buys_gift(alice, product)
    invoice = shop.api.of("sendInvoice")[-1].params
    assert json.loads(invoice["prices"])[0]["amount"] == 80
    assert invoice["payload"] == f"shop2:{product.id}:{alice.id}:{code.id}:1"
    opens(bob, link)
    assert "COURSE-LINK" in bob.all_texts()
    with shop.Session() as session:
        assert session.execute(select(Purchase.price, Purchase.list_price, Purchase.promo_code_id)
                               .where(Purchase.id == 1)).one() == (80, 100, code.id)


def test_a_gift_free_with_a_promo_code_is_ready_at_once(shop, alice, bob):
    product = shop.add_product("Course", price=100, hidden="COURSE-LINK")
    shop.add_promo("ALLFREE", percent=100)
    alice.sends("/start promo_ALLFREE")
    alice.sends(f"/start p_{product.id}")
    alice.taps("Buy as a gift")
    assert not shop.api.of("sendInvoice") and "COURSE-LINK" not in alice.all_texts()
    opens(bob, gift_link(alice))
    assert "COURSE-LINK" in bob.all_texts()


def test_a_card_gift_that_lost_the_last_key_is_refunded_and_never_claimed(card_shop):
    """Two gifts paid by card for the last key: the second waits for the seller's refund, and meanwhile its
    link hands over nothing (not the shared content, and never a gift without its key)."""
    product = card_shop.add_product("Key", price=500, hidden="Activate in Settings.")
    add_stock(card_shop, product, "KEY-A")
    alice, carol, bob = (Person(card_shop, 1001, "Alice"), Person(card_shop, 1003, "Carol"),
                         Person(card_shop, 1002, "Bob"))
    for buyer in (alice, carol):
        buyer.taps_data(callback("buy_gift", product.id))
        assert buyer.pre_checkout(500, buyer.last_invoice()["payload"], "USD")["ok"] is True
    for buyer in (alice, carol):
        buyer.payment_lands(500, buyer.last_invoice()["payload"], "USD", f"ch-{buyer.id}")
    assert "The seller has been told and will refund you" in carol.last_text()
    carol.sends("/purchases")
    assert carol.button_labels()[0] == "↩️ Key (being refunded)"
    carol.taps("being refunded")
    assert "being refunded" in carol.last_toast() and "gift_" not in carol.all_texts()
    with card_shop.Session() as session:
        token = session.scalar(select(Gift.token).join(Gift.purchase).where(Purchase.payment_id == "ch-1003"))
    opens(bob, f"https://t.me/test_shop_bot?start=gift_{token}")
    assert "could not be honoured" in bob.last_text() and "Activate in Settings." not in bob.all_texts()
    opens(bob, gift_link(alice))
    assert "KEY-A" in bob.all_texts()


def test_a_stocked_gift_whose_key_is_missing_is_never_handed_over(shop, alice, bob):
    """A gift recorded before refund_due existed, whose payment found no key: its link gives nothing."""
    product = shop.add_product("Key", price=10, hidden="Activate in Settings.")
    add_stock(shop, product, "KEY-A")
    link = buys_gift(alice, product)
    with shop.Session() as session:
        session.execute(update(StockItem).values(purchase_id=None))
        session.commit()
    opens(bob, link)
    assert "could not be honoured" in bob.last_text() and "Activate in Settings." not in bob.all_texts()


def test_a_recipient_who_owns_the_product_leaves_the_gift_for_someone_else(shop, alice, bob):
    product = shop.add_product("Course", price=100, hidden="COURSE-LINK")
    bob.taps_data(callback("buy", product.id))
    bob.pays()
    link = buys_gift(alice, product)
    opens(bob, link)
    assert "You already own Course, so this gift stays unclaimed" in bob.last_text()
    carol = Person(shop, 1003, "Carol")
    opens(carol, link)
    assert "COURSE-LINK" in carol.all_texts()


def test_the_seller_refunds_an_unclaimed_gift_and_its_link_closes(shop, seller, alice, bob):
    product = shop.add_product("Course", price=100, hidden="COURSE-LINK")
    link = buys_gift(alice, product)
    seller.taps_data(callback("admin_purchase", 1))
    assert "A gift, not claimed yet" in seller.last_text()
    seller.taps("Refund")
    seller.taps("Yes, refund")
    assert shop.api.of("refundStarPayment")[-1].params["telegram_payment_charge_id"] == "charge-gift"
    opens(bob, link)
    assert "This gift was refunded" in bob.last_text() and "COURSE-LINK" not in bob.all_texts()


def test_refunding_a_claimed_gift_takes_it_back_from_whoever_claimed_it(shop, seller, alice, bob):
    product = shop.add_product("Course", price=100, hidden="COURSE-LINK")
    opens(bob, buys_gift(alice, product))
    seller.taps_data(callback("admin_purchase", 1))
    assert "A gift, claimed by Bob (purchase #2)" in seller.last_text()
    seller.taps_data(callback("confirm_refund", 1))
    assert "The payment for Course, the gift Alice gave you, has been refunded" in bob.last_text()
    bob.sends("/purchases")
    assert bob.button_labels()[0] == "↩️ Course (refunded)"
    seller.taps_data(callback("admin_purchase", 2))
    assert "Received as a gift (bought in purchase #1)" in seller.last_text()


def test_the_sellers_refund_of_a_claimed_gift_tells_the_giver_and_the_recipient_once(shop, seller, alice, bob,
                                                                                     monkeypatch):
    opens(bob, buys_gift(alice, shop.add_product("Course", price=100, hidden="COURSE-LINK")))
    echoes_refunds_at_once(monkeypatch, shop, alice)
    seller.taps_data(callback("confirm_refund", 1))
    assert alice.all_texts().count("The shop has refunded your payment for Course") == 1
    assert "Telegram" not in alice.all_texts() and "Telegram refunded" not in admin_texts(shop)
    assert bob.all_texts().count("the gift Alice gave you, has been refunded") == 1


@pytest.mark.parametrize("claimed", [False, True], ids=["unclaimed", "claimed"])
def test_refunding_a_stocked_gift_puts_its_key_back_on_sale_only_if_nobody_saw_it(shop, seller, alice, bob, claimed):
    product = shop.add_product("Key", price=10)
    add_stock(shop, product, "KEY-A")
    link = buys_gift(alice, product)
    if claimed:
        opens(bob, link)
    seller.taps_data(callback("confirm_refund", 1))
    carol = Person(shop, 1003, "Carol")
    carol.sends(f"/start p_{product.id}")
    assert ("Sold out" in carol.last_text()) is claimed
    if not claimed:
        carol.taps("Buy for")
        assert carol.pays()["ok"] is True and "KEY-A" in carol.all_texts()


def test_a_key_back_from_a_refunded_gift_tells_whoever_waits_for_it(shop, seller, alice, bob):
    product = shop.add_product("Key", price=10)
    add_stock(shop, product, "KEY-A")
    buys_gift(alice, product)  # the last key, reserved for the gift
    bob.sends(f"/start p_{product.id}")
    bob.taps("🔔")
    seller.taps_data(callback("confirm_refund", 1))
    shop.finish_background()
    assert bob.last_text() == "🔔 Key is back in stock!"


def test_two_keys_back_at_once_tell_each_waiting_customer_once(shop, seller, alice, bob):
    product = shop.add_product("Key", price=10)
    add_stock(shop, product, "KEY-A", "KEY-B")
    buys_gift(alice, product, charge_id="gift-1")
    buys_gift(alice, product, charge_id="gift-2")  # sold out
    carol = Person(shop, 1003, "Carol")
    for person in (bob, carol):
        person.sends(f"/start p_{product.id}")
        person.taps("🔔")
    shop.bot.shop.sleep = lambda seconds: time.sleep(0.3)  # the pause between messages, so the notices overlap
    seller.taps_data(callback("confirm_refund", 1))
    seller.taps_data(callback("confirm_refund", 2))
    shop.finish_background()
    for person in (bob, carol):
        assert person.all_texts().count("Key is back in stock") == 1


def test_a_key_back_for_a_hidden_product_is_told_when_the_seller_shows_it(shop, seller, alice, bob):
    product = shop.add_product("Key", price=10)
    add_stock(shop, product, "KEY-A")
    buys_gift(alice, product)
    bob.sends(f"/start p_{product.id}")
    bob.taps("🔔")
    set_product(shop, product.id, is_active=False)  # the seller stopped selling it
    seller.taps_data(callback("confirm_refund", 1))
    shop.finish_background()
    assert "back in stock" not in bob.all_texts()
    seller.taps_data(callback("toggle_product", product.id))  # 👁 Show
    shop.finish_background()
    assert bob.last_text() == "🔔 Key is back in stock!"


def test_telegram_refunding_a_claimed_gift_takes_it_back_too(shop, alice, bob):
    product = shop.add_product("Course", price=100)
    opens(bob, buys_gift(alice, product, charge_id="ch-gift"))
    alice.feed("message", alice.message(refunded_payment={
        "currency": "XTR", "total_amount": 100, "invoice_payload": "x", "telegram_payment_charge_id": "ch-gift"}))
    with shop.Session() as session:
        assert session.scalars(select(Purchase.refunded_at.is_not(None)).order_by(Purchase.id)).all() == [True, True]
    assert "The payment for Course, the gift Alice gave you, has been refunded" in bob.last_text()


def test_a_gift_revoked_from_its_recipient_alone_shows_so_to_its_buyer(shop, seller, alice, bob):
    product = shop.add_product("Course", price=100)
    opens(bob, buys_gift(alice, product))
    with shop.Session() as session:  # as an older version let the seller do: Bob's copy alone, Alice's payment stays
        purchases.close_refund(session, session.get(Purchase, 2), purchases.SHOP)
        session.commit()
    alice.sends("/purchases")
    assert alice.button_labels()[0] == "🎁 Gift taken back: Course"
    told = len(shop.api.messages(bob.id))
    seller.taps_data(callback("confirm_refund", 1))  # and then Alice's money: Bob lost it already
    assert len(shop.api.messages(bob.id)) == told


def test_refunding_a_received_gift_refunds_its_giver(shop, seller, alice, bob, monkeypatch):
    opens(bob, buys_gift(alice, shop.add_product("Course", price=450), charge_id="ch-gift"))
    seller.taps_data(callback("admin_purchase", 2))  # Bob's copy: he paid nothing, Alice paid 450 ⭐
    assert "Received as a gift (bought in purchase #1): Alice (@alice) paid 450 ⭐" in seller.last_text()
    seller.taps("Refund Alice's payment")
    question = seller.last_text()
    assert "It was free" not in question and "Refund purchase #1 (Course, 450 ⭐) to Alice (@alice)" in question
    echoes_refunds_at_once(monkeypatch, shop, alice)  # Telegram's echo lands before its answer
    seller.taps("Yes, refund")
    assert shop.api.of("refundStarPayment")[-1].params["telegram_payment_charge_id"] == "ch-gift"
    assert alice.all_texts().count("The shop has refunded your payment for Course") == 1
    assert bob.all_texts().count("the gift Alice gave you, has been refunded") == 1
    assert "Telegram refunded" not in admin_texts(shop)
    with shop.Session() as session:
        assert session.scalars(select(Purchase.refunded_by).order_by(Purchase.id)).all() == ["shop", "shop"]


def test_a_gift_bought_with_a_whole_price_code_is_taken_back_not_refunded(shop, seller, alice, bob):
    product = shop.add_product("Course", price=450)
    alice.sends("/start")
    with shop.Session() as session:  # as if a 100 % promo code paid for it
        gift = checkout.give_product(session, user_of(session, alice), product, "free", "XTR", gift=True)
        token = gift.gift.token
    opens(bob, f"https://t.me/test_shop_bot?start=gift_{token}")
    seller.taps_data(callback("admin_purchase", 2))
    assert "Refund" not in str(seller.button_labels())
    seller.taps("Take back")
    assert "no money to return" in seller.last_text() and "from Bob" in seller.last_text()
    seller.taps("Yes, take back")
    with shop.Session() as session:  # the giver's free purchase closed, and with it Bob's copy
        assert session.scalars(select(Purchase.refunded_at.is_not(None)).order_by(Purchase.id)).all() == [True, True]


def test_two_people_opening_the_link_at_once_get_one_gift(shop, alice):
    product = shop.add_product("Course", price=100, hidden="COURSE-LINK")
    link = buys_gift(alice, product)
    people = [Person(shop, 5000 + n, f"Friend {n}") for n in range(8)]
    start = threading.Barrier(len(people))

    def open_link(person):
        start.wait()
        opens(person, link)

    threads = [threading.Thread(target=open_link, args=(person,)) for person in people]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sum("COURSE-LINK" in person.all_texts() for person in people) == 1
    assert sum("already been claimed" in person.all_texts() for person in people) == 7


def user_of(session, person: Person) -> User:
    return session.scalar(select(User).where(User.telegram_id == person.id))


def test_a_gift_refunded_while_its_link_is_opened_is_not_handed_over(shop, alice, bob):
    buys_gift(alice, shop.add_product("Course", price=100))
    bob.sends("/start")
    with shop.Session() as opening, shop.Session() as refunding:
        gift, recipient = opening.scalar(select(Gift)), user_of(opening, bob)
        assert gifts.why_not_claim(opening, gift, recipient) is None  # the link looked fine...
        purchases.close_refund(refunding, refunding.get(Purchase, gift.purchase_id), purchases.SHOP)
        refunding.commit()  # ...and then the seller's refund landed
        assert gifts.claim(opening, gift, recipient) is None
    with shop.Session() as session:
        assert session.scalar(select(func.count(Purchase.id))) == 1 and session.scalar(select(Gift)).claimed_at is None


def test_a_gift_claimed_while_its_refund_is_made_is_taken_back_too(shop, alice, bob):
    buys_gift(alice, shop.add_product("Course", price=100))
    bob.sends("/start")
    with shop.Session() as refunding, shop.Session() as claiming:
        bought = refunding.get(Purchase, 1)
        assert bought.gift.claimed_purchase is None  # what the refund saw...
        assert gifts.claim(claiming, claiming.scalar(select(Gift)), user_of(claiming, bob)) is not None  # ...then
        purchases.close_refund(refunding, bought, purchases.SHOP)
        refunding.commit()
    with shop.Session() as session:
        assert session.scalars(select(Purchase.refunded_at.is_not(None)).order_by(Purchase.id)).all() == [True, True]


def test_a_gift_paid_but_heard_of_only_in_telegrams_ledger_still_sends_its_link(shop, alice, bob):
    product = shop.add_product("Course", price=100, hidden="COURSE-LINK")
    shop.api.ledger_payment(alice, 100, checkout.invoice_payload(product.id, alice.id, gift=True), "ch-lost")
    ledger.check_ledger(shop.bot.shop)
    assert "COURSE-LINK" not in alice.all_texts()
    opens(bob, gift_link(alice))
    assert "COURSE-LINK" in bob.all_texts()


def test_a_gift_recorded_but_not_delivered_sends_its_link_at_the_next_start(shop, alice):
    product = shop.add_product("Course", price=100, hidden="COURSE-LINK")
    alice.sends(f"/start p_{product.id}")
    alice.taps("Buy as a gift")
    shop.api.fail("sendMessage", 500, "Internal Server Error", times=2)  # the delivery, and the apology
    alice.pays()
    assert ledger.deliver_what_was_not(shop.bot.shop) == 1
    assert "gift_" in alice.all_texts() and "COURSE-LINK" not in alice.all_texts()


def test_what_is_not_bought_once_is_no_gift_and_takes_no_promo_code(shop, alice):
    product = shop.add_product("Course", price=100)
    set_product(shop, product.id, kind="subscription")  # billed every month (subscriptions.py)
    shop.add_promo("SPRING")
    alice.sends("/start promo_SPRING")
    alice.sends(f"/start p_{product.id}")
    assert alice.button_labels() == ["📅 Subscribe — 100 ⭐ a month", "⬅️ Back"]  # at the full price
    alice.taps_data(callback("buy_gift", product.id))
    assert alice.last_toast() == "This item is no longer available."
    for payload in (checkout.invoice_payload(product.id, alice.id, gift=True),
                    checkout.invoice_payload(product.id, alice.id, promo_id=1)):
        assert alice.pre_checkout(100, payload)["ok"] is False


def test_bad_gift_links_are_answered(shop, alice, seller):
    product = shop.add_product("Course", price=100)
    buys_gift(alice, product)
    for argument in ("gift_", "gift_nope", "gift_" + "x" * 60, "gift_'; DROP TABLE gifts;--"):
        seller.sends(f"/start {argument}")
        assert "This gift link is not valid" in seller.last_text()
    with shop.Session() as session:
        assert session.scalar(select(Gift.claimed_purchase_id)) is None
    assert "Error handling" not in admin_texts(shop)


def test_gifts_in_russian(shop):
    ivan, olga = Person(shop, 2001, "Иван", language_code="ru"), Person(shop, 2002, "Ольга", language_code="ru")
    product = shop.add_product("Курс", price=100, hidden="ССЫЛКА")
    ivan.sends(f"/start p_{product.id}")
    ivan.taps("Купить в подарок")
    ivan.pays()
    assert "Подарок для вас: «Курс»" in ivan.last_text()
    ivan.sends("/purchases")
    assert ivan.button_labels()[0] == "🎁 Подарок, ещё не получен: Курс"
    link = re.findall(r"https://t\.me/test_shop_bot\?start=gift_\S+", ivan.all_texts())[-1]
    opens(olga, link)
    assert "Иван дарит вам «Курс»" in olga.all_texts() and "ССЫЛКА" in olga.all_texts()
    assert "Ольга получил(а) ваш подарок «Курс»" in ivan.last_text()
