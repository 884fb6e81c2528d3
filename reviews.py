"""Reviews: buyers rate what they bought, and the next customer reads it on the card.

Reading order: ... purchases.py → **reviews.py** → checkout.py → ...

1. **Writing one.** A customer who owns a product (a live purchase: paid,
   free or given, not refunded) rates it 1 to 5 stars and may add a few words,
   at most 500 characters. The shop asks once, a day after delivery, with the
   stars to tap; ⭐ beside the purchase in 📦 My purchases asks any time. One
   review per buyer and product: writing again replaces it, a few times an
   hour at most. A refund takes the review with it (purchases.close_refund).
2. **Reading them.** A product's card shows the average and the count
   (storefront.py); 💬 Reviews lists the newest, a page at a time, with each
   buyer's first name and the seller's reply under their review.
3. **The seller's side.** Each new or changed review reaches the admins with
   ↩️ Reply (shown under the review; the buyer is told) and 🙈 Hide: a hidden
   review counts nowhere, in the average or the list.
4. **Asking.** A background job asks each purchase once, a day after its
   delivery; where it got to is written down, so a restart asks nobody twice.

What a button carries is checked again when it is tapped: the stars (1 to 5),
and a purchase that is the tapper's own and still live. A forged button, or
a text of 10,000 characters, gets a polite word and stores nothing.
"""
from __future__ import annotations

import html
import logging
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from telebot import TeleBot, types
from telebot.apihelper import ApiTelegramException

from menus import ADMIN, PURCHASES
from models import REVIEW_TEXT_MAX, Product, Purchase, Review, User, owning, rating_of, shown_reviews
from promos import PRODUCT
from purchases import REVIEW
from shopkit import (
    CANCEL,
    MASS_SEND_INTERVAL,
    After,
    Handlers,
    InputError,
    Screen,
    Setting,
    Shop,
    Tap,
    Toast,
    add_handlers,
    ask,
    describe_user,
    end_dialog,
    has_visible_text,
    keyboard,
    label,
    language_for_code,
    notify_admins,
    page_count,
    pager_row,
    put_setting,
    send,
    text,
    utcnow,
    utf16_len,
    with_toast,
)
from storefront import REVIEWS, catalog_screen, rating_line

logger = logging.getLogger("shopbot")
customer = Handlers()  # the buyer's stars and words, and everyone's 💬 Reviews
seller = Handlers(admin=True)  # ↩️ Reply, 🙈 Hide and 👁 Show under a review's notice

# The buttons of this chapter, and the numbers each carries (⭐ on a purchase and 💬 Reviews on a card are
# made where they are shown: purchases.REVIEW, storefront.REVIEWS).
RATE = Tap("rate", "purchase_id", "stars")
NO_TEXT = Tap("review_no_text", "purchase_id", "stars")
REPLY_TO_REVIEW = Tap("review_reply", "review_id")
HIDE_REVIEW = Tap("review_hide", "review_id")
SHOW_REVIEW = Tap("review_show", "review_id")

MOST_STARS = 5
REPLY_MAX = 300  # the seller's reply: four reviews with their replies fit one message (4,096 characters)
REVIEWS_PER_PAGE = 4
EDITS_PER_HOUR = 5  # how often a buyer may change their review: more is a flood, not a change of mind
HOUR = timedelta(hours=1)
WRITING_MINUTES = 30  # the question "a few words?" is over after this long
ASK_AFTER = timedelta(days=1)  # time to try the product before being asked
ASK_EVERY = 600.0  # seconds between two looks for purchases to ask about
ASK_BATCH = 200  # purchases looked at in one go
ASKED_UNTIL = "reviews_asked_until"  # Setting: the id of the last purchase considered


def stars_of(count: int) -> str:
    """★★★★☆ for 4."""
    return "★" * count + "☆" * (MOST_STARS - count)


def star_buttons(purchase_id: int) -> list:
    """★ … ★★★★★: one tap rates the purchase."""
    return [RATE.button("★" * stars, purchase_id=purchase_id, stars=stars) for stars in range(1, MOST_STARS + 1)]


# ---------------------------------------------------------------------------
# 1. Writing a review: what may be reviewed, the stars, the words
# ---------------------------------------------------------------------------

def reviewable(session: Session, telegram_id: int, purchase_id: int):
    """The purchase (id, user_id, product_id, name) if it is the tapper's own and makes them an owner of its
    product (models.owning: not refunded, nor being refunded, nor a gift for someone else); else None."""
    return session.execute(
        select(Purchase.id, Purchase.user_id, Purchase.product_id, Product.name)
        .join(User, Purchase.user_id == User.id).join(Product, Purchase.product_id == Product.id)
        .where(Purchase.id == purchase_id, User.telegram_id == telegram_id, owning(Purchase.product_id))).first()


def their_review(session: Session, user_id: int, product_id: int) -> Review | None:
    return session.scalar(select(Review).where(Review.user_id == user_id, Review.product_id == product_id))


def may_change(review: Review | None, now: datetime) -> bool:
    """A first review always; a change, EDITS_PER_HOUR times within an hour."""
    return (review is None or review.edits_since is None or now - review.edits_since >= HOUR
            or review.edits < EDITS_PER_HOUR)


def count_change(review: Review, now: datetime) -> None:
    """One more change of the review; an hour after the first one counted, the count starts again."""
    if review.edits_since is None or now - review.edits_since >= HOUR:
        review.edits_since, review.edits = now, 0
    review.edits += 1


def check_review(session: Session, telegram_id: int, purchase_id: int, stars: int):
    """(purchase, their review so far, None), or (None, None, the text key that says why not)."""
    if not 1 <= stars <= MOST_STARS:
        return None, None, "review_bad_stars"
    found = reviewable(session, telegram_id, purchase_id)
    if found is None:
        logger.warning("User %s may not review purchase %s", telegram_id, purchase_id)
        return None, None, "review_refused"
    review = their_review(session, found.user_id, found.product_id)
    if not may_change(review, utcnow()):
        return None, None, "review_too_often"
    return found, review, None


def words_of(message: types.Message, limit: int) -> str:
    """The text of an answer, checked: text only, at most ``limit`` characters as Telegram counts them; NUL
    characters (which PostgreSQL refuses) dropped; "" when nothing visible is left."""
    if message.content_type != "text":
        raise InputError("review_text_only")
    words = message.text.replace("\0", "").strip()
    if utf16_len(words) > limit:
        raise InputError("review_too_long", length=utf16_len(words), limit=limit)
    return words if has_visible_text(words) else ""


@customer.tap(REVIEW)
def tap_review(shop: Shop, call: types.CallbackQuery, session: Session, lang: str, purchase_id: int):
    """⭐ beside a purchase: the stars to tap, under the review they wrote before (a new one replaces it)."""
    found = reviewable(session, call.from_user.id, purchase_id)
    if found is None:
        logger.warning("User %s may not review purchase %s", call.from_user.id, purchase_id)
        return Toast(text(lang, "review_refused"))
    prompt = text(lang, "review_rate", name=found.name)
    review = their_review(session, found.user_id, found.product_id)
    if review is not None:
        prompt += "\n\n" + text(lang, "review_yours", stars=stars_of(review.stars), text=review.text)
    return Screen(prompt, keyboard(star_buttons(purchase_id), [PURCHASES.button(label(lang, "btn_back"), page=0)]))


@customer.tap(RATE)
def tap_rate(shop: Shop, call: types.CallbackQuery, session: Session, lang: str, purchase_id: int, stars: int):
    """A number of stars: then a few words, or ➡️ No text."""
    found, _review, problem = check_review(session, call.from_user.id, purchase_id, stars)
    if problem:
        return Toast(text(lang, problem))
    screen = ask(session, call, "review_text", "review_ask_text",
                 {"name": found.name, "stars": stars_of(stars), "limit": REVIEW_TEXT_MAX},
                 purchase_id=purchase_id, stars=stars)
    screen.markup = keyboard([NO_TEXT.button(label(lang, "btn_review_no_text"), purchase_id=purchase_id, stars=stars)],
                             [CANCEL.button(label(lang, "btn_cancel"))])
    return screen


@customer.answer("review_text", expires_after=WRITING_MINUTES * 60)
def answer_review_text(shop: Shop, message: types.Message, session: Session, lang: str, dialog: dict):
    """The buyer's words after the stars (too long, or not a text: said, and asked again)."""
    words = words_of(message, REVIEW_TEXT_MAX)
    end_dialog(session, message)
    return save_review(session, message.from_user, lang, dialog["purchase_id"], dialog["stars"], words)


@customer.tap(NO_TEXT)
def tap_no_text(shop: Shop, call: types.CallbackQuery, session: Session, lang: str, purchase_id: int, stars: int):
    """➡️ No text: the stars alone."""
    return save_review(session, call.from_user, lang, purchase_id, stars, "")


def save_review(session: Session, person: types.User, lang: str, purchase_id: int, stars: int, words: str):
    """Store the review, checked once more (a new one, or in place of theirs); the thanks, and the admins' notice.

    A changed review loses the seller's reply (it answered other words) and
    stays hidden if the seller hid it.
    """
    found, review, problem = check_review(session, person.id, purchase_id, stars)
    if problem:
        return Toast(text(lang, problem))
    now, new = utcnow(), review is None
    if new:
        review = Review(user_id=found.user_id, product_id=found.product_id, created_at=now)
        session.add(review)
    else:
        count_change(review, now)
    review.stars, review.text, review.reply, review.updated_at = stars, words, "", now
    try:
        session.commit()
    except IntegrityError:  # their first review, saved a moment ago by another tap: this one changes it
        session.rollback()
        return save_review(session, person, lang, purchase_id, stars, words)
    logger.info("User %s %s a review of product %s: %s stars", person.id, "wrote" if new else "changed",
                found.product_id, stars)
    thanks = Screen(text(lang, "review_saved", name=found.name, stars=stars_of(stars)), keyboard(
        [REVIEWS.button(label(lang, "btn_reviews"), product_id=found.product_id, page=0)],
        [PURCHASES.button(label(lang, "btn_purchases"), page=0)]))
    return thanks, After(notify_admins, "admin_new_review" if new else "admin_review_changed",
                         seller_buttons(review.id, review.hidden), name=found.name, who=describe_user(person),
                         id=person.id, stars=stars_of(stars), text=words)


# ---------------------------------------------------------------------------
# 2. Reading them: 💬 Reviews under a card, the newest first
# ---------------------------------------------------------------------------

def review_entry(lang: str, row) -> str:
    """One review as customers read it: the stars, the first name (never more), the words, the seller's reply."""
    entry = text(lang, "review_entry", stars=stars_of(row.stars), name=row.first_name or label(lang, "review_buyer"),
                 date=f"{row.updated_at:%Y-%m-%d}")
    if row.text:
        entry += "\n" + html.escape(row.text, quote=False)
    if row.reply:
        entry += "\n" + text(lang, "review_reply_entry", reply=row.reply)
    return entry


def reviews_screen(shop: Shop, session: Session, lang: str, product_id: int, page: int) -> Screen:
    """A page of a product's shown reviews, newest first; the catalog when the product is not on sale."""
    product = session.get(Product, product_id)
    if product is None or not product.is_active:
        return with_toast(catalog_screen(shop, session, lang), text(lang, "unavailable"))
    back = [PRODUCT.button(label(lang, "btn_back"), product_id=product_id, page=0)]
    rating = rating_of(session, product_id)
    if not rating[1]:
        return Screen(text(lang, "reviews_none", name=product.name), keyboard(back))
    pages = page_count(rating[1], REVIEWS_PER_PAGE)
    page = min(page, pages - 1)  # reviews were hidden or refunded since
    rows = session.execute(
        select(Review.stars, Review.text, Review.reply, Review.updated_at, User.first_name)
        .join(User, Review.user_id == User.id).where(shown_reviews(product_id))
        .order_by(Review.updated_at.desc(), Review.id.desc())
        .limit(REVIEWS_PER_PAGE).offset(page * REVIEWS_PER_PAGE)).all()
    heading = text(lang, "reviews_title", name=product.name) + "\n" + rating_line(lang, rating)
    return Screen("\n\n".join([heading, *(review_entry(lang, row) for row in rows)]),
                  keyboard(pager_row(lang, REVIEWS, page, pages, product_id=product_id), back))


@customer.tap(REVIEWS)
def tap_reviews(shop: Shop, call: types.CallbackQuery, session: Session, lang: str, product_id: int,
                page: int) -> Screen:
    """💬 Reviews under a card, a page at a time."""
    return reviews_screen(shop, session, lang, product_id, page)


# ---------------------------------------------------------------------------
# 3. The seller's side: each review told, ↩️ Reply, 🙈 Hide
# ---------------------------------------------------------------------------

def seller_buttons(review_id: int, hidden: bool):
    """↩️ Reply and 🙈 Hide (👁 Show again, once hidden) under a review, in each admin's language."""
    def buttons(lang: str) -> types.InlineKeyboardMarkup:
        switch = (SHOW_REVIEW.button(label(lang, "btn_review_show"), review_id=review_id) if hidden
                  else HIDE_REVIEW.button(label(lang, "btn_review_hide"), review_id=review_id))
        return keyboard([REPLY_TO_REVIEW.button(label(lang, "btn_review_reply"), review_id=review_id), switch])
    return buttons


def seller_view(lang: str, review: Review) -> Screen:
    """A review as the seller sees it: who wrote it, the words, their reply, whether it is hidden."""
    view = text(lang, "admin_review", name=review.product.name, who=describe_user(review.user),
                id=review.user.telegram_id, stars=stars_of(review.stars), text=review.text)
    if review.reply:
        view += "\n" + text(lang, "review_reply_entry", reply=review.reply)
    if review.hidden:
        view += "\n\n" + text(lang, "admin_review_hidden")
    return Screen(view, seller_buttons(review.id, review.hidden)(lang))


def set_hidden(session: Session, lang: str, review_id: int, hidden: bool):
    """Hide a review (or show it again): the notice under the tap shows how it stands now."""
    review = session.get(Review, review_id)
    if review is None:
        return Toast(text(lang, "admin_review_gone"))
    review.hidden = hidden
    session.commit()
    logger.info("Review %s is %s", review_id, "hidden" if hidden else "shown")
    return with_toast(seller_view(lang, review), text(lang, "admin_review_hidden_toast" if hidden
                                                      else "admin_review_shown_toast"))


@seller.tap(HIDE_REVIEW)
def tap_hide_review(shop: Shop, call: types.CallbackQuery, session: Session, lang: str, review_id: int):
    """🙈 Hide: the review counts nowhere, in the average or the list."""
    return set_hidden(session, lang, review_id, True)


@seller.tap(SHOW_REVIEW)
def tap_show_review(shop: Shop, call: types.CallbackQuery, session: Session, lang: str, review_id: int):
    """👁 Show again."""
    return set_hidden(session, lang, review_id, False)


@seller.tap(REPLY_TO_REVIEW)
def tap_reply_to_review(shop: Shop, call: types.CallbackQuery, session: Session, lang: str, review_id: int):
    """↩️ Reply under a review: the admin's next message is shown under it."""
    review = session.get(Review, review_id)
    if review is None:
        return Toast(text(lang, "admin_review_gone"))
    end_dialog(session, call)
    screen = ask(session, call, "review_reply", "admin_review_ask_reply",
                 {"name": review.product.name, "who": review.user.first_name, "limit": REPLY_MAX}, review_id=review_id)
    screen.new_message = True  # below the review's notice, which stays
    return screen


@seller.answer("review_reply")
def answer_review_reply(shop: Shop, message: types.Message, session: Session, lang: str, dialog: dict):
    """The admin's reply: under the review from now on, and the buyer hears it."""
    reply = words_of(message, REPLY_MAX)
    if not reply:
        raise InputError("admin_review_reply_empty")
    end_dialog(session, message)
    back = keyboard([ADMIN.button(label(lang, "btn_back"))])
    review = session.get(Review, dialog["review_id"])
    if review is None:  # refunded meanwhile
        return Screen(text(lang, "admin_review_gone"), back)
    review.reply = reply
    buyer, product_id, name = review.user, review.product_id, review.product.name
    session.commit()
    buyer_lang = language_for_code(buyer.language_code)
    return (Screen(text(lang, "admin_review_replied"), back),
            After(send, buyer.telegram_id, text(buyer_lang, "review_seller_replied", name=name, reply=reply),
                  keyboard([REVIEWS.button(label(buyer_lang, "btn_reviews"), product_id=product_id, page=0)])))


# ---------------------------------------------------------------------------
# 4. Asking: once per purchase, a day after delivery
# ---------------------------------------------------------------------------

def asked_until(session: Session) -> int:
    """The id of the last purchase considered. The first look ever starts after the purchases older than
    ASK_AFTER (by the real clock): a shop that had sales before reviews existed asks about new ones only."""
    setting = session.get(Setting, ASKED_UNTIL)
    if setting is not None:
        return int(setting.value)
    return session.scalar(select(func.max(Purchase.id)).where(Purchase.created_at <= utcnow() - ASK_AFTER)) or 0


def purchases_due(session: Session, cutoff: datetime) -> tuple[list, int]:
    """The purchases to ask about now, and the id of the last one considered.

    Purchases are taken in order of id from where the last look stopped; the
    first one younger than ``cutoff`` (or delivered later) ends the look, and
    waits for the next. Of those considered, the buyer is asked about the ones
    they still own, delivered, not a subscription's payment, if they have not
    blocked the bot nor reviewed the product already.
    """
    last = asked_until(session)
    considered = []
    for row in session.execute(select(Purchase.id, Purchase.created_at, Purchase.delivered_at)
                               .where(Purchase.id > last).order_by(Purchase.id).limit(ASK_BATCH)):
        if row.created_at > cutoff or (row.delivered_at or cutoff) > cutoff:
            break
        considered.append(row.id)
    if not considered:
        return [], last
    reviewed = select(Review.id).where(Review.user_id == Purchase.user_id, Review.product_id == Purchase.product_id)
    due = session.execute(
        select(Purchase.id, Purchase.product_id, User.telegram_id, User.language_code, Product.name)
        .join(User, Purchase.user_id == User.id).join(Product, Purchase.product_id == Product.id)
        .where(Purchase.id.in_(considered), owning(Purchase.product_id), Purchase.delivered_at.is_not(None),
               Purchase.subscription_charge_id.is_(None), User.is_blocked.is_(False), ~reviewed.exists())
        .order_by(Purchase.id)).all()
    once = {(row.telegram_id, row.product_id): row for row in reversed(due)}  # two purchases of one product: one ask
    return sorted(once.values(), key=lambda row: row.id), considered[-1]


def ask_for_reviews(shop: Shop, now: datetime | None = None) -> int:
    """Ask each buyer whose purchase was delivered a day ago what they think of it, once; how many were asked.

    How far it got is committed before anyone is asked: a crash in between asks
    a few people less, never anyone twice.
    """
    with shop.Session() as session:
        due, last = purchases_due(session, (now or utcnow()) - ASK_AFTER)
        put_setting(session, ASKED_UNTIL, str(last))
        session.commit()
    asked = 0
    for row in due:
        lang = language_for_code(row.language_code)
        try:
            asked += send(shop, row.telegram_id, text(lang, "review_ask", name=row.name),
                          keyboard(star_buttons(row.id))) is not None
        except ApiTelegramException as error:
            logger.warning("Could not ask user %s for a review: %s", row.telegram_id, error.description)
        shop.sleep(MASS_SEND_INTERVAL)
    if asked:
        logger.info("Asked %s buyers for a review", asked)
    return asked


def register(bot: TeleBot, shop: Shop) -> None:
    """Wire the reviews into the bot: the buyers' and the seller's buttons, and the daily question."""
    shop.jobs_at_start.append(lambda shop: shop.start_repeating(ask_for_reviews, ASK_EVERY))  # now, then every 10 min
    add_handlers(shop, customer)
    add_handlers(shop, seller)
