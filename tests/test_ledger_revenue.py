"""⭐ Revenue net of Telegram's cuts (ledger.py): every kind of transaction in the Stars ledger, read one by one."""
from __future__ import annotations

import logging
import time

from sqlalchemy import select

import checkout
import ledger
from conftest import ADMIN_ID, Person
from models import Purchase, StarLedgerEntry
from shopkit import NANOSTARS, callback, format_stars

DAY_AGO = int(time.time()) - 86400  # long enough ago that no update of it may still come (ledger.UPDATE_GRACE)


def affiliate(per_mille: int, nanostars: int) -> dict:
    """AffiliateInfo as Telegram writes it: whole Stars, and the fraction in nanostars."""
    return {"affiliate_user": {"id": 555, "is_bot": False, "first_name": "Affiliate"},
            "commission_per_mille": per_mille, **stars(nanostars)}


def stars(nanostars: int) -> dict:
    whole, part = divmod(nanostars, NANOSTARS)
    return {"amount": whole, **({"nanostar_amount": part} if part else {})}


def payment(person: Person, product, charge_id: str, price: int, per_mille: int) -> dict:
    """A payment through an affiliate: the ledger shows the bot's share, the commission apart."""
    commission = price * NANOSTARS * per_mille // 1000
    return {"id": charge_id, "date": DAY_AGO, **stars(price * NANOSTARS - commission), "source": {
        "type": "user", "transaction_type": "invoice_payment", "user": person.user,
        "invoice_payload": checkout.invoice_payload(product.id, person.id),
        "affiliate": affiliate(per_mille, commission)}}


def outgoing(tx_id: str, nanostars: int, receiver: dict) -> dict:
    return {"id": tx_id, "date": DAY_AGO, **stars(nanostars), "receiver": receiver}


def incoming(tx_id: str, nanostars: int, source: dict) -> dict:
    return {"id": tx_id, "date": DAY_AGO, **stars(nanostars), "source": source}


def sales_of(seller: Person) -> str:
    """📊 Sales, as the seller sees it (the admins' notices may have come after it)."""
    seller.taps_data(callback("sales"))
    return next(m["text"] for m in reversed(seller.api.messages(seller.id)) if "📊" in m.get("text", ""))


def test_a_month_of_affiliate_sales_fees_withdrawals_and_an_unknown_kind_adds_up(shop, alice, bob, seller, caplog):
    guide = shop.add_product("Guide", price=100)
    course = shop.add_product("Course", price=250)
    shop.has_read_the_ledger(0)
    alice.taps_data(callback("buy", guide.id))
    alice.pays(charge_id="c-alice")  # heard of at once
    api = shop.api
    api.star_transactions += [
        payment(alice, guide, "c-alice", 100, per_mille=200),  # 20 ⭐ to the affiliate
        incoming("tx-new", 5 * NANOSTARS, {"type": "a_kind_nobody_knows"}),  # telebot 4.37.1 cannot read it
        payment(bob, course, "c-bob", 250, per_mille=150),  # never heard of: found here; 37.5 ⭐ commission
        outgoing("tx-fee", 120 * NANOSTARS // 10, {"type": "telegram_api", "request_count": 120}),  # 12 ⭐
        outgoing("tx-out", 50 * NANOSTARS, {"type": "fragment", "withdrawal_state": {"type": "pending"}}),
        outgoing("tx-gift", 10 * NANOSTARS, {"type": "user", "transaction_type": "gift_purchase", "user": alice.user,
                                            "gift": {"id": "g1", "sticker": {
                                                "file_id": "s", "file_unique_id": "s", "type": "regular",
                                                "width": 1, "height": 1, "is_animated": False, "is_video": False},
                                                "star_count": 10}}),
        incoming("tx-aff", 3 * NANOSTARS, {"type": "affiliate_program", "commission_per_mille": 100}),
    ] + [incoming(f"tx-top-{n}", NANOSTARS, {"type": "other"}) for n in range(100)]  # a second page

    check = ledger.check_ledger(shop.bot.shop)

    assert check.read == 107 and check.recorded == ["c-bob"] and check.refunded == []
    assert "tx-new" in caplog.text and "does not know" in caplog.text
    with shop.Session() as session:
        purchases = {p.payment_id: p for p in session.scalars(select(Purchase))}
        kinds = [e.kind for e in session.scalars(select(StarLedgerEntry).order_by(StarLedgerEntry.position))]
    assert purchases["c-bob"].price == 250  # what Bob paid, not the bot's share
    assert purchases["c-alice"].commission_nanostars == 20 * NANOSTARS
    assert purchases["c-bob"].commission_nanostars == 37 * NANOSTARS + NANOSTARS // 2
    assert all(p.refunded_at is None for p in purchases.values())  # a gift sent is no refund
    assert kinds[:7] == ["payment", "unknown", "payment", "fee", "withdrawal", "gift", "affiliate_program"]

    report = sales_of(seller)
    # Gross 350 − commissions 57.5 − fees 12 = 280.5: the ledger's own sum of those transactions (80 + 212.5 − 12).
    assert "30 days: 350 ⭐ − 57.5 ⭐ − 12 ⭐ = 280.5 ⭐" in report
    assert "Today: 0 ⭐ − 0 ⭐ − 0 ⭐ = 0 ⭐" in report
    ledger_sum = sum((tx["amount"] * NANOSTARS + tx.get("nanostar_amount", 0)) * (1 if "source" in tx else -1)
                     for tx in api.star_transactions if tx["id"] in ("c-alice", "c-bob", "tx-fee"))
    assert format_stars(ledger_sum) == "280.5 ⭐"
    assert "Balance now: 328.5 ⭐" in report  # 280.5 − 50 (out) + 5 (unknown) − 10 (gift) + 3 + 100
    assert "of a kind this shop does not know yet, in the ledger: 1" in report
    assert [c for c in api.calls if c.method == "getMyStarBalance"]


def test_a_transaction_telebot_cannot_read_does_not_stop_the_check(shop, alice):
    guide = shop.add_product("Guide", price=100)
    shop.has_read_the_ledger(0)
    shop.api.star_transactions += [
        outgoing("tx-new", 7 * NANOSTARS, {"type": "a_kind_nobody_knows", "whatever": 1}),
        payment(alice, guide, "c-late", 100, per_mille=0),
    ]
    check = ledger.check_ledger(shop.bot.shop)
    assert check.recorded == ["c-late"] and check.read == 2  # the payment after it was found, and delivered
    assert "reached the shop only now" in alice.all_texts() and "KEY-123" in alice.all_texts()
    assert ledger.check_ledger(shop.bot.shop).read == 0  # nothing read twice, and the unknown never acted on


def test_a_refund_through_an_affiliate_takes_back_the_commission_too(shop, alice, seller, caplog):
    caplog.set_level(logging.INFO, logger="shopbot")
    guide = shop.add_product("Guide", price=100)
    shop.has_read_the_ledger(0)
    alice.taps_data(callback("buy", guide.id))
    alice.pays(charge_id="c-1")
    paid = payment(alice, guide, "c-1", 100, per_mille=200)
    refund = {"id": "c-1", "date": DAY_AGO, "amount": paid["amount"], "receiver": {
        **paid["source"], "affiliate": affiliate(200, -20 * NANOSTARS)}}
    shop.api.star_transactions += [paid, refund]
    assert ledger.check_ledger(shop.bot.shop).refunded == ["c-1"]
    assert "30 days: 0 ⭐ − 0 ⭐ − 0 ⭐ = 0 ⭐" in sales_of(seller)


def test_stars_are_shown_to_the_nanostar():
    assert format_stars(37_500_000_000) == "37.5 ⭐"
    assert format_stars(-100_000_000) == "-0.1 ⭐"
    assert format_stars(12 * NANOSTARS) == "12 ⭐"


def test_the_admins_see_nothing_of_it_in_a_shop_that_takes_cards(card_shop):
    seller = Person(card_shop, ADMIN_ID, "Seller")
    seller.taps_data(callback("sales"))
    assert "Telegram's ledger" not in seller.last_text()
    assert not [c for c in card_shop.api.calls if c.method == "getMyStarBalance"]
