"""Broadcast: one message from the seller to their customers, all of them or a part.

Reading order: ... promo_panel.py → **broadcast.py** → backups.py → ...

📣 Broadcast asks for a text, a photo or a document and shows it back as a
preview, with whom it will reach, counted: everyone who started the bot and has
not blocked it (the admins are left out: they have it already), the buyers, the
buyers of one product, or the active subscribers of one subscription (👥
Change audience). ✅ Send copies it to them in the background, so the shop
keeps serving meanwhile.

Two speeds. Standard, the default, stays under Telegram's limit of about 30
messages a second: 10,000 people take about six minutes. ⚡ Fast, offered
for an audience over FAST_FROM people, sends each message with
``allow_paid_broadcast``: Telegram then allows up to 1,000 a second and takes
0.1 ⭐ a message from the bot's balance. The preview shows the cost and the
balance before anything is sent, and a balance that cannot pay is refused.

Each broadcast, whom it is for and how far it got, is kept in the database
(``models.Broadcast``): after a restart it resumes where it stopped, to the
same people at the same speed, without writing to anyone twice. An error with
one customer is retried, then counted, and never stops the run; a 429 makes
every sender wait as long as Telegram asks. The admin always gets the final
report, as a new message (a notification), and another broadcast may start as
soon as this one has finished.
"""
from __future__ import annotations

import functools
import logging
import math
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from sqlalchemy import exists, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from telebot import TeleBot, types
from telebot.apihelper import ApiTelegramException

from menus import ADMIN, BROADCAST
from models import Broadcast, Product, Purchase, Subscription, User
from shopkit import (
    CALL_FAILED,
    CANCEL,
    STARS,
    After,
    Handlers,
    InputError,
    Screen,
    Shop,
    Tap,
    Toast,
    add_handlers,
    ask,
    call_api,
    counted,
    dialog_data,
    edit_or_send,
    end_dialog,
    format_price,
    keyboard,
    label,
    language_for_code,
    retry_after,
    send,
    short_reason,
    text,
    utcnow,
)
from subscriptions import live

logger = logging.getLogger("shopbot")
handlers = Handlers(admin=True)

# The buttons under the preview.
SEND_BROADCAST = Tap("send_broadcast")  # ✅ Send, at standard speed
PREVIEW = Tap("broadcast_preview")  # back to the preview
AUDIENCES = Tap("broadcast_audience")  # 👥 Change audience: the four choices
AUDIENCE_PRODUCTS = Tap("broadcast_products", "kind")  # the products (or subscriptions) to choose from
CHOOSE_AUDIENCE = Tap("broadcast_to", "kind", "product_id")  # one choice (product_id 0: none needed)
FAST_OFFER = Tap("fast_broadcast")  # ⚡ Fast broadcast…: its cost and the bot's balance
SEND_FAST = Tap("send_fast_broadcast")  # ⚡ Send fast

# Whom a broadcast is for (Broadcast.audience); a button carries the position in AUDIENCE_KINDS.
EVERYONE, BUYERS, PRODUCT_BUYERS, SUBSCRIBERS = "all", "buyers", "product", "subscribers"
AUDIENCE_KINDS = (EVERYONE, BUYERS, PRODUCT_BUYERS, SUBSCRIBERS)

# ⚡ Fast is offered from this many recipients: at standard speed 1,000 people take about 35 seconds, which
# is worth waiting for rather than paying 100 ⭐; beyond it the wait grows to minutes (10,000: six).
FAST_FROM = 1000
FAST_NANOSTARS = 100_000_000  # Telegram's fee for a message with allow_paid_broadcast: 0.1 ⭐
NANOSTARS = 1_000_000_000  # in a Star

PROGRESS_EVERY = 3.0  # seconds between edits of the progress message
TRIES = 3  # attempts per customer when the error may pass (the network, Telegram unwell)
READ_AHEAD = 1000  # recipients read from the database at a time
CHOICES_SHOWN = 30  # products offered as an audience, those with the most people first


@dataclass(frozen=True)
class Speed:
    """How a broadcast sends: how many messages a second, from how many threads, saving its place how often."""

    rate: float  # messages a second, a little under Telegram's limit (other messages of the shop count too)
    senders: int  # copies under way at once: a round trip to Telegram takes 30-150 ms
    batch: int  # recipients whose place is saved together
    # Claim each batch in the database before sending it, one batch ahead of the one being saved. A batch is
    # saved only once all of it is sent, so a kill in between leaves people who may or may not have it: the
    # claim marks them, and the next start skips them (counted as unsure) rather than write to them twice.
    # At standard speed the place is saved after every message and nothing is sent ahead, so a kill can at
    # worst repeat the one message on its way, as before: no claim needed.
    claims: bool


STANDARD = Speed(rate=28, senders=1, batch=1, claims=False)  # Telegram: about 30 a second
FAST = Speed(rate=950, senders=48, batch=200, claims=True)  # Telegram: up to 1,000 a second, paid


def speed_of(broadcast: Broadcast) -> Speed:
    return FAST if broadcast.fast else STANDARD


# ---------------------------------------------------------------------------
# Whom it reaches
# ---------------------------------------------------------------------------

def can_reach(shop: Shop):
    """Whom a broadcast may reach: they started the bot and have not blocked it; not the admins (they have it)."""
    return User.is_blocked.is_(False) & User.telegram_id.not_in(shop.config.admin_ids)


def reachable(shop: Shop):
    return select(User.id, User.telegram_id).where(can_reach(shop))


def a_sale():
    """A purchase that makes its buyer a buyer: paid (over zero) and not refunded. Free items, grants and gifts
    received cost nothing, and a payment to be refunded (refund_due) is no sale: none of them counts."""
    return (Purchase.price > 0) & Purchase.refunded_at.is_(None) & Purchase.refund_due.is_(False)


def paid(product_id: int | None = None):
    """A buyer: someone who paid for something (one product, if given) and was not refunded."""
    bought = exists().where(Purchase.user_id == User.id, a_sale())
    return bought.where(Purchase.product_id == product_id) if product_id is not None else bought


def subscribed(product_id: int):
    """An active subscriber of a subscription: their paid access has not ended (subscriptions.live)."""
    return exists().where(Subscription.user_id == User.id, Subscription.product_id == product_id, live(utcnow()))


def audience(shop: Shop, kind: str = EVERYONE, product_id: int | None = None):
    """The people a broadcast is for: (users.id, telegram id) of everyone reachable in the chosen part."""
    query = reachable(shop)
    if kind == BUYERS:
        return query.where(paid())
    if kind == PRODUCT_BUYERS:
        return query.where(paid(product_id))
    if kind == SUBSCRIBERS:
        return query.where(subscribed(product_id))
    return query


def count(session: Session, query) -> int:
    return session.scalar(select(func.count()).select_from(query.subquery()))


def blocked_count(shop: Shop, session: Session) -> int:
    return session.scalar(select(func.count(User.id)).where(User.is_blocked.is_(True),
                                                            User.telegram_id.not_in(shop.config.admin_ids)))


# ---------------------------------------------------------------------------
# Asking, and the preview
# ---------------------------------------------------------------------------

@handlers.tap(BROADCAST)
def tap_broadcast(shop: Shop, call: types.CallbackQuery, session: Session, lang: str) -> Screen:
    """📣 Broadcast: ask for the message."""
    return ask(session, call, "broadcast_message", "admin_ask_broadcast")


def chosen(session: Session, draft: dict) -> tuple[str, Product | None]:
    """The audience the draft names, and its product; everyone, if that product is gone."""
    kind, product_id = draft.get("audience", EVERYONE), draft.get("product_id")
    product = session.get(Product, product_id) if product_id else None
    if kind in (PRODUCT_BUYERS, SUBSCRIBERS) and product is None:
        return EVERYONE, None
    return kind, product


def audience_line(shop: Shop, session: Session, lang: str, kind: str, product: Product | None, people: int) -> str:
    """Whom the broadcast reaches, named truly and counted."""
    who = counted(lang, "n_people", people)
    if kind == BUYERS:
        return text(lang, "admin_broadcast_to_buyers", people=who)
    if kind == PRODUCT_BUYERS:
        return text(lang, "admin_broadcast_to_product", people=who, product=product.name)
    if kind == SUBSCRIBERS:
        return text(lang, "admin_broadcast_to_subscribers", people=who, product=product.name)
    line = text(lang, "admin_broadcast_to_everyone", people=who,
                buyers=counted(lang, "n_of_them_buyers", count(session, audience(shop, BUYERS))))
    blocked = blocked_count(shop, session)
    return line + (text(lang, "admin_broadcast_blocked_left_out", people=counted(lang, "n_people", blocked))
                   if blocked else "")


def fee(recipients: int) -> int:
    """⚡ Fast's cost in Stars: 0.1 ⭐ a message, rounded up."""
    return math.ceil(recipients * FAST_NANOSTARS / NANOSTARS)


def preview_screen(shop: Shop, session: Session, lang: str, draft: dict) -> Screen:
    """Whom it reaches, and the buttons: ✅ Send, ⚡ Fast (for a large audience), 👥 Change audience, ✖️ Cancel."""
    kind, product = chosen(session, draft)
    people = count(session, audience(shop, kind, product and product.id))
    lines = [text(lang, "admin_confirm_broadcast"), audience_line(shop, session, lang, kind, product, people)]
    fast_button = []
    if people > FAST_FROM:
        lines.append(text(lang, "admin_broadcast_fast_hint", minutes=math.ceil(people / STANDARD.rate / 60)))
        fast_button = [FAST_OFFER.button(label(lang, "btn_broadcast_fast"))]
    return Screen("\n\n".join(lines), keyboard(
        [SEND_BROADCAST.button(label(lang, "btn_send")), *fast_button],
        [AUDIENCES.button(label(lang, "btn_broadcast_audience"))],
        [CANCEL.button(label(lang, "btn_cancel"))]))


def show_preview(shop: Shop, message: types.Message, screen: Screen) -> None:
    """The admin's ``message`` copied back to them, then whom it reaches and the buttons."""
    shop.bot.copy_message(message.chat.id, message.chat.id, message.message_id)
    send(shop, message.chat.id, screen.text, screen.markup)


@handlers.answer("broadcast_message")
@handlers.answer("broadcast_ready")  # another message under the preview replaces the first
def answer_broadcast(shop: Shop, message: types.Message, session: Session, lang: str, dialog: dict) -> After:
    """The message to broadcast (the audience chosen so far stays)."""
    if message.content_type not in ("text", "photo", "document"):
        raise InputError("err_broadcast_kind")
    ask(session, message, "broadcast_ready", "admin_ask_broadcast", message_id=message.message_id)
    return After(show_preview, message, preview_screen(shop, session, lang, dialog))


def keep_draft(session: Session, call: types.CallbackQuery, **changes) -> dict:
    """Write the audience into the draft (a dialog, so that it survives a restart too); the draft as it is now."""
    ask(session, call, "broadcast_ready", "admin_ask_broadcast", **changes)
    return dialog_data(session, call, "broadcast_ready")


@handlers.tap(PREVIEW)
def tap_preview(shop: Shop, call: types.CallbackQuery, session: Session, lang: str):
    """⬅️ Back to the preview."""
    draft = dialog_data(session, call, "broadcast_ready")
    return preview_screen(shop, session, lang, draft) if draft else Toast(text(lang, "stale_button"))


@handlers.tap(AUDIENCES)
def tap_audiences(shop: Shop, call: types.CallbackQuery, session: Session, lang: str):
    """👥 Change audience: everyone, buyers, one product's buyers, one subscription's subscribers."""
    if dialog_data(session, call, "broadcast_ready") is None:
        return Toast(text(lang, "stale_button"))
    position = AUDIENCE_KINDS.index
    return Screen(text(lang, "admin_broadcast_audiences"), keyboard(
        [CHOOSE_AUDIENCE.button(label(lang, "btn_audience_everyone", count=count(session, audience(shop))),
                                kind=position(EVERYONE), product_id=0)],
        [CHOOSE_AUDIENCE.button(label(lang, "btn_audience_buyers", count=count(session, audience(shop, BUYERS))),
                                kind=position(BUYERS), product_id=0)],
        [AUDIENCE_PRODUCTS.button(label(lang, "btn_audience_product"), kind=position(PRODUCT_BUYERS))],
        [AUDIENCE_PRODUCTS.button(label(lang, "btn_audience_subscribers"), kind=position(SUBSCRIBERS))],
        [PREVIEW.button(label(lang, "btn_back"))]))


def people_by_product(shop: Shop, session: Session, kind: str) -> list[tuple[int, str, int]]:
    """(product id, name, people) for the products with the most buyers, or the subscriptions with the most
    active subscribers, counted as ``audience`` counts them: one grouped query, however large the catalog."""
    held, counts = (Subscription, live(utcnow())) if kind == SUBSCRIBERS else (Purchase, a_sale())
    people = func.count(func.distinct(held.user_id))
    rows = session.execute(
        select(held.product_id, Product.name, people).join(Product, Product.id == held.product_id)
        .join(User, User.id == held.user_id).where(counts, can_reach(shop))
        .group_by(held.product_id, Product.name).order_by(people.desc(), held.product_id).limit(CHOICES_SHOWN))
    return [tuple(row) for row in rows]


@handlers.tap(AUDIENCE_PRODUCTS)
def tap_audience_products(shop: Shop, call: types.CallbackQuery, session: Session, lang: str, kind: int):
    """📦 Buyers of a product… / 📅 Subscribers of…: the products to choose from, with how many people each."""
    if dialog_data(session, call, "broadcast_ready") is None or kind not in (AUDIENCE_KINDS.index(PRODUCT_BUYERS),
                                                                             AUDIENCE_KINDS.index(SUBSCRIBERS)):
        return Toast(text(lang, "stale_button"))
    rows = people_by_product(shop, session, AUDIENCE_KINDS[kind])
    key = "admin_broadcast_pick_subscription" if AUDIENCE_KINDS[kind] == SUBSCRIBERS else "admin_broadcast_pick_product"
    return Screen(text(lang, key) + ("" if rows else "\n\n" + text(lang, "admin_broadcast_none_to_pick")), keyboard(
        *[[CHOOSE_AUDIENCE.button(label(lang, "btn_audience_of", name=name, count=people), kind=kind,
                                  product_id=product_id)] for product_id, name, people in rows],
        [AUDIENCES.button(label(lang, "btn_back"))]))


@handlers.tap(CHOOSE_AUDIENCE)
def tap_choose_audience(shop: Shop, call: types.CallbackQuery, session: Session, lang: str, kind: int,
                        product_id: int):
    """One audience chosen: kept with the draft, and the preview counts it."""
    if dialog_data(session, call, "broadcast_ready") is None or kind >= len(AUDIENCE_KINDS):
        return Toast(text(lang, "stale_button"))
    draft = keep_draft(session, call, audience=AUDIENCE_KINDS[kind], product_id=product_id or None)
    return preview_screen(shop, session, lang, draft)


# ---------------------------------------------------------------------------
# ⚡ Fast: its cost and the bot's balance, before anything is sent
# ---------------------------------------------------------------------------

def star_balance(shop: Shop) -> int | None:
    """The bot's Stars balance in nanostars (getMyStarBalance); None when Telegram cannot tell us now."""
    try:
        balance = call_api(shop, None, shop.bot.get_my_star_balance)
    except CALL_FAILED as error:
        logger.warning("Could not read the bot's Stars balance: %s", short_reason(error))
        return None
    return balance.amount * NANOSTARS + (balance.nanostar_amount or 0)


def can_pay(balance: int | None, recipients: int) -> bool:
    return balance is not None and balance >= fee(recipients) * NANOSTARS


def stars(balance: int | None) -> str:
    """A balance as the admin reads it: whole Stars (a fraction is left out), or a dash when unknown."""
    return "—" if balance is None else format_price(balance // NANOSTARS, STARS)


def offer_fast(shop: Shop, chat_id: int, message_id: int, lang: str, people: int) -> None:
    """The preview becomes the offer: the cost, the balance, and ⚡ Send fast only if the balance pays for it."""
    balance = star_balance(shop)
    html = text(lang, "admin_broadcast_fast_offer", people=counted(lang, "n_people", people), count=people,
                cost=format_price(fee(people), STARS), balance=stars(balance))
    affordable = can_pay(balance, people)
    html += "\n\n" + text(lang, "admin_broadcast_fast_ok" if affordable else "admin_broadcast_fast_short")
    markup = keyboard([SEND_FAST.button(label(lang, "btn_send_fast", cost=format_price(fee(people), STARS)))]
                      if affordable else [], [PREVIEW.button(label(lang, "btn_back"))])
    try:
        call_api(shop, chat_id, shop.bot.edit_message_text, html, chat_id, message_id, reply_markup=markup)
    except CALL_FAILED:
        send(shop, chat_id, html, markup)


@handlers.tap(FAST_OFFER)
def tap_fast_offer(shop: Shop, call: types.CallbackQuery, session: Session, lang: str):
    """⚡ Fast broadcast…: the balance is Telegram's to tell, so the offer is shown once the session is closed."""
    draft = dialog_data(session, call, "broadcast_ready")
    if draft is None:
        return Toast(text(lang, "stale_button"))
    kind, product = chosen(session, draft)
    people = count(session, audience(shop, kind, product and product.id))
    return After(offer_fast, call.message.chat.id, call.message.message_id, lang, people)


# ---------------------------------------------------------------------------
# ✅ Send: a Broadcast row, then the sending in the background
# ---------------------------------------------------------------------------

def start_broadcast(shop: Shop, broadcast_id: int) -> None:
    """Send the broadcast in the background (run_broadcast)."""
    shop.start_background(run_broadcast, broadcast_id)


def new_broadcast(shop: Shop, session: Session, call: types.CallbackQuery, draft: dict,
                  fast: bool) -> Broadcast | None:
    """Record the broadcast, its recipients fixed as the customers known now; None when one is running."""
    kind, product = chosen(session, draft)
    product_id = product and product.id
    last_user_id = session.scalar(select(func.max(User.id))) or 0
    total = count(session, audience(shop, kind, product_id))
    broadcast = Broadcast(admin_chat_id=call.message.chat.id, message_id=draft["message_id"], total=total,
                          language_code=call.from_user.language_code or "", last_user_id=last_user_id,
                          audience=kind, product_id=product_id, fast=fast)
    session.add(broadcast)
    try:
        session.commit()
    except IntegrityError:  # Broadcast.running is unique: another broadcast is under way
        session.rollback()
        return None
    return broadcast


def send_broadcast(shop: Shop, call: types.CallbackQuery, session: Session, lang: str, fast: bool):
    """✅ Send or ⚡ Send fast under the preview."""
    draft = dialog_data(session, call, "broadcast_ready")
    if draft is None:
        return Toast(text(lang, "stale_button"))
    broadcast = new_broadcast(shop, session, call, draft, fast)
    if broadcast is None:
        return Toast(text(lang, "admin_broadcast_busy"))
    end_dialog(session, call)
    logger.info("Admin %s started broadcast %s to %s people (%s, %s)", call.from_user.id, broadcast.id,
                broadcast.total, broadcast.audience, "fast" if fast else "standard speed")
    return (Screen(text(lang, "admin_broadcast_started", people=counted(lang, "n_people", broadcast.total),
                        count=broadcast.total),
                   keyboard([ADMIN.button(label(lang, "btn_back"))])),
            After(start_broadcast, broadcast.id))


@handlers.tap(SEND_BROADCAST)
def tap_send_broadcast(shop: Shop, call: types.CallbackQuery, session: Session, lang: str):
    """✅ Send: at standard speed, free."""
    return send_broadcast(shop, call, session, lang, fast=False)


@handlers.tap(SEND_FAST)
def tap_send_fast(shop: Shop, call: types.CallbackQuery, session: Session, lang: str):
    """⚡ Send fast: the balance is checked again before the first message (run_broadcast)."""
    return send_broadcast(shop, call, session, lang, fast=True)


# ---------------------------------------------------------------------------
# Sending at a steady pace, keeping the place
# ---------------------------------------------------------------------------

class Pace:
    """Turns to send, at most ``rate`` a second across all the threads that send; a 429 holds them all.

    Turns are spaced evenly and never saved up: after a pause the sending goes
    on at the same rate, not in a burst that Telegram would refuse. ``paid``:
    the messages carry allow_paid_broadcast (⚡), until the balance runs out.
    """

    def __init__(self, shop: Shop, rate: float, paid: bool = False):
        self.shop, self.interval, self.paid = shop, 1 / rate, paid
        self.lock = threading.Lock()
        self.next_turn = time.monotonic()

    def unpaid(self) -> bool:
        """From now on free, at standard speed; False if another sender saw to it first."""
        with self.lock:
            was_paid, self.paid, self.interval = self.paid, False, 1 / STANDARD.rate
        return was_paid

    def wait_turn(self) -> None:
        with self.lock:
            now = time.monotonic()
            turn = max(self.next_turn, now)
            self.next_turn = turn + self.interval
        if turn > now:
            self.shop.sleep(turn - now)

    def hold(self, seconds: float) -> None:
        """Telegram said 429 Too Many Requests: nobody sends for ``seconds``."""
        with self.lock:
            self.next_turn = max(self.next_turn, time.monotonic() + seconds)

    def paced(self, method):
        """``method`` (a Bot API call) waiting for its turn each time it is tried."""
        @functools.wraps(method)
        def call(*args, **kwargs):
            self.wait_turn()
            try:
                return method(*args, **kwargs)
            except ApiTelegramException as error:
                if error.error_code == 429:
                    self.hold(retry_after(error))  # call_api waits it out in this thread, and tries again
                raise
        return call


def copy_to(shop: Shop, broadcast: Broadcast, telegram_id: int, pace: Pace, copy) -> str:
    """Copy the message to one customer: "sent", "blocked" (403), or "failed" (after a few tries when the error
    may pass: the network, Telegram unwell). A fast broadcast's message carries allow_paid_broadcast."""
    try:
        try:
            copied = paced_copy(shop, broadcast, telegram_id, pace, copy, paid=pace.paid)
        except ApiTelegramException as error:
            if not (error.error_code == 400 and "BALANCE_TOO_LOW" in error.description):
                raise
            balance_ran_out(shop, broadcast, pace)
            copied = paced_copy(shop, broadcast, telegram_id, pace, copy, paid=False)
    except CALL_FAILED as error:  # "chat not found" and the like, or still failing after the tries
        logger.warning("Broadcast %s to %s failed: %s", broadcast.id, telegram_id, short_reason(error))
        return "failed"
    return "sent" if copied is not None else "blocked"


def paced_copy(shop: Shop, broadcast: Broadcast, telegram_id: int, pace: Pace, copy, paid: bool):
    paid_broadcast = {"allow_paid_broadcast": True} if paid else {}
    return call_api(shop, telegram_id, pace.paced(copy), telegram_id, broadcast.admin_chat_id, broadcast.message_id,
                    tries=TRIES, hiccups=True, **paid_broadcast)


def balance_ran_out(shop: Shop, broadcast: Broadcast, pace: Pace) -> None:
    """Telegram refused a paid message (BALANCE_TOO_LOW): the rest goes free at standard speed, that is
    remembered for a restart, and the admin is told at once."""
    if not pace.unpaid():
        return
    logger.warning("Broadcast %s: the bot's Stars balance ran out; going on at standard speed", broadcast.id)
    with shop.Session() as session:
        session.execute(update(Broadcast).where(Broadcast.id == broadcast.id).values(fast=False))
        session.commit()
    send(shop, broadcast.admin_chat_id, text(language_for_code(broadcast.language_code),
                                             "admin_broadcast_balance_ran_out"))


def recipients(shop: Shop, broadcast: Broadcast, after: int):
    """The people the broadcast has still to reach after users.id ``after``, in order: (users.id, telegram id)."""
    while True:
        with shop.Session() as session:
            rows = session.execute(audience(shop, broadcast.audience, broadcast.product_id)
                                   .where(User.id > after, User.id <= broadcast.last_user_id)
                                   .order_by(User.id).limit(READ_AHEAD)).all()
        yield from rows
        if len(rows) < READ_AHEAD:
            return
        after = rows[-1][0]


def batches(rows, size: int):
    batch = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def save_place(shop: Shop, broadcast_id: int, done: tuple[int, list[str]] | None = None,
               claim: int | None = None) -> Broadcast:
    """In one transaction: a batch ``done`` (its last users.id and outcomes), after which a restart resumes, and
    the next batch claimed, up to users.id ``claim``, before it is sent (see Speed.claims). The broadcast now."""
    values = {}
    if done is not None:
        last_id, outcomes = done
        values.update(done_until=last_id, sent=Broadcast.sent + outcomes.count("sent"),
                      blocked=Broadcast.blocked + outcomes.count("blocked"),
                      failed=Broadcast.failed + outcomes.count("failed"))
    if claim is not None:
        values.update(claimed_until=claim)
    with shop.Session() as session:
        if values:
            session.execute(update(Broadcast).where(Broadcast.id == broadcast_id).values(values))
            session.commit()
        return session.get(Broadcast, broadcast_id)


def skip_unsure(shop: Shop, broadcast_id: int) -> Broadcast:
    """At a (re)start: the people of a claimed batch whose sending a kill cut short may have the message or not.
    They are counted and skipped, never written to twice."""
    with shop.Session() as session:
        broadcast = session.get(Broadcast, broadcast_id)
        if broadcast.claimed_until > broadcast.done_until:
            in_doubt = count(session, audience(shop, broadcast.audience, broadcast.product_id).where(
                User.id > broadcast.done_until, User.id <= broadcast.claimed_until))
            logger.warning("Broadcast %s: %s people may have it already; not sent again", broadcast_id, in_doubt)
            broadcast.unsure += in_doubt
            broadcast.done_until = broadcast.claimed_until
            session.commit()
            broadcast = session.get(Broadcast, broadcast_id)
    return broadcast


def tell_admin(shop: Shop, broadcast: Broadcast, html: str) -> None:
    """Edit the progress message into ``html``, or send it anew when Telegram cannot edit it."""
    edit_or_send(shop, broadcast.admin_chat_id, broadcast.progress_message_id, html)


def progress_text(broadcast: Broadcast) -> str:
    done = broadcast.sent + broadcast.blocked + broadcast.failed + broadcast.unsure
    return text(language_for_code(broadcast.language_code), "admin_broadcast_progress", done=done,
                total=broadcast.total)


def start_progress(shop: Shop, broadcast: Broadcast) -> None:
    """The message that shows how far the broadcast got: made once, then edited (after a restart too)."""
    if broadcast.progress_message_id is not None:
        return
    message = send(shop, broadcast.admin_chat_id, progress_text(broadcast))
    if message is not None:
        broadcast.progress_message_id = message.message_id
        with shop.Session() as session:
            session.execute(update(Broadcast).where(Broadcast.id == broadcast.id)
                            .values(progress_message_id=message.message_id))
            session.commit()


def send_all(shop: Shop, broadcast_id: int) -> None:
    """Copy the message to everyone not reached yet, at the broadcast's speed, saving the place batch by batch."""
    broadcast = skip_unsure(shop, broadcast_id)
    start_progress(shop, broadcast)
    speed = speed_of(broadcast)
    pace, copy, last_report = Pace(shop, speed.rate, paid=broadcast.fast), shop.bot.copy_message, time.monotonic()
    ahead = 1 if speed.claims else 0  # batches sent before the one before them is saved
    in_flight: deque = deque()  # (the batch's last users.id, its copies under way), oldest first
    with ThreadPoolExecutor(speed.senders, thread_name_prefix=f"broadcast-{broadcast_id}") as senders:
        try:
            for batch in batches(recipients(shop, broadcast, broadcast.done_until), speed.batch):
                # Once `ahead` batches are under way, wait for the oldest: saved, and this one claimed, at once.
                done = finished(in_flight.popleft()) if len(in_flight) > ahead else None
                progress = save_place(shop, broadcast_id, done, claim=batch[-1][0] if speed.claims else None)
                in_flight.append((batch[-1][0], [senders.submit(copy_to, shop, broadcast, telegram_id, pace, copy)
                                                 for _, telegram_id in batch]))
                if time.monotonic() - last_report > PROGRESS_EVERY:
                    last_report = time.monotonic()
                    tell_admin(shop, progress, progress_text(progress))
            while in_flight:
                save_place(shop, broadcast_id, finished(in_flight.popleft()))
        except BaseException:
            senders.shutdown(cancel_futures=True)  # stopped by an error: copies not begun are not sent
            raise


def finished(batch: tuple[int, list]) -> tuple[int, list[str]]:
    """A batch once all its copies are done: its last users.id, and each copy's outcome."""
    last_id, copies = batch
    return last_id, [copy.result() for copy in copies]


def refused_for_balance(shop: Shop, broadcast_id: int) -> bool:
    """⚡ Fast, checked before the first message it sends: True (and the admin told) when the bot's balance cannot
    pay for the people left. Nothing is sent then: the seller may start it again at standard speed."""
    with shop.Session() as session:
        broadcast = session.get(Broadcast, broadcast_id)
    if not broadcast.fast:
        return False
    left = broadcast.total - (broadcast.sent + broadcast.blocked + broadcast.failed + broadcast.unsure)
    balance = star_balance(shop)
    if can_pay(balance, left):
        return False
    logger.warning("Fast broadcast %s refused: %s people cost %s Stars, the balance is %s", broadcast_id, left,
                   fee(left), stars(balance))
    send(shop, broadcast.admin_chat_id, text(language_for_code(broadcast.language_code),
                                             "admin_broadcast_refused_balance", cost=format_price(fee(left), STARS),
                                             balance=stars(balance)))
    return True


def report_text(broadcast: Broadcast) -> str:
    """The final report: how many got it, and at ⚡ fast speed what it cost; who may have it unsure."""
    lang = language_for_code(broadcast.language_code)
    report = text(lang, "admin_broadcast_done", sent=broadcast.sent, blocked=broadcast.blocked,
                  failed=broadcast.failed)
    if broadcast.fast:
        report += "\n" + text(lang, "admin_broadcast_fee", cost=format_price(fee(broadcast.sent), STARS))
    if broadcast.unsure:
        report += "\n" + text(lang, "admin_broadcast_unsure", people=counted(lang, "n_people", broadcast.unsure))
    return report


def run_broadcast(shop: Shop, broadcast_id: int) -> None:
    """Send a broadcast to the end, then finish it: the lock released first, the report always sent, as a new
    message so that the admin hears of it."""
    refused = False
    try:
        refused = refused_for_balance(shop, broadcast_id)
        if not refused:
            send_all(shop, broadcast_id)
    except Exception:
        logger.exception("Broadcast %s stopped by an error", broadcast_id)
    with shop.Session() as session:
        session.execute(update(Broadcast).where(Broadcast.id == broadcast_id)
                        .values(running=None, finished_at=utcnow()))
        session.commit()
        broadcast = session.get(Broadcast, broadcast_id)
    if refused:
        return  # the admin has been told why, and nothing was sent
    logger.info("Broadcast %s finished: %s sent, %s blocked, %s failed, %s unsure", broadcast_id, broadcast.sent,
                broadcast.blocked, broadcast.failed, broadcast.unsure)
    if broadcast.progress_message_id is not None:
        tell_admin(shop, broadcast, progress_text(broadcast))  # the progress message shows the end too
    send(shop, broadcast.admin_chat_id, report_text(broadcast))


def resume_broadcasts(shop: Shop) -> None:
    """At start: a broadcast the last run left unfinished carries on where it stopped."""
    with shop.Session() as session:
        unfinished = session.scalars(select(Broadcast.id).where(Broadcast.running.is_(True))).all()
    for broadcast_id in unfinished:
        logger.info("Resuming broadcast %s after a restart", broadcast_id)
        shop.start_background(run_broadcast, broadcast_id)


def register(bot: TeleBot, shop: Shop) -> None:
    """Wire broadcasts into the bot; a broadcast a restart interrupted goes on at start."""
    shop.jobs_at_start.append(resume_broadcasts)
    add_handlers(shop, handlers)
