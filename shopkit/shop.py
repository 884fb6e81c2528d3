"""The Shop: what every handler gets, and the only way the shop talks to Telegram.

Part of shopkit, the machinery under the shop (see __init__.py).

Every handler receives the same ``shop``: the configuration, the telebot
client and the database's session factory. The functions below send what the
handlers built, all through one retry wrapper, ``call_api``: it waits out
Telegram's flood limits (429 Too Many Requests), remembers customers who
blocked the bot (403 Forbidden), and, for the callers that ask, tries again
when Telegram or the network falters. ``show`` edits a screen in place when
Telegram allows it, sending it anew when it does not.

One rule runs through the whole shop: **no Telegram call while a database
transaction is open.** A Bot API call can take seconds; a transaction held
that long makes every other customer wait for the database. Handlers read and
write first, commit, and only then does anything get sent (see routes.py).
"""
from __future__ import annotations

import contextlib
import logging
import threading
import time

import requests
import telebot
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from telebot import types
from telebot.apihelper import ApiException, ApiTelegramException

from .config import Config
from .database import free_bytes
from .screens import CAPTION_LIMIT, Screen, html_to_plain, language_for_code, language_of, text, truncate, utf16_len
from .storage import Setting

logger = logging.getLogger("shopbot")


class Shop:
    """The configuration, the Telegram client and the database, shared by every handler."""

    def __init__(self, config: Config, bot: telebot.TeleBot, session_factory: sessionmaker,
                 quick_session_factory: sessionmaker | None = None, journal=None):
        self.config = config
        self.bot = bot
        self.started_at = time.time()  # /status: running since
        self.Session = session_factory
        # Pre-checkout's own connections, which wait for a lock 2 seconds at most (Telegram waits 10).
        self.QuickSession = quick_session_factory or session_factory
        self.journal = journal  # journal.PaymentJournal: every payment, written down before it is handled
        self.retrying = threading.Lock()  # one thread retries payments that could not be recorded
        # What a chapter keeps for a few seconds (the catalog's counts), cleared by admin actions.
        self.caches: list = []
        self.taps: dict = {}  # callback action -> route, filled by each chapter's register() (routes.py)
        self.dialogs: dict = {}  # dialog state -> handler, the same way
        self.start_links: dict = {}  # /start argument prefix -> handler ("p_": a product's shared link)
        self.commands: set[str] = set()  # every /command a chapter answers
        self.background: list[threading.Thread] = []  # broadcasts, restock notices, retries
        self.memo: dict = {}  # what a chapter keeps in memory for this shop (sales.py: its figures snapshot)
        self.sleep = time.sleep  # tests replace it to skip the waits
        self.clock = time.monotonic  # seconds, for "every few seconds" (progress.py); tests replace it too
        self.free_bytes = free_bytes  # (folder) -> free space on its disk; tests replace it to fill the disk
        # What the shop hands the machinery when its chapters register (menus.py), so that the machinery
        # never imports a chapter: the customer's menu, where Cancel leads, and what it knows of people.
        self.menu_screen = None  # (lang, key="menu") -> Screen: where a stale button leads
        self.other_message = None  # the handler for a message that is neither a command nor an answer
        self.conversations: list = []  # (test, route): who takes such a message first (support.py: a ticket)
        self.record_payment = None  # (shop, message, session) -> reply: checkout.py's @handlers.payment()
        self.set_blocked = None  # (session, telegram_id): someone blocked the bot; broadcasts skip them
        self.reachable = None  # (session, telegram_ids) -> {id: language_code} of those who have not blocked it
        self.checks_at_start: list = []  # (shop): run before serving; one may refuse the start (currency.py)
        self.jobs_at_start: list = []  # (shop): started once serving (subscription expiry, daily backups...)
        # (shop, session, telegram user) -> [After, ...]: at /start, the products granted to them before they came
        self.grants_waiting = None

    def is_admin(self, telegram_id: int) -> bool:
        return telegram_id in self.config.admin_ids

    def clear_caches(self) -> None:
        """Forget what the chapters keep for a few seconds: the seller may have changed what is on sale."""
        for cache in self.caches:
            cache.clear()

    def start_background(self, work, *args) -> None:
        """Run long work (messaging many customers) without holding up the update being handled."""
        self.background = [thread for thread in self.background if thread.is_alive()]
        thread = threading.Thread(target=work, args=(self, *args), name=work.__name__, daemon=True)
        self.background.append(thread)
        thread.start()

    def start_repeating(self, work, every: float, done: str | None = None) -> None:
        """Run ``work(shop)`` in the background now (catching up after a restart) and every ``every`` seconds, for
        as long as the shop runs: a chapter's periodic job. What it returns, if anything, is logged with ``done``
        ("%s subscriptions ended"); a failure is logged, and the next turn tries again."""
        def repeat(shop: Shop) -> None:
            while True:
                try:
                    if (result := work(shop)) and done:
                        logger.info(done, result)
                except Exception:
                    logger.exception("%s failed; trying again in %g seconds", work.__name__, every)
                shop.sleep(every)
        repeat.__name__ = work.__name__  # the thread's name
        self.start_background(repeat)


# ---------------------------------------------------------------------------
# Calling the Bot API
# ---------------------------------------------------------------------------

# What a call to an unreachable or unwell Telegram raises (requests' errors carry the URL: never log them raw).
CALL_FAILED = (requests.RequestException, ApiException)


def retry_after(error: ApiTelegramException) -> float:
    """Seconds Telegram asks us to wait after a 429 Too Many Requests."""
    parameters = (error.result_json or {}).get("parameters") or {}
    return float(parameters.get("retry_after", 1))


def call_api(shop: Shop, chat_id: int | None, method, *args, tries: int = 3, hiccups: bool = False, **kwargs):
    """Call ``method``, a Bot API call: the shop's one retry wrapper. ``tries`` calls at most; then:

    - a 429 Too Many Requests is waited out, as long as Telegram asks (``retry_after``);
    - a 403 Forbidden about a person (``chat_id``) means they blocked the bot: noted, and None returned.
      For a call about a group or a channel pass ``chat_id=None``: there a 403 means the bot lost its
      rights, and it is raised for the caller;
    - with ``hiccups=True``, Telegram's 5xx and the network's failures are tried again too, after 1, 2, 4 s.
      Only callers that would rather risk doing a thing twice than not at all ask for it (a join link, a
      broadcast's copy): after a timeout the first try may have worked, and an ordinary send or an invoice
      would reach the customer twice;
    - anything else is raised.
    """
    for attempt in range(1, tries + 1):
        try:
            return method(*args, **kwargs)
        except ApiTelegramException as error:
            if error.error_code == 429 and attempt < tries:  # Too Many Requests: Telegram says how long to wait
                shop.sleep(retry_after(error))
                continue
            if error.error_code == 403 and chat_id is not None:  # the user blocked the bot (or never opened it)
                mark_blocked(shop, chat_id)
                return None
            if not (hiccups and error.error_code >= 500 and attempt < tries):
                raise
            wait_out_hiccup(shop, method, error.error_code, attempt, tries)
        except CALL_FAILED as error:  # no answer from Telegram, or not the Bot API's (a proxy's error page)
            if not (hiccups and attempt < tries):
                raise
            wait_out_hiccup(shop, method, type(error).__name__, attempt, tries)


def wait_out_hiccup(shop: Shop, method, what, attempt: int, tries: int) -> None:
    """A short pause, longer each time (1, 2, 4 s), before trying a call again."""
    logger.warning("%s failed (%s), try %s of %s", getattr(method, "__name__", "A Telegram call"), what,
                   attempt, tries)
    shop.sleep(2 ** (attempt - 1))


def mark_blocked(shop: Shop, telegram_id: int) -> None:
    """Remember that a user blocked the bot: broadcasts skip them until they write again."""
    logger.info("User %s has blocked the bot", telegram_id)
    with shop.Session() as session:
        shop.set_blocked(session, telegram_id)
        session.commit()


def send(shop: Shop, chat_id: int, html_text: str, markup=None, protect: bool = False):
    """Send an HTML message; returns it, or None when the user has blocked the bot. ``protect``: Telegram lets
    nobody forward or save it (protect_content)."""
    return call_api(shop, chat_id, shop.bot.send_message, chat_id, html_text, reply_markup=markup,
                    link_preview_options=types.LinkPreviewOptions(is_disabled=True), protect_content=protect or None)


def send_file(shop: Shop, chat_id: int, file_type: str, file_id: str, caption: str | None = None, markup=None,
              protect: bool = False):
    """Send a photo or a document that Telegram already has, by its file_id."""
    sender = shop.bot.send_photo if file_type == "photo" else shop.bot.send_document
    return call_api(shop, chat_id, sender, chat_id, file_id, caption=caption, reply_markup=markup,
                    protect_content=protect or None)


def send_media(shop: Shop, chat_id: int, media: list[dict], caption: str = "", protect: bool = False):
    """Send photos and videos Telegram already has ({"type": "photo" | "video", "file_id"}): one alone, or 2-10 as
    an album, the HTML ``caption`` under the first."""
    if len(media) == 1:
        sender = shop.bot.send_photo if media[0]["type"] == "photo" else shop.bot.send_video
        return call_api(shop, chat_id, sender, chat_id, media[0]["file_id"], caption=caption or None,
                        protect_content=protect or None)
    album = [(types.InputMediaPhoto if item["type"] == "photo" else types.InputMediaVideo)(
        item["file_id"], caption=(caption or None) if index == 0 else None, parse_mode="HTML")
        for index, item in enumerate(media)]
    return call_api(shop, chat_id, shop.bot.send_media_group, chat_id, album, protect_content=protect or None)


def send_screen(shop: Shop, chat_id: int, screen: Screen) -> None:
    """Send a screen as a new message (a file with the text as its caption, when there is a file)."""
    if screen.file_id is None:
        send(shop, chat_id, screen.text, screen.markup)
    elif utf16_len(html_to_plain(screen.text)) <= CAPTION_LIMIT:
        send_file(shop, chat_id, screen.file_type, screen.file_id, screen.text, screen.markup)
    else:
        # A caption holds 1,024 characters: the file goes first, the card below it.
        send_file(shop, chat_id, screen.file_type, screen.file_id)
        send(shop, chat_id, screen.text, screen.markup)


def delete_quietly(shop: Shop, chat_id: int, message_id: int) -> None:
    """Delete an old screen; Telegram refuses for messages over 48 hours old, which is fine."""
    with contextlib.suppress(ApiTelegramException):
        shop.bot.delete_message(chat_id, message_id)


def shows_already(message: types.Message, screen: Screen) -> bool:
    """True when editing ``message`` into ``screen`` would change nothing (Telegram refuses such edits)."""
    same_text = (message.text or "").strip() == html_to_plain(screen.text).strip()
    old_markup = message.reply_markup.to_dict() if message.reply_markup else None
    return same_text and old_markup == (screen.markup.to_dict() if screen.markup else None)


def edit_in_place(shop: Shop, chat_id: int, screen: Screen, message: types.Message) -> bool:
    """Turn ``message`` into ``screen``; False when Telegram cannot edit it (too old, deleted, a photo)."""
    if shows_already(message, screen):
        return True  # e.g. the user tapped the button of the screen they are on
    try:
        call_api(shop, chat_id, shop.bot.edit_message_text, screen.text, chat_id, message.message_id,
                 reply_markup=screen.markup, link_preview_options=types.LinkPreviewOptions(is_disabled=True))
        return True
    except ApiTelegramException as error:
        if "message is not modified" in error.description:
            return True  # two quick taps on the same button
        if error.error_code != 400:
            raise
        return False


def show(shop: Shop, chat_id: int, screen: Screen, replace: types.Message | None = None) -> None:
    """Show a screen, editing ``replace`` in place when Telegram allows it."""
    # An InaccessibleMessage (over 48 hours old) has no content_type: it cannot be edited.
    editable = replace is not None and screen.file_id is None and getattr(replace, "content_type", None) == "text"
    if editable and edit_in_place(shop, chat_id, screen, replace):
        return
    send_screen(shop, chat_id, screen)
    if replace is not None:
        delete_quietly(shop, chat_id, replace.message_id)


def answer(shop: Shop, call: types.CallbackQuery, toast: str | None = None) -> None:
    """Stop the button's spinner, with a short note if there is one."""
    try:
        shop.bot.answer_callback_query(call.id, truncate(html_to_plain(toast), 200) if toast else None)
    except ApiTelegramException as error:  # the query is too old (Telegram keeps them ~15 minutes)
        logger.info("Could not answer callback %s: %s", call.id, error.description)


def apologize(shop: Shop, update) -> None:
    """Tell the user something went wrong, however they reached us; never raise."""
    lang = language_of(getattr(update, "from_user", None))
    try:
        if isinstance(update, types.CallbackQuery):
            answer(shop, update, text(lang, "sorry"))
        elif isinstance(update, types.PreCheckoutQuery):
            shop.bot.answer_pre_checkout_query(update.id, ok=False, error_message=html_to_plain(text(lang, "sorry")))
        elif isinstance(update, types.Message):
            send(shop, update.chat.id, text(lang, "sorry"))
    except Exception:
        logger.exception("Could not apologise to user %s", getattr(update.from_user, "id", "?"))


# ---------------------------------------------------------------------------
# Telling the seller
# ---------------------------------------------------------------------------

SALE_ALERTS = "sale_alerts"  # a switch each admin can turn off in the panel
# Telegram allows about 30 messages a second to different chats; mass sends keep below it.
MASS_SEND_INTERVAL = 1 / 25


def muted_admins(session: Session, setting: str, admin_ids) -> set[int]:
    """Admins who switched off a kind of notification in the panel."""
    keys = [f"{setting}:{admin_id}" for admin_id in admin_ids]
    rows = session.scalars(select(Setting.key).where(Setting.key.in_(keys), Setting.value == "off"))
    return {int(key.rpartition(":")[2]) for key in rows}


def notify_admins(shop: Shop, key: str, markup=None, setting: str | None = None,
                  copy_of: types.Message | None = None, unmet_too: bool = False, **values) -> int:
    """Message every admin in their language (then a copy of ``copy_of``, carrying the buttons);
    with ``setting``, skip those who switched it off. Returns how many admins received it (the copy, if any).
    ``message_admins`` below does it, and says which messages each received."""
    return len(message_admins(shop, key, markup, setting, copy_of, unmet_too, **values))


def message_admins(shop: Shop, key: str, markup=None, setting: str | None = None,
                   copy_of: types.Message | None = None, unmet_too: bool = False, skip: tuple[int, ...] = (),
                   **values) -> dict[int, list[int]]:
    """``notify_admins``, returning the ids of the messages each admin received ({admin id: [message ids]}),
    only for those who received it all; ``skip``: admins left out (the one who wrote it).

    ``markup``, like each value (see screens.text), may be a function of the admin's language. Telegram
    lets a bot write only to people who have opened it, so an admin hears from
    the shop once they have sent it /start. ``unmet_too``: the admins this database has not met are tried as
    well, in English (a new database knows nobody, but they may have opened the bot on another).
    """
    with shop.Session() as session:
        reachable = shop.reachable(session, shop.config.admin_ids)
        if unmet_too:
            reachable = dict.fromkeys(shop.config.admin_ids, "") | reachable
        muted = muted_admins(session, setting, shop.config.admin_ids) if setting else set()
    received = {}
    for admin_id in sorted(reachable.keys() - muted - set(skip)):
        lang = language_for_code(reachable[admin_id])
        buttons = markup(lang) if callable(markup) else markup
        try:
            sent = [send(shop, admin_id, text(lang, key, **values), None if copy_of else buttons)]
            if copy_of is not None and sent[0] is not None:
                sent.append(call_api(shop, admin_id, shop.bot.copy_message, admin_id, copy_of.chat.id,
                                     copy_of.message_id, reply_markup=buttons))
            if sent[-1] is not None:  # None: the admin blocked the bot
                received[admin_id] = [message.message_id for message in sent]
        except ApiTelegramException as error:
            logger.warning("Could not notify admin %s: %s", admin_id, error.description)
    return received
