"""shopkit: the machinery under the shop. A beginner may skip this folder.

The shop's chapters (storefront.py, checkout.py, ...) import what they need
from here, and only from here::

    from shopkit import Handlers, Screen, Toast, text, language_of

as flaskr's blog.py imports ``Blueprint`` from Flask. README.md beside this
file states the handler contract; each module says what it keeps alive:

    storage.py   the declarative Base, and the machinery's own tables (settings, dialogs)
    config.py    the settings, read from the environment; logging without secrets
    database.py  connecting to SQLite or PostgreSQL, and upgrading the schema on start
    screens.py   texts in the user's language, money, callback data, buttons, Screen and Toast
    shop.py      the Shop every handler gets, and every call to Telegram
    progress.py  long work that edits one message every few seconds: "Exporting… 40 %"
    routes.py    how an update reaches its handler: sessions, admin checks, dialogs, errors
    lanes.py     payments first, then every customer in turn; floods trimmed
    journal.py   every payment written down before Telegram forgets it, and recorded until it is
    service.py   start-up checks, a Telegram that cannot be reached, --check
    instance.py  one running copy per shop (a lock beside the database), and whether the last stopped cleanly
    bot.py       the bot, polling, and the command line (shopbot.py runs it)
    telebot_fixes.py  telebot 4.37.1's two paid-media bugs, worked around in one place

Nothing here imports a chapter: where the machinery must reach the shop (the
customer's menu, who blocked the bot), a chapter hands it a function when it
registers.
"""
from .bot import make_bot, run
from .config import (
    ERRORS,
    MAX_ID,
    STARS,
    Config,
    ConfigError,
    RedactSecrets,
    is_id,
    is_number,
    load_config,
)
from .database import (
    DatabaseError,
    backup_sqlite,
    close_database,
    connect,
    describe_database,
    open_database,
    sqlite_file,
    stored_revision,
)
from .journal import NOT_RECORDED, PaymentJournal, journal_path, recorded_reply, retry_until_recorded
from .progress import PROGRESS_EVERY, Progress, edit_or_send
from .routes import (
    ANSWER_TYPES,
    CANCEL,
    SKIP,
    After,
    Handlers,
    add_handlers,
    ask,
    chat_of,
    dialog_data,
    end_dialog,
    follow_start_link,
    handles_errors,
    on_message,
    replies,
    run_handler,
    show_reply,
)
from .screens import (
    MAX_CARD_UNITS,
    MAX_STARS,
    NANOSTARS,
    PAGE_SIZE,
    InputError,
    Screen,
    Tap,
    Toast,
    callback,
    copy_row,
    counted,
    currency_hint,
    decimals,
    describe_user,
    format_price,
    format_stars,
    has_visible_text,
    html_to_plain,
    keyboard,
    label,
    language_for_code,
    language_of,
    number,
    page_count,
    pager_row,
    parse_price,
    split_message,
    telegram_error,
    text,
    truncate,
    use_texts,
    utf16_len,
    with_toast,
)
from .service import (
    StartRefused,
    check_line,
    code_version,
    data_folder,
    free_space,
    megabytes,
    short_reason,
)
from .shop import (
    CALL_FAILED,
    MASS_SEND_INTERVAL,
    SALE_ALERTS,
    Shop,
    call_api,
    message_admins,
    muted_admins,
    notify_admins,
    retry_after,
    send,
    send_file,
    send_media,
)
from .storage import Base, Dialog, Setting, insert_for, put_setting, utcnow

__all__ = [
    "ANSWER_TYPES", "CALL_FAILED", "CANCEL", "ERRORS", "MASS_SEND_INTERVAL", "MAX_CARD_UNITS", "MAX_ID", "MAX_STARS",
    "NANOSTARS", "NOT_RECORDED", "PAGE_SIZE", "PROGRESS_EVERY", "SALE_ALERTS", "SKIP", "STARS", "After", "Base",
    "Config", "ConfigError", "DatabaseError", "Dialog", "Handlers", "InputError", "PaymentJournal", "Progress",
    "RedactSecrets", "Screen", "Setting", "Shop", "StartRefused", "Tap", "Toast", "add_handlers", "ask",
    "backup_sqlite", "call_api", "callback", "chat_of", "check_line", "close_database", "code_version", "connect",
    "copy_row", "counted", "currency_hint", "data_folder", "decimals", "describe_database", "describe_user",
    "dialog_data", "edit_or_send", "end_dialog", "follow_start_link", "format_price", "format_stars", "free_space",
    "handles_errors", "has_visible_text", "html_to_plain", "insert_for", "is_id", "is_number", "journal_path",
    "keyboard", "label", "language_for_code", "language_of", "load_config", "make_bot", "megabytes", "message_admins",
    "muted_admins", "notify_admins", "number", "on_message", "open_database", "page_count", "pager_row",
    "parse_price", "put_setting", "recorded_reply", "replies", "retry_after", "retry_until_recorded", "run",
    "run_handler", "send", "send_file", "send_media", "short_reason", "show_reply", "split_message", "sqlite_file",
    "stored_revision", "telegram_error", "text", "truncate", "use_texts", "utcnow", "utf16_len", "with_toast"
]
