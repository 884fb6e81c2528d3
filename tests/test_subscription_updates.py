"""📅 Telegram's word on a subscription (Bot API 10.2's ``subscription`` update), and the reminder before one ends."""
from __future__ import annotations

import time
from datetime import timedelta

from sqlalchemy import select

import shopbot
import subscriptions
import test_subscriptions
from checkout import invoice_payload
from conftest import Person, ShopUnderTest, buttons, pays_link, subscription_lands
from models import Purchase
from purchases import AUTO
from shopkit import bot as shopkit_bot
from shopkit import callback
from test_subscriptions import calls_of, moment, opens_subscription, paid_until, subscribes, subscription_of

channel, vip = test_subscriptions.channel, test_subscriptions.vip  # the fixtures: a channel, a 📅 product for it


def telegram_says(person: Person, product, state: str, payload: str | None = None) -> None:
    """Telegram's ``subscription`` update: the customer cancelled or re-enabled it, or a renewal failed."""
    person.feed("subscription", {"user": person.user, "invoice_payload": payload or invoice_payload(product.id,
                                                                                                  person.id),
                                 "state": state})


def soon(hours: int = 2) -> int:
    """A paid date a few hours away: when Telegram tries to charge the renewal."""
    return int(time.time()) + hours * 3600


def renewal_lands(person: Person, product, charge_id: str, expires: int) -> None:
    subscription_lands(person, 250, invoice_payload(product.id, person.id), charge_id, expires, first=False)


def messages_to(person: Person) -> int:
    return len(person.api.messages(person.id))


# ---------------------------------------------------------------------------
# canceled / active
# ---------------------------------------------------------------------------

def test_a_cancel_in_telegram_shows_at_once_in_my_purchases_the_subscribers_and_the_figures(shop, vip, alice,
                                                                                             seller):
    expires = paid_until(30)
    subscribes(alice, vip, expires=expires)
    telegram_says(alice, vip, "canceled")
    cancelled_at = subscription_of(shop, alice).cancelled_at
    telegram_says(alice, vip, "canceled")  # Telegram repeats it: nothing more happens

    assert subscription_of(shop, alice).cancelled_at == cancelled_at is not None
    date = f"{moment(expires):%Y-%m-%d}"
    opens_subscription(alice)
    assert f"Cancelled · access until {date}" in alice.last_text()
    assert "only you can turn it back on, there: Settings → My Stars" in alice.last_text()
    assert not any("Resume" in b or "Cancel" in b for b in alice.button_labels())  # the bot could not
    seller.taps_data(callback("admin_product", vip.id))
    assert f"• Alice (@alice) — ⏸ Cancelled · access until {date}" in seller.last_text()
    seller.taps_data(callback("sales"))
    assert "❌ cancellations: 1" in seller.last_text()
    assert calls_of(shop, "editUserStarSubscription") == []


def test_re_enabled_in_telegram_renews_again_and_shows_so(shop, vip, alice):
    subscribes(alice, vip)
    telegram_says(alice, vip, "canceled")
    assert subscription_of(shop, alice).cancelled_at is not None
    telegram_says(alice, vip, "active")
    telegram_says(alice, vip, "active")
    assert subscription_of(shop, alice).cancelled_at is None
    opens_subscription(alice)
    assert "Active · renews on" in alice.last_text() and "❌ Cancel" in alice.button_labels()


def test_a_cancel_after_the_renewal_payment_keeps_the_new_date_and_the_cancel(shop, vip, alice):
    subscribes(alice, vip, expires=paid_until(1))
    renewal_lands(alice, vip, "sub-1-r", paid_until(31))
    telegram_says(alice, vip, "canceled")
    subscription = subscription_of(shop, alice)
    assert subscription.cancelled_at is not None and subscription.cancelled_by == "user"
    assert abs(subscription.expires_at - moment(paid_until(31))) < timedelta(seconds=5)


def test_a_renewal_paid_before_the_cancel_but_heard_after_it_leaves_it_cancelled(shop, vip, alice):
    subscribes(alice, vip, expires=paid_until(1))
    telegram_says(alice, vip, "canceled")
    renewal_lands(alice, vip, "sub-1-r", paid_until(31))  # charged before she cancelled; its update overtaken
    subscription = subscription_of(shop, alice)
    assert subscription.cancelled_at is not None  # Telegram charges nothing more: it stays cancelled
    assert abs(subscription.expires_at - moment(paid_until(31))) < timedelta(seconds=5)  # paid: access goes on


def test_a_state_for_a_payload_the_shop_does_not_know_is_logged_and_ignored(shop, vip, alice, bob, caplog):
    subscribes(alice, vip)
    seen = messages_to(bob)
    telegram_says(bob, vip, "failed")  # no subscription of his
    telegram_says(alice, vip, "canceled", payload="someone-elses-bot:1:2")
    telegram_says(alice, vip, "canceled", payload=invoice_payload(vip.id + 99, alice.id))
    assert caplog.text.count("Ignored a subscription update") == 3
    assert subscription_of(shop, alice).cancelled_at is None and messages_to(bob) == seen


# ---------------------------------------------------------------------------
# failed
# ---------------------------------------------------------------------------

def test_a_failed_renewal_reaches_the_customer_at_once_once_and_the_figures(shop, vip, channel, alice, seller):
    expires = soon()
    subscribes(alice, vip, expires=expires)
    seen = messages_to(alice)
    telegram_says(alice, vip, "failed")
    telegram_says(alice, vip, "failed")  # repeated: said once

    assert messages_to(alice) == seen + 1
    told = alice.last()
    assert "could not renew your subscription to VIP signals" in told["text"] and "Top up your Stars" in told["text"]
    assert [b["text"] for b in buttons(told)] == ["♻️ Renew"]
    seller.taps_data(callback("sales"))
    assert "⚠️ failed renewals: 1" in seller.last_text()
    # Access lasts to the paid date, and the grace after it, as for any renewal.
    assert subscriptions.remove_expired(shop.bot.shop, now=moment(expires) + timedelta(minutes=30)) == 0
    assert subscriptions.remove_expired(shop.bot.shop, now=moment(expires) + timedelta(hours=2)) == 1


def test_after_a_failed_renewal_renew_brings_a_new_invoice(shop, vip, alice):
    subscribes(alice, vip, expires=soon())
    telegram_says(alice, vip, "failed")
    opens_subscription(alice)
    assert "Renewal failed" in alice.last_text()
    alice.taps_data(callback("buy", vip.id))  # ♻️ Renew
    assert "t.me/$invoice" in buttons(alice.last())[0]["url"]  # not "You are subscribed already"


def renews_after_a_failure(person: Person, product) -> int:
    """Subscribed ("sub-1"), Telegram could not renew it, and ♻️ Renew paid a new subscription ("sub-2");
    returns the new one's paid date."""
    subscribes(person, product, "sub-1", expires=soon())
    telegram_says(person, product, "failed")
    person.taps_data(callback("buy", product.id))  # ♻️ Renew
    expires = paid_until(30)
    pays_link(person, buttons(person.last())[0]["url"], "sub-2", expires)
    return expires


def test_renew_after_a_failure_cancels_the_old_subscription_with_telegram(shop, vip, alice):
    renews_after_a_failure(alice, vip)

    assert {"user_id": alice.id, "telegram_payment_charge_id": "sub-1",
            "is_canceled": True} in calls_of(shop, "editUserStarSubscription")
    assert shop.api.channels.subscriptions["sub-1"]["canceled"] is True  # Telegram charges it no more
    assert shop.api.channels.subscriptions["sub-2"]["canceled"] is False
    assert subscription_of(shop, alice).first_charge_id == "sub-2"


def test_a_late_renewal_of_the_replaced_subscription_is_refunded_once(shop, vip, channel, alice, seller):
    expires = renews_after_a_failure(alice, vip)
    seen = messages_to(alice)
    renewal_lands(alice, vip, "sub-1-late", soon() + 30 * 86400)  # she topped up: the old one charged after all
    renewal_lands(alice, vip, "sub-1-late", soon() + 30 * 86400)  # Telegram repeats the update

    assert [c["telegram_payment_charge_id"] for c in calls_of(shop, "refundStarPayment")] == ["sub-1-late"]
    assert messages_to(alice) == seen + 1
    assert "charged your old subscription to VIP signals late" in alice.last_text()
    assert seller.all_texts().count("late for their old subscription") == 1
    with shop.Session() as session:  # the shop's own refund, written down before Telegram was asked
        assert session.scalar(select(Purchase.refunded_by).where(Purchase.payment_id == "sub-1-late")) == AUTO
    assert calls_of(shop, "editUserStarSubscription")[-1] == {
        "user_id": alice.id, "telegram_payment_charge_id": "sub-1", "is_canceled": True}
    subscription = subscription_of(shop, alice)  # still the one live subscription, unchanged
    assert (subscription.first_charge_id, subscription.expires_at) == ("sub-2", moment(expires))
    assert subscription.ended_at is None and subscription.cancelled_at is None
    assert subscriptions.remove_expired(shop.bot.shop, now=moment(expires) - timedelta(days=1)) == 0
    opens_subscription(alice)
    assert "Active · renews on" in alice.last_text()


def test_a_failed_renewal_then_a_late_payment_renews_silently(shop, vip, alice):
    subscribes(alice, vip, expires=soon())
    seen = messages_to(alice)
    telegram_says(alice, vip, "failed")
    assert messages_to(alice) == seen + 1
    renewal_lands(alice, vip, "sub-1-late", soon() + 30 * 86400)  # she topped up: Telegram charged after all
    telegram_says(alice, vip, "failed")  # an old report, repeated: stale now
    assert messages_to(alice) == seen + 1
    opens_subscription(alice)
    assert "Active · renews on" in alice.last_text()


def test_a_failure_heard_after_the_payment_that_covered_it_is_stale(shop, vip, alice, bob):
    subscribes(alice, vip, "sub-a", expires=soon())
    renewal_lands(alice, vip, "sub-a-late", soon() + 30 * 86400)
    subscribes(bob, vip, "sub-b", expires=soon())  # the same, but no payment came: his failure is told
    seen = messages_to(alice)
    telegram_says(alice, vip, "failed")
    telegram_says(bob, vip, "failed")
    assert messages_to(alice) == seen and subscription_of(shop, alice).renewal_failed_at is None
    assert "could not renew" in bob.last_text()


# ---------------------------------------------------------------------------
# ♻️ Resume, or "turn it back on in Telegram"; the reminder
# ---------------------------------------------------------------------------

def test_the_shops_cancel_gets_resume_and_a_cancel_in_telegram_does_not(shop, vip, alice, bob):
    subscribes(alice, vip, "sub-a")
    opens_subscription(alice)
    alice.taps("❌ Cancel")
    assert "♻️ Resume" in alice.button_labels()

    subscribes(bob, vip, "sub-b")
    telegram_says(bob, vip, "canceled")
    bob.taps_data(callback("resume_subscription", subscription_of(shop, bob).id))  # an old ♻️ Resume button
    assert "turn it back on there" in bob.last_toast()
    assert [c["user_id"] for c in calls_of(shop, "editUserStarSubscription")] == [alice.id]  # never for Bob
    assert subscription_of(shop, bob).cancelled_at is not None


def test_once_a_subscription_cancelled_in_telegram_has_ended_it_offers_subscribe_again(shop, vip, alice):
    expires = paid_until(1)
    subscribes(alice, vip, expires=expires)
    telegram_says(alice, vip, "canceled")
    subscriptions.remove_expired(shop.bot.shop, now=moment(expires) + timedelta(minutes=1))
    opens_subscription(alice)
    assert "♻️ Subscribe again" in alice.button_labels()


def test_a_cancelled_subscription_is_reminded_three_days_before_it_ends_once(shop, vip, alice, bob, config, api):
    expires = paid_until(10)
    subscribes(alice, vip, "sub-a", expires=expires)
    opens_subscription(alice)
    alice.taps("❌ Cancel")
    subscribes(bob, vip, "sub-b", expires=expires)  # renews: no reminder
    before = moment(expires) - timedelta(days=4)
    assert subscriptions.remind_before_end(shop.bot.shop, now=before) == 0

    at = moment(expires) - timedelta(days=3)
    seen_bob = messages_to(bob)
    assert subscriptions.remind_before_end(shop.bot.shop, now=at) == 1
    reminder = alice.last()
    assert f"ends on {moment(expires):%Y-%m-%d}" in reminder["text"]
    assert [b["text"] for b in buttons(reminder)] == ["♻️ Resume"]
    assert messages_to(bob) == seen_bob

    restarted = ShopUnderTest(shopbot.create_bot(config, threaded=False), api)  # the reminder is written down
    try:
        assert subscriptions.remind_before_end(restarted.bot.shop, now=at + timedelta(hours=1)) == 0
    finally:
        restarted.close()
    alice.taps("♻️ Resume")
    assert "Active · renews on" in alice.last_text()
    assert subscriptions.remind_before_end(shop.bot.shop, now=at + timedelta(hours=2)) == 0


def test_a_subscription_cancelled_in_telegram_is_reminded_where_to_turn_it_back_on(shop, vip, alice):
    expires = paid_until(2)
    subscribes(alice, vip, expires=expires)
    telegram_says(alice, vip, "canceled")
    assert subscriptions.remind_before_end(shop.bot.shop) == 1
    assert "turn it back on there: Settings → My Stars" in alice.last_text() and not buttons(alice.last())


# ---------------------------------------------------------------------------
# The machinery: polled, and read as every other update is
# ---------------------------------------------------------------------------

def test_the_shop_asks_telegram_for_subscription_updates_and_reads_them_as_telegram_sends_them(shop, vip, alice):
    assert "subscription" in shopkit_bot.ALLOWED_UPDATES
    subscribes(alice, vip)
    raw = {"update_id": 9001, "subscription": {
        "user": alice.user, "invoice_payload": invoice_payload(vip.id, alice.id), "state": "canceled"}}
    assert shopkit_bot.hand_over(shop.bot, [raw], None) == 9002
    assert subscription_of(shop, alice).cancelled_by == "user"
