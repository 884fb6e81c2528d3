"""Configuration: everything the shop reads from its environment.

Reading order: shopbot.py (the table of contents) → **config.py** → models.py
→ database.py → texts.py → screens.py → shop.py → routes.py → the chapters.

The seller configures the shop with environment variables only, no .env file:
BOT_TOKEN, ADMIN_IDS, DATABASE_URL, TELEGRAM_API_URL, PAYMENT_PROVIDER_TOKEN,
CURRENCY and LOG_LEVEL. ``load_config()`` reads and checks them all at once, so
that a mistake is one clear line at start-up, not a failure at the first sale.
Logging is set up here too, with the secrets filtered out of every line.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import telebot
from telebot import apihelper

import texts

STARS = "XTR"  # Telegram Stars: the currency of digital goods sold inside Telegram
MAX_ID = 2**63 - 1  # ids are 64-bit integers, in the database and at Telegram
TELEGRAM_API = "https://api.telegram.org"


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
    shop_name: str = texts.SHOP_NAME

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


def load_config(environ: dict[str, str]) -> Config:
    """Read the configuration from environment variables."""
    token = environ.get("BOT_TOKEN", "").strip()
    if not token:
        raise ConfigError("BOT_TOKEN is not set: get a token from @BotFather and run "
                          "BOT_TOKEN=123:ABC python shopbot.py")
    provider_token = environ.get("PAYMENT_PROVIDER_TOKEN", "").strip()
    # Telegram Stars take no provider token; a card provider needs a real currency.
    currency = environ.get("CURRENCY", "").strip().upper() or ("USD" if provider_token else STARS)
    if provider_token and currency == STARS:
        raise ConfigError("CURRENCY must be a card currency such as USD when PAYMENT_PROVIDER_TOKEN is set")
    if not provider_token and currency != STARS:
        raise ConfigError(f"CURRENCY={currency} needs PAYMENT_PROVIDER_TOKEN; leave both empty for Telegram Stars")
    return Config(
        token=token,
        admin_ids=parse_admin_ids(environ.get("ADMIN_IDS", "")),
        database_url=environ.get("DATABASE_URL", "").strip() or "sqlite:///shop.db",
        api_url=environ.get("TELEGRAM_API_URL", "").strip().rstrip("/") or None,
        provider_token=provider_token,
        currency=currency,
    )


def use_api_server(api_url: str | None) -> None:
    """Send every Bot API request to ``api_url`` (a self-hosted server) instead of Telegram's."""
    if api_url:
        apihelper.API_URL = api_url + "/bot{0}/{1}"
        apihelper.FILE_URL = api_url + "/file/bot{0}/{1}"


class RedactSecrets(logging.Filter):
    """Replace the bot token in every log record: telebot's errors can contain request URLs."""

    def __init__(self, token: str):
        super().__init__()
        self.token = token

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + logging.Formatter().formatException(record.exc_info)
            record.exc_info = record.exc_text = None
        record.msg, record.args = message.replace(self.token, "<BOT_TOKEN>"), ()
        return True


def setup_logging(token: str) -> None:
    """One log format for the shop and telebot, with the token never printed."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s - %(name)s - %(levelname)s - %(message)s"))
    handler.addFilter(RedactSecrets(token))
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    # telebot ships its own stderr handler; send its records through ours instead.
    telebot.logger.handlers.clear()
    telebot.logger.setLevel(logging.WARNING)
    telebot.logger.propagate = True
    logging.getLogger("alembic").setLevel(logging.WARNING)  # database.py logs the one line that matters
