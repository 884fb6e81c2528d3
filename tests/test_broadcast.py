"""Broadcasts (broadcast.py)."""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

import broadcast
from conftest import (
    ADMIN_ID,
    Person,
    admin_texts,
)
from models import SUBSCRIPTION, Broadcast, Purchase, Subscription, User
from shopkit import config, utcnow

HERE = Path(__file__).resolve().parent.parent  # the project's root


def test_broadcast_reaches_everyone_and_reports_blocked_users(shop, seller, alice, bob):
    carol = Person(shop, 1003, "Carol")
    for person in (alice, bob, carol):
        person.sends("/start")
    seller.sends("/admin")
    seller.taps("Broadcast")
    seller.sends("🎉 New arrivals!")
    assert shop.api.of("copyMessage")  # the preview
    assert "To 3 people who started the bot, 0 of them buyers." in seller.last_text()  # not the seller: they have it
    shop.api.fail("copyMessage", 429, "Too Many Requests: retry after 1", retry_after=1)
    shop.api.fail("copyMessage", 403, "Forbidden: bot was blocked by the user")
    seller.taps("Send")
    shop.finish_background()
    assert "2 sent, 1 blocked the bot, 0 failed" in seller.last_text()
    with shop.Session() as session:
        blocked = session.scalars(select(User.telegram_id).where(User.is_blocked)).all()
    assert len(blocked) == 1
    # the preview, then 3 recipients, one of them tried twice because of the 429
    assert len(shop.api.of("copyMessage")) == 1 + 3 + 1
    assert [int(c.params["chat_id"]) for c in shop.api.of("copyMessage")].count(ADMIN_ID) == 1  # the preview


def start_broadcast(seller, message: str = "Sale today!") -> None:
    seller.sends("/admin")
    seller.taps("Broadcast")
    seller.sends(message)
    seller.taps("Send")


def copies_to(shop, person) -> int:
    return [int(c.params["chat_id"]) for c in shop.api.of("copyMessage")].count(person.id)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the kill, on purpose
def test_a_broadcast_killed_halfway_resumes_after_a_restart_without_writing_twice(shop, seller, monkeypatch):
    customers = [Person(shop, 2000 + n, f"C{n}") for n in range(6)]
    for customer in customers:
        customer.sends("/start")
    real_copy, calls = broadcast.copy_to, []

    def killed_after_two(*args):
        if len(calls) == 2:
            raise SystemExit  # kill -9: the thread stops dead, nothing after runs
        calls.append(args)
        return real_copy(*args)

    monkeypatch.setattr(broadcast, "copy_to", killed_after_two)
    start_broadcast(seller)
    shop.finish_background()
    assert [copies_to(shop, c) for c in customers] == [1, 1, 0, 0, 0, 0]
    monkeypatch.setattr(broadcast, "copy_to", real_copy)
    broadcast.resume_broadcasts(shop.bot.shop)  # the next start
    shop.finish_background()
    assert [copies_to(shop, c) for c in customers] == [1] * 6
    assert "6 sent, 0 blocked the bot, 0 failed" in admin_texts(shop)


def test_a_connection_error_is_retried_and_never_stops_the_broadcast(shop, seller):
    customers = [Person(shop, 2000 + n, f"C{n}") for n in range(5)]
    for customer in customers:
        customer.sends("/start")
    seller.sends("/admin")
    seller.taps("Broadcast")
    seller.sends("News")
    shop.api.drop_connection("copyMessage", times=2)  # one customer's copy fails twice, then goes
    shop.api.fail("copyMessage", 400, "Bad Request: chat not found")  # ...and another's for good
    seller.taps("Send")
    shop.finish_background()
    assert "4 sent, 0 blocked the bot, 1 failed" in seller.last_text()


def test_telegram_unwell_is_waited_out_longer_each_time(shop, seller, alice):
    alice.sends("/start")
    waits = []
    shop.bot.shop.sleep = waits.append
    seller.sends("/admin")
    seller.taps("Broadcast")
    seller.sends("News")
    shop.api.fail("copyMessage", 502, "Bad Gateway", times=2)
    seller.taps("Send")
    shop.finish_background()
    assert "1 sent, 0 blocked the bot, 0 failed" in seller.last_text()
    assert [wait for wait in waits if wait >= 1] == [1, 2]  # the pauses between sends are shorter


def test_the_report_arrives_and_the_next_broadcast_may_start_when_the_last_edit_fails(shop, seller, alice):
    alice.sends("/start")
    seller.sends("/admin")
    seller.taps("Broadcast")
    seller.sends("First")
    shop.api.fail("editMessageText", 400, "Bad Request: message to edit not found")
    seller.taps("Send")
    shop.finish_background()
    assert "1 sent, 0 blocked the bot, 0 failed" in seller.last_text()
    start_broadcast(seller, "Second")
    shop.finish_background()
    assert copies_to(shop, alice) == 2


def test_only_one_broadcast_at_a_time(shop, seller):
    with shop.Session() as session:  # one is under way
        session.add(Broadcast(admin_chat_id=ADMIN_ID, message_id=1))
        session.commit()
    seller.sends("/admin")
    seller.taps("Broadcast")
    seller.sends("Hello")
    seller.taps("Send")
    assert seller.last_toast() == "A broadcast is already running."


# ---------------------------------------------------------------------------
# The report, the audience named truly, part of the audience
# ---------------------------------------------------------------------------

def sent_to_admin(shop) -> list[str]:
    """The texts of the new messages the shop sent the seller (not edits)."""
    return [c.params["text"] for c in shop.api.of("sendMessage") if int(c.params["chat_id"]) == ADMIN_ID]


def test_the_final_report_is_a_new_message_not_only_an_edit(shop, seller, alice):
    alice.sends("/start")
    start_broadcast(seller)
    shop.finish_background()
    assert "Broadcast finished: 1 sent" in sent_to_admin(shop)[-1]  # a notification the seller hears
    assert "Broadcast: 1 of 1" in admin_texts(shop)  # the progress message shows the end too


def add_customers(shop, count: int, first: int = 5000) -> list[int]:
    """People who started the bot, added at once (their users.id in order)."""
    with shop.Session() as session:
        users = [User(telegram_id=first + n, first_name=f"C{n}") for n in range(count)]
        session.add_all(users)
        session.commit()
        return [user.id for user in users]


def add_purchase(shop, user_id: int, product_id: int, price: int = 25, refunded: bool = False,
                 payment_type: str = "stars") -> None:
    with shop.Session() as session:
        session.add(Purchase(user_id=user_id, product_id=product_id, price=price, payment_type=payment_type,
                             payment_id=f"ch-{user_id}-{product_id}" if price else None,
                             refunded_at=utcnow() if refunded else None))
        session.commit()


def test_the_preview_names_its_audience_truly(shop, seller):
    product = shop.add_product("Pro", price=25)
    buyer, refunded, free, blocked = add_customers(shop, 4)
    add_purchase(shop, buyer, product.id)
    add_purchase(shop, refunded, product.id, refunded=True)
    add_purchase(shop, free, product.id, price=0, payment_type="free")
    with shop.Session() as session:
        session.get(User, blocked).is_blocked = True
        session.commit()
    seller.sends("/admin")
    seller.taps("Broadcast")
    seller.sends("News")
    assert "To 3 people who started the bot, 1 of them a buyer. Left out: 1 person who blocked the bot." \
        in seller.last_text()  # the admin is not counted: they have it already


def test_the_preview_names_its_audience_in_russian(shop):
    seller = Person(shop, ADMIN_ID, "Продавец", language_code="ru")
    seller.sends("/start")
    add_customers(shop, 5)
    seller.sends("/admin")
    seller.taps("Рассылка")
    seller.sends("Новости")
    assert "Всем, кто запустил бота: 5 человек, из них 0 покупателей." in seller.last_text()


@pytest.fixture
def audiences(shop):
    """Six customers: Alice paid for Pro, Bob's Pro was refunded, Carol got Pro free, Dave paid for Guide,
    Erin subscribes to VIP, Frank's VIP subscription has ended."""
    pro, guide = shop.add_product("Pro", price=25), shop.add_product("Guide", price=10)
    vip = shop.add_product("VIP", price=100, kind=SUBSCRIPTION, chat_id=-100123, chat_title="VIP")
    ids = dict(zip(["alice", "bob", "carol", "dave", "erin", "frank"], add_customers(shop, 6), strict=True))
    add_purchase(shop, ids["alice"], pro.id)
    add_purchase(shop, ids["bob"], pro.id, refunded=True)
    add_purchase(shop, ids["carol"], pro.id, price=0, payment_type="free")
    add_purchase(shop, ids["dave"], guide.id)
    with shop.Session() as session:
        for name, ended in (("erin", None), ("frank", utcnow() - timedelta(days=3))):
            session.add(Subscription(user_id=ids[name], product_id=vip.id, chat_id=-100123, first_charge_id=name,
                                     price=100, expires_at=utcnow() + timedelta(days=20 if ended is None else -3),
                                     ended_at=ended))
        session.commit()
    return {name: 5000 + n for n, name in enumerate(ids)}


def reached(shop) -> set[int]:
    return {int(c.params["chat_id"]) for c in shop.api.of("copyMessage")} - {ADMIN_ID}


@pytest.mark.parametrize("taps, line, names", [
    ([], "To 6 people who started the bot, 2 of them buyers.", {"alice", "bob", "carol", "dave", "erin", "frank"}),
    (["Buyers ("], "To the buyers (they paid for something and were not refunded; free items, grants and gifts "
                   "received do not count): 2 people.", {"alice", "dave"}),
    (["Buyers of a product", "Pro (1)"], "To the buyers of Pro (they paid for it and were not refunded; free "
                                         "copies, grants and gifts received do not count): 1 person.", {"alice"}),
    (["Subscribers of", "VIP (1)"], "To the active subscribers of VIP (their paid access has not ended): 1 person.",
     {"erin"}),
])
def test_each_audience_is_counted_before_sending_and_reaches_exactly_its_people(shop, seller, audiences, taps,
                                                                                 line, names):
    seller.sends("/admin")
    seller.taps("Broadcast")
    seller.sends("News")
    if taps:
        seller.taps("Change audience")
        for tap in taps:
            seller.taps(tap)
    assert line in seller.last_text()
    seller.taps("Send")
    shop.finish_background()
    assert reached(shop) == {audiences[name] for name in names}
    assert f"{len(names)} sent" in sent_to_admin(shop)[-1]


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the kill, on purpose
def test_the_chosen_audience_survives_a_restart(shop, seller, audiences, monkeypatch):
    def killed(*args):
        raise SystemExit  # kill -9 before the first message
    real_copy = broadcast.copy_to
    monkeypatch.setattr(broadcast, "copy_to", killed)
    seller.sends("/admin")
    seller.taps("Broadcast")
    seller.sends("News")
    seller.taps("Change audience")
    seller.taps("Buyers of a product")
    seller.taps("Pro (1)")
    seller.taps("Send")
    shop.finish_background()
    assert reached(shop) == set()
    monkeypatch.setattr(broadcast, "copy_to", real_copy)
    broadcast.resume_broadcasts(shop.bot.shop)  # the next start
    shop.finish_background()
    assert reached(shop) == {audiences["alice"]}


# ---------------------------------------------------------------------------
# ⚡ Fast broadcast
# ---------------------------------------------------------------------------

@pytest.fixture
def stars(shop, monkeypatch):
    """The bot's Stars balance, as getMyStarBalance tells it: set balance["amount"]."""
    balance = {"amount": 0}
    real_result = shop.api.result

    def result(method, params, files):
        return dict(balance) if method == "getMyStarBalance" else real_result(method, params, files)
    monkeypatch.setattr(shop.api, "result", result)
    return balance


@pytest.fixture
def large(monkeypatch):
    """Audiences over 2 people count as large (FAST_FROM is 1,000), so that a few people make a fast broadcast."""
    monkeypatch.setattr(broadcast, "FAST_FROM", 2)


def paid_flags(shop) -> list:
    """allow_paid_broadcast on each copy to a customer (None where it was not sent)."""
    return [c.params.get("allow_paid_broadcast") for c in shop.api.of("copyMessage")
            if int(c.params["chat_id"]) != ADMIN_ID]


def preview(seller) -> None:
    seller.sends("/admin")
    seller.taps("Broadcast")
    seller.sends("News")


def test_standard_speed_is_the_default_and_a_small_audience_is_not_offered_fast(shop, seller, stars):
    add_customers(shop, 25)
    preview(seller)
    assert not any("Fast" in b for b in seller.button_labels())  # 25 people: under FAST_FROM
    seller.taps("Send")
    shop.finish_background()
    assert paid_flags(shop) == [None] * 25
    assert "Fast" not in sent_to_admin(shop)[-1]


def test_a_fast_broadcast_shows_its_cost_and_the_balance_and_every_message_is_paid(shop, seller, stars, large):
    add_customers(shop, 25)
    stars["amount"] = 100
    preview(seller)
    assert "a fast broadcast sends up to a thousand a second, for 0.1 ⭐ a message" in seller.last_text().lower()
    seller.taps("Fast broadcast")
    assert "Fast broadcast to 25 people: 0.1 ⭐ × 25 = 3 ⭐." in seller.last_text()  # 2.5, rounded up
    assert "The bot's balance: 100 ⭐." in seller.last_text()
    seller.taps("Send fast (3 ⭐)")
    shop.finish_background()
    assert paid_flags(shop) == [True] * 25
    assert "25 sent" in sent_to_admin(shop)[-1] and "Fast: 3 ⭐ paid to Telegram." in sent_to_admin(shop)[-1]
    with shop.Session() as session:
        assert session.scalar(select(Broadcast.fast)) is True


def test_a_fast_broadcast_is_refused_when_the_balance_cannot_pay(shop, seller, stars, large):
    add_customers(shop, 25)
    stars["amount"] = 2
    preview(seller)
    seller.taps("Fast broadcast")
    assert "The bot's balance: 2 ⭐." in seller.last_text() and "cannot pay for it" in seller.last_text()
    assert not any("Send fast" in b for b in seller.button_labels())
    seller.taps("Back")
    stars["amount"] = 100
    seller.taps("Fast broadcast")
    stars["amount"] = 2  # spent elsewhere between the offer and the tap
    seller.taps("Send fast")
    shop.finish_background()
    assert paid_flags(shop) == []  # nobody got it
    assert "The fast broadcast was not sent: it costs 3 ⭐, and the bot's balance is 2 ⭐." in sent_to_admin(shop)[-1]
    start_broadcast(seller)  # the next broadcast may start, at standard speed
    shop.finish_background()
    assert paid_flags(shop) == [None] * 25


def test_when_the_balance_runs_out_midway_the_rest_goes_at_standard_speed(shop, seller, stars, large, monkeypatch):
    add_customers(shop, 25)
    stars["amount"] = 100
    monkeypatch.setattr(broadcast, "FAST", broadcast.Speed(rate=1000, senders=1, batch=200, claims=True))
    preview(seller)
    seller.taps("Fast broadcast")
    shop.api.fail("copyMessage", 400, "Bad Request: BALANCE_TOO_LOW")  # spent elsewhere meanwhile
    seller.taps("Send fast")
    shop.finish_background()
    assert paid_flags(shop) == [True] + [None] * 25  # the refused one tried again, free
    assert "The bot's balance ran out" in admin_texts(shop)
    assert "25 sent, 0 blocked the bot, 0 failed" in sent_to_admin(shop)[-1]
    with shop.Session() as session:
        assert session.scalar(select(Broadcast.fast)) is False  # a restart goes on at standard speed too


def test_a_429_in_a_fast_broadcast_waits_as_long_as_telegram_asks(shop, seller, stars, large):
    add_customers(shop, 5)
    stars["amount"] = 100
    waits = []
    shop.bot.shop.sleep = waits.append
    preview(seller)
    seller.taps("Fast broadcast")
    shop.api.fail("copyMessage", 429, "Too Many Requests: retry after 7", retry_after=7)
    seller.taps("Send fast")
    shop.finish_background()
    assert 7 in waits
    assert len(paid_flags(shop)) == 5 + 1 and "5 sent" in sent_to_admin(shop)[-1]  # one tried twice


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the kill, on purpose
def test_a_fast_broadcast_killed_halfway_resumes_without_writing_to_anyone_twice(shop, seller, stars, large,
                                                                               monkeypatch):
    customers = add_customers(shop, 9)
    stars["amount"] = 100
    monkeypatch.setattr(broadcast, "FAST", broadcast.Speed(rate=1000, senders=1, batch=3, claims=True))
    real_copy, calls = broadcast.copy_to, []

    def killed_at_the_fourth(*args):
        calls.append(args)
        if len(calls) == 4:
            raise SystemExit  # kill -9 in the second batch, the third claimed too
        return real_copy(*args)
    monkeypatch.setattr(broadcast, "copy_to", killed_at_the_fourth)
    preview(seller)
    seller.taps("Fast broadcast")
    seller.taps("Send fast")
    shop.finish_background()
    monkeypatch.setattr(broadcast, "copy_to", real_copy)
    broadcast.resume_broadcasts(shop.bot.shop)  # the next start
    shop.finish_background()
    copies = [int(c.params["chat_id"]) for c in shop.api.of("copyMessage") if int(c.params["chat_id"]) != ADMIN_ID]
    assert len(copies) == len(set(copies))  # nobody twice
    report = sent_to_admin(shop)[-1]
    assert "3 sent" in report and "6 people may not have it" in report  # the two claimed batches
    with shop.Session() as session:
        assert session.scalar(select(Broadcast.done_until)) == customers[-1]


def test_the_pace_spaces_sends_and_a_429_holds_every_sender(shop):
    waits = []
    shop.bot.shop.sleep = waits.append  # counted, not slept: the clock hardly moves
    pace = broadcast.Pace(shop.bot.shop, broadcast.STANDARD.rate)
    for _ in range(4):
        pace.wait_turn()
    assert broadcast.STANDARD.rate <= 30 and broadcast.FAST.rate <= 1000  # Telegram's limits
    gaps = [round(b - a, 3) for a, b in zip(waits, waits[1:], strict=False)]
    assert gaps == [round(1 / broadcast.STANDARD.rate, 3)] * 2
    pace.hold(5)
    pace.wait_turn()
    assert waits[-1] > 4.9


def test_the_http_session_reads_the_proxy_settings_once_when_made(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    session = config.new_session("https://api.telegram.org/bot1:T/getMe")
    monkeypatch.delenv("HTTPS_PROXY")
    # requests would read the environment (and ~/.netrc) again at every call: a third of a call's CPU, which a
    # ⚡ fast broadcast of 1,000 messages a second notices. The session keeps what it found when it was made.
    assert session.trust_env is False and session.proxies["https"] == "http://proxy.example:3128"
