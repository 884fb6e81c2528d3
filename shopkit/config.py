"""Configuration: everything the shop reads from its environment.

Part of shopkit, the machinery under the shop (see __init__.py).

The seller configures the shop with environment variables only, no .env file:
BOT_TOKEN, ADMIN_IDS, DATABASE_URL, TELEGRAM_API_URL, PAYMENT_PROVIDER_TOKEN,
CURRENCY and LOG_LEVEL. ``load_config()`` reads and checks them all at once, so
that a mistake is one clear line at start-up, not a failure at the first sale.

Logging is set up here too, with the secrets filtered out of every line, and
the way requests reach Telegram: parameters in the request body, never in the
URL, because URLs end up in error messages and logs.
"""
from __future__ import annotations

import collections
import logging
import os
import re
import sys
import threading
import time
from dataclasses import dataclass

import requests
import telebot
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from telebot import apihelper

STARS = "XTR"  # Telegram Stars: the currency of digital goods sold inside Telegram
MAX_ID = 2**63 - 1  # ids are 64-bit integers, in the database and at Telegram
TELEGRAM_API = "https://api.telegram.org"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

# The currencies Telegram accepts for card payments, with their "exp": how many
# digits follow the decimal point (Telegram's core.telegram.org/bots/payments/currencies.json),
# and Telegram Stars, which are whole. Prices are integers in the smallest unit:
# 999 with exp 2 is 9.99; yen have no cents.
WHOLE_UNIT_CURRENCIES = ("CLP", "ISK", "JPY", "KRW", "PYG", "UGX", "VND")  # exp 0
CENT_CURRENCIES = (  # exp 2
    "AED", "AFN", "ALL", "AMD", "ARS", "AUD", "AZN", "BAM", "BDT", "BGN", "BND", "BOB", "BRL", "CAD",
    "CHF", "CNY", "COP", "CRC", "CZK", "DKK", "DOP", "DZD", "EGP", "EUR", "GBP", "GEL", "GTQ", "HKD",
    "HNL", "HRK", "HUF", "IDR", "ILS", "INR", "JMD", "KES", "KGS", "KZT", "LBP", "LKR", "MAD", "MDL",
    "MNT", "MUR", "MVR", "MXN", "MYR", "MZN", "NGN", "NIO", "NOK", "NPR", "NZD", "PAB", "PEN", "PHP",
    "PKR", "PLN", "QAR", "RON", "RSD", "RUB", "SAR", "SEK", "SGD", "THB", "TJS", "TRY", "TTD", "TWD",
    "TZS", "UAH", "USD", "UYU", "UZS", "YER", "ZAR",
)
CURRENCY_EXP = {STARS: 0} | dict.fromkeys(WHOLE_UNIT_CURRENCIES, 0) | dict.fromkeys(CENT_CURRENCIES, 2)


class ConfigError(Exception):
    """A setting is missing or malformed; the message says which and how to fix it."""


@dataclass(frozen=True)
class Config:
    """Everything the bot reads from the environment."""

    token: str
    admin_ids: frozenset[int] = frozenset()
    database_url: str = "sqlite:///shop.db"
    api_url: str | None = None
    provider_token: str = ""
    currency: str = STARS
    log_level: str = "INFO"

    @property
    def payment_type(self) -> str:
        """How customers pay: 'stars', or 'card' through the seller's payment provider."""
        return "card" if self.provider_token else "stars"


def is_number(value: str) -> bool:
    """ASCII digits only: str.isdigit() also says yes to '²', which int() refuses."""
    return value.isascii() and value.isdigit()


def is_id(value: str) -> bool:
    """A number that fits the database's 64-bit ids (and Telegram's)."""
    return is_number(value) and len(value) <= 19 and int(value) <= MAX_ID


def parse_admin_ids(raw: str) -> frozenset[int]:
    """'111, 222' -> {111, 222}; anything that is not a number is an error."""
    ids = set()
    for part in raw.replace(" ", "").split(","):
        if not part:
            continue
        if not is_id(part.removeprefix("-")):
            raise ConfigError(f"ADMIN_IDS must be comma-separated Telegram user ids, got {part!r}")
        ids.add(int(part))
    return frozenset(ids)


def read_token(environ: dict[str, str]) -> str:
    """BOT_TOKEN, which must look like BotFather's '123456789:AAE...' (telebot refuses anything else)."""
    token = environ.get("BOT_TOKEN", "").strip()
    if not token:
        raise ConfigError("BOT_TOKEN is not set: get a token from @BotFather and run "
                          "BOT_TOKEN=123:ABC python shopbot.py")
    if not re.fullmatch(r"[0-9]+:\S+", token):
        raise ConfigError("BOT_TOKEN is not a bot token (they look like 123456789:AAE...): "
                          "copy it again from @BotFather")
    return token


def read_currency(environ: dict[str, str], provider_token: str) -> str:
    """CURRENCY: Stars without a provider token, one of Telegram's card currencies with one."""
    currency = environ.get("CURRENCY", "").strip().upper() or ("USD" if provider_token else STARS)
    if currency not in CURRENCY_EXP:
        raise ConfigError(f"CURRENCY={currency} is not a currency Telegram accepts: use a three-letter code "
                          "such as USD, EUR or RUB (see core.telegram.org/bots/payments#supported-currencies)")
    # Telegram Stars take no provider token; a card provider needs a real currency.
    if provider_token and currency == STARS:
        raise ConfigError("CURRENCY must be a card currency such as USD when PAYMENT_PROVIDER_TOKEN is set")
    if not provider_token and currency != STARS:
        raise ConfigError(f"CURRENCY={currency} needs PAYMENT_PROVIDER_TOKEN; leave both empty for Telegram Stars")
    return currency


def read_database_url(environ: dict[str, str]) -> str:
    url = environ.get("DATABASE_URL", "").strip() or "sqlite:///shop.db"
    try:
        make_url(url)
    except ArgumentError:
        raise ConfigError("DATABASE_URL is not a database URL: use e.g. sqlite:///shop.db or "
                          "postgresql+psycopg://user:password@host/shop") from None
    return url


def read_log_level(environ: dict[str, str]) -> str:
    level = environ.get("LOG_LEVEL", "").strip().upper() or "INFO"
    if level not in LOG_LEVELS:
        raise ConfigError(f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, got {level!r}")
    return level


def load_config(environ: dict[str, str]) -> Config:
    """Read the configuration from environment variables."""
    provider_token = environ.get("PAYMENT_PROVIDER_TOKEN", "").strip()
    return Config(
        token=read_token(environ),
        admin_ids=parse_admin_ids(environ.get("ADMIN_IDS", "")),
        database_url=read_database_url(environ),
        api_url=environ.get("TELEGRAM_API_URL", "").strip().rstrip("/") or None,
        provider_token=provider_token,
        currency=read_currency(environ, provider_token),
        log_level=read_log_level(environ),
    )


def use_api_server(api_url: str | None) -> None:
    """Send every Bot API request to ``api_url`` (a self-hosted server) instead of Telegram's."""
    if api_url:
        apihelper.API_URL = api_url + "/bot{0}/{1}"
        apihelper.FILE_URL = api_url + "/file/bot{0}/{1}"


# ---------------------------------------------------------------------------
# Requests: parameters in the body
# ---------------------------------------------------------------------------

sessions = threading.local()  # one HTTP session per thread, kept alive between calls


def send_in_body(_http_method: str, url: str, params=None, files=None, timeout=None, proxies=None):
    """Send a Bot API call with its parameters in the request body.

    telebot puts every parameter in the URL's query string, and a failed
    request's URL lands in the error message, hence in the log: a provider
    token, a product's hidden content. Telegram takes every method as a POST
    with a form body (telebot's choice of GET is ignored), so nothing but the
    method's name is left in the URL. An answer that is not the Bot API's is
    refused here (``bot_api_answer``).
    """
    if not hasattr(sessions, "session"):
        sessions.session = new_session(url)
    answer = sessions.session.request("post", url, data=params, files=files, timeout=timeout, proxies=proxies)
    return bot_api_answer(url.rsplit("/", 1)[-1], answer)


def new_session(url: str) -> requests.Session:
    """An HTTP session that reads the environment (HTTPS_PROXY, NO_PROXY, REQUESTS_CA_BUNDLE) once, when made.

    requests would look it up again at every call, and ~/.netrc too: a third
    of the time a call takes on our side, which a ⚡ fast broadcast of 1,000
    messages a second notices (broadcast.py).
    """
    session = requests.Session()
    session.trust_env = False
    session.proxies.update(requests.utils.get_environ_proxies(url))
    session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    return session


def is_bot_api_json(payload) -> bool:
    """The Bot API's answer: {"ok": true, "result": ...} or {"ok": false, "error_code": 400, "description": "..."}."""
    if not isinstance(payload, dict) or not isinstance(payload.get("ok"), bool):
        return False
    if payload["ok"]:
        return "result" in payload
    return isinstance(payload.get("error_code"), int) and isinstance(payload.get("description"), str)


class NotTheBotApisAnswer(apihelper.ApiHTTPException):
    """An answer that is not the Bot API's JSON. Its body is left out of the message, unlike telebot's own
    errors: a cut-off answer can echo what was sent (a product's hidden content), and errors reach the log."""

    def __init__(self, method_name: str, answer: requests.Response):
        apihelper.ApiException.__init__(self, f"{method_name}: HTTP {answer.status_code} {answer.reason}, "
                                              "and a body that is not the Bot API's JSON", method_name, answer)


def bot_api_answer(method_name: str, answer: requests.Response) -> requests.Response:
    """The answer, if it is the Bot API's JSON; if not, an ApiException, as a network failure raises.

    A proxy's HTML error page, a 500 whose body is ``{"message": ...}``, or a
    body cut off mid-way are not Telegram's answers, but telebot reads the
    last two as Telegram's and fails with a KeyError (``result_json['ok']``)
    that no caller expects. Raised here as an ApiHTTPException, they are
    waited out and retried like an unreachable Telegram wherever the shop
    polls (service.TelegramLink), and fail a send as a lost connection does.
    """
    try:
        payload = answer.json()
    except ValueError:
        payload = None
    if not is_bot_api_json(payload):
        raise NotTheBotApisAnswer(method_name, answer)
    return answer


def send_parameters_in_body() -> None:
    """Route every Bot API call through send_in_body (tests install their own fake Telegram instead)."""
    apihelper.CUSTOM_REQUEST_SENDER = send_in_body


# ---------------------------------------------------------------------------
# Logging, with the secrets left out
# ---------------------------------------------------------------------------

QUERY_STRING = re.compile(r"(https?://[^\s?#'\"]+)\?[^\s'\"]+")


def secrets_of(config: Config) -> list[str]:
    """What must never be printed: the bot token first, then the provider token and the database password."""
    return [config.token, config.provider_token, make_url(config.database_url).password or ""]


class RedactSecrets(logging.Filter):
    """Replace the secrets in every log record, tracebacks included, and drop every URL's query string.

    telebot's errors can contain request URLs, and a URL's query string can
    carry any parameter of the call (send_in_body keeps ours out of it).
    """

    def __init__(self, token: str, *other_secrets: str):
        super().__init__()
        self.replacements = {secret: "<secret>" for secret in other_secrets if secret} | {token: "<BOT_TOKEN>"}

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + logging.Formatter().formatException(record.exc_info)
            record.exc_info = record.exc_text = None
        for secret, placeholder in self.replacements.items():
            message = message.replace(secret, placeholder)
        record.msg, record.args = QUERY_STRING.sub(r"\1?<query hidden>", message), ()
        return True


def log_uncaught(exc_type, exc_value, exc_traceback, thread_name: str = "main") -> None:
    """Python prints an uncaught exception raw to stderr; send it through the filtered log instead."""
    logging.getLogger("shopbot").error("Uncaught error in thread %s", thread_name,
                                       exc_info=(exc_type, exc_value, exc_traceback))


def log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    """The same for a thread that dies (e.g. a background job on a network error, whose URL holds the token)."""
    if not issubclass(args.exc_type, SystemExit):  # Python's own hook ignores SystemExit too
        log_uncaught(args.exc_type, args.exc_value, args.exc_traceback, getattr(args.thread, "name", "?"))


class ErrorCount(logging.Handler):
    """Counts the ERROR records of the last day, for /status: a shop that logs errors is a shop to look at."""

    DAY = 24 * 60 * 60

    def __init__(self):
        super().__init__(level=logging.ERROR)
        self.times: collections.deque[float] = collections.deque(maxlen=100_000)

    def emit(self, record: logging.LogRecord) -> None:
        self.times.append(record.created)

    def in_last_day(self) -> int:
        since = time.time() - self.DAY
        while self.times and self.times[0] < since:
            self.times.popleft()
        return len(self.times)


ERRORS = ErrorCount()  # one per process, as the log is


def count_errors() -> None:
    """Let ERRORS see every error record (again after setup_logging, which replaces the root logger's handlers)."""
    root = logging.getLogger()
    if ERRORS not in root.handlers:
        root.addHandler(ERRORS)


def setup_logging(level: str, token: str, *other_secrets: str) -> None:
    """One log format on stderr for the shop and its libraries, with the secrets never printed.

    journald (under systemd) keeps each line as it is. At INFO a customer's
    tap logs nothing; sales, admin actions and trouble do.
    """
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s - %(name)s - %(levelname)s - %(message)s"))
    handler.addFilter(RedactSecrets(token, *other_secrets))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    count_errors()
    logging.captureWarnings(True)  # library warnings go through the filter too
    # Every thread's crash, and the main thread's, is logged through the filter.
    sys.excepthook = log_uncaught
    threading.excepthook = log_uncaught_in_thread
    # telebot ships its own stderr handler; send its records through ours instead.
    telebot.logger.handlers.clear()
    telebot.logger.propagate = True
    # Below WARNING these libraries print request parameters, answers and rows: hidden content.
    for library in ("TeleBot", "urllib3", "sqlalchemy", "alembic"):
        logging.getLogger(library).setLevel(logging.WARNING)
