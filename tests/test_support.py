"""Support (support.py): /paysupport and the seller's reply."""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

import shopbot
from conftest import (
    ADMIN_ID,
    ShopUnderTest,
    admin_texts,
)
from shopkit import Dialog, callback

HERE = Path(__file__).resolve().parent.parent  # the project's root


def test_paysupport_passes_the_customers_message_on_with_their_latest_purchases(shop, alice, seller):
    product = shop.add_product("Pro", price=25)
    alice.taps_data(callback("buy", product.id))
    alice.pays()
    before = admin_texts(shop)
    alice.sends("/paysupport")
    assert "Describe the problem in your next message" in alice.last_text() and admin_texts(shop) == before
    alice.sends("The key does not work")
    note = admin_texts(shop)
    assert "Alice (@alice)" in note and "1001" in note and "#1 Pro — 25 ⭐" in note


def test_a_support_conversation_goes_both_ways(shop, alice, seller):
    alice.sends("/paysupport")
    alice.sends_photo("SCREENSHOT", caption="The key does not work")
    assert "Sent to the seller" in alice.last_text()
    copied = shop.api.of("copyMessage")[-1].params
    assert (copied["chat_id"], copied["from_chat_id"]) == (ADMIN_ID, alice.id)
    assert "Alice (@alice) (id 1001) writes to /paysupport." in admin_texts(shop)
    alice.sends("hello")  # the conversation is over: back to the shop (a search)
    assert "Nothing found" in alice.last_text()

    seller.taps("Reply")
    seller.sends("Sorry! Here is a new key: NEW-KEY")
    assert "Your answer was delivered" in seller.last_text()
    assert "A message from the seller" in alice.all_texts()
    answer = shop.api.of("copyMessage")[-1].params
    assert (answer["chat_id"], answer["from_chat_id"]) == (alice.id, ADMIN_ID)


def test_paysupport_can_be_cancelled(shop, alice, seller):
    alice.sends("/paysupport")
    alice.taps("Cancel")
    alice.sends("hello")
    assert "Nothing found" in alice.last_text() and not shop.api.of("copyMessage")


def test_a_support_question_survives_a_restart(shop, alice, seller, config):
    alice.sends("/paysupport")
    restarted = shopbot.create_bot(config, threaded=False)  # the same database, a new process
    try:
        alice.shop = ShopUnderTest(restarted, shop.api)
        alice.sends("I paid but got nothing")
        assert "Sent to the seller" in alice.last_text() and "writes to /paysupport" in admin_texts(shop)
    finally:
        alice.shop.close()


def test_tapping_another_button_ends_the_support_question(shop, alice, seller):
    alice.sends("/paysupport")
    alice.taps_data(callback("catalog"))
    alice.sends("netflix")
    assert "Nothing found for «netflix»" in alice.last_text() and not shop.api.of("copyMessage")


def test_a_support_question_unanswered_for_10_minutes_is_over(shop, alice, seller):
    alice.sends("/paysupport")
    with shop.Session() as session:
        session.get(Dialog, alice.id).updated_at -= timedelta(minutes=11)
        session.commit()
    alice.sends("netflix")
    assert "Nothing found for «netflix»" in alice.last_text() and not shop.api.of("copyMessage")


def test_one_customer_reaches_the_admins_at_most_3_times_an_hour(shop, alice, seller):
    for n in range(100):
        alice.sends("/paysupport")
        alice.sends(f"help {n}")
    assert admin_texts(shop).count("writes to /paysupport") == 3 and len(shop.api.of("copyMessage")) == 3
    assert "will answer you here soon" in alice.all_texts()


@pytest.mark.parametrize("code, description", [(403, "Forbidden: bot was blocked by the user"),
                                               (400, "Bad Request: message to copy not found")])
def test_sent_to_the_seller_only_once_an_admin_has_the_message(shop, alice, seller, code, description):
    shop.api.fail("copyMessage", code, description)
    alice.sends("/paysupport")
    alice.sends("I paid but got nothing")
    assert "could not reach the seller" in alice.last_text() and "Sent to the seller" not in alice.all_texts()

    seller.sends("/start")  # an admin who had blocked the bot is back
    for n in range(3):  # the message that did not arrive does not count against the customer's 3 an hour
        alice.sends("/paysupport")
        alice.sends(f"Still nothing {n}")
        assert "Sent to the seller" in alice.last_text()
    assert len([call for call in shop.api.of("copyMessage") if call.params["chat_id"] == ADMIN_ID]) == 4
