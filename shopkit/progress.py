"""Long work that shows how far it got: one message, edited every few seconds.

A stock upload of a million lines, the export of every purchase, a backup of a
large shop: each takes long enough that a silent bot looks stuck. Such work
makes a ``Progress`` and tells it, as often as it likes, how much is done::

    progress = Progress(shop, chat_id, lambda percent: text(lang, "progress_export", percent=percent))
    for done, total in work():
        progress.update(done, total)   # cheap: Telegram hears of it every few seconds at most
    progress.finish()                  # the message says 100 %; the result is then sent as a message of its own

Work over within the first few seconds sends nothing at all. After that, one
message appears and is edited in place (an edit makes no sound); the result
comes as a new message, so that the admin is notified when it is ready.
Call it only between transactions: it talks to Telegram.
"""
from __future__ import annotations

from collections.abc import Callable

from telebot.apihelper import ApiTelegramException

from .shop import CALL_FAILED, Shop, call_api, send

PROGRESS_EVERY = 3.0  # seconds between edits: often enough to look alive, far below Telegram's limits


def edit_or_send(shop: Shop, chat_id: int, message_id: int | None, html: str) -> int | None:
    """Show ``html`` in the message ``message_id`` (edited), or in a new one when there is none or Telegram
    cannot edit it (deleted, too old); the id of the message that shows it (None: the chat is unreachable)."""
    if message_id is not None:
        try:
            call_api(shop, chat_id, shop.bot.edit_message_text, html, chat_id, message_id)
            return message_id
        except ApiTelegramException as error:
            if "message is not modified" in error.description:
                return message_id
        except CALL_FAILED:
            pass
    message = send(shop, chat_id, html)
    return message.message_id if message is not None else None


class Progress:
    """One message in ``chat_id`` that shows ``describe(percent)``, edited at most every ``every`` seconds."""

    def __init__(self, shop: Shop, chat_id: int, describe: Callable[[int], str], every: float = PROGRESS_EVERY):
        self.shop, self.chat_id, self.describe, self.every = shop, chat_id, describe, every
        self.message_id: int | None = None
        self.shown: int | None = None  # the percentage on screen
        self.last = shop.clock()  # the work's start: nothing is shown for its first few seconds

    def update(self, done: int, total: int) -> None:
        """``done`` of ``total``: shown if ``every`` seconds passed since the start or the last edit."""
        now = self.shop.clock()
        if now - self.last < self.every:
            return
        self.last = now
        self.show(min(100, done * 100 // total) if total > 0 else 0)

    def finish(self) -> None:
        """The work is done: a message shown says 100 % (the caller sends the result as a new message)."""
        if self.message_id is not None:
            self.show(100)

    def show(self, percent: int) -> None:
        if percent != self.shown:
            self.message_id = edit_or_send(self.shop, self.chat_id, self.message_id, self.describe(percent))
            self.shown = percent
