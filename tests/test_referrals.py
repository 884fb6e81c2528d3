"""🤝 The referral program (referrals.py): invite links, rewards earned after the hold, terms and figures."""
from __future__ import annotations

import io
import json
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import openpyxl
import pytest
from sqlalchemy import select, update

import referrals
from conftest import ADMIN_ID, Person, buys, visible_text
from models import InviteLink, PromoCode, Purchase, Referral, User
from shopkit import callback, put_setting, utcnow

HOLD = timedelta(days=3)


def program_on(shop, **terms) -> None:
    """The seller has turned the program on, with these terms (the rest as they start)."""
    with shop.Session() as session:
        put_setting(session, "referrals_on", "on")
        put_setting(session, "referral_terms", json.dumps({**referrals.asdict(referrals.Terms()), **terms}))
        session.commit()


def link_of(person: Person) -> str:
    """The person's invite link, as 🤝 Invite friends shows it (its 📋 Copy button copies it)."""
    person.sends("/start")
    person.taps("Invite friends")
    copy = next(b for row in person.last()["reply_markup"]["inline_keyboard"] for b in row if "copy_text" in b)
    return copy["copy_text"]["text"]


def opens(person: Person, link: str) -> None:
    """The person follows a t.me link to the bot: Telegram sends /start with its start parameter."""
    person.sends("/start " + parse_qs(urlsplit(link).query)["start"][0])


def referrals_in(shop) -> list[tuple]:
    """(inviter, friend, outcome) of every referral."""
    with shop.Session() as session:
        users = dict(session.execute(select(User.id, User.first_name)).all())
        return [(users[r.inviter_id], users[r.friend_id], r.outcome)
                for r in session.scalars(select(Referral).order_by(Referral.id))]


def grant_after_hold(shop, hold: timedelta = HOLD) -> int:
    """The reward job, run as if the hold had just passed."""
    return referrals.grant_due_rewards(shop.bot.shop, now=utcnow() + hold + timedelta(minutes=1))


def reward_codes(shop, person: Person) -> list[str]:
    with shop.Session() as session:
        return session.scalars(select(PromoCode.code).join(Referral, Referral.reward_code_id == PromoCode.id)
                               .join(User, Referral.inviter_id == User.id)
                               .where(User.telegram_id == person.id).order_by(PromoCode.id)).all()


def refunds(seller: Person, purchase_id: int) -> None:
    seller.taps_data(callback("admin_purchase", purchase_id))
    seller.taps("Refund")
    seller.taps("Yes, refund")


@pytest.fixture
def carol(shop):
    return Person(shop, 1003, "Carol", "carol")


# ---------------------------------------------------------------------------
# The link: who counts as a friend
# ---------------------------------------------------------------------------

def test_the_menu_offers_invite_friends_only_while_the_program_is_on(shop, alice):
    alice.sends("/start")
    assert alice.button_labels() == ["🛍 Catalog", "📦 My purchases", "❓ Help"]
    program_on(shop)
    alice.sends("/start")
    assert alice.button_labels() == ["🛍 Catalog", "📦 My purchases", "❓ Help", "🤝 Invite friends"]


def test_a_customer_gets_a_personal_link_to_copy_and_share(shop, alice):
    program_on(shop)
    link = link_of(alice)
    with shop.Session() as session:
        code = session.scalar(select(InviteLink.code))
    assert link == f"https://t.me/test_shop_bot?start=r_{code}" and str(alice.id) not in code
    assert link in alice.last_text() and "−10 %" in alice.last_text() and "3 days" in alice.last_text()
    share = next(b["url"] for b in alice.last()["reply_markup"]["inline_keyboard"][1])
    assert share.startswith("https://t.me/share/url?") and parse_qs(urlsplit(share).query)["url"] == [link]
    assert link_of(alice) == link  # the same link every time


def test_a_new_customer_through_a_link_is_the_inviters_friend(shop, alice, bob):
    program_on(shop)
    opens(bob, link_of(alice))
    assert "Alice invited you" in bob.last_text()
    assert "🤝 Invite friends" in bob.button_labels()
    assert referrals_in(shop) == [("Alice", "Bob", None)]


def test_an_existing_customer_through_a_link_is_greeted_and_nothing_changes(shop, alice, bob):
    program_on(shop)
    bob.sends("/start")  # Bob knew the shop before
    opens(bob, link_of(alice))
    assert "Welcome back, Bob" in bob.last_text() and "changes nothing" in bob.last_text()
    assert referrals_in(shop) == []


def test_the_inviter_opening_their_own_link_invites_nobody(shop, alice):
    program_on(shop)
    opens(alice, link_of(alice))
    assert "your own invite link" in alice.last_text()
    assert referrals_in(shop) == []


@pytest.mark.parametrize("argument", ["r_AAAAAAAA", "r_", "r_1001", "r_<b>x</b>", "r_" + "A" * 60, "r_../../x"])
def test_a_forged_code_is_refused_politely(shop, alice, bob, argument):
    program_on(shop)
    link_of(alice)
    bob.sends("/start " + argument)
    assert "This invite link is not valid" in bob.last_text() and "Catalog" in bob.button_labels()[0]
    assert referrals_in(shop) == []


def test_names_are_shown_as_typed(shop, bob):
    program_on(shop)
    eve = Person(shop, 1005, "<b>Eve</b> & co")
    opens(bob, link_of(eve))
    assert "<b>Eve</b> & co invited you" in bob.last_text()
    html = [c.params["text"] for c in shop.api.of("sendMessage") if c.params["chat_id"] == str(bob.id)][-1]
    assert "&lt;b&gt;Eve&lt;/b&gt; &amp; co" in html


def test_with_the_program_off_a_link_is_just_a_start(shop, alice, bob):
    program_on(shop)
    link = link_of(alice)
    with shop.Session() as session:
        put_setting(session, "referrals_on", "off")
        session.commit()
    opens(bob, link)
    assert "Welcome to" in bob.last_text() and "🤝 Invite friends" not in bob.button_labels()
    assert referrals_in(shop) == []
    alice.taps_data(callback("invite"))  # from a menu drawn before
    assert alice.last_toast() == "The shop has no referral program at the moment."


# ---------------------------------------------------------------------------
# Rewards: earned after the hold, never gamed
# ---------------------------------------------------------------------------

def test_a_reward_is_earned_once_the_friends_purchase_was_kept_for_the_hold(shop, alice, bob):
    program_on(shop)
    product = shop.add_product("Pro", price=100)
    opens(bob, link_of(alice))
    buys(bob, product)
    assert referrals.grant_due_rewards(shop.bot.shop) == 0  # bought a moment ago: the hold runs
    assert grant_after_hold(shop, HOLD - timedelta(hours=1)) == 0
    assert grant_after_hold(shop) == 1
    [code] = reward_codes(shop, alice)
    assert "Bob, whom you invited, bought something and kept it" in alice.last_text() and code in alice.last_text()
    assert [b["copy_text"]["text"] for b in alice.last()["reply_markup"]["inline_keyboard"][0]] == [code]
    assert referrals_in(shop) == [("Alice", "Bob", "rewarded")]
    told = len(shop.api.of("sendMessage"))
    assert grant_after_hold(shop) == 0 and grant_after_hold(shop, 2 * HOLD) == 0  # a restart decides nothing again
    assert len(shop.api.of("sendMessage")) == told and len(reward_codes(shop, alice)) == 1


def test_the_inviter_uses_the_reward_code(shop, alice, bob):
    program_on(shop, reward={"amount": 30})
    product = shop.add_product("Pro", price=100)
    opens(bob, link_of(alice))
    buys(bob, product)
    grant_after_hold(shop)
    [code] = reward_codes(shop, alice)
    alice.sends(f"/start promo_{code}")
    buys(alice, product)
    with shop.Session() as session:
        purchase = session.scalar(select(Purchase).join(User).where(User.telegram_id == alice.id))
        assert (purchase.price, purchase.list_price) == (70, 100)
    alice.taps_data(callback("invite"))
    assert code not in alice.last_text()  # used: no longer among her codes


def test_a_refund_within_the_hold_cancels_the_reward(shop, seller, alice, bob):
    program_on(shop)
    product = shop.add_product("Pro", price=100)
    opens(bob, link_of(alice))
    buys(bob, product)
    refunds(seller, 1)
    assert grant_after_hold(shop) == 0
    assert referrals_in(shop) == [("Alice", "Bob", "refunded")] and reward_codes(shop, alice) == []
    buys(bob, product)  # buying again after the refund earns nothing either: the first purchase decided it
    assert grant_after_hold(shop) == 0 and reward_codes(shop, alice) == []


def test_a_refund_after_the_hold_takes_no_reward_away(shop, seller, alice, bob):
    program_on(shop)
    product = shop.add_product("Pro", price=100)
    opens(bob, link_of(alice))
    buys(bob, product)
    with shop.Session() as session:  # bought four days ago
        session.execute(update(Purchase).values(created_at=utcnow() - HOLD - timedelta(days=1)))
        session.commit()
    refunds(seller, 1)
    assert referrals.grant_due_rewards(shop.bot.shop) == 1


def test_a_free_item_earns_nothing(shop, alice, bob):
    program_on(shop)
    opens(bob, link_of(alice))
    buys(bob, shop.add_product("Free guide", price=0))
    assert grant_after_hold(shop) == 0 and referrals_in(shop) == [("Alice", "Bob", None)]


def test_an_inviter_earns_at_most_the_monthly_cap(shop, alice):
    program_on(shop, monthly_cap=2)
    product = shop.add_product("Pro", price=100)
    link = link_of(alice)
    for number in range(3):
        friend = Person(shop, 2000 + number, f"Friend{number}")
        opens(friend, link)
        buys(friend, product)
    assert grant_after_hold(shop) == 2
    assert [outcome for _, _, outcome in referrals_in(shop)] == ["rewarded", "rewarded", "capped"]
    assert len(reward_codes(shop, alice)) == 2


# ---------------------------------------------------------------------------
# The friend's welcome discount
# ---------------------------------------------------------------------------

def test_the_welcome_discount_prices_the_friends_first_purchase_only(shop, alice, bob):
    program_on(shop, welcome={"percent": 50})
    first, second = shop.add_product("Pro", price=100), shop.add_product("Max", price=100)
    opens(bob, link_of(alice))
    assert "gives you −50 % on your first purchase" in bob.last_text()
    buys(bob, first)
    buys(bob, second)
    with shop.Session() as session:
        assert session.scalars(select(Purchase.price).order_by(Purchase.id)).all() == [50, 100]
    referrals.grant_due_rewards(shop.bot.shop)  # its first purchase made: the welcome code is done
    with shop.Session() as session:
        welcome = session.scalar(select(PromoCode).join(Referral, Referral.welcome_code_id == PromoCode.id))
        assert welcome.max_uses == 1 and not welcome.is_active


def test_a_welcome_code_unused_on_the_first_purchase_is_not_kept_for_a_later_one(shop, alice, bob):
    program_on(shop, welcome={"percent": 50})
    first, second = shop.add_product("Pro", price=100), shop.add_product("Max", price=100)
    opens(bob, link_of(alice))
    with shop.Session() as session:  # Bob chose no code for his first purchase
        session.execute(update(User).where(User.telegram_id == bob.id).values(promo_code_id=None))
        session.commit()
    buys(bob, first)
    referrals.grant_due_rewards(shop.bot.shop)
    bob.sends(f"/start promo_{reward_or_welcome(shop)}")
    buys(bob, second)
    with shop.Session() as session:
        assert session.scalars(select(Purchase.price).order_by(Purchase.id)).all() == [100, 100]


def reward_or_welcome(shop) -> str:
    with shop.Session() as session:
        return session.scalar(select(PromoCode.code).join(Referral, Referral.welcome_code_id == PromoCode.id))


def test_the_programs_codes_stay_out_of_the_promo_codes_list(shop, seller, alice, bob):
    program_on(shop, welcome={"percent": 50})
    shop.add_promo("WEEKEND")
    opens(bob, link_of(alice))
    seller.sends("/admin")
    seller.taps("Promo codes")
    assert [label for label in seller.button_labels() if "−" in label] == ["WEEKEND · −20 %"]


# ---------------------------------------------------------------------------
# The seller: figures and terms
# ---------------------------------------------------------------------------

def test_the_seller_sees_the_program_work(shop, seller, alice, bob, carol):
    program_on(shop, reward={"amount": 10})
    product = shop.add_product("Pro", price=100)
    link = link_of(alice)
    opens(bob, link)
    opens(carol, link)
    buys(bob, product)
    grant_after_hold(shop)
    alice.sends(f"/start promo_{reward_codes(shop, alice)[0]}")
    buys(alice, product)
    seller.sends("/admin")
    seller.taps("Referrals")
    screen = seller.last_text()
    assert "Invited: 2 · bought: 1" in screen and "Rewards earned: 1 · used: 1" in screen
    assert "Revenue from invited friends: 100 ⭐" in screen
    assert "1. Alice (@alice): invited 2 · bought 1 · rewards 1" in screen
    seller.taps("Back")
    seller.taps("Sales")
    assert "Referrals, 30 days: 2 invited · 1 bought · revenue 100 ⭐ · rewards 1 (used 1)" in seller.last_text()


def test_the_export_can_tell_which_purchases_came_from_an_invite(shop, alice, bob):
    program_on(shop)
    product = shop.add_product("Pro", price=100)
    opens(bob, link_of(alice))
    buys(bob, product)
    buys(alice, product)
    with shop.Session() as session:
        rows = session.execute(select(User.first_name, referrals.invited_by()).join(Purchase.user)
                               .order_by(Purchase.id)).all()
    assert [tuple(row) for row in rows] == [("Bob", alice.id), ("Alice", None)]
    seller = Person(shop, ADMIN_ID, "Seller")
    seller.taps_data(callback("export_csv"))
    book = openpyxl.load_workbook(io.BytesIO(shop.api.of("sendDocument")[-2].files["document"][1]))
    rows = list(book.active.iter_rows(values_only=True))
    assert rows[0][-1] == "Invited by (id)" and [(row[2], row[-1]) for row in rows[1:]] == [("Bob", alice.id),
                                                                                          ("Alice", None)]


def test_the_seller_sets_the_terms(shop, seller, alice):
    seller.sends("/admin")
    seller.taps("Referrals")
    assert "⛔ off" in seller.last_text()
    seller.taps("Turn on")
    assert "✅ on" in seller.last_text()
    seller.taps("Reward")
    seller.sends("0%")
    assert "❗" in seller.last_text()
    seller.sends("20%")
    seller.sends("400")
    assert "❗ Send a whole number from 1 to 365." in seller.last_text()
    seller.sends("14")
    seller.taps("Welcome discount")
    seller.sends("15")
    seller.taps("Holding time")
    seller.sends("5")
    seller.taps("Monthly cap")
    seller.sends("3")
    assert "✅ Saved." in seller.last_text()
    assert "Inviter's reward: −20 %, codes valid 14 days" in seller.last_text()
    assert "Welcome discount for a friend: −15 ⭐" in seller.last_text()
    assert "Holding time: 5 days · monthly cap per inviter: 3" in seller.last_text()
    seller.taps_data(callback("referral_number", 9))  # forged: no such setting
    assert "Holding time: 5 days" in seller.last_text()
    seller.taps("Welcome discount")
    seller.sends("/skip")
    assert "Welcome discount for a friend: none" in seller.last_text()
    with shop.Session() as session:
        assert referrals.read_terms(session) == referrals.Terms({"percent": 20}, None, 14, 5, 3)
    alice.sends("/start")
    assert "🤝 Invite friends" in alice.button_labels()


def test_a_customer_cannot_touch_the_terms(shop, alice):
    for action in (("referrals",), ("toggle_referrals",), ("referral_reward",), ("referral_number", 1)):
        alice.taps_data(callback(*action))
    assert not any("Referrals" in visible_text(message) for message in shop.api.messages(alice.id))
    with shop.Session() as session:
        assert referrals.read_terms(session) == referrals.Terms()
        assert session.get(referrals.Setting, "referrals_on") is None


def test_the_russian_texts_read_naturally(shop, alice):
    program_on(shop, hold_days=1)
    ivan = Person(shop, 1010, "Иван", language_code="ru")
    opens(ivan, link_of(alice))
    assert "Вас пригласил(а) Alice" in ivan.last_text()
    ivan.taps("Пригласить друзей")
    assert "через 1 день вы получите промокод" in ivan.last_text()


def test_the_sales_line_on_referrals_reads_index_ranges_only(sqlite_shop):
    from test_speed import StatementLog
    shop = sqlite_shop
    program_on(shop)
    seller = Person(shop, ADMIN_ID, "Seller")
    seller.sends("/start")
    alice, bob = Person(shop, 1001, "Alice"), Person(shop, 1002, "Bob")
    opens(bob, link_of(alice))
    buys(bob, shop.add_product("Pro", price=5))
    log = StatementLog(shop.Session.kw["bind"])
    seller.taps_data(callback("sales"))
    assert "Referrals, 30 days: 1 invited · 1 bought · revenue 5 ⭐" in seller.last_text()
    assert log.full_scans() == []
