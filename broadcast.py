"""Broadcast: one message from the seller to every customer.

Reading order: ... promo_panel.py → **broadcast.py** → backups.py → ...

📣 Broadcast asks for a text, a photo or a document, shows it back as a
preview, and on ✅ Send copies it to every customer who has not blocked the
bot (the admins are left out: they have it already). It runs in the
background at about 25 messages a second, below Telegram's limit of about
30, so the shop keeps serving meanwhile.

Each broadcast, and how far it got, is kept in the database
(``models.Broadcast``): after a restart it resumes where it stopped, without
writing to anyone twice. An error with one customer is retried, then counted,
and never stops the run; the admin always gets the final report, and another
broadcast may start as soon as this one has finished.
"""
from __future__ import annotations

import logging
import time

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from telebot import TeleBot, types
from telebot.apihelper import ApiTelegramException

from menus import ADMIN, BROADCAST
from models import Broadcast, User
from shopkit import (
    CALL_FAILED,
    CANCEL,
    MASS_SEND_INTERVAL,
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
    end_dialog,
    keyboard,
    label,
    language_for_code,
    language_of,
    send,
    short_reason,
    text,
    utcnow,
)

logger = logging.getLogger("shopbot")
handlers = Handlers(admin=True)

# The button that sends the broadcast.
SEND_BROADCAST = Tap("send_broadcast")

PROGRESS_EVERY = 3.0  # seconds between edits of the progress message
TRIES = 3  # attempts per customer when the error may pass (the network, Telegram unwell)
BATCH = 100  # recipients read from the database at a time


def audience(shop: Shop):
    """The customers a broadcast is for: everyone who has not blocked the bot, but the admins."""
    return select(User.id, User.telegram_id).where(User.is_blocked.is_(False),
                                                   User.telegram_id.not_in(shop.config.admin_ids))


# ---------------------------------------------------------------------------
# Asking, and the preview
# ---------------------------------------------------------------------------

@handlers.tap(BROADCAST)
def tap_broadcast(shop: Shop, call: types.CallbackQuery, session: Session, lang: str) -> Screen:
    """📣 Broadcast: ask for the message."""
    return ask(session, call, "broadcast_message", "admin_ask_broadcast")


def show_preview(shop: Shop, message: types.Message, audience: int) -> None:
    """The admin's ``message`` copied back to them, then "Send it to N customers?"."""
    shop.bot.copy_message(message.chat.id, message.chat.id, message.message_id)
    lang = language_of(message.from_user)
    send(shop, message.chat.id, text(lang, "admin_confirm_broadcast",
                                     customers=counted(lang, "n_customers", audience)), keyboard(
        [SEND_BROADCAST.button(label(lang, "btn_send")), CANCEL.button(label(lang, "btn_cancel"))]))


@handlers.answer("broadcast_message")
@handlers.answer("broadcast_ready")  # another message under the preview replaces the first
def answer_broadcast(shop: Shop, message: types.Message, session: Session, lang: str, dialog: dict) -> After:
    """The message to send to everyone."""
    if message.content_type not in ("text", "photo", "document"):
        raise InputError("err_broadcast_kind")
    ask(session, message, "broadcast_ready", "admin_ask_broadcast", message_id=message.message_id)
    return After(show_preview, message, session.scalar(select(func.count()).select_from(audience(shop).subquery())))


# ---------------------------------------------------------------------------
# ✅ Send: a Broadcast row, then the sending in the background
# ---------------------------------------------------------------------------

def start_broadcast(shop: Shop, broadcast_id: int) -> None:
    """Send the broadcast in the background (run_broadcast)."""
    shop.start_background(run_broadcast, broadcast_id)


def new_broadcast(shop: Shop, session: Session, call: types.CallbackQuery, message_id: int) -> Broadcast | None:
    """Record the broadcast, its recipients fixed as the customers known now; None when one is running."""
    last_user_id = session.scalar(select(func.max(User.id))) or 0
    total = session.scalar(select(func.count()).select_from(audience(shop).subquery()))
    broadcast = Broadcast(admin_chat_id=call.message.chat.id, message_id=message_id, total=total,
                          language_code=call.from_user.language_code or "", last_user_id=last_user_id)
    session.add(broadcast)
    try:
        session.commit()
    except IntegrityError:  # Broadcast.running is unique: another broadcast is under way
        session.rollback()
        return None
    return broadcast


@handlers.tap(SEND_BROADCAST)
def tap_send_broadcast(shop: Shop, call: types.CallbackQuery, session: Session, lang: str):
    """✅ Send under the preview."""
    draft = dialog_data(session, call, "broadcast_ready")
    if draft is None:
        return Toast(text(lang, "stale_button"))
    broadcast = new_broadcast(shop, session, call, draft["message_id"])
    if broadcast is None:
        return Toast(text(lang, "admin_broadcast_busy"))
    end_dialog(session, call)
    logger.info("Admin %s started broadcast %s to %s customers", call.from_user.id, broadcast.id, broadcast.total)
    return (Screen(text(lang, "admin_broadcast_started", customers=counted(lang, "n_customers", broadcast.total)),
                   keyboard([ADMIN.button(label(lang, "btn_back"))])),
            After(start_broadcast, broadcast.id))


# ---------------------------------------------------------------------------
# Sending, one customer at a time, keeping the place
# ---------------------------------------------------------------------------

def copy_to(shop: Shop, broadcast: Broadcast, telegram_id: int) -> str:
    """Copy the message to one customer: "sent", "blocked" (403), or "failed" (after a few tries when the error
    may pass: the network, Telegram unwell)."""
    try:
        copied = call_api(shop, telegram_id, shop.bot.copy_message, telegram_id, broadcast.admin_chat_id,
                          broadcast.message_id, tries=TRIES, hiccups=True)
    except CALL_FAILED as error:  # "chat not found" and the like, or still failing after the tries
        logger.warning("Broadcast %s to %s failed: %s", broadcast.id, telegram_id, short_reason(error))
        return "failed"
    return "sent" if copied is not None else "blocked"


def next_recipients(shop: Shop, broadcast_id: int) -> tuple[Broadcast, list]:
    """The broadcast as it stands, and the next customers it has not reached."""
    with shop.Session() as session:
        broadcast = session.get(Broadcast, broadcast_id)
        rows = session.execute(audience(shop).where(User.id > broadcast.done_until, User.id <= broadcast.last_user_id)
                               .order_by(User.id).limit(BATCH)).all()
    return broadcast, rows


def save_place(shop: Shop, broadcast_id: int, user_id: int, outcome: str) -> None:
    """After each customer: a restart resumes after them, and nobody gets the message twice."""
    with shop.Session() as session:
        column = getattr(Broadcast, outcome)
        session.execute(update(Broadcast).where(Broadcast.id == broadcast_id)
                        .values({Broadcast.done_until: user_id, column: column + 1}))
        session.commit()


def tell_admin(shop: Shop, broadcast: Broadcast, html: str) -> None:
    """Edit the progress message into ``html``, or send it anew when Telegram cannot edit it."""
    chat = broadcast.admin_chat_id
    try:
        call_api(shop, chat, shop.bot.edit_message_text, html, chat, broadcast.progress_message_id)
    except ApiTelegramException as error:
        if "message is not modified" not in error.description:
            send(shop, chat, html)
    except CALL_FAILED:
        send(shop, chat, html)


def progress_text(broadcast: Broadcast) -> str:
    done = broadcast.sent + broadcast.blocked + broadcast.failed
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
    """Copy the message to every customer not reached yet, at about 25 a second."""
    broadcast, batch = next_recipients(shop, broadcast_id)
    start_progress(shop, broadcast)
    last_report = time.monotonic()
    while batch:
        for user_id, telegram_id in batch:
            started = time.monotonic()
            save_place(shop, broadcast_id, user_id, copy_to(shop, broadcast, telegram_id))
            shop.sleep(max(0.0, MASS_SEND_INTERVAL - (time.monotonic() - started)))
        broadcast, batch = next_recipients(shop, broadcast_id)
        if time.monotonic() - last_report > PROGRESS_EVERY:
            last_report = time.monotonic()
            tell_admin(shop, broadcast, progress_text(broadcast))


def run_broadcast(shop: Shop, broadcast_id: int) -> None:
    """Send a broadcast to the end, then finish it: the lock released first, the report always sent."""
    try:
        send_all(shop, broadcast_id)
    except Exception:
        logger.exception("Broadcast %s stopped by an error", broadcast_id)
    with shop.Session() as session:
        session.execute(update(Broadcast).where(Broadcast.id == broadcast_id)
                        .values(running=None, finished_at=utcnow()))
        session.commit()
        broadcast = session.get(Broadcast, broadcast_id)
    logger.info("Broadcast %s finished: %s sent, %s blocked, %s failed", broadcast_id, broadcast.sent,
                broadcast.blocked, broadcast.failed)
    tell_admin(shop, broadcast, text(language_for_code(broadcast.language_code), "admin_broadcast_done",
                                     sent=broadcast.sent, blocked=broadcast.blocked, failed=broadcast.failed))


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
