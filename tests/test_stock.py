"""Unique stock (stock.py): one key per buyer, uploads, restock notices."""
from __future__ import annotations

import dataclasses
import re
import threading
import time
import tracemalloc
from pathlib import Path

import pytest
from sqlalchemy import event as sqlalchemy_event
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

import checkout
import models
from conftest import (
    ADMIN_ID,
    Person,
    add_stock,
    admin_texts,
    buys,
    stock_of,
    upload_stock,
)
from models import STOCKED, Product, Purchase
from shopkit import callback

HERE = Path(__file__).resolve().parent.parent  # the project's root


def test_each_buyer_of_a_stocked_product_gets_a_different_key(shop, alice, bob):
    product = shop.add_product("Windows key", price=10, hidden="Activate in Settings.")
    add_stock(shop, product, "KEY-A", "KEY-B", "KEY-C")
    buys(alice, product)
    buys(bob, product)
    assert "KEY-A" in alice.all_texts() and "KEY-B" not in alice.all_texts()
    assert "KEY-B" in bob.all_texts() and "KEY-A" not in bob.all_texts()
    assert "Activate in Settings." in alice.all_texts()  # the shared instructions reach everyone
    alice.sends(f"/start p_{product.id}")
    assert "📦 1 in stock" in alice.last_text()
    assert alice.button_labels() == ["Buy for 10 ⭐", "✅ Yours — open", "🏷 Promo code", "🎁 Buy as a gift",
                                     "⬅️ Back"]  # a second key is fine
    buys(alice, product)
    assert "KEY-C" in alice.all_texts()
    with shop.Session() as session:
        sold = session.execute(select(models.StockItem.content, models.StockItem.purchase_id)).all()
    assert sorted(sold) == [("KEY-A", 1), ("KEY-B", 2), ("KEY-C", 3)]


def test_an_unlimited_product_gives_everyone_the_same_content(shop, alice, bob):
    product = shop.add_product("Guide", price=10, hidden="SAME-FOR-ALL")
    buys(alice, product)
    buys(bob, product)
    assert "SAME-FOR-ALL" in alice.all_texts() and "SAME-FOR-ALL" in bob.all_texts()
    alice.sends(f"/start p_{product.id}")
    assert "in stock" not in alice.last_text() and alice.button_labels()[0] == "✅ Yours — open"


def test_a_sold_out_product_offers_notify_me_and_no_buy_button(shop, alice, seller):
    product = shop.add_product("Gift card", price=10)
    add_stock(shop, product, "ONLY-ONE")
    buys(alice, product)
    assert "has sold out" in admin_texts(shop)
    bob = Person(shop, 1002, "Bob")
    bob.sends("/catalog")
    bob.taps("Keys")
    assert bob.button_labels()[0] == "Gift card — sold out"
    bob.taps("Gift card")
    assert "❌ Sold out" in bob.last_text()
    assert bob.button_labels() == ["🔔 Notify me", "⬅️ Back"]
    bob.taps_data(callback("buy", product.id))  # an old Buy button
    assert bob.last_toast() == "Sorry, it has just sold out." and not shop.api.of("sendInvoice")[1:]


def test_pre_checkout_refuses_when_none_is_left(shop, alice, bob):
    product = shop.add_product("Gift card", price=10)
    add_stock(shop, product, "ONLY-ONE")
    alice.taps_data(callback("buy", product.id))
    bob.taps_data(callback("buy", product.id))
    alice.pays()
    answer = bob.pays()
    assert answer["ok"] is False and "sold out" in answer["error_message"]


def test_the_last_item_paid_for_at_once_goes_to_one_buyer_and_the_rest_are_refunded(shop, seller):
    """Everyone passed pre-checkout while one item was left; their payments land together."""
    product = shop.add_product("Last key", price=10)
    add_stock(shop, product, "THE-KEY")
    buyers = [Person(shop, 3000 + n, f"Buyer {n}") for n in range(6)]
    payments = []
    for buyer in buyers:
        buyer.taps_data(callback("buy", product.id))
        payments.append(dict(buyer.last_invoice()))
    start = threading.Barrier(len(buyers))

    def pay(buyer, invoice):
        start.wait()
        buyer.payment = {"currency": "XTR", "total_amount": 10, "invoice_payload": invoice["payload"],
                         "telegram_payment_charge_id": f"race-{buyer.id}", "provider_payment_charge_id": "p"}
        buyer.repeats_payment()

    threads = [threading.Thread(target=pay, args=pair) for pair in zip(buyers, payments, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    winners = [b for b in buyers if "THE-KEY" in b.all_texts()]
    assert len(winners) == 1
    refunds = {c.params["user_id"] for c in shop.api.of("refundStarPayment")}
    assert refunds == {b.id for b in buyers} - {winners[0].id}
    with shop.Session() as session:
        purchases = session.scalars(select(Purchase)).all()
        assert len(purchases) == 6 and sum(p.refunded_at is None for p in purchases) == 1
    assert all("refunded" in b.last_text() for b in buyers if b is not winners[0])
    assert admin_texts(shop).count("refunded automatically") == 5


def test_free_stocked_products_hand_out_one_item_each(shop, alice, bob):
    product = shop.add_product("Promo code", price=0)
    add_stock(shop, product, "PROMO-1")
    alice.taps_data(callback("buy", product.id))
    bob.taps_data(callback("buy", product.id))
    assert "PROMO-1" in alice.all_texts()
    assert bob.last_toast() == "Sorry, it has just sold out." and "PROMO-1" not in bob.all_texts()
    assert shop.purchases() == [("alice", "Promo code", 0, "free")]


def test_a_free_item_goes_once_to_each_customer(shop, alice, bob):
    product = shop.add_product("Promo code", price=0)
    add_stock(shop, product, "PROMO-1", "PROMO-2", "PROMO-3")
    alice.taps_data(callback("buy", product.id))
    alice.taps_data(callback("buy", product.id))  # again: she sees her code, she gets no second one
    bob.taps_data(callback("buy", product.id))
    assert alice.all_texts().count("PROMO-1") == 2 and "PROMO-2" not in alice.all_texts()
    assert "PROMO-2" in bob.all_texts()
    assert stock_of(shop, product) == ["PROMO-1", "PROMO-2", "PROMO-3"] and len(shop.purchases()) == 2
    alice.sends(f"/start p_{product.id}")
    assert alice.button_labels() == ["✅ Yours — open", "⬅️ Back"]


def test_a_stocked_product_deleted_before_any_sale_takes_its_stock_along(shop, seller):
    product = shop.add_product("Key")
    add_stock(shop, product, "K1", "K2")
    seller.taps_data(callback("delete_product", product.id))
    seller.taps_data(callback("confirm_delete_product", product.id))
    with shop.Session() as session:
        assert session.get(Product, product.id) is None
        assert session.scalar(select(func.count(models.StockItem.id))) == 0


def test_low_stock_alert_reaches_the_admins(shop, seller, alice):
    product = shop.add_product("Key", price=0)
    add_stock(shop, product, *[f"K{n}" for n in range(4)])
    alice.taps_data(callback("buy", product.id))
    assert "running low: 3 left" in admin_texts(shop)


def test_pasted_lines_become_items_without_blanks_or_duplicates(shop, seller):
    product = shop.add_product("Key", kind=STOCKED)
    add_stock(shop, product, "OLD-1")
    upload_stock(seller, product, lambda s: s.sends("NEW-1\n\n  NEW-2  \nNEW-1\nOLD-1\n\u200b"))
    assert "Added 2 items, skipped 2 duplicates" in seller.last_text()
    assert stock_of(shop, product) == ["OLD-1", "NEW-1", "NEW-2"]
    assert "Stock: 3 unsold items" in seller.last_text()


def test_a_text_file_with_crlf_and_a_bom_is_read_line_by_line(shop, seller):
    product = shop.add_product("Key", kind=STOCKED)
    content = "\ufeffKEY-1\r\nKEY-2\r\n\r\nKEY-2\r\nКЛЮЧ-3\r\n".encode()
    upload_stock(seller, product, lambda s: s.sends_document("LIST", "keys.txt", content=content))
    assert stock_of(shop, product) == ["KEY-1", "KEY-2", "КЛЮЧ-3"]
    assert "Added 3 items, skipped 1 duplicate." in seller.last_text()


def test_a_csv_from_russian_windows_excel_is_read(shop, seller):
    product = shop.add_product("Account", kind=STOCKED)
    content = "логин1;пароль1\r\nлогин2;пароль2\r\n".encode("cp1251")
    upload_stock(seller, product, lambda s: s.sends_document("CSV", "accounts.csv", content=content))
    assert stock_of(shop, product) == ["логин1;пароль1", "логин2;пароль2"]


def test_a_10000_line_file_is_added_in_one_go(shop, seller):
    product = shop.add_product("Key", kind=STOCKED)
    content = "\n".join(f"KEY-{n:05d}" for n in range(10_000)).encode()
    started = time.monotonic()
    upload_stock(seller, product, lambda s: s.sends_document("BIG", "keys.txt", content=content))
    assert time.monotonic() - started < 5
    assert "Added 10\u202f000 items" in seller.last_text()
    assert len(stock_of(shop, product)) == 10_000


def test_a_binary_file_named_txt_is_refused(shop, seller):
    product = shop.add_product("Key", kind=STOCKED)
    upload_stock(seller, product, lambda s: s.sends_document("BIN", "keys.txt", content=b"\x89PNG\x00\x01"))
    assert "not text" in seller.last_text()
    assert stock_of(shop, product) == []


def test_a_file_telegram_cannot_hand_over_is_asked_for_again(shop, seller):
    product = shop.add_product("Key", kind=STOCKED)
    shop.api.fail("getFile", 400, "Bad Request: invalid file_id")
    upload_stock(seller, product, lambda s: s.sends_document("LIST", "keys.txt", content=b"K1\nK2"))
    assert "could not download that file" in seller.last_text()
    seller.sends_document("LIST", "keys.txt", content=b"K1\nK2")
    assert stock_of(shop, product) == ["K1", "K2"]


def test_any_other_file_is_one_item_delivered_by_file_id(shop, seller, alice):
    product = shop.add_product("Ticket", price=0, hidden="", kind=STOCKED)
    upload_stock(seller, product, lambda s: s.sends_document("TICKET-PDF", "ticket-17.pdf", caption="Seat 17"))
    alice.taps_data(callback("buy", product.id))
    assert shop.api.of("sendDocument")[-1].params["document"] == "TICKET-PDF"
    assert "Seat 17" in alice.all_texts()


def test_removing_unsold_items_keeps_the_sold_ones(shop, seller, alice):
    product = shop.add_product("Key", price=0)
    add_stock(shop, product, "K1", "K2", "K3")
    alice.taps_data(callback("buy", product.id))
    seller.taps_data(callback("admin_product", product.id))
    seller.taps("Remove unsold")
    assert "Remove 2 unsold items?" in seller.last_text()
    seller.taps("Remove unsold")
    assert seller.last_toast() == "Removed 2 unsold items."
    assert stock_of(shop, product) == ["K1"]
    before = alice.all_texts().count("K1")
    alice.sends("/purchases")
    alice.taps("Key")
    assert alice.all_texts().count("K1") == before + 1


def test_notify_me_tells_each_waiting_customer_once(shop, seller, alice, bob):
    product = shop.add_product("Gift card", price=10)
    add_stock(shop, product, "G1")
    buys(alice, product)
    bob.sends(f"/start p_{product.id}")
    bob.taps("🔔")
    assert bob.last_toast() == "🔔 We will message you when it is back in stock."
    bob.taps("🔔")  # twice: still one message later
    ira = Person(shop, 1003, "Ира", language_code="ru")
    ira.sends(f"/start p_{product.id}")
    ira.taps("🔔")
    upload_stock(seller, product, lambda s: s.sends("G2\nG3"))
    shop.finish_background()
    assert bob.last_text() == "🔔 Gift card is back in stock!"
    assert bob.button_labels() == ["🛍 Open"]
    assert ira.last_text() == "🔔 «Gift card» снова в наличии!"
    bob.taps("Open")
    assert bob.button_labels()[0] == "Buy for 10 ⭐"
    upload_stock(seller, product, lambda s: s.sends("G4"))
    shop.finish_background()
    notices = [c for c in shop.api.of("sendMessage") if c.params["chat_id"] == str(bob.id)
               and "back in stock" in c.params["text"]]
    assert len(notices) == 1


def test_a_thousand_keys_for_a_thousand_customers(shop, seller):
    """The issue's acceptance story: upload 1,000 keys, sell them all, then the 1,001st customer."""
    product = shop.add_product("License", price=5, kind=STOCKED)
    keys = "\n".join(f"LIC-{n:04d}" for n in range(1000)).encode()
    upload_stock(seller, product, lambda s: s.sends_document("KEYS", "keys.txt", content=keys))
    assert "Added 1000 items" in seller.last_text()
    received = set()
    for n in range(1000):
        customer = Person(shop, 100_000 + n, f"C{n}")
        customer.pays({"invoice": {"total_amount": 5, "currency": "XTR"},
                       "payload": checkout.invoice_payload(product.id, customer.id)})
        received |= {m["text"] for m in shop.api.messages(customer.id) if m.get("text", "").startswith("LIC-")}
    assert len(received) == 1000
    late = Person(shop, 200_000, "Late")
    late.sends(f"/start p_{product.id}")
    assert "Sold out" in late.last_text() and late.button_labels()[0] == "🔔 Notify me"


def test_removing_the_unsold_keys_leaves_the_product_sold_out_not_unlimited(shop, seller, alice, bob):
    product = shop.add_product("Key", price=10, hidden="Activate in Settings.")
    add_stock(shop, product, "K1", "K2")
    alice.taps_data(callback("buy", product.id))  # an invoice from before the keys went
    seller.taps_data(callback("admin_product", product.id))
    seller.taps("Remove unsold")
    seller.taps("Remove unsold")
    bob.sends(f"/start p_{product.id}")
    assert "❌ Sold out" in bob.last_text() and bob.button_labels() == ["🔔 Notify me", "⬅️ Back"]
    bob.taps_data(callback("buy", product.id))
    assert bob.last_toast() == "Sorry, it has just sold out." and len(shop.api.of("sendInvoice")) == 1
    answer = alice.pays()
    assert answer["ok"] is False and "sold out" in answer["error_message"]
    assert shop.purchases() == [] and "Activate in Settings." not in alice.all_texts()


def test_the_same_list_uploaded_twice_at_once_stores_each_key_once(shop, seller):
    product = shop.add_product("Key", price=10, kind=STOCKED)
    other_admin = Person(shop, ADMIN_ID + 1, "Second admin")  # both sellers paste the same five codes
    shop.bot.shop.config = dataclasses.replace(shop.bot.shop.config, admin_ids=frozenset({ADMIN_ID, ADMIN_ID + 1}))
    paste = "\n".join(f"CODE-{n}" for n in range(5))
    for person in (seller, other_admin):
        person.taps_data(callback("upload_stock", product.id))
    start = threading.Barrier(2)

    def send(person):
        start.wait()
        person.sends(paste)

    threads = [threading.Thread(target=send, args=(person,)) for person in (seller, other_admin)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(stock_of(shop, product)) == [f"CODE-{n}" for n in range(5)]
    added, skipped = so_far(seller)
    seller.sends(paste)  # and once more, later
    assert so_far(seller) == (added, skipped + 5) and len(stock_of(shop, product)) == 5


def so_far(seller) -> tuple[int, int]:
    """(added, skipped) from the upload's running count."""
    added, skipped = re.search(r"So far: (\d+) items? added, (\d+) duplicates? skipped", seller.last_text()).groups()
    return int(added), int(skipped)


def test_a_key_already_sold_cannot_be_uploaded_again(shop, seller, alice):
    product = shop.add_product("Key", price=10)
    add_stock(shop, product, "KEY-1")
    buys(alice, product)
    upload_stock(seller, product, lambda s: s.sends("KEY-1\nKEY-2"))
    assert stock_of(shop, product) == ["KEY-1", "KEY-2"]
    with pytest.raises(IntegrityError):  # the database itself refuses it, whoever asks
        add_stock(shop, product, "KEY-2")


def test_a_long_paste_split_into_four_messages_is_added_whole(shop, seller):
    product = shop.add_product("Key", price=10, kind=STOCKED)
    keys = [f"KEY-{n:04d}-ABCDEFGHIJKL" for n in range(600)]  # about 15,000 characters
    seller.taps_data(callback("admin_product", product.id))
    seller.taps("Upload stock")
    for part in range(4):  # Telegram cuts a paste over 4,096 characters into messages
        seller.sends("\n".join(keys[part * 150:(part + 1) * 150]))
        assert f"So far: {150 * (part + 1)} items added" in seller.last_text()
    seller.taps("Done")
    assert "Added 600 items" in seller.last_text() and len(stock_of(shop, product)) == 600
    assert "Nothing found" not in seller.all_texts()  # no part was taken for a search


def test_an_item_over_4000_characters_is_refused_with_its_line(shop, seller):
    product = shop.add_product("Key", kind=STOCKED)
    content = ("KEY-1\nKEY-2\n" + "x" * 4001 + "\nKEY-4\n").encode()
    upload_stock(seller, product, lambda s: s.sends_document("LIST", "keys.txt", content=content))
    assert "Line 3 has 4001 characters" in seller.last_text() and "Nothing from this upload" in seller.last_text()
    assert stock_of(shop, product) == []


def test_a_big_file_is_read_a_line_at_a_time_and_added_in_short_steps(sqlite_shop):
    """Memory grows with the file's bytes, not with its lines: a 20 MB file stays far under 150 MB."""
    seller = Person(sqlite_shop, ADMIN_ID, "Seller")
    product = sqlite_shop.add_product("Key", kind=STOCKED)
    content = b"".join(b"KEY-%07d-ABCDEFGH\n" % n for n in range(120_000))  # 2.4 MB: 120,000 keys
    commits = []
    sqlalchemy_event.listen(sqlite_shop.Session.kw["bind"], "commit", lambda connection: commits.append(1))
    tracemalloc.start()
    try:
        upload_stock(seller, product, lambda s: s.sends_document("BIG", "keys.txt", content=content))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "Added 120\u202f000 items" in seller.last_text()
    assert peak < len(content) + 40 * 2**20, f"{peak / 2**20:.0f} MB for a {len(content) / 2**20:.0f} MB file"
    assert len(commits) >= 120_000 // 5000  # a short transaction per chunk, not one long write lock
