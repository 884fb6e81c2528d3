"""Reviews (reviews.py): buyers rate what they own, the card shows it, the seller replies or hides; forged
buttons, floods and markup get nowhere."""
from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import select

import reviews
import shopbot
from conftest import ADMIN_ID, Person, ShopUnderTest, admin_texts
from models import Purchase, Review, User
from shopkit import callback, utcnow


def buys(person: Person, product) -> int:
    """The person buys the product (paying, unless it is free); the id of their purchase."""
    person.taps_data(callback("buy", product.id))
    if product.price:
        person.pays()
    with person.shop.Session() as session:
        return session.scalar(select(Purchase.id).join(User).where(User.telegram_id == person.id,
                                                                   Purchase.product_id == product.id)
                              .order_by(Purchase.id.desc()))


def rates(person: Person, purchase_id: int, stars: int, words: str | None = None) -> None:
    """Tap the stars (as under the shop's question or after ⭐), then write a few words or tap ➡️ No text."""
    person.taps_data(callback("rate", purchase_id, stars))
    if words is None:
        person.taps("➡️")  # No text
    else:
        person.sends(words)


def stored_reviews(shop) -> list[tuple]:
    """(first name, stars, text, reply, hidden) of every review, in the order written."""
    with shop.Session() as session:
        return [tuple(row) for row in session.execute(
            select(User.first_name, Review.stars, Review.text, Review.reply, Review.hidden)
            .join(User, Review.user_id == User.id).order_by(Review.id))]


def opens_card(person: Person, product) -> str:
    """The product's card, opened from its shared link (a new message, below everything)."""
    person.sends(f"/start p_{product.id}")
    return person.last_text()


def last_html(shop, person: Person) -> str:
    """The HTML the bot last sent or edited into the person's chat (Telegram shows it as plain text)."""
    return [c.params["text"] for c in shop.api.calls if c.method in ("sendMessage", "editMessageText")
            and str(c.params["chat_id"]) == str(person.id)][-1]


@pytest.fixture
def product(shop):
    return shop.add_product("Guide", price=25, hidden="GUIDE-LINK")


# ---------------------------------------------------------------------------
# Writing a review
# ---------------------------------------------------------------------------

def test_a_buyer_rates_from_my_purchases_and_the_seller_hears(shop, alice, seller, product):
    buys(alice, product)
    alice.sends("/purchases")
    alice.taps("⭐")
    assert "How many stars would you give Guide?" in alice.last_text()
    alice.taps("★★★★")  # four stars: the first button that has them
    assert "Add a few words" in alice.last_text()
    alice.sends("Clear and useful")
    assert "Your review of Guide is saved: ★★★★☆" in alice.last_text()
    assert stored_reviews(shop) == [("Alice", 4, "Clear and useful", "", False)]
    assert "New review of Guide from Alice (@alice) (id 1001): ★★★★☆\nClear and useful" in admin_texts(shop)
    assert seller.button_labels() == ["↩️ Reply", "🙈 Hide"]


def test_stars_alone_make_a_review(shop, alice, seller, product):
    rates(alice, buys(alice, product), 5)
    assert stored_reviews(shop) == [("Alice", 5, "", "", False)]


def test_rating_again_replaces_the_review(shop, alice, seller, product):
    purchase_id = buys(alice, product)
    rates(alice, purchase_id, 2, "Meh")
    alice.sends("/purchases")
    alice.taps("⭐")
    assert "Your review: ★★☆☆☆ Meh" in alice.last_text()
    rates(alice, purchase_id, 5, "Grew on me")
    assert stored_reviews(shop) == [("Alice", 5, "Grew on me", "", False)]
    assert "Alice (@alice) (id 1001) changed their review of Guide: ★★★★★\nGrew on me" in admin_texts(shop)


def test_a_stranger_cannot_review(shop, alice, bob, product):
    purchase_id = buys(alice, product)
    bob.taps_data(callback("rate", purchase_id, 5))  # another user's purchase
    assert bob.last_toast() == "You can review only something you bought and have not had refunded."
    bob.taps_data(callback("review", purchase_id))
    assert bob.last_toast() == "You can review only something you bought and have not had refunded."
    bob.taps_data(callback("rate", 999, 5))  # a purchase nobody made: a product never bought
    bob.taps_data(callback("review_no_text", purchase_id, 5))
    assert bob.last_toast() == "You can review only something you bought and have not had refunded."
    assert stored_reviews(shop) == []


@pytest.mark.parametrize("stars", [0, 6, 99])
def test_forged_stars_are_refused(shop, alice, product, stars):
    purchase_id = buys(alice, product)
    alice.taps_data(callback("rate", purchase_id, stars))
    assert alice.last_toast() == "A rating is 1 to 5 stars."
    alice.taps_data(callback("review_no_text", purchase_id, stars))
    assert alice.last_toast() == "A rating is 1 to 5 stars." and stored_reviews(shop) == []


def test_stars_forged_into_the_dialog_are_checked_again(shop, alice, product):
    """A buyer whose purchase is refunded while they write: their words store nothing."""
    purchase_id = buys(alice, product)
    alice.taps_data(callback("rate", purchase_id, 5))
    with shop.Session() as session:
        session.get(Purchase, purchase_id).refunded_at = utcnow()
        session.commit()
    alice.sends("Great")
    assert "You can review only something you bought" in alice.last_text() and stored_reviews(shop) == []


def test_no_review_after_a_refund(shop, alice, seller, product):
    purchase_id = buys(alice, product)
    seller.taps_data(callback("confirm_refund", purchase_id))
    alice.taps_data(callback("rate", purchase_id, 5))
    assert alice.last_toast() == "You can review only something you bought and have not had refunded."
    alice.sends("/purchases")
    assert "⭐" not in alice.button_labels() and stored_reviews(shop) == []


def test_a_refund_removes_the_review(shop, alice, bob, seller, product):
    rates(alice, buys(alice, product), 1, "Bad")
    purchase_id = buys(bob, product)
    rates(bob, purchase_id, 5, "Good")
    assert "★ 3.0 · 2 reviews" in opens_card(alice, product)
    seller.taps_data(callback("confirm_refund", purchase_id))
    assert stored_reviews(shop) == [("Alice", 1, "Bad", "", False)]
    assert "★ 1.0 · 1 review" in opens_card(alice, product)


def test_a_buyer_who_still_owns_it_keeps_their_review(shop, alice, seller):
    """A stocked product bought twice: refunding one key leaves the other, and the review."""
    product = shop.add_product("Key", price=10, kind="stocked")
    with shop.Session() as session:
        from models import StockItem
        session.add_all([StockItem(product_id=product.id, content=f"KEY-{n}") for n in range(2)])
        session.commit()
    first = buys(alice, product)
    buys(alice, product)
    rates(alice, first, 4)
    seller.taps_data(callback("confirm_refund", first))
    assert stored_reviews(shop) == [("Alice", 4, "", "", False)]


# ---------------------------------------------------------------------------
# Hostile input
# ---------------------------------------------------------------------------

def test_markup_in_a_review_is_shown_as_typed(shop, alice, bob, seller, product):
    rates(alice, buys(alice, product), 5, '<b>Best</b> & <a href="http://x">click</a>')
    assert stored_reviews(shop)[0][2] == '<b>Best</b> & <a href="http://x">click</a>'
    bob.taps_data(callback("reviews", product.id, 0))
    assert '&lt;b&gt;Best&lt;/b&gt; &amp; &lt;a href="http://x"&gt;click&lt;/a&gt;' in last_html(shop, bob)
    assert '&lt;b&gt;Best&lt;/b&gt;' in last_html(shop, seller)


def test_ten_thousand_characters_are_refused_and_asked_again(shop, alice, product):
    purchase_id = buys(alice, product)
    alice.taps_data(callback("rate", purchase_id, 3))
    alice.sends("x" * 10_000)
    assert "That is too long: at most 500 characters, and this has 10000." in alice.last_text()
    assert stored_reviews(shop) == []
    alice.sends("Short and fine")  # still asked
    assert stored_reviews(shop) == [("Alice", 3, "Short and fine", "", False)]


def test_a_nul_character_is_dropped_where_postgresql_would_refuse_it(shop, alice, product):
    rates(alice, buys(alice, product), 4, "Good\x00 key")
    assert stored_reviews(shop) == [("Alice", 4, "Good key", "", False)]


def test_a_review_is_text_only(shop, alice, product):
    alice.taps_data(callback("rate", buys(alice, product), 3))
    alice.sends_photo()
    assert "A review is words only" in alice.last_text() and stored_reviews(shop) == []


def test_a_flood_of_edits_is_turned_away_for_an_hour(shop, alice, seller, product):
    purchase_id = buys(alice, product)
    rates(alice, purchase_id, 1)  # the review itself
    for stars in (2, 3, 4, 5, 4):  # five changes within the hour
        rates(alice, purchase_id, stars)
    alice.taps_data(callback("rate", purchase_id, 1))
    assert alice.last_toast() == ("🙏 This review has changed often enough for one hour: please try again a little "
                                  "later.")
    alice.taps_data(callback("review_no_text", purchase_id, 1))  # the button under the question, tapped again
    assert "changed often enough" in alice.last_toast() and stored_reviews(shop)[0][1] == 4
    with shop.Session() as session:  # an hour later
        session.scalar(select(Review)).edits_since -= timedelta(hours=1)
        session.commit()
    rates(alice, purchase_id, 1)
    assert stored_reviews(shop)[0][1] == 1


# ---------------------------------------------------------------------------
# The card, and the reviews a page at a time
# ---------------------------------------------------------------------------

def test_the_card_shows_the_average_and_the_count_without_hidden_reviews(shop, alice, bob, seller, product):
    assert "★" not in opens_card(alice, product) and "💬 Reviews" not in alice.button_labels()
    rates(alice, buys(alice, product), 5)
    rates(bob, buys(bob, product), 4)
    carol = Person(shop, 1003, "Carol")
    rates(carol, buys(carol, product), 1, "Spam spam")
    assert "★ 3.3 · 3 reviews" in opens_card(alice, product) and "💬 Reviews" in alice.button_labels()
    seller.taps("Hide")  # under the latest notice: Carol's
    assert "Hidden: it counts nowhere" in seller.last_text() and seller.last_toast() == "🙈 The review is hidden."
    assert "★ 4.5 · 2 reviews" in opens_card(alice, product)
    alice.taps("Reviews")
    assert "Spam" not in alice.last_text() and "Carol" not in alice.last_text()
    seller.taps("Show again")
    assert "★ 3.3 · 3 reviews" in opens_card(alice, product)


@pytest.mark.parametrize("count, words", [(1, "1 отзыв"), (2, "2 отзыва"), (5, "5 отзывов")])
def test_the_card_speaks_russian(shop, product, count, words):
    for n in range(count):
        buyer = Person(shop, 2000 + n, f"Покупатель {n}", language_code="ru")
        rates(buyer, buys(buyer, product), 4 if n % 2 else 5)
    average = {1: "5,0", 2: "4,5", 5: "4,6"}[count]
    assert f"★ {average} · {words}" in opens_card(buyer, product) and "💬 Отзывы" in buyer.button_labels()


def test_reviews_come_newest_first_a_page_at_a_time_with_first_names_only(shop, seller, product):
    buyers = [Person(shop, 3000 + n, name, f"user{n}") for n, name in enumerate(
        ["Ann", "Ben", "<i>Cy</i>", "Dee", "Eve"])]
    for n, buyer in enumerate(buyers):
        rates(buyer, buys(buyer, product), 5, f"Review number {n}")
    reader = buyers[0]
    reader.taps_data(callback("reviews", product.id, 0))
    page = reader.last_text()
    assert "★ 5.0 · 5 reviews" in page and "@user" not in page
    assert [name for name in ("Eve", "Dee", "<i>Cy</i>", "Ben", "Ann") if name in page] == ["Eve", "Dee",
                                                                                               "<i>Cy</i>", "Ben"]
    assert page.index("Review number 4") < page.index("Review number 1")
    assert "&lt;i&gt;Cy&lt;/i&gt;" in last_html(shop, reader)
    reader.taps("Next")
    assert "Review number 0" in reader.last_text() and "Review number 1" not in reader.last_text()
    reader.taps_data(callback("reviews", product.id, 10**9))  # a forged page: the last one there is
    assert "Review number 0" in reader.last_text()


# ---------------------------------------------------------------------------
# The seller's reply
# ---------------------------------------------------------------------------

def test_the_seller_replies_under_a_review_and_the_buyer_is_told(shop, alice, bob, seller, product):
    rates(alice, buys(alice, product), 3, "Could be longer")
    seller.taps("Reply")
    assert "Write your reply to Alice's review of Guide" in seller.last_text()
    seller.sends("x" * 301)
    assert "at most 300 characters" in seller.last_text()
    seller.sends("\u200b")  # nothing visible
    assert "The reply is empty" in seller.last_text()
    seller.sends("Thanks! <b>Part 2</b> is coming")
    assert "Your reply shows under the review" in seller.last_text()
    assert "The seller replied to your review of Guide:\n\nThanks! <b>Part 2</b> is coming" in alice.last_text()
    bob.taps_data(callback("reviews", product.id, 0))
    assert "Could be longer\n↪️ Seller: Thanks! <b>Part 2</b> is coming" in bob.last_text()
    assert stored_reviews(shop)[0][3] == "Thanks! <b>Part 2</b> is coming"


def test_only_the_seller_replies_or_hides(shop, alice, bob, seller, product):
    rates(alice, buys(alice, product), 5)
    review_id = 1
    bob.taps_data(callback("review_hide", review_id))
    bob.taps_data(callback("review_reply", review_id))
    bob.sends("Fake reply")
    assert stored_reviews(shop) == [("Alice", 5, "", "", False)]


# ---------------------------------------------------------------------------
# The shop asks, a day after delivery, once
# ---------------------------------------------------------------------------

def test_the_shop_asks_a_day_after_delivery_once(shop, alice, bob, seller, product, config):
    purchase_id = buys(alice, product)
    job = shop.bot.shop
    assert reviews.ask_for_reviews(job) == 0  # too soon
    later = utcnow() + timedelta(days=1, minutes=1)
    assert reviews.ask_for_reviews(job, later) == 1
    assert "How do you like Guide? Tap the stars" in alice.last_text()
    assert reviews.ask_for_reviews(job, later + timedelta(hours=1)) == 0  # asked once
    restarted = shopbot.create_bot(config, threaded=False)  # the same database, a new process
    try:
        assert reviews.ask_for_reviews(restarted.shop, later + timedelta(days=2)) == 0
    finally:
        ShopUnderTest(restarted, shop.api).close()
    alice.taps("★★★★★")
    alice.taps("No text")
    assert stored_reviews(shop) == [("Alice", 5, "", "", False)] and purchase_id


def test_the_shop_asks_nobody_who_lost_the_purchase_or_reviewed_it(shop, alice, bob, seller, product):
    refunded = buys(alice, product)
    rates(bob, buys(bob, product), 4)  # reviewed already
    seller.taps_data(callback("confirm_refund", refunded))
    assert reviews.ask_for_reviews(shop.bot.shop, utcnow() + timedelta(days=2)) == 0
    assert "How do you like" not in alice.all_texts() + bob.all_texts()


def test_purchases_made_before_reviews_existed_are_not_asked_about(shop, alice, product):
    buys(alice, product)
    with shop.Session() as session:
        session.scalar(select(Purchase)).created_at -= timedelta(days=30)
        session.commit()
    assert reviews.ask_for_reviews(shop.bot.shop, utcnow() + timedelta(days=2)) == 0
    fresh = shop.add_product("Fresh", price=0)
    buys(alice, fresh)
    assert reviews.ask_for_reviews(shop.bot.shop, utcnow() + timedelta(days=2)) == 1
    assert ADMIN_ID not in [int(c.params["chat_id"]) for c in shop.api.of("sendMessage")
                            if "How do you like" in c.params["text"]]


def test_the_question_is_asked_by_a_job_that_starts_with_the_shop_and_repeats(shop, caplog):
    """shop.start_repeating: at once, then every ``every`` seconds; a turn that fails is logged, the next runs."""
    assert len(shop.bot.shop.jobs_at_start) >= 1  # reviews.py's among them
    turns, second_turn, parked = [], threading.Event(), threading.Event()  # parked: never set

    def job(shop):
        turns.append(1)
        if len(turns) == 1:
            raise RuntimeError("Telegram is down")
        second_turn.set()

    waits = []
    # After its second turn the job's thread waits for good (a daemon): a loop left spinning would eat the memory
    # of every test after this one.
    shop.bot.shop.sleep = lambda seconds: waits.append(seconds) or (parked.wait() if second_turn.is_set() else None)
    shop.bot.shop.start_repeating(job, 600)
    assert second_turn.wait(10)
    assert waits[0] == 600 and "job failed; trying again in 600 seconds" in caplog.text
