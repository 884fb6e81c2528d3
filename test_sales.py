"""The money screens (sales.py): figures, refunds, grants and export."""
from __future__ import annotations

import csv
import io
from pathlib import Path

import models
from conftest import (
    ADMIN_ID,
    Person,
)
from models import Purchase
from screens import callback

HERE = Path(__file__).parent


def test_sales_figures_match_the_rows(shop, seller, alice, bob):
    cheap, dear = shop.add_product("Cheap", price=10), shop.add_product("Dear", price=100)
    for person, product in [(alice, cheap), (alice, dear), (bob, cheap)]:
        person.taps_data(callback("buy", product.id))
        person.pays()
    seller.taps_data(callback("confirm_refund", 2))  # Dear is refunded
    with shop.Session() as session:
        old = session.get(Purchase, 3)
        old.created_at = models.utcnow().replace(year=2020)
        session.commit()
    seller.sends("/admin")
    seller.taps("Sales")
    report = seller.last_text()
    assert "Today: 1 sales · 10 ⭐" in report
    assert "All time: 2 sales · 20 ⭐" in report
    assert "refunds: 1" in report
    assert "Top products, 30 days" in report and "1. Cheap — 1" in report  # the 2020 sale is too old


def test_recent_purchases_and_a_stars_refund(shop, seller, alice):
    product = shop.add_product("Pro", price=25)
    alice.taps_data(callback("buy", product.id))
    alice.pays()
    seller.sends("/admin")
    seller.taps("Recent purchases")
    seller.taps("#1 Pro")
    assert "Alice (@alice)" in seller.last_text() and "1001" in seller.last_text()
    seller.taps("Refund")
    assert not shop.api.of("refundStarPayment")  # a confirmation first
    seller.taps("Yes, refund")
    refund = shop.api.of("refundStarPayment")[-1].params
    assert refund["telegram_payment_charge_id"] == alice.payment["telegram_payment_charge_id"]
    assert "Refunded" in seller.last_text()
    assert seller.last_toast() == "✅ Refunded: the Stars are back with the buyer."
    with shop.Session() as session:
        assert session.get(Purchase, 1).refunded_at is not None


def test_a_refund_telegram_rejects_changes_nothing(shop, seller, alice):
    product = shop.add_product("Pro", price=25)
    alice.taps_data(callback("buy", product.id))
    alice.pays()
    shop.api.fail("refundStarPayment", 400, "Bad Request: CHARGE_ALREADY_REFUNDED")
    seller.sends(f"/refund {alice.payment['telegram_payment_charge_id']}")
    assert "refused the refund: Bad Request: CHARGE_ALREADY_REFUNDED" in seller.last_text()
    with shop.Session() as session:
        assert session.get(Purchase, 1).refunded_at is None


def test_a_card_refund_is_marked_only(card_shop):
    product = card_shop.add_product("Course", price=999)
    alice, seller = Person(card_shop, 1001, "Alice", "alice"), Person(card_shop, ADMIN_ID, "Seller")
    alice.taps_data(callback("buy", product.id))
    alice.pays()
    seller.sends(f"/refund {alice.payment['telegram_payment_charge_id']}")
    assert "payment provider" in seller.last_text() and not card_shop.api.of("refundStarPayment")
    with card_shop.Session() as session:
        assert session.get(Purchase, 1).refunded_at is not None


def test_grant_gives_and_delivers_a_product(shop, seller, alice):
    product = shop.add_product("Pro", price=25, hidden="KEY-9")
    alice.sends("/start")
    seller.sends(f"/grant {alice.id} {product.id}")
    assert "Granted" in seller.last_text()
    assert "KEY-9" in alice.last_text()
    assert shop.purchases() == [("alice", "Pro", 0, "manual")]
    seller.sends(f"/grant {alice.id} {product.id}")
    assert "already owns" in seller.last_text()
    seller.sends("/grant alice")
    assert "Usage" in seller.last_text()


def test_export_csv_lists_every_purchase(shop, seller, alice):
    product = shop.add_product("Course, part \"1\"", price=25)
    alice.taps_data(callback("buy", product.id))
    alice.pays()
    seller.taps_data(callback("export_csv"))
    name, data = shop.api.of("sendDocument")[-1].files["document"]
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert name.startswith("purchases-") and name.endswith(".csv")
    assert rows[0] == ["date", "purchase_id", "buyer_id", "username", "product", "price", "currency",
                       "payment_type", "payment_id", "refunded_at"]
    assert rows[1][1:] == ["1", "1001", "alice", 'Course, part "1"', "25", "XTR", "stars",
                           alice.payment["telegram_payment_charge_id"], ""]
