"""Broadcasts (broadcast.py)."""
from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

import broadcast
from conftest import (
    ADMIN_ID,
    Person,
    admin_texts,
)
from models import Broadcast, User

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
