"""Broadcast: one message from the seller to every customer.

Reading order: ... sales.py → **broadcast.py**, the last chapter.

📣 Broadcast asks for a text, a photo or a document, shows it back as a
preview, and on ✅ Send copies it to every customer who has not blocked the
bot. It runs in the background at about 25 messages a second, below
Telegram's limit of about 30, so the shop keeps serving meanwhile; the admin
sees the progress and a final report.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from telebot import TeleBot, types
from telebot.apihelper import ApiTelegramException

import routes
from models import User
from routes import Handlers, ask, dialog_data, end_dialog
from screens import InputError, Screen, Toast, button, keyboard, label, language_of, text
from shop import MASS_SEND_INTERVAL, Shop, call_api, send, show

logger = logging.getLogger("shopbot")
handlers = Handlers(admin=True)

PROGRESS_EVERY = 3.0  # seconds between edits of the progress message


@handlers.tap("broadcast")
def tap_broadcast(shop: Shop, call: types.CallbackQuery, session: Session) -> Screen:
    """📣 Broadcast: ask for the message."""
    return ask(session, call, "broadcast_message", "admin_ask_broadcast")


@dataclass
class Preview:
    """Reply: the admin's message copied back to them, then "Send it to N customers?"."""

    audience: int

    def show(self, shop: Shop, message: types.Message) -> None:
        shop.bot.copy_message(message.chat.id, message.chat.id, message.message_id)
        lang = language_of(message.from_user)
        send(shop, message.chat.id, text(lang, "admin_confirm_broadcast", count=self.audience), keyboard(
            [button(label(lang, "btn_send"), "send_broadcast"), button(label(lang, "btn_cancel"), "cancel")]))


@handlers.answer("broadcast_message")
@handlers.answer("broadcast_ready")  # another message under the preview replaces the first
def answer_broadcast(shop: Shop, message: types.Message, session: Session, dialog: dict) -> Preview:
    """The message to send to everyone."""
    if message.content_type not in ("text", "photo", "document"):
        raise InputError("err_broadcast_kind")
    ask(session, message, "broadcast_ready", "admin_ask_broadcast", message_id=message.message_id)
    return Preview(session.scalar(select(func.count(User.id)).where(User.is_blocked.is_(False))))


@dataclass
class Run:
    """Reply: start sending in the background."""

    message_id: int
    recipients: list[int]
    lang: str

    def show(self, shop: Shop, call: types.CallbackQuery) -> None:
        shop.start_background(run_broadcast, call.message.chat.id, self.message_id, self.recipients, self.lang)


@handlers.tap("send_broadcast")
def tap_send_broadcast(shop: Shop, call: types.CallbackQuery, session: Session):
    """✅ Send under the preview."""
    lang = language_of(call.from_user)
    draft = dialog_data(session, call, "broadcast_ready")
    if draft is None:
        return Toast(text(lang, "stale_button"))
    if not shop.broadcast_lock.acquire(blocking=False):
        return Toast(text(lang, "admin_broadcast_busy"))
    end_dialog(session, call)
    recipients = list(session.scalars(select(User.telegram_id).where(User.is_blocked.is_(False)).order_by(User.id)))
    return (Screen(text(lang, "admin_broadcast_started", count=len(recipients)),
                   keyboard([button(label(lang, "btn_back"), "admin")])),
            Run(draft["message_id"], recipients, lang))


def run_broadcast(shop: Shop, admin_chat: int, message_id: int, recipients: list[int], lang: str) -> None:
    """Copy the admin's message to everyone, at most ~25 a second, reporting progress."""
    counts = {"sent": 0, "blocked": 0, "failed": 0}
    progress = send(shop, admin_chat, text(lang, "admin_broadcast_progress", done=0, total=len(recipients)))
    try:
        last_report = time.monotonic()
        for telegram_id in recipients:
            started = time.monotonic()
            try:
                copied = call_api(shop, telegram_id, shop.bot.copy_message, telegram_id, admin_chat, message_id)
                counts["sent" if copied is not None else "blocked"] += 1
            except ApiTelegramException as error:
                logger.warning("Broadcast to %s failed: %s", telegram_id, error.description)
                counts["failed"] += 1
            if progress and time.monotonic() - last_report > PROGRESS_EVERY:
                last_report = time.monotonic()
                show(shop, admin_chat, Screen(text(lang, "admin_broadcast_progress", done=sum(counts.values()),
                                                   total=len(recipients))), replace=progress)
            shop.sleep(max(0.0, MASS_SEND_INTERVAL - (time.monotonic() - started)))
        logger.info("Broadcast finished: %s", counts)
    except Exception:
        logger.exception("Broadcast stopped by an error")
    finally:
        show(shop, admin_chat, Screen(text(lang, "admin_broadcast_done", **counts)), replace=progress)
        shop.broadcast_lock.release()


def register(bot: TeleBot, shop: Shop) -> None:
    """Wire broadcasts into the bot."""
    routes.add_handlers(shop, handlers)
