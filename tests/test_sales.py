"""The money screens (sales.py): figures, refunds, grants and export."""
from __future__ import annotations

import logging
import random
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import ledger
import models
import sales
from conftest import (
    ADMIN_ID,
    Person,
)
from models import Purchase
from shopkit import callback

HERE = Path(__file__).resolve().parent.parent  # the project's root


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
    assert "Today: 1 sale · 10 ⭐" in report
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
    assert "Telegram refused the refund: it was refunded already. Nothing was changed." in seller.last_text()
    with shop.Session() as session:
        assert session.get(Purchase, 1).refunded_at is None


def test_telegrams_refusal_is_said_in_the_sellers_language_never_in_telegrams_english(shop, alice):
    product = shop.add_product("Pro", price=25)
    alice.taps_data(callback("buy", product.id))
    alice.pays()
    seller = Person(shop, ADMIN_ID, "Продавец", language_code="ru")
    refund = f"/refund {alice.payment['telegram_payment_charge_id']}"
    shop.api.fail("refundStarPayment", 400, "Bad Request: CHARGE_ALREADY_REFUNDED")
    seller.sends(refund)
    assert seller.last_text() == "❌ Telegram отклонил возврат: деньги за него уже возвращены. Ничего не изменилось."
    shop.api.fail("refundStarPayment", 400, "Bad Request: SOMETHING_NEW")  # one no list knows yet
    seller.sends(refund)
    assert "SOMETHING_NEW" not in seller.last_text() and "журнал бота" in seller.last_text()
    shop.api.fail("refundStarPayment", 400, "Bad Request: SOMETHING_NEW")
    Person(shop, ADMIN_ID, "Seller").sends(refund)  # in English, Telegram's own words are the clearest
    assert "Telegram refused the refund: Telegram said: Bad Request: SOMETHING_NEW." in seller.last_text()


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


def test_grant_says_when_the_customer_could_not_be_reached(shop, seller, alice):
    product = shop.add_product("Pro", price=25, hidden="KEY-9")
    alice.sends("/start")
    shop.api.fail("sendMessage", 403, "Forbidden: bot was blocked by the user")
    seller.sends(f"/grant {alice.id} {product.id}")  # Alice blocked the bot since
    assert "Granted (purchase #1), but not delivered: the customer has blocked the bot" in seller.last_text()
    assert "Granted and delivered" not in seller.last_text()


def test_grant_names_an_unknown_product(shop, seller, alice):
    alice.sends("/start")
    seller.sends(f"/grant {alice.id} 77")
    assert seller.last_text().startswith("There is no product 77.")
    assert "no longer available" not in seller.last_text()


def test_a_grant_waits_for_someone_who_never_opened_the_bot(shop, seller, caplog):
    caplog.set_level(logging.INFO, logger="shopbot")
    product = shop.add_product("Pro", price=25, hidden="KEY-9")
    carol = Person(shop, 1003, "Carol")  # has never written to the bot
    seller.sends(f"/grant {carol.id} {product.id}")
    assert "1003 has not opened the bot yet" in seller.last_text()
    assert "they do (their first /start)" in seller.last_text()
    assert shop.api.messages(carol.id) == [] and shop.purchases() == []  # nothing sent, nothing sold yet
    assert "has blocked the bot" not in caplog.text and "Delivered purchase" not in caplog.text
    seller.sends("/admin")
    seller.taps("Sales")
    assert "👤 new users: 0" in seller.last_text()  # nobody came
    carol.sends("/start")
    assert "A gift from the shop: Pro. Here it is:" in carol.all_texts() and "KEY-9" in carol.all_texts()
    assert "Thank you for your purchase" not in carol.all_texts()
    assert "Carol opened the bot and received Pro, granted by you (purchase #1)" in seller.last_text()
    assert shop.purchases() == [(None, "Pro", 0, "manual")]
    carol.sends("/start")  # once
    assert carol.all_texts().count("KEY-9") == 1


def test_a_granted_customer_reads_a_gift_from_the_shop(shop, seller, alice):
    alice.sends("/start")
    seller.sends(f"/grant {alice.id} {shop.add_product('Pro', price=25, hidden='KEY-9').id}")
    assert "A gift from the shop: Pro" in alice.all_texts() and "Thank you for your purchase" not in alice.all_texts()


def test_sales_keep_free_items_grants_and_admins_apart_from_revenue(shop, seller, alice, bob):
    paid, free = shop.add_product("Pro", price=25), shop.add_product("Guide", price=0)
    alice.taps_data(callback("buy", paid.id))
    alice.pays()
    bob.taps_data(callback("buy", free.id))
    seller.sends(f"/grant {bob.id} {paid.id}")
    seller.sends("/admin")
    seller.taps("Sales")
    report = seller.last_text()
    assert "Today: 1 sale · 25 ⭐" in report
    assert "free: 1 · granted: 1 · ↩️ refunds: 0 · 👤 new users: 2" in report  # Alice and Bob, not the seller
    assert "Top products, 30 days" in report and "1. Pro — 1" in report and "Guide" not in report


def test_taking_back_a_grant_does_not_speak_of_money(shop, seller, alice):
    product = shop.add_product("Pro", price=25)
    alice.sends("/start")
    seller.sends(f"/grant {alice.id} {product.id}")
    seller.sends("/admin")
    seller.taps("Recent purchases")
    seller.taps("#1 Pro")
    assert "Payment: granted" in seller.last_text()
    assert "Refund" not in str(seller.button_labels())  # nothing was paid: nothing to refund
    seller.taps("↩️ Take back")
    assert "It was free, so there is no money to return" in seller.last_text()
    seller.taps("Yes, take back")
    assert seller.last_toast() == "✅ Taken back: the customer no longer has access. It was free, so no money moved."
    assert "provider" not in seller.last_toast()


def test_all_time_figures_follow_sales_and_refunds_after_their_snapshot(shop, seller, alice, bob):
    product = shop.add_product("Pro", price=25)
    alice.taps_data(callback("buy", product.id))
    alice.pays()
    seller.taps_data(callback("sales"))  # the first opening takes the snapshot
    assert "All time: 1 sale · 25 ⭐" in seller.last_text()
    bob.taps_data(callback("buy", product.id))
    bob.pays()
    seller.taps_data(callback("confirm_refund", 1))  # Alice's sale
    seller.taps_data(callback("sales"))
    assert "All time: 1 sale · 25 ⭐" in seller.last_text() and "↩️ refunds: 1" in seller.last_text()
    shop.bot.shop.memo["sales"].take(shop.bot.shop)  # a new snapshot gives the same figures
    seller.taps_data(callback("admin"))
    seller.taps_data(callback("sales"))
    assert "All time: 1 sale · 25 ⭐" in seller.last_text()


def test_a_snapshot_brought_up_to_date_counts_what_a_fresh_count_does(shop, seller, monkeypatch):
    """Sales slide out of 7 and 30 days, today starts at midnight, refunds land on old and new sales:
    every period's figures, from the snapshot, equal the same period counted afresh."""
    clock = [datetime(2026, 6, 15, 23, 30)]
    monkeypatch.setattr(sales, "utcnow", lambda: clock[0])
    pro, guide = shop.add_product("Pro", price=25), shop.add_product("Guide", price=0)
    seller.sends("/start")
    with shop.Session() as session:
        buyer = models.User(telegram_id=7, username="buyer", created_at=clock[0] - timedelta(days=2))
        session.add(buyer)
        session.flush()

        def sale(ago: timedelta, product=pro, kind="stars") -> Purchase:
            purchase = Purchase(user_id=buyer.id, product_id=product.id, price=product.price, currency="XTR",
                                payment_type=kind, payment_id=f"charge-{len(made)}", created_at=clock[0] - ago)
            made.append(purchase)
            session.add(purchase)
            return purchase

        made = []
        sale(timedelta(days=40))
        slides_out_of_30_days = sale(timedelta(days=30) - timedelta(minutes=10))
        sale(timedelta(days=30) - timedelta(minutes=5))  # slides out too, still live
        slides_out_of_7_days = sale(timedelta(days=7) - timedelta(minutes=20))
        sale(timedelta(days=7) - timedelta(minutes=5))
        earlier_today = sale(timedelta(hours=1))
        sale(timedelta(hours=2), guide, "free")
        sale(timedelta(hours=3), pro, "manual")
        session.commit()
    snapshot = sales.Snapshot()
    snapshot.take(shop.bot.shop)

    clock[0] += timedelta(minutes=50)  # past midnight: "today" is a new day
    with shop.Session() as session:
        for purchase, refunded_ago in [(slides_out_of_30_days, 40), (slides_out_of_7_days, 30), (earlier_today, 5)]:
            session.get(Purchase, purchase.id).refunded_at = clock[0] - timedelta(minutes=refunded_ago)
        sale(timedelta(minutes=35))  # yesterday, after the snapshot
        sale(timedelta(minutes=20))  # at midnight
        sale(timedelta(minutes=10), guide, "free")
        session.commit()

    def fresh(session, now) -> dict:
        return {period: sales.figures_between(session, shop.bot.shop.config.admin_ids, start(now), now,
                                              period == sales.TOP_PERIOD) for period, start in sales.PERIODS.items()}

    with shop.Session() as session:
        now = clock[0]
        report, counted = snapshot.now(shop.bot.shop, session, now), fresh(session, now)
        assert report.figures == counted
        sold = counted[sales.TOP_PERIOD].sold
        assert report.top == sales.top_five(sold, sales.ranking(sold), Counter()) == [(pro.id, 3)]
        figures = report.figures
        assert figures["period_today"].sales["XTR"] == 1 and figures["period_today"].free == 1
        assert figures["period_today"].refunds == 1 and figures["period_today"].new_users == 0
        assert figures["period_7d"].sales["XTR"] == 2 and figures["period_7d"].refunds == 3
        assert figures["period_7d"].new_users == 1
        assert figures["period_30d"].sold == {pro.id: 3} and figures["period_all"].sales["XTR"] == 5
        assert figures["period_all"].granted == 1 and figures["period_all"].free == 2


def backdated_sale(shop, alice, hours: int) -> None:
    product = shop.add_product("Pro", price=25)
    alice.taps_data(callback("buy", product.id))
    alice.pays()
    with shop.Session() as session:
        session.get(Purchase, 1).created_at = models.utcnow() - timedelta(hours=hours)
        session.commit()


def test_a_refund_in_the_minute_before_the_snapshot_is_taken_away_once(shop, seller, alice):
    """The snapshot stops a minute before it is taken (SETTLE): a refund in that minute is counted once."""
    backdated_sale(shop, alice, hours=2)
    seller.taps_data(callback("confirm_refund", 1))  # refunded now...
    seller.taps_data(callback("sales"))  # ...and the first opening takes the snapshot
    assert "All time: 0 sales · 0\n🎁 free: 0 · granted: 0 · ↩️ refunds: 1" in seller.last_text()


def test_a_snapshot_retaken_just_after_a_refund_counts_it_once(shop, seller, alice):
    backdated_sale(shop, alice, hours=3)
    seller.taps_data(callback("sales"))
    assert "All time: 1 sale · 25 ⭐" in seller.last_text()
    shop.bot.shop.memo["sales"].taken_at -= timedelta(hours=2)  # an old snapshot (no sale since: still true)
    seller.taps_data(callback("confirm_refund", 1))
    seller.taps_data(callback("sales"))  # starts retaking the snapshot
    assert "All time: 0 sales" in seller.last_text()
    shop.finish_background()
    seller.taps_data(callback("admin"))
    seller.taps_data(callback("sales"))  # from the new snapshot
    assert "All time: 0 sales · 0\n🎁 free: 0 · granted: 0 · ↩️ refunds: 1" in seller.last_text()


def test_the_best_sellers_from_a_snapshot_and_a_change_are_the_best_of_the_sum():
    """top_five looks only at the snapshot's first few and the products that changed: never wrong for that."""
    rng = random.Random(7)
    for _ in range(500):
        sold = Counter({product_id: rng.randint(1, 6) for product_id in rng.sample(range(1, 40), rng.randint(0, 30))})
        change = Counter({product_id: rng.randint(-6, 6) for product_id in rng.sample(range(1, 40), rng.randint(0, 8))})
        now = sold + Counter()  # a copy
        now.update(change)
        expected = [(product_id, now[product_id]) for product_id in sales.ranking(+now)[:5]]
        assert sales.top_five(sold, sales.ranking(sold), change) == expected


def test_the_sales_screen_tells_when_telegrams_ledger_was_read(shop, seller):
    seller.taps_data(callback("sales"))
    assert "ledger has not been checked yet" in seller.last_text()
    ledger.check_ledger(shop.bot.shop)
    seller.taps_data(callback("admin"))
    seller.taps_data(callback("sales"))
    assert "ledger checked" in seller.last_text() and "it fixed 0 payments and 0 refunds" in seller.last_text()
