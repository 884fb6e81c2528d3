"""Support (support.py): /paysupport and the seller's reply."""
from __future__ import annotations

from pathlib import Path

from conftest import (
    ADMIN_ID,
    admin_texts,
)
from screens import callback

HERE = Path(__file__).parent


def test_paysupport_tells_the_admins_with_latest_purchases(shop, alice, seller):
    product = shop.add_product("Pro", price=25)
    alice.taps_data(callback("buy", product.id))
    alice.pays()
    alice.sends("/paysupport")
    assert "seller has been told" in alice.last_text()
    note = admin_texts(shop)
    assert "Alice (@alice)" in note and "1001" in note and "#1 Pro — 25 ⭐" in note


def test_a_support_conversation_goes_both_ways(shop, alice, seller):
    alice.sends("/paysupport")
    alice.sends_photo("SCREENSHOT", caption="The key does not work")
    assert "Sent to the seller" in alice.last_text()
    copied = shop.api.of("copyMessage")[-1].params
    assert (copied["chat_id"], copied["from_chat_id"]) == (ADMIN_ID, alice.id)
    assert "Alice (@alice) (id 1001) writes:" in admin_texts(shop)
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
