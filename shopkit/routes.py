"""Routes: how an update reaches its handler, and the one contract every handler keeps.

Part of shopkit, the machinery under the shop (see __init__.py).

Telegram sends the shop *updates*: a message, a tap on an inline button (a
callback query), a pre-checkout query. telebot hands each one to the handler
registered for it. The chapters register their handlers through this file,
which adds what every handler needs and none should write again:

- a database session, opened for the handler and closed after it;
- a check of ADMIN_IDS before any admin handler runs (and a log line when a
  stranger tries);
- an error net: a crash is logged with its traceback, the user gets an
  apology, and everyone else keeps being served.

**The handler contract.** A handler is a plain function with a one-line
docstring, for example::

    def on_catalog_command(shop, message, session, lang) -> Screen: ...
    def tap_category(shop, call, session, lang, category_id: int, page: int) -> Screen: ...
    def answer_category_name(shop, message, session, lang, dialog: dict) -> Screen: ...

``lang`` is the user's language ("en" or "ru"), looked up once, here: the
one way a handler learns it. It reads and writes through ``session``, commits
what it writes, and returns what the user sees next:

- a ``Screen``: after a tap, the tapped message becomes it; after a command
  or a dialog answer, it is sent as a new message;
- a ``Toast``: a short note on the tapped button (after a message: a short
  message);
- or ``None``: nothing.

Anything else that must happen once the database session is closed (a
delivery, a message to another person, a notice to the admins, an invoice...)
is returned beside it as ``After(function, *args)``: after the transaction,
call ``function(shop, *args)``. A handler may return a tuple: at most one
Screen or Toast, and any number of ``After``, done in the order written::

    return Screen(text(lang, "thanks")), After(deliver, buyer_id, purchase.id, heading, lang)

``show_reply`` takes exactly these and raises TypeError on anything else.

Replies are shown only after the session is closed, so no Telegram call ever
happens inside a database transaction. The one handler whose reply depends on
Telegram's answer, a refund, commits before it asks (purchases.refund_purchase);
a dialog that downloads a file does so before its first query (stock.py).

A chapter lists its handlers in a ``Handlers`` table (below) and hands it to
``add_handlers()`` in its ``register(bot, shop)``.
"""
from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.orm import Session
from telebot import TeleBot, types, util

from .screens import NOTHING, InputError, Screen, Tap, Toast, keyboard, label, language_of, parse_callback, text
from .shop import Shop, answer, apologize, send, show
from .storage import Dialog, utcnow

logger = logging.getLogger("shopbot")

# ---------------------------------------------------------------------------
# Running a handler and showing its reply
# ---------------------------------------------------------------------------

def chat_of(update) -> int:
    """The chat to answer in: the message's, or the tapped message's."""
    return update.message.chat.id if isinstance(update, types.CallbackQuery) else update.chat.id


def replies(reply) -> tuple:
    """A handler's reply as a tuple of its parts."""
    return reply if isinstance(reply, tuple) else (reply,)


def toast_of(reply, once_shown: bool = False) -> str | None:
    """The note to show on the tapped button, if the reply has one (``once_shown``: the one said after the rest)."""
    for part in replies(reply):
        if isinstance(part, Toast) and part.once_shown == once_shown:
            return part.text
        if isinstance(part, Screen) and part.toast and not once_shown:
            return part.toast
    return None


@dataclass(frozen=True, init=False)
class After:
    """Part of a reply: after the transaction, call ``function(shop, *args, **keywords)``.

    A delivery, a message to someone else, a notice to the admins: whatever
    talks to Telegram beside the screen, written where the handler decides it.
    """

    function: Callable
    args: tuple
    keywords: dict

    def __init__(self, function: Callable, /, *args, **keywords):
        object.__setattr__(self, "function", function)
        object.__setattr__(self, "args", args)
        object.__setattr__(self, "keywords", keywords)

    def __call__(self, shop: Shop):
        return self.function(shop, *self.args, **self.keywords)


def checked_reply(reply) -> tuple:
    """A handler's reply as a tuple of its parts, refused loudly unless it keeps the contract above."""
    parts = replies(reply)
    for part in parts:
        if part is not None and not isinstance(part, Screen | Toast | After):
            raise TypeError(f"a handler returned {part!r}: a reply is a Screen, a Toast, None or After(...)")
    if sum(isinstance(part, Screen | Toast) for part in parts) > 1:
        raise TypeError(f"a handler returned {reply!r}: at most one Screen or Toast")
    return parts


def show_reply(shop: Shop, update, reply) -> None:
    """Show what a handler returned, following the contract above: its screen or note, and its After steps."""
    tapped = update.message if isinstance(update, types.CallbackQuery) else None
    for part in checked_reply(reply):
        if part is None or (tapped and isinstance(part, Toast)):
            continue  # a tap's toast was shown when the tap was answered
        if isinstance(part, Screen):
            show(shop, chat_of(update), part, replace=None if part.new_message else tapped)
        elif isinstance(part, Toast):
            send(shop, chat_of(update), part.text)
        else:
            part(shop)


def handles_errors(function):
    """Log a handler's crash with its traceback, apologise to the user, keep serving everyone else."""

    @functools.wraps(function)
    def wrapper(shop: Shop, update, *args, **kwargs):
        try:
            return function(shop, update, *args, **kwargs)
        except Exception:
            user = getattr(update, "from_user", None)
            logger.exception("Error handling %s from user %s", type(update).__name__, getattr(user, "id", "?"))
            apologize(shop, update)
    return wrapper


def refuse_stranger(shop: Shop, update, what: str) -> None:
    """Someone not in ADMIN_IDS reached an admin handler: log it and show them the customer menu.

    While the shop has no admin at all, whoever tries is probably the seller
    setting it up: the log shows the exact setting to add, and so does the chat.
    """
    user_id, lang = update.from_user.id, language_of(update.from_user)
    # In the seller's words: the command they sent, or the button they tapped; the handler's name for a developer.
    used = f"sent {update.text.split()[0]}" if isinstance(update, types.Message) and update.text else \
        "tapped a seller's button"
    if shop.config.admin_ids:
        logger.warning("User %s %s, but is not in ADMIN_IDS: shown the customer's menu instead (%s). If it is "
                       "you, add %s to ADMIN_IDS", user_id, used, what, user_id)
        screen = shop.menu_screen(lang)
    else:
        logger.warning("User %s %s (%s), but there are no ADMIN_IDS: to make them the admin, "
                       "set ADMIN_IDS=%s and restart the shop", user_id, used, what, user_id)
        screen = shop.menu_screen(lang, "become_admin", id=user_id)
    if isinstance(update, types.CallbackQuery):
        answer(shop, update, text(lang, "stale_button"))
        show(shop, chat_of(update), screen, replace=update.message)
    else:
        send(shop, chat_of(update), screen.text, screen.markup)


@handles_errors
def run_handler(shop: Shop, update, handler, *args, admin: bool = False, name: str = "") -> None:
    """Check who is asking, run ``handler`` in a fresh session, close it, then show the reply."""
    if admin and not shop.is_admin(update.from_user.id):
        refuse_stranger(shop, update, name or handler.__name__)
        return
    with shop.Session() as session:
        if isinstance(update, types.CallbackQuery) and not admin:
            leave_customer_dialog(shop, session, update)
        reply = handler(shop, update, session, language_of(update.from_user), *args)
    if admin:
        shop.clear_caches()  # the seller may have changed what is on sale
    if not isinstance(update, types.CallbackQuery):
        show_reply(shop, update, reply)
        return
    promise = toast_of(reply, once_shown=True)  # "Invoice sent below": said only once it is true
    if promise is None:
        answer(shop, update, toast_of(reply))  # first: the button stops spinning sooner
    try:
        show_reply(shop, update, reply)
    except Exception:  # the tap is answered, or will be without its promise: the apology comes as a message
        logger.exception("Error showing the reply to a tap from user %s", update.from_user.id)
        if promise is not None:
            answer(shop, update)
        send(shop, chat_of(update), text(language_of(update.from_user), "sorry"))
        return
    if promise is not None:
        answer(shop, update, promise)


def on_message(shop: Shop, handler, admin: bool = False):
    """Adapt a chapter's message handler to telebot, which calls handlers with the message alone."""
    return lambda message: run_handler(shop, message, handler, admin=admin)


@handles_errors
def turn_away(shop: Shop, update, note: bool) -> None:
    """An update over the user's rate (lanes.py): a tap is only answered, a message dropped; the note once."""
    lang = language_of(update.from_user)
    if isinstance(update, types.CallbackQuery):
        answer(shop, update, text(lang, "slow_down") if note else None)
    elif note and isinstance(update, types.Message):
        send(shop, update.chat.id, text(lang, "slow_down"))


# ---------------------------------------------------------------------------
# Buttons: callback action -> handler
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Route:
    """Where a button, a dialog answer or a link leads: its handler, and who may use it."""

    handler: object
    admin: bool
    expires_after: float | None = None  # a dialog left unanswered this many seconds is over
    tap: Tap | None = None  # a button's: the numbers it carries, by name


class Handlers:
    """A chapter's handlers; what each answers is written once, on the handler.

    Like a Flask blueprint's routes::

        handlers = Handlers()

        @handlers.command("catalog")
        def on_catalog_command(shop, message, session, lang) -> Screen: ...

        @handlers.tap(CATEGORY)  # CATEGORY = Tap("category", "category_id", page=True)
        def tap_category(shop, call, session, lang, category_id: int, page: int) -> Screen: ...

        @handlers.answer("category_name")
        def answer_category_name(shop, message, session, lang, dialog: dict) -> Screen: ...

        @handlers.start_link("p_")
        def open_product_link(shop, message, session, lang, argument: str) -> Screen: ...

        @handlers.payment()
        def on_successful_payment(shop, message, session, lang): ...

        @handlers.message("refunded_payment")
        def on_refunded_payment(shop, message, session, lang): ...

        @handlers.conversation(in_a_ticket)  # in_a_ticket(shop, session, message) -> bool
        def on_ticket_message(shop, message, session, lang): ...

    A command answers in private chats unless ``chat_types`` says otherwise.
    A tap handler takes the numbers its Tap (screens.py) declares, by the
    same names, after ``(shop, call, session, lang)``: a handler whose parameters
    differ is refused when it is registered, a button with the wrong count
    when it is tapped. A start link answers /start <prefix>..., as a shared
    link t.me/<bot>?start=p_42 opens the chat (menus.py's /start hands it
    over). A conversation takes the plain messages (neither a command nor a
    dialog's answer) for which its test holds, before the shop's search does:
    a ticket with the seller lasts beyond one question and survives any tap.
    A payment is written to the journal before its handler runs, and
    retried until it is recorded (journal.py). With ``admin=True`` only the
    ids in ADMIN_IDS get through, to every handler of the table.
    """

    def __init__(self, admin: bool = False):
        self.admin = admin
        self.commands: list[tuple[tuple[str, ...], tuple[str, ...], object]] = []
        self.messages: list[tuple[tuple[str, ...], object]] = []  # (content types, handler)
        self.payment_handler = None
        self.taps: dict[str, Route] = {}
        self.answers: dict[str, Route] = {}
        self.start_links: dict[str, Route] = {}
        self.conversations: list[tuple[Callable, Route]] = []  # (does it take this message?, its handler)

    def command(self, *names: str, chat_types: tuple[str, ...] = ("private",)):
        def register(handler):
            self.commands.append((names, chat_types, handler))
            return handler
        return register

    def message(self, *content_types: str):
        """A message of these content types in a private chat (a refunded_payment, say)."""
        def register(handler):
            self.messages.append((content_types, handler))
            return handler
        return register

    def conversation(self, takes: Callable):
        """Plain messages for which ``takes(shop, session, message)`` holds (support.py: an open ticket)."""
        def register(handler):
            self.conversations.append((takes, Route(handler, self.admin)))
            return handler
        return register

    def payment(self):
        """The successful payment: one handler in the whole shop records it (checkout.py)."""
        def register(handler):
            self.payment_handler = handler
            return handler
        return register

    def tap(self, tap: Tap):
        def register(handler):
            numbers = tuple(inspect.signature(handler).parameters)[4:]  # after shop, call, session, lang
            if numbers != tap.names:
                raise TypeError(f"{handler.__name__} takes {list(numbers)}, but {tap} carries {list(tap.names)}")
            self.taps[tap.action] = Route(handler, self.admin, tap=tap)
            return handler
        return register

    def answer(self, state: str, expires_after: float | None = None):
        def register(handler):
            self.answers[state] = Route(handler, self.admin, expires_after)
            return handler
        return register

    def start_link(self, prefix: str):
        def register(handler):
            self.start_links[prefix] = Route(handler, self.admin)
            return handler
        return register


def add_handlers(shop: Shop, handlers: Handlers) -> None:
    """Make a chapter's commands, buttons, dialogs and links reachable; no name may be claimed twice."""
    for table, names in ((shop.taps, handlers.taps), (shop.dialogs, handlers.answers),
                         (shop.start_links, handlers.start_links)):
        if table.keys() & names.keys():
            raise ValueError(f"registered twice: {sorted(table.keys() & names.keys())}")
        table.update(names)
    for names, chat_types, handler in handlers.commands:
        shop.commands.update(names)
        shop.bot.register_message_handler(on_message(shop, handler, admin=handlers.admin), commands=list(names),
                                          chat_types=list(chat_types))
    for content_types, handler in handlers.messages:
        shop.bot.register_message_handler(on_message(shop, handler, admin=handlers.admin),
                                          content_types=list(content_types), chat_types=["private"])
    shop.conversations.extend(handlers.conversations)
    if handlers.payment_handler is not None:  # journal.take_payment records every payment with it
        shop.record_payment = handlers.payment_handler


def follow_start_link(shop: Shop, message: types.Message, session: Session):
    """The reply to /start <argument> when a chapter registered the argument's prefix; else None."""
    argument = (message.text or "").partition(" ")[2].strip()
    if "\0" in argument:  # typed by hand (a link cannot carry it): PostgreSQL would refuse it in a query
        return None
    for prefix, route in shop.start_links.items():
        if argument.startswith(prefix):
            return route.handler(shop, message, session, language_of(message.from_user),
                                 argument[len(prefix):])
    return None


@handles_errors
def on_tap(shop: Shop, call: types.CallbackQuery) -> None:
    """Every button tap comes here: parse the data strictly, run its handler with the numbers by name,
    always answer."""
    parsed = parse_callback(call.data)
    route = shop.taps.get(parsed[0]) if parsed else None
    numbers = route.tap.read(parsed[1]) if route else None  # {"category_id": 3, "page": 0}
    if numbers is None or call.message is None:
        logger.info("Stale or unknown callback data %r from user %s", call.data, call.from_user.id)
        lang = language_of(call.from_user)
        answer(shop, call, text(lang, "stale_button"))
        if call.message is not None:
            show(shop, call.message.chat.id, shop.menu_screen(lang), replace=call.message)
        return
    handler = functools.partial(route.handler, **numbers)
    run_handler(shop, call, handler, admin=route.admin, name=route.handler.__name__)


# ---------------------------------------------------------------------------
# Dialogs: when the bot has asked a question, the user's next message answers it
# ---------------------------------------------------------------------------

CANCEL = Tap("cancel")  # leave the dialog (menus.py answers it)


def cancel_keyboard(lang: str) -> types.InlineKeyboardMarkup:
    return keyboard([CANCEL.button(label(lang, "btn_cancel"))])


def ask(session: Session, update, state: str, prompt_key: str, prompt_values: dict | None = None, **data) -> Screen:
    """Wait for the user's next message, which answers ``prompt_key``; ``data`` is kept with the dialog."""
    dialog = session.get(Dialog, update.from_user.id) or Dialog(telegram_id=update.from_user.id)
    dialog.state, dialog.data, dialog.updated_at = state, {**(dialog.data or {}), **data}, utcnow()
    session.add(dialog)
    session.commit()
    lang = language_of(update.from_user)
    return Screen(text(lang, prompt_key, **(prompt_values or {})), cancel_keyboard(lang))


def end_dialog(session: Session, update) -> None:
    """Leave the user's dialog, if there is one. Read first: most users have none (it is usually loaded
    already, by open_dialog), and a write for nothing would wait behind any other writer."""
    dialog = session.get(Dialog, update.from_user.id)
    if dialog is not None:
        session.delete(dialog)
        session.commit()


def open_dialog(shop: Shop, session: Session, telegram_id: int) -> Dialog | None:
    """The user's dialog, unless it expired (a support question is over after 10 minutes)."""
    dialog = session.get(Dialog, telegram_id)
    route = shop.dialogs.get(dialog.state) if dialog else None
    if route is None or (route.expires_after and utcnow() - dialog.updated_at > timedelta(
            seconds=route.expires_after)):
        return None
    return dialog


def dialog_data(session: Session, update, state: str) -> dict | None:
    """What the user has answered so far, if their dialog is at ``state`` (a button under a preview)."""
    dialog = session.get(Dialog, update.from_user.id)
    return dict(dialog.data) if dialog is not None and dialog.state == state else None


def leave_customer_dialog(shop: Shop, session: Session, call: types.CallbackQuery) -> None:
    """A customer who taps another button has left their question (an admin's draft waits, though)."""
    dialog = session.get(Dialog, call.from_user.id)
    if dialog is not None and not getattr(shop.dialogs.get(dialog.state), "admin", False):
        end_dialog(session, call)


SKIP = "/skip"  # the one command a dialog takes as an answer: "no description file"
# What a user may send as an answer: anything but a payment (checkout.py handles those).
ANSWER_TYPES = [kind for kind in util.content_type_media if kind not in ("successful_payment", "invoice")]


def command_of(message: types.Message) -> str | None:
    """'start' for '/start p_42' (or '/start@shop_bot'); None for anything that is not a command."""
    words = (message.text or "").split() if message.content_type == "text" else []
    if not words or not words[0].startswith("/"):
        return None
    return words[0][1:].split("@")[0]


def is_registered_command(shop: Shop, message: types.Message) -> bool:
    """A command some chapter answers (the others reach on_other_message, which explains)."""
    return command_of(message) in shop.commands


def answer_dialog(shop: Shop, message: types.Message, session: Session, lang: str, route: Route, data: dict):
    """Run the dialog's handler; wrong input is explained and asked again, keeping what was entered."""
    try:
        return route.handler(shop, message, session, lang, data)
    except InputError as error:
        return Screen(text(lang, error.key, **error.values) + "\n\n" + text(lang, "try_again"),
                      cancel_keyboard(lang))


def conversation_of(shop: Shop, session: Session, message: types.Message) -> Route | None:
    """The conversation that takes this plain message (support.py: the customer's open ticket), if any."""
    if command_of(message) is not None:  # an unknown /command is no part of any conversation
        return None
    return next((route for takes, route in shop.conversations if takes(shop, session, message)), None)


@handles_errors
def on_other_message(shop: Shop, message: types.Message) -> None:
    """Any message but a chapter's command: the answer to the bot's last question, if it asked one;
    else the conversation the user is in (a ticket with the seller); otherwise what the shop makes of it
    (storefront.py: a search, or a hint)."""
    with shop.Session() as session:  # read apart: the answer's handler may download a file before any query
        dialog = open_dialog(shop, session, message.from_user.id)
        state, data = (dialog.state, dict(dialog.data)) if dialog else (None, None)
        conversation = conversation_of(shop, session, message) if state is None else None
    if conversation is not None:
        run_handler(shop, message, conversation.handler, admin=conversation.admin, name=conversation.handler.__name__)
        return
    if state is None or command_of(message) not in (None, SKIP[1:]):  # an unknown /command answers nothing
        run_handler(shop, message, shop.other_message)
        return
    route = shop.dialogs[state]
    run_handler(shop, message, answer_dialog, route, data, admin=route.admin, name=state)


handlers = Handlers()  # the one button routes.py answers itself: the pager's page number


@handlers.tap(NOTHING)
def tap_nothing(shop: Shop, call: types.CallbackQuery, session: Session, lang: str) -> None:
    """A button that only informs, such as the 2/5 of a pager."""
    return None



def register(bot: TeleBot, shop: Shop) -> None:
    """Wire the routes themselves: every tap, and every private message no chapter's command takes.

    Someone the bot asked a question (an admin adding a product, a customer
    typing a promo code) is answered by that dialog; then a chapter's
    conversation may take the message (a customer's open support ticket);
    else it is the shop's (a search). Commands are never taken as
    answers: /start and /admin leave the dialog, others (/help...) do their job
    and the dialog goes on. The filter reads no database: it only asks whether
    the message is a command a chapter registered (shop.commands, filled as the
    chapters register), so the order of registration does not matter.
    """
    bot.register_callback_query_handler(lambda call: on_tap(shop, call), func=lambda call: True)
    bot.register_message_handler(lambda message: on_other_message(shop, message), content_types=ANSWER_TYPES,
                                 chat_types=["private"], func=lambda message: not is_registered_command(shop, message))
    add_handlers(shop, handlers)
