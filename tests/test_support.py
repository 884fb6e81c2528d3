"""Support (support.py): /paysupport opens a ticket, a conversation with the seller until it is resolved."""
from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

import shopbot
import support
from conftest import (
    ADMIN_ID,
    Person,
    ShopUnderTest,
    admin_texts,
    make_config,
    visible_text,
)
from models import Purchase, SupportTicket
from shopkit import callback, utcnow

HERE = Path(__file__).resolve().parent.parent  # the project's root
SECOND_ADMIN = 2


def copies_to(shop, chat_id: int) -> list[dict]:
    """The copyMessage calls into one chat."""
    return [call.params for call in shop.api.of("copyMessage") if int(call.params["chat_id"]) == chat_id]


def replies_to(admin: Person, message: dict, text: str) -> None:
    """The admin replies (Telegram's Reply) to a message in their chat."""
    admin.sends_content(text=text, reply_to_message=message)


def last_ticket_message(shop, admin_id: int = ADMIN_ID) -> dict:
    """The latest message of a ticket in an admin's chat (the copy of the customer's message)."""
    return [m for m in shop.api.messages(admin_id) if "copy_of" in m][-1]


def tickets(shop) -> list[tuple]:
    with shop.Session() as session:
        return [(t.id, t.customer_id, t.closed_at is not None, t.closed_by)
                for t in session.scalars(select(SupportTicket).order_by(SupportTicket.id))]


def falls_silent(shop, hours: float = 25) -> None:
    """Nothing said in the tickets for ``hours``."""
    with shop.Session() as session:
        for ticket in session.scalars(select(SupportTicket)):
            ticket.last_message_at -= timedelta(hours=hours)
        session.commit()


@pytest.fixture
def two_admins(database_url, api):
    """A shop with two admins, both of whom have opened the bot."""
    config = dataclasses.replace(make_config(database_url), admin_ids=frozenset({ADMIN_ID, SECOND_ADMIN}))
    bot = shopbot.create_bot(config, threaded=False)
    bot.shop.sleep = lambda seconds: None
    shop = ShopUnderTest(bot, api)
    shop.has_read_the_ledger()
    seller, helper = Person(shop, ADMIN_ID, "Seller", "seller"), Person(shop, SECOND_ADMIN, "Helper", "helper")
    seller.sends("/start")
    helper.sends("/start")
    yield shop, seller, helper
    shop.close()


# ---------------------------------------------------------------------------
# Opening a ticket, and the customer's messages
# ---------------------------------------------------------------------------

def test_paysupport_opens_a_ticket_and_its_first_message_comes_with_the_latest_purchases(shop, alice, seller):
    product = shop.add_product("Pro", price=25)
    alice.taps_data(callback("buy", product.id))
    alice.pays()
    before = admin_texts(shop)
    alice.sends("/paysupport")
    assert "ticket #1" in alice.last_text() and "Describe the problem here" in alice.last_text()
    assert tickets(shop) == [(1, alice.id, False, None)] and admin_texts(shop) == before
    alice.sends("The key does not work")
    note = admin_texts(shop)
    assert "Ticket #1: Alice (@alice) (id 1001) writes to /paysupport." in note and "#1 Pro — 25 ⭐" in note
    assert "Sent to the seller (ticket #1)" in alice.last_text()


def test_the_customers_text_photo_and_document_reach_the_admins_under_the_ticket(shop, alice, seller):
    alice.sends("/paysupport")
    alice.sends("The key does not work")
    alice.sends_photo("SCREENSHOT", caption="Here is the error")
    alice.sends_document("LOG-1", "log.txt")
    copies = copies_to(shop, ADMIN_ID)
    assert len(copies) == 3 and all(int(c["from_chat_id"]) == alice.id for c in copies)
    headers = [visible_text(m) for m in shop.api.messages(ADMIN_ID) if "Ticket #1 · " in visible_text(m)]
    assert headers == ["🆘 Ticket #1 · Alice (@alice) (id 1001):"] * 2  # the first came with the purchases
    assert "Nothing found" not in alice.all_texts()
    assert alice.all_texts().count("Sent to the seller") == 1  # said once, not after every message


def test_an_admins_reply_reaches_the_customer_and_the_other_admins_see_who_answered(two_admins):
    shop, seller, helper = two_admins
    alice = Person(shop, 1001, "Alice", "alice")
    alice.sends("/paysupport")
    alice.sends("I paid but got nothing")
    replies_to(seller, last_ticket_message(shop), "Sorry! Here is a new key: NEW-KEY")
    assert "The seller answers (ticket #1):" in alice.all_texts()
    answer = copies_to(shop, alice.id)[-1]
    assert int(answer["from_chat_id"]) == ADMIN_ID
    assert "Your answer was delivered (ticket #1)" in seller.last_text()
    assert "Ticket #1 · answered by Seller (@seller):" in helper.all_texts()
    assert int(copies_to(shop, SECOND_ADMIN)[-1]["from_chat_id"]) == ADMIN_ID  # the helper reads the answer
    assert "answered by" not in seller.all_texts()  # not echoed to the one who wrote it

    alice.sends("It works now, thanks!")  # the customer's answer goes to the seller, not to a search
    assert "Nothing found" not in alice.all_texts() and len(copies_to(shop, SECOND_ADMIN)) == 3
    replies_to(helper, last_ticket_message(shop, SECOND_ADMIN), "Glad to hear it")
    assert "answered by Helper (@helper)" in seller.all_texts()


def test_reply_button_opens_a_dialog_whose_answer_reaches_the_customer(shop, alice, seller):
    alice.sends("/paysupport")
    alice.sends("Hello?")
    seller.taps("Reply")
    assert "answer to ticket #1" in seller.last_text()
    seller.sends_photo("NEW-KEY-PHOTO", caption="Here")
    assert "Your answer was delivered" in seller.last_text()
    assert int(copies_to(shop, alice.id)[-1]["from_chat_id"]) == ADMIN_ID
    seller.sends("hello")  # the dialog is over: the admin's next plain message is a search again
    assert len(copies_to(shop, alice.id)) == 1


def test_a_conversation_of_three_messages_each_way_then_resolved(shop, alice, seller):
    alice.sends("/paysupport")
    for n in range(3):
        if n == 1:
            alice.sends_photo(f"SHOT-{n}")
        else:
            alice.sends(f"question {n}")
        replies_to(seller, last_ticket_message(shop), f"answer {n}")
    assert len(copies_to(shop, ADMIN_ID)) == 3 and len(copies_to(shop, alice.id)) == 3
    seller.taps("Resolved")
    assert "Ticket #1 resolved" in seller.last_toast()
    assert "marked your ticket #1 as resolved" in alice.last_text()
    assert "Seller (@seller) marked ticket #1 (Alice (@alice)) as resolved" in admin_texts(shop)
    alice.sends("netflix")  # the ticket is over: typing is a search again
    assert "Nothing found for «netflix»" in alice.last_text() and len(copies_to(shop, ADMIN_ID)) == 3
    seller.taps("Resolved")
    assert "already closed" in seller.last_toast()


def test_a_reply_button_from_before_tickets_is_answered_and_leaves_the_question_alone(shop, alice, seller):
    alice.sends("/start")
    question = seller.last()
    seller.taps_data(callback("reply", alice.id), message=question)  # ↩️ Reply under a question before the upgrade
    assert "There is no such ticket" in seller.last_toast() and seller.last() == question


def test_the_customer_can_close_the_ticket(shop, alice, seller):
    alice.sends("/paysupport")
    alice.taps("Close the ticket")
    alice.sends("hello")
    assert "Nothing found" in alice.last_text() and not shop.api.of("copyMessage")
    assert tickets(shop) == [(1, alice.id, True, alice.id)]


def test_the_admins_hear_when_the_customer_closes_a_ticket_they_know(shop, alice, seller):
    alice.sends("/paysupport")
    alice.sends("Never mind, found it")
    alice.taps("Close the ticket")
    assert "Ticket #1 is closed" in alice.last_text()
    assert "✖️ Alice (@alice) closed ticket #1." in admin_texts(shop)


def test_an_answer_to_an_old_ticket_waits_for_the_newer_one(shop, alice, seller):
    alice.sends("/paysupport")
    alice.sends("First problem")
    old = last_ticket_message(shop)
    seller.taps("Resolved")
    alice.sends("/paysupport")
    alice.sends("Second problem")
    replies_to(seller, old, "About the first one")
    assert "newer ticket, #2" in seller.last_text() and not copies_to(shop, alice.id)
    replies_to(seller, last_ticket_message(shop), "About the second one")
    assert len(copies_to(shop, alice.id)) == 1


def test_a_ticket_survives_a_restart(shop, alice, seller, config):
    alice.sends("/paysupport")
    alice.sends("I paid but got nothing")
    question = last_ticket_message(shop)
    restarted = shopbot.create_bot(config, threaded=False)  # the same database, a new process
    try:
        alice.shop = seller.shop = ShopUnderTest(restarted, shop.api)
        alice.sends("Still nothing")
        replies_to(seller, question, "On it")
        assert len(copies_to(shop, ADMIN_ID)) == 2 and len(copies_to(shop, alice.id)) == 1
    finally:
        alice.shop.close()


def test_buttons_and_commands_still_work_inside_a_ticket(shop, alice, seller):
    product = shop.add_product("Pro", price=25)
    alice.sends("/paysupport")
    alice.sends("first")
    alice.sends("/start")
    assert "Welcome" in alice.last_text() or "Catalog" in alice.button_labels()
    alice.taps_data(callback("catalog"))
    alice.sends("/help")
    assert len(copies_to(shop, ADMIN_ID)) == 1  # no command went to the seller
    alice.sends(f"/start p_{product.id}")
    alice.taps("Promo code")  # a question the bot asked comes first: the code is its answer
    alice.sends("NOPE")
    assert len(copies_to(shop, ADMIN_ID)) == 1 and "Pro" in alice.last_text()
    alice.sends("second")  # and then the ticket again
    assert len(copies_to(shop, ADMIN_ID)) == 2
    alice.sends("/paysupport")
    assert "ticket #1 is open" in alice.last_text() and len(tickets(shop)) == 1


def test_a_day_without_a_message_closes_the_ticket_and_tells_both_sides(shop, alice, bob, seller):
    alice.sends("/paysupport")
    alice.sends("Hello?")
    bob.sends("/paysupport")  # Bob never wrote: the admins never heard of his ticket
    falls_silent(shop, hours=23)
    assert support.close_silent_tickets(shop.bot.shop) == 0
    falls_silent(shop, hours=2)
    alice.sends("netflix")  # already over, even before the check has run
    assert "Nothing found for «netflix»" in alice.last_text()
    assert support.close_silent_tickets(shop.bot.shop) == 2
    assert "ticket #1 was closed after 24 hours without messages" in alice.last_text()
    assert "ticket #2 was closed after 24 hours" in bob.last_text()
    assert "Ticket #1 (Alice (@alice)) was closed after 24 hours" in admin_texts(shop)
    assert "Ticket #2" not in admin_texts(shop)
    assert [closed for _, _, closed, _ in tickets(shop)] == [True, True]


def test_a_late_answer_opens_the_ticket_again(shop, alice, seller, config):
    alice.sends("/paysupport")
    alice.sends("Hello?")
    falls_silent(shop)
    support.close_silent_tickets(shop.bot.shop)
    restarted = shopbot.create_bot(config, threaded=False)  # a shop started since knows of no open ticket
    try:
        alice.shop = seller.shop = ShopUnderTest(restarted, shop.api)
        replies_to(seller, last_ticket_message(shop), "Sorry for the wait")
        assert "ticket #1 is open again" in seller.last_text() and "The seller answers" in alice.all_texts()
        alice.sends("No problem")
        assert len(copies_to(shop, ADMIN_ID)) == 2
    finally:
        alice.shop.close()


def test_the_limit_counts_tickets_not_messages(shop, alice, seller):
    for n in range(3):
        alice.sends("/paysupport")
        for m in range(5):
            alice.sends(f"ticket {n} message {m}")
        seller.taps("Resolved")
    assert len(copies_to(shop, ADMIN_ID)) == 15  # every message of every ticket
    alice.sends("/paysupport")
    assert "opened several tickets in the last hour" in alice.last_text() and len(tickets(shop)) == 3
    with shop.Session() as session:  # an hour later
        session.execute(update(SupportTicket).values(opened_at=utcnow() - timedelta(minutes=61)))
        session.commit()
    alice.sends("/paysupport")
    assert "ticket #4" in alice.last_text()


def test_a_flood_inside_a_ticket_is_held_back(shop, alice, seller):
    alice.sends("/paysupport")
    for n in range(support.FLOOD_MESSAGES + 5):
        alice.sends(f"spam {n}")
    assert len(copies_to(shop, ADMIN_ID)) == support.FLOOD_MESSAGES
    assert alice.all_texts().count("a lot of messages at once") == 1


@pytest.mark.parametrize("code, description", [(403, "Forbidden: bot was blocked by the user"),
                                               (400, "Bad Request: message to copy not found")])
def test_sent_to_the_seller_only_once_an_admin_has_the_message(shop, alice, seller, code, description):
    shop.api.fail("copyMessage", code, description)
    alice.sends("/paysupport")
    alice.sends("I paid but got nothing")
    assert "could not reach the seller" in alice.last_text() and "Sent to the seller" not in alice.all_texts()

    seller.sends("/start")  # an admin who had blocked the bot is back
    alice.sends("Still nothing")  # the first message that arrives carries the purchases
    assert "Sent to the seller" in alice.last_text() and "writes to /paysupport" in admin_texts(shop)
    assert len(copies_to(shop, ADMIN_ID)) == 2


# ---------------------------------------------------------------------------
# A hostile customer
# ---------------------------------------------------------------------------

def test_a_customer_cannot_inject_html_or_reach_another_customers_ticket(shop, alice, bob, seller):
    mallory = Person(shop, 1066, "<b>Mallory</b> <a href='x'>", "mallory")
    mallory.sends("/paysupport")
    mallory.sends("<i>hi</i>")
    header = [call.params["text"] for call in shop.api.of("sendMessage")
              if int(call.params["chat_id"]) == ADMIN_ID][-1]
    assert "&lt;b&gt;Mallory&lt;/b&gt; &lt;a href='x'&gt;" in header and "<b>Mallory" not in header
    assert not shop.api.calls_in_transaction

    bob.sends("/paysupport")  # ticket #2
    mallory.taps_data(callback("ticket_close", 2))  # someone else's ticket
    assert "There is no such ticket" in mallory.last_text()
    mallory.taps_data(callback("ticket_resolve", 2))  # an admin's button
    mallory.taps_data(callback("reply", 2))
    mallory.taps_data(callback("ticket_close", 99))
    assert len(mallory.callback_answers()) == 4  # every tap answered
    assert [closed for _, _, closed, _ in tickets(shop)] == [False, False]
    mallory.sends("only for the seller")
    assert all(int(c.params["chat_id"]) != bob.id for c in shop.api.of("copyMessage"))
    seller.taps_data(callback("ticket_resolve", 99))
    assert "There is no such ticket" in seller.last_toast()


# ---------------------------------------------------------------------------
# The notice: gifts and refunds
# ---------------------------------------------------------------------------

def test_the_notice_says_gift_and_refunded(shop, alice, bob, seller):
    product = shop.add_product("Course", price=100)
    alice.sends(f"/start p_{product.id}")
    alice.taps("Buy as a gift")
    alice.pays(charge_id="charge-gift")
    link = [line for line in alice.all_texts().split() if "start=gift_" in line][-1]
    bob.sends("/start " + link.split("?start=")[1])
    refunded = shop.add_product("Old", price=30)
    alice.taps_data(callback("buy", refunded.id))
    alice.pays(charge_id="charge-old")
    with shop.Session() as session:
        session.execute(update(Purchase).where(Purchase.payment_id == "charge-old").values(refunded_at=utcnow()))
        session.commit()
    alice.sends("/paysupport")
    alice.sends("help")
    note = admin_texts(shop)
    assert "Course — 100 ⭐ (charge-gift) · 🎁 gift: Alice (@alice) → Bob (@bob)" in note
    assert "Old — 30 ⭐ (charge-old) · ↩️ refunded" in note
    bob.sends("/paysupport")
    bob.sends("help")
    assert "Course — 0 ⭐ (-) · 🎁 gift: Alice (@alice) → Bob (@bob)" in admin_texts(shop)


def test_support_in_russian(shop, seller):
    ivan = Person(shop, 1077, "Иван", "ivan", language_code="ru")
    ivan.sends("/paysupport")
    assert "обращение №1" in ivan.last_text()
    ivan.sends("Не работает ключ")
    assert "Отправлено продавцу (обращение №1)" in ivan.last_text()
    replies_to(seller, last_ticket_message(shop), "Sorry")
    assert "Ответ продавца" in ivan.all_texts()
    seller.taps("Resolved")
    assert "отметил ваше обращение №1 как решённое" in ivan.last_text()
