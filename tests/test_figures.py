"""One definition per figure (models.figure_of): 📊 Sales, a product's screen, the promo lines and the export
agree; the seller sees gifts and refunds; 📊 Sales draws 30 days of revenue at a glance."""
from __future__ import annotations

from datetime import timedelta

import pytest

import sales
import subscriptions
from conftest import ADMIN_ID, CHANNEL_ID, Person, admin_texts
from models import SUBSCRIPTION, Purchase, User
from shopkit import callback, utcnow
from test_export import exported
from test_subscriptions import moment, paid_until, subscribes, subscription_lands


def gift_bought(buyer: Person, product) -> str:
    buyer.sends(f"/start p_{product.id}")
    buyer.taps("Buy as a gift")
    buyer.pays(charge_id=f"gift-{buyer.id}")
    return [word for word in buyer.all_texts().split() if "start=gift_" in word][-1].split("?start=")[1]


def purchase_of(shop, person: Person) -> int:
    with shop.Session() as session:
        return session.query(Purchase.id).join(User).filter(User.telegram_id == person.id).scalar()


def test_the_screens_and_the_export_agree_on_one_shops_figures(shop, seller):
    """Paid, a 100 % code, a free item, a grant, a gift, refunds, a renewal, a cancellation and a resubscription."""
    course, guide = shop.add_product("Course", price=100), shop.add_product("Guide", price=0)
    shop.api.channels.add(CHANNEL_ID, "VIP signals")
    vip = shop.add_product("VIP", price=250, kind=SUBSCRIPTION, chat_id=CHANNEL_ID, chat_title="VIP signals")
    shop.add_promo("SPRING")
    shop.add_promo("GRATIS", percent=100)
    alice, bob, carol, dave, erin, frank, gina = (Person(shop, 1001 + n, name, name.lower()) for n, name in enumerate(
        ["Alice", "Bob", "Carol", "Dave", "Erin", "Frank", "Gina"]))

    alice.sends("/start promo_SPRING")
    alice.taps_data(callback("buy", course.id))
    alice.pays()  # a sale: 80 with a code
    bob.sends("/start promo_GRATIS")
    bob.taps_data(callback("buy", course.id))  # free with a 100 % code: free, not a sale
    carol.taps_data(callback("buy", guide.id))  # a free item
    seller.sends(f"/grant {carol.id} {course.id}")  # a grant
    dave.sends("/start " + gift_bought(alice, course))  # a sale of 100, and its claim (no figure of its own)
    erin.taps_data(callback("buy", course.id))
    erin.pays()
    seller.taps_data(callback("confirm_refund", purchase_of(shop, erin)))  # a refund
    expires = paid_until(30)
    subscribes(frank, vip, "sub-1", expires)  # a first payment...
    subscription_lands(frank, 250, frank.payment["invoice_payload"], "sub-2", paid_until(60), first=False)  # renewal
    frank.sends("/purchases")
    frank.taps("VIP")
    frank.taps("❌ Cancel")  # ...the customer's own cancellation
    subscriptions.remove_expired(shop.bot.shop, now=moment(paid_until(61)))
    subscribes(frank, vip, "sub-3", paid_until(30))  # ...and a new subscription: the cancellation stays counted
    seller.taps_data(callback("sales"))
    assert "❌ cancellations: 1" in seller.last_text()
    subscribes(gina, vip, "sub-4", paid_until(30))
    seller.taps_data(callback("confirm_refund", purchase_of(shop, gina)))  # a refund, not a cancellation

    seller.taps_data(callback("sales"))
    report = seller.last_text()
    assert "Today: 5 sales · 930 ⭐\n🎁 free: 2 · granted: 1 · ↩️ refunds: 2" in report  # 80 + 100 + 3 × 250
    assert "30 days: 🔁 renewals: 1 · ❌ cancellations: 1" in report
    assert "Promo codes, 30 days: 1 sale · 120 ⭐ off list prices · 🎁 free: 1" in report
    seller.taps_data(callback("admin_product", course.id))
    assert "Sold: 2 · revenue 180 ⭐ · 🎁 free: 1 · granted: 1" in seller.last_text()

    _rows, machine, _book = exported(shop, seller)
    header, rows = machine[0], machine[1:]
    column = {name: header.index(name) for name in header}
    live_sales = [row for row in rows
                  if row[column["payment"]] == "Telegram Stars" and not row[column["refunded_at_utc"]]]
    assert len(live_sales) == 5 and sum(float(row[column["price_paid"]]) for row in live_sales) == 930
    assert [row[column["payment"]] for row in rows].count("free") == 2
    assert [row[column["payment"]] for row in rows].count("granted") == 1
    refunded = [row for row in rows if row[column["refunded_at_utc"]]]
    assert len(refunded) == 2 and {row[column["refunded_by"]] for row in refunded} == {"the seller"}
    assert [row[column["subscription_payment"]] for row in rows if row[column["kind"]] == "subscription"] == [
        "first payment", "renewal", "first payment", "first payment"]


def test_recent_purchases_and_a_purchase_show_gifts_and_refunds(shop, seller, alice, bob):
    course = shop.add_product("Course", price=450)
    bob.sends("/start " + gift_bought(alice, course))
    seller.taps_data(callback("confirm_refund", 1))
    seller.taps_data(callback("recent_purchases", 0))
    assert seller.button_labels()[:2] == ["↩️ 🎁 #2 Course — gift", "↩️ 🎁 #1 Course — 450 ⭐"]  # theirs goes too
    assert "🎁 = a gift" in seller.last_text()
    seller.taps_data(callback("admin_purchase", 1))
    assert "↩️ Refunded: " in seller.last_text() and "UTC, by the seller" in seller.last_text()
    seller.taps_data(callback("admin_purchase", 2))
    assert "Received as a gift (bought in purchase #1): Alice (@alice) paid 450 ⭐" in seller.last_text()


def test_the_sale_alert_says_gift_and_the_claim_names_giver_and_recipient(shop, seller, alice, bob):
    course = shop.add_product("Course", price=450)
    bob.sends("/start " + gift_bought(alice, course))
    texts = admin_texts(shop)
    assert "New sale, 🎁 a gift: Course — 450 ⭐ (Telegram Stars) from Alice (@alice)" in texts
    assert "🎁 Gift claimed: Course, Alice (@alice) → Bob (@bob)" in texts


def test_a_product_sold_counts_sales_only_with_free_and_granted_apart(shop, seller, alice, bob):
    course = shop.add_product("Course", price=100)
    alice.taps_data(callback("buy", course.id))
    alice.pays()
    bob.sends("/start")  # someone who never opened the bot gets a grant when they do, and counts only then
    seller.sends(f"/grant {bob.id} {course.id}")
    seller.sends("/admin")
    seller.taps_data(callback("admin_product", course.id))
    assert "Sold: 1 · revenue 100 ⭐ · 🎁 free: 0 · granted: 1" in seller.last_text()


# ---------------------------------------------------------------------------
# 📈 The sparkline
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("values, line", [
    ([0] * 30, "▁" * 30),
    ([0] * 29 + [500], "▁" * 29 + "█"),
    ([1, 2, 3, 4, 5, 6, 7, 0], "▂▃▄▅▆▇█▁"),
    ([1, 1000], "▂█"),  # a small day is never drawn as an empty one
], ids=["no revenue", "one big day", "rising", "a small day"])
def test_a_sparkline_draws_each_day_against_the_best(values, line):
    assert sales.sparkline(values) == line


def test_the_sales_screen_shows_30_days_of_revenue_oldest_first(shop, seller):
    product = shop.add_product("Course", price=100)
    with shop.Session() as session:
        buyer = User(telegram_id=1001, first_name="Alice")
        session.add(buyer)
        session.flush()
        now = utcnow()
        for days_ago, price, kind, refunded in [(29, 100, "stars", False), (10, 700, "stars", False),
                                               (10, 100, "stars", True), (3, 0, "free", False),
                                               (0, 50, "stars", False), (31, 900, "stars", False)]:
            session.add(Purchase(user_id=buyer.id, product_id=product.id, price=price, payment_type=kind,
                                 created_at=now - timedelta(days=days_ago),
                                 refunded_at=now if refunded else None))
        session.commit()
    seller.taps_data(callback("sales"))
    line = "▂" + "▁" * 18 + "█" + "▁" * 9 + "▂"  # day 29 ago, 10 ago (refunds left out), today; 31 ago is out
    assert f"📈 30 days: {line} · best day 700 ⭐" in seller.last_text()
    assert seller.last_text().index("All time") < seller.last_text().index("📈")


def test_the_sales_screen_without_revenue_draws_a_flat_line_in_russian(shop):
    ivan = Person(shop, ADMIN_ID, "Иван", language_code="ru")
    ivan.taps_data(callback("sales"))
    assert f"📈 30 дней: {'▁' * 30} · лучший день 0 ⭐" in ivan.last_text()
