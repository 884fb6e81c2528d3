"""Broadcasts (broadcast.py)."""
from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from conftest import (
    Person,
)
from models import User

HERE = Path(__file__).parent


def test_broadcast_reaches_everyone_and_reports_blocked_users(shop, seller, alice, bob):
    carol = Person(shop, 1003, "Carol")
    for person in (alice, bob, carol):
        person.sends("/start")
    seller.sends("/admin")
    seller.taps("Broadcast")
    seller.sends("🎉 New arrivals!")
    assert shop.api.of("copyMessage")  # the preview
    assert "Send it to 4 customers?" in seller.last_text()  # the seller is a user too
    shop.api.fail("copyMessage", 429, "Too Many Requests: retry after 1", retry_after=1)
    shop.api.fail("copyMessage", 403, "Forbidden: bot was blocked by the user")
    seller.taps("Send")
    shop.finish_background()
    assert "3 sent, 1 blocked the bot, 0 failed" in seller.last_text()
    with shop.Session() as session:
        blocked = session.scalars(select(User.telegram_id).where(User.is_blocked)).all()
    assert len(blocked) == 1
    # the preview, then 4 recipients, one of them tried twice because of the 429
    assert len(shop.api.of("copyMessage")) == 1 + 4 + 1


def test_only_one_broadcast_at_a_time(shop, seller):
    shop.bot.shop.broadcast_lock.acquire()
    seller.sends("/admin")
    seller.taps("Broadcast")
    seller.sends("Hello")
    seller.taps("Send")
    assert seller.last_toast() == "A broadcast is already running."
