"""The bot itself: telebot's TeleBot with lanes, polling Telegram, and the command line.

Part of shopkit, the machinery under the shop (README.md beside this file).
``shopbot.py`` calls ``make_bot`` and then ``run``: everything between
``python shopbot.py`` and the first update handled is here.

- ``ShopBot`` is telebot's bot with two changes: a payment is written to the
  journal before Telegram is told it arrived, and each update waits its turn
  in the lanes (lanes.py), so one customer's flood never delays the others.
- ``poll`` asks Telegram for updates, waits out an unreachable Telegram, and
  explains a 409 Conflict (another copy polling with the same token).
- ``run`` reads the settings, holds the shop's lock (instance.py: one running
  copy per database), and then checks (``--check``), reprices
  (``--reprice``), restores a backup (``--restore``) or serves until
  SIGINT/SIGTERM.
"""
from __future__ import annotations

import argparse
import functools
import logging
import os
import re
import signal
import sys
import threading
import time

import telebot
from sqlalchemy.engine import make_url
from telebot import apihelper, types
from telebot.apihelper import ApiTelegramException

from . import routes
from .config import (
    Config,
    ConfigError,
    count_errors,
    load_config,
    secrets_of,
    send_parameters_in_body,
    setup_logging,
    use_api_server,
)
from .database import (
    DatabaseError,
    close_database,
    connect,
    describe_database,
    open_database,
    restore_sqlite,
    sqlite_file,
)
from .instance import InstanceLock, hold_instance_lock
from .journal import PaymentJournal, is_payment, journal_path, journal_payment, take_payment
from .lanes import Lanes
from .routes import turn_away
from .screens import COMMANDS
from .service import CALL_FAILED, StartRefused, TelegramLink, run_checks, short_reason
from .shop import Shop
from .telebot_fixes import patch_telebot

logger = logging.getLogger("shopbot")
patch_telebot()  # telebot 4.37.1 cannot read a purchased_paid_media update by itself (telebot_fixes.py)

WORKER_THREADS = 4  # this many customers' updates are handled at once (lanes.py)
PAYMENT_THREADS = 2  # ...and this many payments, beside them
DATABASE_POOL = WORKER_THREADS + 2  # a database server's connections: one per worker, two for background work
# The update types the shop handles; Telegram sends no others. A subscriber's
# join request is how the bot lets them into a channel (subscriptions.py); a
# purchased_paid_media update, how it hears that paid media was bought (paid_media.py); and "subscription"
# (Bot API 10.2), how Telegram tells it that a customer cancelled, re-enabled or could not pay for a Stars
# subscription (subscriptions.py).
ALLOWED_UPDATES = ["message", "callback_query", "pre_checkout_query", "chat_join_request", "purchased_paid_media",
                   "subscription"]
POLL_SECONDS = 20  # a long poll: Telegram holds getUpdates open this long while there is nothing new
CONFLICT_WAIT = 5  # seconds between polls while another instance holds the token (409 Conflict)
COMMANDS_RETRY = 300  # seconds before registering the command menu again, if Telegram refused it


class ShopBot(telebot.TeleBot):
    """telebot's bot with two changes: payments are written down first, and updates wait in lanes.

    telebot calls ``_exec_task`` for every update it has matched to a handler,
    still inside ``process_new_updates`` and so before it asks Telegram for the
    next updates (which tells Telegram these ones arrived). A payment written to
    the journal here is on disk before Telegram forgets it (journal.py); the
    handler then waits its turn in the lanes (lanes.py). Without lanes (tests),
    each update is handled at once, in the caller's thread.
    """

    def __init__(self, token: str, lanes: Lanes | None):
        super().__init__(token, parse_mode="HTML", threaded=False)  # the lanes are our worker threads
        self.lanes = lanes
        self.shop: Shop | None = None  # set by create_bot()

    def process_new_messages(self, new_messages):
        for message in new_messages:
            # pyTelegramBotAPI 4.37 reads refunded_payment but gives it no content type: name it,
            # so that a chapter can register a handler for it (@handlers.message("refunded_payment")).
            if message.refunded_payment is not None:
                message.content_type = "refunded_payment"
        super().process_new_messages(new_messages)

    def process_new_subscription(self, new_subscriptions):
        # Workaround (pyTelegramBotAPI 4.37.1): BotSubscriptionUpdated names its customer ``user``, where every
        # other update a handler gets says ``from_user`` (the handler contract's language, the customer's lane).
        for update in new_subscriptions:
            update.from_user = update.user
        super().process_new_subscription(new_subscriptions)

    def _exec_task(self, task, *args, **kwargs):
        update = args[0] if args else None
        work = functools.partial(task, *args, **kwargs)
        journal_payment(self.shop, update)
        if self.lanes is None:
            work()
        elif is_payment(update):
            self.lanes.put_payment(work)
        else:
            self.wait_in_lane(update, work)

    def wait_in_lane(self, update, work) -> None:
        """A user's update joins their lane; over their rate, only a cheap answer does (admins are never trimmed)."""
        user_id = getattr(getattr(update, "from_user", None), "id", 0)
        allowed, note = (True, False) if self.shop.is_admin(user_id) else self.lanes.allow(user_id)
        self.lanes.put(user_id, work if allowed else functools.partial(turn_away, self.shop, update, note))


def make_bot(config: Config, session_factory=None, threaded: bool = True) -> ShopBot:
    """The bot and its Shop, with the routes wired in; the chapters register their handlers next (shopbot.py)."""
    session_factory = session_factory or open_database(config.database_url, pool_size=DATABASE_POOL)
    quick_sessions = connect(config.database_url, pool_size=PAYMENT_THREADS + 1, busy_timeout=2.0)
    count_errors()  # /status tells the seller how many errors the last day logged
    bot = ShopBot(config.token, Lanes(WORKER_THREADS, PAYMENT_THREADS) if threaded else None)
    journal = PaymentJournal(journal_path(config.database_url))
    bot.shop = Shop(config, bot, session_factory, quick_sessions, journal)
    routes.register(bot, bot.shop)  # every tap goes to on_tap; messages no chapter's command takes, to on_other_message
    # A successful payment is written down first (ShopBot._exec_task), then recorded with the handler checkout.py
    # registers (shop.record_payment), and retried until it is.
    bot.register_message_handler(lambda message: take_payment(bot.shop, message),
                                 content_types=["successful_payment"], chat_types=["private"])
    return bot


class PollingErrors(telebot.ExceptionHandler):
    """Explain the polling errors a seller can fix (poll() below retries them)."""

    def __init__(self):
        self.last_conflict = 0.0

    def handle(self, exception: Exception) -> bool:
        if isinstance(exception, ApiTelegramException) and exception.error_code == 409:
            if time.monotonic() - self.last_conflict > 60:  # say it once a minute, not on every poll
                logger.error("Another instance of this bot is running: Telegram answered 409 Conflict because "
                             "someone else polls with the same BOT_TOKEN. Stop the other instance.")
            self.last_conflict = time.monotonic()
            return True
        return False


def register_commands(bot: telebot.TeleBot) -> None:
    """Fill Telegram's command menu, in English and Russian."""
    for lang, commands in COMMANDS.items():
        bot_commands = [types.BotCommand(name, description) for name, description in commands]
        bot.set_my_commands(bot_commands, language_code=None if lang == "en" else lang)


class CommandMenu:
    """The command menu is a nicety: selling never waits for it, and a failed registration is tried again later."""

    def __init__(self, bot: telebot.TeleBot, clock=time.monotonic):
        self.bot, self.clock = bot, clock
        self.next_try: float | None = 0.0  # None once registered

    def register_if_due(self) -> None:
        if self.next_try is None or self.clock() < self.next_try:
            return
        try:
            register_commands(self.bot)
            self.next_try = None
        except CALL_FAILED as error:
            logger.warning("Could not register the command menu (%s); trying again in %s minutes",
                           short_reason(error), COMMANDS_RETRY // 60)
            self.next_try = self.clock() + COMMANDS_RETRY


def poll(bot: telebot.TeleBot, link: TelegramLink, stop: threading.Event | None = None) -> None:
    """Fetch updates and hand each one to ``bot.process_new_updates``, until stopped (a signal, or ``stop``).

    Telegram forgets an update once getUpdates is called with an offset past
    it, so the offset moves only after the batch has been handed over. While
    Telegram cannot be reached, ``link`` waits, and says so once.
    """
    conflicts, menu, offset = PollingErrors(), CommandMenu(bot), None
    while stop is None or not stop.is_set():
        menu.register_if_due()
        try:
            # The raw JSON, not bot.get_updates: telebot builds a whole batch at once, and one update it
            # cannot read would lose the others with it (read_update, below).
            batch = link.call(apihelper.get_updates, bot.token, offset=offset, timeout=POLL_SECONDS,
                              long_polling_timeout=POLL_SECONDS, allowed_updates=ALLOWED_UPDATES)
        except ApiTelegramException as error:  # what link.call leaves to us: 409 Conflict
            conflicts.handle(error)
            link.sleep(CONFLICT_WAIT)
            continue
        offset = hand_over(bot, batch or [], offset)


def hand_over(bot: telebot.TeleBot, batch: list, offset: int | None) -> int | None:
    """Hand each update of the batch to its handlers, in order; the next offset.

    An update that cannot be read is skipped (Telegram would send it again
    forever), and so is one whose handing over failed (logged): a bug must not
    cost the rest of the batch. A payment is written to the journal first, and
    a journal that cannot be written stops nothing (journal.py); Telegram's Stars
    ledger is the source of truth for what was paid (the shop's ledger.py reads it).
    """
    for raw in batch:
        update = read_update(raw)
        if update is not None:
            hand_over_one(bot, update)
        if isinstance(raw, dict) and isinstance(raw.get("update_id"), int):
            offset = max(offset or 0, raw["update_id"] + 1)
    return offset


def hand_over_one(bot: telebot.TeleBot, update: types.Update) -> None:
    """One update to its handlers; a failure is logged with its traceback and the next update goes on."""
    try:
        bot.process_new_updates([update])
    except Exception:
        logger.exception("Could not handle update %s", update.update_id)


def read_update(raw) -> types.Update | None:
    """telebot's Update, or None (logged with its id and why, never its content: it may hold a customer's words)."""
    update_id = raw.get("update_id", "?") if isinstance(raw, dict) else "?"
    try:
        return types.Update.de_json(raw)
    except Exception as error:  # telebot needs a field Telegram left out (a callback without chat_instance)
        logger.warning("Skipped update %s: it could not be read (%s)", update_id, missing_field(error))
        return None


def missing_field(error: Exception) -> str:
    """Which field telebot missed, from its error: a name from telebot's code, never a value from the update."""
    if isinstance(error, KeyError) and error.args:  # obj['date']
        return f"no {error.args[0]!r} field"
    missing = re.search(r"required positional arguments?: ('\w+')", str(error))  # CallbackQuery(**obj)
    if isinstance(error, TypeError) and missing:
        return f"no {missing.group(1)} field"
    return type(error).__name__


def safe_url(database_url: str) -> str:
    """The database URL without its password, for the start-up log line."""
    return make_url(database_url).render_as_string(hide_password=True)


def stop_on_signals() -> None:
    """Ctrl+C (SIGINT) and `kill` (SIGTERM, as systemd sends) stop polling; the updates in hand finish."""
    def stop(signum, _frame):
        logger.info("Got signal %s, stopping", signum)
        raise SystemExit(0)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)


def announce(config: Config, me: types.User) -> None:
    """The start-up lines: who the bot is (and the link to open it), where its data lives, who is admin."""
    logger.info("Started as @%s: open https://t.me/%s", me.username, me.username)
    logger.info("Database: %s; Telegram API: %s; payments: %s", safe_url(config.database_url),
                config.api_url or "https://api.telegram.org", config.currency)
    if not config.admin_ids:
        logger.warning("No ADMIN_IDS: nobody can open /admin. Send /admin to the bot: this log then shows "
                       "your id and the setting to add")


def serve(config: Config, create_bot, lock: InstanceLock) -> int:
    """Check the database and the token, each with one clear line if wrong, then answer customers until stopped."""
    if lock.unclean_stop:
        logger.warning("The shop did not stop cleanly last time: checking the whole database (integrity_check)")
    # Damaged, newer than the code...: said before any network call.
    describe_database(config.database_url, thorough=lock.unclean_stop)
    link = TelegramLink(config.api_url)
    me = types.User.de_json(link.call(apihelper.get_me, config.token))  # a rejected token stops the start here
    lock.serving()  # until the clean stop below, a stop (kill -9, a power cut) is not clean
    # The database is brought up to date; describe_database above checked it.
    bot = create_bot(config, open_database(config.database_url, pool_size=DATABASE_POOL, checked=True))
    for check in bot.shop.checks_at_start:  # the chapters' own (currency.py): one may refuse the start
        check(bot.shop)
    try:
        announce(config, me)
        for job in bot.shop.jobs_at_start:  # the chapters': the ledger's catch-up, expiry checks, backups...
            job(bot.shop)
        poll(bot, link)
    finally:
        bot.lanes.stop()  # the updates in hand are finished
        close_database(bot.shop.QuickSession)
        close_database(bot.shop.Session)
        lock.stopped_cleanly()
        logger.info("Stopped")
    return 0


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="shopbot.py", description="A Telegram shop bot; configured by "
                                     "environment variables (see README.md).")
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--check", action="store_true", help="check the configuration, the database, the token, "
                        "the payments and the admins, one line each; exit 0 or 1 without polling")
    action.add_argument("--reprice", metavar="RATE", help="convert every price from the currency the catalog is "
                        "priced in to CURRENCY: RATE is what one unit of the old currency is worth in the new one")
    action.add_argument("--restore", metavar="FILE", help="put a backup copy (backups/shop-backup-....db.gz) in "
                        "place of the SQLite database, the bot stopped: the copy is checked first, and the database "
                        "before is kept beside it")
    return parser.parse_args(argv)


def run(create_bot, argv: list[str] | None = None, shop_checks=(), reprice=None) -> int:
    """``python shopbot.py [--check | --reprice RATE]``: read the settings, then check, reprice or serve.

    ``create_bot(config)`` builds the bot with the shop's handlers; ``shop_checks`` are the shop's own lines
    for --check, and ``reprice(config, rate)`` its --reprice (currency.py).
    """
    arguments = parse_arguments(argv)
    try:
        config = load_config(os.environ)
    except ConfigError as error:
        if arguments.check:
            print(f"configuration: FAIL — {error}")
            return 1
        print(f"shopbot: {error}", file=sys.stderr)
        return 2
    setup_logging(config.log_level, *secrets_of(config))
    use_api_server(config.api_url)
    send_parameters_in_body()
    if arguments.check:
        return run_checks(config, shop_checks)
    try:
        lock = hold_instance_lock(config.database_url)
    except DatabaseError as error:
        print(f"shopbot: {error}", file=sys.stderr)
        return 2
    if lock is None:
        print("shopbot: another copy of the shop is serving this database; stop it first (exiting)", file=sys.stderr)
        return 1
    try:
        stop_on_signals()
        if arguments.restore:
            return restore(config, arguments.restore, lock)
        return reprice(config, arguments.reprice) if arguments.reprice else serve(config, create_bot, lock)
    except (StartRefused, DatabaseError) as error:
        print(f"shopbot: {error}", file=sys.stderr)
        return 2
    finally:
        lock.close()


def restore(config: Config, copy: str, lock: InstanceLock) -> int:
    """``--restore FILE``: the copy checked and put in place, the database before kept; then what the next start does.

    Run with the bot stopped (run() holds its lock, so a running copy refuses it).
    """
    path = sqlite_file(config.database_url)
    if path is None:
        raise DatabaseError("--restore puts back a copy of a SQLite database; restore a database server's dump "
                            "with its own tools (PostgreSQL: pg_restore), see Backups in the README")
    kept = restore_sqlite(path, copy, time.strftime("%Y%m%d-%H%M%S"))
    lock.stopped_cleanly()  # the copy in place was just checked whole (integrity_check): no need at the next start
    print(f"Restored {path} from {copy} (integrity_check ok).")
    print(f"The database before is kept as {kept}." if kept else "There was no database before.")
    print(f"The next start: {describe_database(config.database_url)}; then, with Telegram Stars, payments made "
          "after this copy are read back from Telegram's ledger and recorded (their buyers get their goods again, "
          "with an apology).")
    return 0
