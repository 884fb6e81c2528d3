"""📅 Subscriptions (subscriptions.py, channels.py): monthly access to a channel, paid in Stars."""
from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from telebot import types

import ledger
import shopbot
import subscriptions
from conftest import (
    ADMIN_ID,
    CHANNEL_ID,
    Person,
    ShopUnderTest,
    admin_texts,
    buttons,
    echoes_refunds_at_once,
    pays_link,
    refund_echo,
    start_adding_a_product,
    subscription_lands,
)
from ledger import check_ledger
from models import SUBSCRIPTION, Product, Purchase, Subscription
from shopkit import PAGE_SIZE, After, callback
from shopkit import bot as shopkit_bot

MONTH = 30 * 86400
OWNER = 7000


@pytest.fixture
def channel(shop):
    """A private channel where the bot is an admin allowed to invite and ban; its owner is a member too."""
    chat = shop.api.channels.add(CHANNEL_ID, "VIP signals", username="vipsignals")
    chat.members[OWNER] = "creator"
    return chat


@pytest.fixture
def vip(shop, channel):
    return shop.add_product("VIP signals", price=250, hidden="Welcome! Read the pinned rules.", kind=SUBSCRIPTION,
                            chat_id=channel.id, chat_title=channel.title)


def paid_until(days: int = 30) -> int:
    """A subscription_expiration_date, as Telegram sends it: Unix time."""
    return int(time.time()) + days * 86400


def moment(unix_time: int) -> datetime:
    return datetime.fromtimestamp(unix_time, UTC).replace(tzinfo=None)


def subscribes(person: Person, product, charge_id: str = "sub-1", expires: int | None = None) -> dict:
    """Tap 📅 Subscribe on the card and pay the invoice link it brings."""
    person.taps_data(callback("buy", product.id))
    link = buttons(person.last())[0]["url"]
    return pays_link(person, link, charge_id, expires or paid_until())


def in_the_channel(person: Person, product, charge_id: str = "sub-1") -> datetime:
    """Subscribe for 30 days and join through the link the shop sent; returns the paid-until moment."""
    expires = paid_until(30)
    subscribes(person, product, charge_id, expires)
    assert person.api.channels.joins(person, join_link(person)) == "approved"
    return moment(expires)


def opens_subscription(person: Person) -> None:
    person.sends("/purchases")
    person.taps("📅 VIP signals")


def join_link(person: Person) -> str:
    """The URL of the latest 🔗 Join button the person was sent."""
    for message in reversed(person.api.messages(person.id)):
        for b in buttons(message):
            if "url" in b and "+link" in b["url"]:
                return b["url"]
    raise AssertionError("no join link")


def subscription_of(shop, person: Person) -> Subscription:
    with shop.Session() as session:
        return session.scalar(select(Subscription).join(Subscription.user).where(
            Subscription.product.has(kind=SUBSCRIPTION), Subscription.user.has(telegram_id=person.id)))


def calls_of(shop, method: str) -> list[dict]:
    return [c.params for c in shop.api.of(method)]


# ---------------------------------------------------------------------------
# The seller
# ---------------------------------------------------------------------------

def test_a_seller_adds_a_subscription_to_a_channel(shop, seller, channel, alice):
    shop.add_category("Clubs")
    start_adding_a_product(seller, "Clubs", kind="Subscription")
    assert "Which channel or group" in seller.last_text()
    seller.sends("@vipsignals")
    assert "name" in seller.last_text()
    seller.sends("VIP signals")
    assert "per month in Stars" in seller.last_text()
    for price, reason in (("20000", "1 to 10\u202f000 ⭐ a month"), ("0", "1 to 10\u202f000 ⭐ a month")):
        seller.sends(price)
        assert reason in seller.last_text()
    seller.sends("250")
    seller.sends("Daily signals")
    seller.sends("/skip")
    seller.sends("Welcome! Read the pinned rules.")
    assert "📅 250 ⭐ a month" in seller.last_text()
    seller.taps("Save")
    with shop.Session() as session:
        product = session.scalar(select(Product).where(Product.name == "VIP signals"))
        assert (product.kind, product.price, product.chat_id, product.chat_title) == (
            SUBSCRIPTION, 250, CHANNEL_ID, "VIP signals")
    assert "✏️ Kind" not in seller.button_labels()  # a subscription stays one
    assert "📅 VIP signals: 0 subscribers" in seller.last_text()
    alice.sends(f"/start p_{product.id}")
    assert "📅 250 ⭐ a month" in alice.last_text() and "💰" not in alice.last_text()  # not "💰 📅 250 ⭐"
    assert alice.button_labels()[0] == "📅 Subscribe — 250 ⭐ a month"


def test_a_forwarded_post_or_an_id_names_the_chat_too(shop, seller, channel):
    shop.add_category("Clubs")
    start_adding_a_product(seller, "Clubs", kind="Subscription")
    seller.sends_content(text="a post", forward_origin={"type": "channel", "date": 1, "message_id": 5,
                                                        "chat": channel.json()})
    assert "name" in seller.last_text()
    start_adding_a_product(seller, "Clubs", kind="Subscription")
    seller.sends(str(CHANNEL_ID))
    assert "name" in seller.last_text()


@pytest.mark.parametrize("change, explained", [
    (lambda chat: chat.rights.update(can_restrict_members=False), "I still need these administrator rights: ban users"),
    (lambda chat: chat.rights.update(can_invite_users=False, can_restrict_members=False),
     "rights: invite users via link, ban users"),
    (lambda chat: setattr(chat, "bot_status", "member"), "I am not an administrator of VIP signals"),
    (lambda chat: setattr(chat, "bot_status", "left"), "Add me to it as an administrator"),  # public, bot not in it
    (lambda chat: setattr(chat, "type", "group"), "not a channel or a supergroup"),
])
def test_a_missing_admin_right_is_explained_and_asked_again(shop, seller, channel, change, explained):
    shop.add_category("Clubs")
    start_adding_a_product(seller, "Clubs", kind="Subscription")
    change(channel)
    seller.sends("@vipsignals")
    assert explained in seller.last_text() and "send it again" in seller.last_text()
    channel.rights.update(can_invite_users=True, can_restrict_members=True)
    channel.bot_status, channel.type = "administrator", "channel"
    seller.sends("@vipsignals")  # fixed: the dialog goes on
    assert "name" in seller.last_text()


@pytest.mark.parametrize("sent", ["@nosuchchannel", "hello there", "-100999"])
def test_a_chat_the_bot_cannot_see_is_explained(shop, seller, channel, sent):
    shop.add_category("Clubs")
    start_adding_a_product(seller, "Clubs", kind="Subscription")
    seller.sends(sent)
    assert "cannot see that chat" in seller.last_text() or "@username" in seller.last_text()
    assert shop.api.calls_in_transaction == []


def test_a_card_shop_explains_that_subscriptions_need_stars(card_shop):
    seller = Person(card_shop, ADMIN_ID, "Seller")
    card_shop.add_category("Clubs")
    start_adding_a_product(seller, "Clubs", kind="Subscription")
    assert "Telegram bills subscriptions in Stars only" in seller.last_text()
    assert seller.button_labels() == ["⬅️ Back"]
    seller.sends("@vipsignals")  # no question was asked: this is a search, not an answer
    with card_shop.Session() as session:
        assert session.scalar(select(Product)) is None


def test_an_existing_product_cannot_become_a_subscription(shop, seller):
    product = shop.add_product("Guide")
    seller.taps_data(callback("edit_kind", product.id))
    assert not any("Subscription" in label for label in seller.button_labels())
    seller.taps_data(callback("choose_kind", product.id, 2, 0))  # a forged button
    with shop.Session() as session:
        assert session.get(Product, product.id).kind == "unlimited"


# ---------------------------------------------------------------------------
# The customer: subscribe, join, renew
# ---------------------------------------------------------------------------

def test_the_first_payment_delivers_a_join_link_that_admits_the_subscriber_only(shop, vip, channel, alice, bob,
                                                                                seller):
    alice.taps_data(callback("buy", vip.id))
    invoice = calls_of(shop, "createInvoiceLink")[-1]
    assert (invoice["subscription_period"], invoice["currency"]) == (2592000, "XTR")
    assert "provider_token" not in invoice
    assert "250 ⭐ a month" in alice.last_text() and buttons(alice.last())[0]["url"].startswith("https://t.me/$")

    answer = pays_link(alice, buttons(alice.last())[0]["url"], "sub-1", paid_until())

    assert answer["ok"] is True
    texts = alice.all_texts()
    assert "Thank you" in texts and "Welcome! Read the pinned rules." in texts and "Your own link" in texts
    link = join_link(alice)
    assert calls_of(shop, "createChatInviteLink")[-1]["creates_join_request"] is True
    assert shop.api.channels.joins(alice, link) == "approved"
    assert channel.members[alice.id] == "member"
    assert "Welcome to VIP signals" in alice.last_text()
    assert shop.api.channels.joins(bob, link) == "declined"  # the same link, forwarded
    assert bob.id not in channel.members
    assert "is for subscribers" in bob.last_text() and bob.button_labels() == ["📅 Subscribe"]
    assert shop.purchases() == [("alice", "VIP signals", 250, "stars")]
    assert "New sale" in admin_texts(shop)


def test_a_join_link_limited_to_one_member_admits_nobody_else(shop, channel, alice, bob):
    """The FakeApi keeps member_limit as Telegram does (the shop uses join requests, which are stricter)."""
    link = shop.api.channels.new_link(channel, {"member_limit": 1})["invite_link"]
    assert shop.api.channels.joins(alice, link) == "joined"
    assert shop.api.channels.joins(bob, link) == "limit_reached"


def test_a_renewal_extends_the_date_silently_and_once(shop, vip, alice):
    subscribes(alice, vip, expires=paid_until(30))
    seen = len(alice.api.messages(alice.id))

    subscription_lands(alice, 250, alice.payment["invoice_payload"], "sub-2", paid_until(60), first=False)
    alice.repeats_payment()  # Telegram delivers the renewal twice

    assert moment(paid_until(60)) - subscription_of(shop, alice).expires_at < timedelta(seconds=5)
    assert subscription_of(shop, alice).first_charge_id == "sub-1"
    assert len(alice.api.messages(alice.id)) == seen  # silently
    assert shop.purchases() == [("alice", "VIP signals", 250, "stars")] * 2
    with shop.Session() as session:
        assert all(p.delivered_at for p in session.scalars(select(Purchase)))  # nothing to deliver at a restart


def test_my_purchases_shows_each_subscription_with_its_status_and_date(shop, vip, alice):
    guide = shop.add_product("Guide", price=0)
    alice.taps_data(callback("buy", guide.id))
    expires = paid_until(30)
    subscribes(alice, vip, expires=expires)
    alice.sends("/purchases")
    date = f"{moment(expires):%Y-%m-%d}"
    assert alice.button_labels()[:2] == [f"📅 VIP signals · renews {date}", f"Guide · {time.strftime('%Y-%m-%d')}"]
    alice.taps("📅 VIP signals")
    assert f"Active · renews on {date}" in alice.last_text() and "250 ⭐ a month" in alice.last_text()
    alice.taps("Join")
    assert "Your own link" in alice.last_text()


def test_my_purchases_pages_a_customers_purchases_without_their_subscription_payments(shop, vip, alice):
    subscribes(alice, vip, expires=paid_until(30))
    subscription_lands(alice, 250, alice.payment["invoice_payload"], "sub-2", paid_until(60), first=False)
    for n in range(PAGE_SIZE):  # a page's worth of other purchases, and the subscription's two payments
        alice.taps_data(callback("buy", shop.add_product(f"Guide {n}", price=0).id))
    alice.sends("/purchases")
    # the subscription, the guides (each with its ⭐: a review), Back: no pager
    assert len(alice.button_labels()) == 1 + 2 * PAGE_SIZE + 1


def test_cancel_and_resume_call_edit_user_star_subscription(shop, vip, channel, alice):
    expires = in_the_channel(alice, vip)
    opens_subscription(alice)

    alice.taps("❌ Cancel")
    assert calls_of(shop, "editUserStarSubscription")[-1] == {
        "user_id": alice.id, "telegram_payment_charge_id": "sub-1", "is_canceled": True}
    assert "Cancelled · access until" in alice.last_text() and "access lasts until" in alice.last_toast()
    assert shop.api.channels.subscriptions["sub-1"]["canceled"] is True

    subscriptions.remove_expired(shop.bot.shop, now=expires - timedelta(minutes=1))
    assert channel.members[alice.id] == "member"  # cancelling keeps access until the paid date

    alice.taps("♻️ Resume")
    assert calls_of(shop, "editUserStarSubscription")[-1]["is_canceled"] is False
    assert "Active · renews on" in alice.last_text()
    assert shop.api.channels.subscriptions["sub-1"]["canceled"] is False


def test_a_cancelled_subscription_ends_on_its_date_without_grace(shop, vip, channel, alice):
    expires = in_the_channel(alice, vip)
    opens_subscription(alice)
    alice.taps("❌ Cancel")
    subscriptions.remove_expired(shop.bot.shop, now=expires + timedelta(minutes=1))
    assert alice.id not in channel.members


def test_telegram_refusing_a_cancel_changes_nothing(shop, vip, alice):
    subscribes(alice, vip)
    opens_subscription(alice)
    shop.api.fail("editUserStarSubscription", 400, "Bad Request: SUBSCRIPTION_NOT_FOUND")
    alice.taps("❌ Cancel")
    assert alice.last_toast() == "Telegram did not accept that right now. Please try again later."
    assert subscription_of(shop, alice).cancelled_at is None


def test_someone_elses_subscription_buttons_do_nothing(shop, vip, alice, bob):
    subscribes(alice, vip)
    subscription_id = subscription_of(shop, alice).id
    for action in ("subscription", "subscription_link", "cancel_subscription", "resume_subscription"):
        bob.taps_data(callback(action, subscription_id))
        assert bob.last_toast() == "This purchase is not available."
    assert calls_of(shop, "editUserStarSubscription") == []


def test_a_second_subscription_is_refused_at_pre_checkout(shop, vip, alice):
    subscribes(alice, vip)
    alice.taps_data(callback("buy", vip.id))
    assert "You are subscribed already" in alice.last_toast()
    link_payload = next(iter(shop.api.channels.invoice_links.values()))["payload"]
    answer = alice.pre_checkout(250, link_payload)
    assert answer["ok"] is False and "subscribed already" in answer["error_message"]


def test_two_subscriptions_paid_at_once_the_second_is_refunded_and_stopped(shop, vip, alice):
    alice.taps_data(callback("buy", vip.id))
    first_link = buttons(alice.last())[0]["url"]
    alice.taps_data(callback("buy", vip.id))
    second_link = buttons(alice.last())[0]["url"]
    invoice = shop.api.channels.invoice_links[second_link]
    assert alice.pre_checkout(250, invoice["payload"])["ok"] is True  # both sheets open, both allowed
    pays_link(alice, first_link, "sub-1", paid_until())
    subscription_lands(alice, 250, invoice["payload"], "sub-2", paid_until())

    assert calls_of(shop, "refundStarPayment")[-1]["telegram_payment_charge_id"] == "sub-2"
    assert calls_of(shop, "editUserStarSubscription")[-1] == {
        "user_id": alice.id, "telegram_payment_charge_id": "sub-2", "is_canceled": True}
    assert subscription_of(shop, alice).first_charge_id == "sub-1"
    assert "this second payment has been refunded" in alice.last_text()


def test_a_russian_customer_subscribes_in_russian(shop, vip):
    boris = Person(shop, 1003, "Борис", language_code="ru")
    boris.sends(f"/start p_{vip.id}")
    assert "📅 250 ⭐ в месяц" in boris.last_text()
    assert boris.button_labels()[0] == "📅 Подписаться — 250 ⭐ в месяц"
    subscribes(boris, vip)
    assert "Ваша личная ссылка" in boris.last_text()
    assert buttons(boris.last())[0]["text"] == "🔗 Вступить в чат «VIP signals»"


# ---------------------------------------------------------------------------
# Expiry, refunds, lost rights
# ---------------------------------------------------------------------------

def test_expiry_removes_the_member_and_tells_them_with_a_renew_button(shop, vip, channel, alice):
    expires = in_the_channel(alice, vip)

    assert subscriptions.remove_expired(shop.bot.shop, now=expires + timedelta(minutes=5)) == 0  # grace
    assert channel.members[alice.id] == "member"
    assert subscriptions.remove_expired(shop.bot.shop, now=expires + timedelta(hours=2)) == 1

    assert [c["user_id"] for c in calls_of(shop, "banChatMember")] == [alice.id]
    assert calls_of(shop, "unbanChatMember")[-1] == {"chat_id": CHANNEL_ID, "user_id": alice.id,
                                                     "only_if_banned": True}
    assert alice.id not in channel.members  # out, and not banned: she may come back after paying
    assert "Your subscription to VIP signals has ended" in alice.last_text()
    assert alice.button_labels() == ["♻️ Renew"]
    assert subscriptions.remove_expired(shop.bot.shop, now=expires + timedelta(hours=3)) == 0  # done once
    alice.taps("Renew")
    assert calls_of(shop, "createInvoiceLink")[-1]["subscription_period"] == 2592000


def test_expiry_never_removes_admins_or_members_who_joined_another_way(shop, vip, channel, alice, bob):
    channel.members[alice.id] = "administrator"
    channel.members[bob.id] = "member"  # added by the owner, before subscribing
    expires = paid_until(30)
    subscribes(alice, vip, "sub-a", expires)
    subscribes(bob, vip, "sub-b", expires)
    subscriptions.remove_expired(shop.bot.shop, now=moment(expires) + timedelta(days=1))
    assert channel.members == {OWNER: "creator", alice.id: "administrator", bob.id: "member"}
    assert calls_of(shop, "banChatMember") == []
    assert "has ended" in alice.last_text() and "has ended" in bob.last_text()


def test_after_a_restart_the_expiry_check_catches_up(shop, vip, channel, alice, config, api):
    expires = in_the_channel(alice, vip)
    restarted = ShopUnderTest(shopbot.create_bot(config, threaded=False), api)  # the bot was down meanwhile
    try:
        assert subscriptions.remove_expired(restarted.bot.shop, now=expires + timedelta(days=3)) == 1
    finally:
        restarted.close()
    assert alice.id not in channel.members


def test_a_renewal_after_access_ended_lets_them_in_again(shop, vip, channel, alice):
    expires = in_the_channel(alice, vip)
    subscriptions.remove_expired(shop.bot.shop, now=expires + timedelta(hours=2))
    assert alice.id not in channel.members

    subscription_lands(alice, 250, alice.payment["invoice_payload"], "sub-2", paid_until(60), first=False)

    assert "Your own link" in alice.last_text()
    assert shop.api.channels.joins(alice, join_link(alice)) == "approved"


def test_a_refund_by_the_seller_removes_access_at_once(shop, vip, channel, alice, seller):
    in_the_channel(alice, vip)
    seller.taps_data(callback("confirm_refund", 1))
    assert calls_of(shop, "refundStarPayment")[-1]["telegram_payment_charge_id"] == "sub-1"
    assert alice.id not in channel.members
    assert calls_of(shop, "editUserStarSubscription")[-1]["is_canceled"] is True
    assert "was refunded, so your access to VIP signals has ended" in alice.last_text()
    assert subscription_of(shop, alice).ended_at is not None


@pytest.mark.parametrize("echo", ["after the answer", "before the answer"])
def test_a_subscription_the_seller_refunds_ends_once_whenever_the_echo_comes(shop, vip, channel, alice, seller,
                                                                             monkeypatch, echo):
    in_the_channel(alice, vip)
    if echo == "before the answer":
        echoes_refunds_at_once(monkeypatch, shop, alice)
    seller.taps_data(callback("confirm_refund", 1))
    refund_echo(alice, "sub-1", amount=250)
    assert [c["telegram_payment_charge_id"] for c in calls_of(shop, "editUserStarSubscription")] == ["sub-1"]
    assert alice.all_texts().count("was refunded, so your access to VIP signals has ended") == 1
    assert "Telegram has refunded" not in alice.all_texts() and "Telegram refunded" not in admin_texts(shop)
    assert alice.id not in channel.members


def test_a_refund_by_telegram_removes_access_at_once(shop, vip, channel, alice, seller):
    in_the_channel(alice, vip)
    alice.feed("message", {"message_id": 99, "date": 1, "from": alice.user, "chat": {"id": alice.id, "type": "private"},
                           "refunded_payment": {"currency": "XTR", "total_amount": 250, "invoice_payload": "x",
                                                "telegram_payment_charge_id": "sub-1"}})
    assert alice.id not in channel.members
    assert "Telegram has refunded your payment" in alice.last_text()


def test_lost_rights_are_told_to_the_admins_once_and_change_nothing(shop, vip, channel, alice, seller):
    expires = in_the_channel(alice, vip)
    channel.rights["can_restrict_members"] = False
    later = expires + timedelta(hours=2)

    assert subscriptions.remove_expired(shop.bot.shop, now=later) == 0
    assert subscriptions.remove_expired(shop.bot.shop, now=later) == 0

    assert admin_texts(shop).count("I can no longer manage VIP signals") == 1
    assert "(the bot lacks the administrator rights it needs there)" in admin_texts(shop)
    assert subscription_of(shop, alice).ended_at is None and channel.members[alice.id] == "member"
    channel.rights["can_restrict_members"] = True  # the seller fixed it: the next check does the work
    assert subscriptions.remove_expired(shop.bot.shop, now=later) == 1
    assert alice.id not in channel.members


def test_a_removal_that_telegram_holds_back_is_tried_again(shop, vip, channel, alice):
    expires = in_the_channel(alice, vip)
    shop.api.fail("banChatMember", 429, "Too Many Requests: retry after 5", retry_after=5)
    later = expires + timedelta(hours=2)
    assert subscriptions.remove_expired(shop.bot.shop, now=later) == 0
    assert subscription_of(shop, alice).ended_at is None and channel.members[alice.id] == "member"
    assert subscriptions.remove_expired(shop.bot.shop, now=later) == 1
    assert alice.id not in channel.members


def test_a_join_link_that_cannot_be_made_is_explained(shop, vip, channel, alice, seller):
    channel.rights["can_invite_users"] = False
    subscribes(alice, vip)
    assert "cannot make your link to VIP signals right now" in alice.last_text()
    assert "I can no longer manage VIP signals" in admin_texts(shop)
    assert subscription_of(shop, alice).invite_link is None
    channel.rights["can_invite_users"] = True
    opens_subscription(alice)
    alice.taps("Join")
    assert shop.api.channels.joins(alice, join_link(alice)) == "approved"


def test_join_requests_through_other_links_are_left_to_the_chats_admins(shop, channel, alice):
    record = {"invite_link": "https://t.me/+owners", "creator": {"id": OWNER, "is_bot": False, "first_name": "O"},
              "creates_join_request": True, "is_primary": False, "is_revoked": False, "member_limit": 0, "joined": []}
    channel.links[record["invite_link"]] = record
    assert shop.api.channels.joins(alice, record["invite_link"]) == "requested"
    assert calls_of(shop, "declineChatJoinRequest") == [] and calls_of(shop, "approveChatJoinRequest") == []


# ---------------------------------------------------------------------------
# The ledger and the figures
# ---------------------------------------------------------------------------

def test_a_renewal_found_only_in_telegrams_ledger_extends_the_date(shop, vip, alice):
    subscribes(alice, vip, expires=paid_until(30))
    payload = alice.payment["invoice_payload"]
    shop.api.ledger_payment(alice, 250, payload, "sub-1")
    renewal_date = int(time.time()) + 29 * 86400
    shop.api.star_transactions.append({"id": "sub-2", "amount": 250, "date": renewal_date, "source": {
        "type": "user", "transaction_type": "invoice_payment", "user": alice.user, "invoice_payload": payload,
        "subscription_period": 2592000}})
    seen = len(alice.api.messages(alice.id))
    check = ledger_read_after(shop, renewal_date)
    assert check.recorded == ["sub-2"]
    assert moment(renewal_date + MONTH) == subscription_of(shop, alice).expires_at
    assert len(shop.purchases()) == 2
    assert len(alice.api.messages(alice.id)) == seen  # a renewal delivers nothing, so it needs no apology


def test_a_first_payment_found_only_in_telegrams_ledger_starts_the_subscription(shop, vip, alice):
    alice.sends("/start")
    paid = int(time.time()) - 3600
    shop.api.star_transactions.append({"id": "sub-1", "amount": 250, "date": paid, "source": {
        "type": "user", "transaction_type": "invoice_payment", "user": alice.user,
        "invoice_payload": f"shop1:{vip.id}:{alice.id}", "subscription_period": 2592000}})
    assert check_ledger(shop.bot.shop).recorded == ["sub-1"]
    assert subscription_of(shop, alice).expires_at == moment(paid + MONTH)
    assert "reached the shop only now" in alice.all_texts() and "Your own link" in alice.last_text()


def test_the_product_screen_lists_subscribers_and_sales_shows_the_figures(shop, vip, alice, bob, seller):
    expires = paid_until(30)
    subscribes(alice, vip, "sub-a", expires)
    subscribes(bob, vip, "sub-b", expires)
    subscription_lands(bob, 250, bob.payment["invoice_payload"], "sub-b2", paid_until(60), first=False)
    bob.sends("/purchases")
    bob.taps("📅 VIP signals")
    bob.taps("❌ Cancel")

    seller.taps_data(callback("admin_product", vip.id))
    text = seller.last_text()
    date = f"{moment(expires):%Y-%m-%d}"
    assert "📅 VIP signals: 2 subscribers" in text
    assert f"• Alice (@alice) — ✅ Active · renews on {date}" in text
    assert f"• Bob (@bob) — ⏸ Cancelled · access until {moment(paid_until(60)):%Y-%m-%d}" in text

    seller.taps_data(callback("sales"))
    assert "📅 Subscriptions: 2 subscribers · 250 ⭐ a month" in seller.last_text()
    assert "🔁 renewals: 1 · ❌ cancellations: 1" in seller.last_text()
    assert "3 sales · 750 ⭐" in seller.last_text()  # every payment is a sale


def test_many_subscribers_page_through_all_subscribers(shop, vip, seller):
    for n in range(12):
        subscribes(Person(shop, 2000 + n, f"Member {n}"), vip, f"sub-{n}")
    seller.taps_data(callback("admin_product", vip.id))
    assert "…and 2 more" in seller.last_text()
    seller.taps("All subscribers")
    assert seller.last_text().count("• Member") == 12


def test_a_subscription_cannot_be_granted(shop, vip, seller, alice):
    alice.sends("/start")
    seller.sends(f"/grant {alice.id} {vip.id}")
    assert "cannot be granted" in seller.last_text()
    assert shop.purchases() == []


def test_the_expiry_check_runs_in_the_background_and_survives_errors(shop, monkeypatch, caplog):
    runs, third_turn, parked = [], threading.Event(), threading.Event()  # parked: never set

    def remove_expired(shop):
        runs.append(1)
        if len(runs) == 1:
            raise RuntimeError("database gone")
        if len(runs) == 3:
            third_turn.set()
        return 0

    monkeypatch.setattr(subscriptions, "remove_expired", remove_expired)
    # After its third turn the job's thread waits for good (a daemon), rather than spin through the tests after.
    monkeypatch.setattr(shop.bot.shop, "sleep", lambda seconds: parked.wait() if third_turn.is_set() else None)
    shop.bot.shop.start_repeating(subscriptions.check_expiry, subscriptions.CHECK_EVERY)  # as register() starts it
    assert third_turn.wait(10)
    assert len(runs) == 3 and "check_expiry failed; trying again in 60 seconds" in caplog.text


def test_the_shop_asks_telegram_for_join_requests():
    assert "chat_join_request" in shopkit_bot.ALLOWED_UPDATES
    assert "chat_member" not in shopkit_bot.ALLOWED_UPDATES


# ---------------------------------------------------------------------------
# What went wrong once, and must not again
# ---------------------------------------------------------------------------

def test_a_removal_whose_unban_failed_is_unbanned_at_the_next_check(shop, vip, channel, alice):
    expires = in_the_channel(alice, vip)
    shop.api.fail("unbanChatMember", 429, "Too Many Requests: retry after 5", retry_after=5)
    later = expires + timedelta(hours=2)
    assert subscriptions.remove_expired(shop.bot.shop, now=later) == 0  # banned, but not let go: not closed
    assert channel.members[alice.id] == "kicked" and subscription_of(shop, alice).ended_at is None

    assert subscriptions.remove_expired(shop.bot.shop, now=later) == 1

    assert alice.id not in channel.members  # out, and free to come back
    subscription_lands(alice, 250, alice.payment["invoice_payload"], "sub-2", paid_until(60), first=False)
    assert shop.api.channels.joins(alice, join_link(alice)) == "approved"


def test_in_the_hour_of_grace_the_subscription_is_still_live(shop, vip, channel, alice):
    subscribes(alice, vip, "sub-1", int(time.time()) - 60)  # the paid time ended a minute ago; the renewal is due
    link = join_link(alice)
    alice.taps_data(callback("buy", vip.id))
    assert "You are subscribed already" in alice.last_toast()
    link_payload = next(iter(shop.api.channels.invoice_links.values()))["payload"]
    assert alice.pre_checkout(250, link_payload)["ok"] is False  # no second Telegram subscription
    assert shop.api.channels.joins(alice, link) == "approved"


def join_request_seen(shop, channel, person: Person) -> After:
    """The person asks to join through their link, and the shop decides to let them in (not yet done)."""
    link = join_link(person)
    channel.requests[person.id] = link
    request = types.ChatJoinRequest.de_json({
        "chat": channel.json(), "from": person.user, "user_chat_id": person.id, "date": 1,
        "invite_link": {k: v for k, v in channel.links[link].items() if k != "joined"}})
    with shop.Session() as session:
        admit = subscriptions.on_join_request(shop.bot.shop, request, session, "en")
    assert isinstance(admit, After) and admit.function is subscriptions.admit
    return admit


def test_a_join_approved_as_a_refund_lands_is_undone(shop, vip, channel, alice, seller):
    subscribes(alice, vip)
    admit = join_request_seen(shop, channel, alice)
    seller.taps_data(callback("confirm_refund", 1))  # between the shop's look and Telegram's approval
    admit(shop.bot.shop)
    assert alice.id not in channel.members
    assert subscription_of(shop, alice).ended_at is not None


def test_a_join_approved_as_the_expiry_lands_is_removed_at_the_next_check(shop, vip, channel, alice, monkeypatch):
    expires = paid_until(30)
    subscribes(alice, vip, expires=expires)
    admit = join_request_seen(shop, channel, alice)
    close = subscriptions.close
    # Telegram approves while the expiry check, which found her outside, is closing her subscription.
    monkeypatch.setattr(subscriptions, "close", lambda shop, subscription: (admit(shop),
                                                                             close(shop, subscription))[1])
    later = moment(expires) + timedelta(hours=2)
    subscriptions.remove_expired(shop.bot.shop, now=later)
    monkeypatch.setattr(subscriptions, "close", close)
    assert subscriptions.remove_expired(shop.bot.shop, now=later) == 1
    assert alice.id not in channel.members


@pytest.mark.parametrize("method", ["createChatInviteLink", "approveChatJoinRequest"])
@pytest.mark.parametrize("code, description", [(429, "Too Many Requests: retry after 3"),
                                               (502, "Bad Gateway")])
def test_flood_control_or_a_hiccup_is_waited_out_and_not_called_lost_rights(shop, vip, channel, alice, seller,
                                                                            method, code, description):
    shop.api.fail(method, code, description, retry_after=3 if code == 429 else None, times=2)
    subscribes(alice, vip)
    assert shop.api.channels.joins(alice, join_link(alice)) == "approved"
    assert "no longer manage" not in admin_texts(shop)


def test_an_approval_telegram_refuses_for_another_reason_is_not_called_lost_rights(shop, vip, channel, alice,
                                                                                    seller):
    subscribes(alice, vip)
    shop.api.fail("approveChatJoinRequest", 400, "Bad Request: HIDE_REQUESTER_MISSING")
    assert shop.api.channels.joins(alice, join_link(alice)) == "requested"
    assert "no longer manage" not in admin_texts(shop)
    channel.rights["can_invite_users"] = False  # now it is lost: the admins hear it, the once a day not used up
    assert shop.api.channels.joins(alice, join_link(alice)) == "requested"
    assert "I can no longer manage VIP signals" in admin_texts(shop)


def test_a_second_product_for_the_same_chat_keeps_its_subscriber_in(shop, channel, alice):
    """A seller may sell a month and a promotion for one channel: ending one must not take out a payer of the other."""
    monthly, promo = (shop.add_product(name, price=price, hidden="Hi", kind=SUBSCRIPTION, chat_id=channel.id,
                                       chat_title=channel.title) for name, price in (("VIP monthly", 250),
                                                                                    ("VIP promo", 200)))
    soon, later = paid_until(1), paid_until(30)
    subscribes(alice, monthly, "sub-m", soon)
    assert shop.api.channels.joins(alice, join_link(alice)) == "approved"
    subscribes(alice, promo, "sub-p", later)

    assert subscriptions.remove_expired(shop.bot.shop, now=moment(soon) + timedelta(hours=2)) == 1
    assert channel.members[alice.id] == "member"
    assert "You stay in VIP signals through your other subscription" in alice.last_text()

    assert subscriptions.remove_expired(shop.bot.shop, now=moment(later) + timedelta(hours=2)) == 1
    assert alice.id not in channel.members  # the other one ended too: out


def test_one_network_drop_on_the_join_link_is_tried_again(shop, vip, channel, alice):
    waits = []
    shop.bot.shop.sleep = waits.append
    shop.api.drop_connection("createChatInviteLink")
    subscribes(alice, vip)
    assert waits == [1]
    assert shop.api.channels.joins(alice, join_link(alice)) == "approved"


def test_a_network_drop_on_the_join_link_still_delivers_and_tells_the_seller(shop, vip, channel, alice, seller):
    shop.api.drop_connection("createChatInviteLink", times=3)  # down for every try
    subscribes(alice, vip)
    assert "Welcome! Read the pinned rules." in alice.all_texts()
    assert "cannot make your link to VIP signals right now" in alice.last_text()
    assert "New sale" in admin_texts(shop)
    with shop.Session() as session:
        assert session.scalar(select(Purchase.delivered_at)) is not None  # nothing to deliver again at a restart
    opens_subscription(alice)
    alice.taps("Join")  # the link, made now
    assert shop.api.channels.joins(alice, join_link(alice)) == "approved"


def pays_twice(shop, alice, vip, channel) -> dict:
    """Two payment sheets open at once, both paid, and the automatic refund of the second fails: the admins are
    asked to refund it. Returns the second invoice."""
    alice.taps_data(callback("buy", vip.id))
    first_link = buttons(alice.last())[0]["url"]
    alice.taps_data(callback("buy", vip.id))
    second = shop.api.channels.invoice_links[buttons(alice.last())[0]["url"]]
    assert alice.pre_checkout(250, second["payload"])["ok"] is True
    pays_link(alice, first_link, "sub-1", paid_until())
    assert shop.api.channels.joins(alice, join_link(alice)) == "approved"
    shop.api.fail("refundStarPayment", 500, "Internal Server Error")
    subscription_lands(alice, 250, second["payload"], "sub-2", paid_until())
    return second


def test_refunding_the_second_payment_keeps_the_live_subscription(shop, vip, channel, alice, seller):
    pays_twice(shop, alice, vip, channel)
    assert "provider" not in admin_texts(shop)  # a Stars payment: refunded here, not in a provider's dashboard
    assert "Please refund purchase #2 here" in admin_texts(shop)
    seller.taps("🧾 #2")
    assert "it waits for a refund" in seller.last_text()
    seller.taps_data(callback("sales"))
    assert "🔁 renewals: 0" in seller.last_text()  # a second subscription is not a renewal
    seller.taps_data(callback("admin_purchase", 2))
    seller.taps("Refund")
    seller.taps("Yes, refund")
    assert calls_of(shop, "refundStarPayment")[-1]["telegram_payment_charge_id"] == "sub-2"
    assert subscription_of(shop, alice).ended_at is None and channel.members[alice.id] == "member"
    assert shop.api.channels.subscriptions["sub-1"]["canceled"] is False
    assert shop.api.channels.subscriptions["sub-2"]["canceled"] is True  # the second renews no more


def test_a_refund_of_the_second_payment_found_in_the_ledger_keeps_the_live_subscription(shop, vip, channel, alice):
    second = pays_twice(shop, alice, vip, channel)
    for charge in ("sub-1", "sub-2"):
        shop.api.ledger_payment(alice, 250, second["payload"], charge)
    shop.api.ledger_refund(alice, 250, "sub-2")  # Telegram refunded it after all
    check_ledger(shop.bot.shop)
    assert subscription_of(shop, alice).ended_at is None and channel.members[alice.id] == "member"



def ledger_read_after(shop, paid: int):
    """Telegram's ledger read once a payment made at ``paid`` (a Unix time, maybe ahead) is due: its update never
    came in ledger.UPDATE_GRACE."""
    return check_ledger(shop.bot.shop, now=paid + ledger.UPDATE_GRACE)


def ledger_subscription_payment(shop, person: Person, product, charge_id: str, paid: int) -> None:
    """A subscription payment in Telegram's ledger only (the update never reached the shop)."""
    shop.api.channels.subscriptions.setdefault(charge_id, {"user": person.id, "canceled": False})
    shop.api.star_transactions.append({"id": charge_id, "amount": 250, "date": paid, "source": {
        "type": "user", "transaction_type": "invoice_payment", "user": person.user,
        "invoice_payload": f"shop1:{product.id}:{person.id}", "subscription_period": MONTH}})


def test_a_new_subscription_found_only_in_the_ledger_after_the_last_one_ended_is_the_one_cancelled(shop, vip,
                                                                                                  channel, alice):
    expires = in_the_channel(alice, vip)
    opens_subscription(alice)
    alice.taps("❌ Cancel")
    subscriptions.remove_expired(shop.bot.shop, now=expires + timedelta(minutes=1))
    shop.api.ledger_payment(alice, 250, alice.payment["invoice_payload"], "sub-1")
    ledger_subscription_payment(shop, alice, vip, "sub-9", int(time.time()) + 60)  # subscribed again

    assert ledger_read_after(shop, int(time.time()) + 60).recorded == ["sub-9"]

    assert subscription_of(shop, alice).first_charge_id == "sub-9"
    opens_subscription(alice)
    alice.taps("❌ Cancel")
    assert shop.api.channels.subscriptions["sub-9"]["canceled"] is True


def test_a_second_subscription_found_only_in_the_ledger_is_stopped_and_left_to_the_admins_to_refund(shop, vip,
                                                                                                      seller, alice):
    subscribes(alice, vip, "sub-1", paid_until(30))
    shop.api.ledger_payment(alice, 250, alice.payment["invoice_payload"], "sub-1")
    ledger_subscription_payment(shop, alice, vip, "sub-2", int(time.time()) + 60)  # a second sheet, paid too

    ledger_read_after(shop, int(time.time()) + 60)

    assert calls_of(shop, "refundStarPayment") == []  # the ledger never refunds by itself (ledger.py)
    assert "cannot honour" in seller.last_text()
    assert shop.api.channels.subscriptions["sub-2"]["canceled"] is True
    assert subscription_of(shop, alice).first_charge_id == "sub-1"
    assert moment(paid_until(30)) - subscription_of(shop, alice).expires_at < timedelta(seconds=5)  # unchanged


def test_a_refunded_renewal_found_only_in_the_ledger_stops_the_renewals_and_ends_access(shop, vip, channel, alice):
    expires = in_the_channel(alice, vip)
    shop.api.ledger_payment(alice, 250, alice.payment["invoice_payload"], "sub-1")
    ledger_subscription_payment(shop, alice, vip, "sub-2", int(expires.replace(tzinfo=UTC).timestamp()))
    shop.api.ledger_refund(alice, 250, "sub-2")

    ledger_read_after(shop, int(expires.replace(tzinfo=UTC).timestamp()))

    assert shop.api.channels.subscriptions["sub-1"]["canceled"] is True
    assert alice.id not in channel.members and subscription_of(shop, alice).ended_at is not None
    assert "Telegram has refunded your payment" in alice.all_texts()


@pytest.mark.parametrize("refusal", [
    lambda shop, channel: channel.rights.update(can_restrict_members=False),
    lambda shop, channel: shop.api.fail("getChatMember", 429, "Too Many Requests: retry after 5", retry_after=5),
], ids=["lost rights", "flood control"])
def test_a_chat_that_refuses_a_removal_is_left_alone_until_the_next_check(shop, vip, channel, alice, bob, refusal):
    expires = paid_until(30)
    for person in (alice, bob):
        subscribes(person, vip, f"sub-{person.id}", expires)
        assert shop.api.channels.joins(person, join_link(person)) == "approved"
    refusal(shop, channel)
    asked = len(calls_of(shop, "getChatMember"))
    later = moment(expires) + timedelta(hours=2)

    assert subscriptions.remove_expired(shop.bot.shop, now=later) == 0
    assert len(calls_of(shop, "getChatMember")) == asked + 1  # not once more for each subscriber there

    channel.rights["can_restrict_members"] = True
    assert subscriptions.remove_expired(shop.bot.shop, now=later) == 2
