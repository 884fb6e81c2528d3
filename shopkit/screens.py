"""Screens: what the shop shows, built as plain values before anything is sent.

Part of shopkit, the machinery under the shop (see __init__.py).

A ``Screen`` is one message: HTML text, inline buttons, perhaps a photo or a
document. Handlers build screens; shop.py sends them. Here are the pieces
every chapter builds screens from:

- texts in the user's language, with every value escaped (``text``, ``label``);
- Telegram's length rules (4,096 characters a message, counted in UTF-16);
- money, shown and read the human way (``format_price``, ``parse_price``);
- callback data, the hidden payload of a button (``callback``, ``parse_callback``);
- buttons (a ``Tap`` names what each carries), keyboards and the ◀️ 2/5 ▶️ pager.
"""
from __future__ import annotations

import html
import re
import unicodedata
from dataclasses import dataclass

from telebot import types

from .config import CURRENCY_EXP, STARS, is_id, is_number

# ---------------------------------------------------------------------------
# Texts: every word comes from the shop's texts.py, in the user's language
# ---------------------------------------------------------------------------

# {"en": {key: template}, "ru": {...}}: the shop hands its texts over once, with use_texts().
TEXTS: dict[str, dict] = {"en": {}}
COMMANDS: dict[str, list] = {}  # {"en": [(command, description), ...], ...}: Telegram's command menu


def use_texts(texts_by_language: dict[str, dict], commands: dict[str, list]) -> None:
    """Speak with these texts (English is the fallback for a key another language lacks), and show these
    commands in Telegram's menu."""
    TEXTS.clear()
    TEXTS.update(texts_by_language)
    COMMANDS.clear()
    COMMANDS.update(commands)


def template(lang: str, key: str):
    """The template for ``key`` in ``lang`` (a string, or a counted word's forms)."""
    return TEXTS[lang].get(key) or TEXTS["en"][key]


def language_for_code(code: str | None) -> str:
    """Russian for a Telegram language code starting with 'ru', English for everyone else."""
    return "ru" if (code or "").lower().startswith("ru") else "en"


def language_of(telegram_user: types.User | None) -> str:
    """The language to speak to a Telegram user in."""
    return language_for_code(getattr(telegram_user, "language_code", None))


def text(lang: str, key: str, **values) -> str:
    """An HTML text in the user's language, with every value escaped.

    A value may be a function of the language, for a word that changes with it
    (``counted``, a currency's name): texts for several admins are built so.
    """
    return template(lang, key).format(**{k: html.escape(str(v(lang) if callable(v) else v), quote=False)
                              for k, v in values.items()})


def plural_form(lang: str, count: int) -> int:
    """Which form of a counted word: English has two (1 item, 2 items), Russian three (1 товар, 2 товара, 5 товаров)."""
    if lang == "ru":
        last, last_two = count % 10, count % 100
        return 0 if last == 1 and last_two != 11 else 1 if 2 <= last <= 4 and not 12 <= last_two <= 14 else 2
    return 0 if count == 1 else 1


# Between groups of thousands, in both languages: U+202F NARROW NO-BREAK SPACE, "10 000". Thin, as Russian
# typography and SI write it (neither "10,000" nor "10.000", which read as decimals in the other language), and
# no-break, unlike U+2009 THIN SPACE: a number is never split across two lines. Telegram's clients show both.
THOUSANDS = "\u202f"


def number(value: int) -> str:
    """The one way the shop writes a whole number to people: 950, 1500, 10 000, 1 234 567 (see THOUSANDS).
    A four-digit number stays whole, as Russian typography and SI write it. Never for an id (a Telegram id, a
    purchase number): those are copied, not read."""
    return f"{value:,}".replace(",", THOUSANDS) if abs(value) >= 10_000 else str(value)


def counted(lang: str, key: str, count: int) -> str:
    """'1 item', '5 items', '10 000 items'; '1 единица', '5 единиц': a number with its word in the right form."""
    forms = template(lang, key)
    return forms[min(plural_form(lang, count), len(forms) - 1)].format(count=number(count))


def label(lang: str, key: str, **values) -> str:
    """A button label: plain text, nothing to escape."""
    return template(lang, key).format(**values)


# Telegram explains a refusal in English ("Bad Request: CHARGE_ALREADY_REFUNDED"): the ones a seller meets,
# each with a text key that says it in their language. The description itself goes to the log as it came.
TELEGRAM_ERRORS = (
    ("CHARGE_ALREADY_REFUNDED", "tg_error_refunded"), ("refunded already", "tg_error_refunded"),
    ("CHARGE_NOT_FOUND", "tg_error_no_charge"), ("BALANCE_TOO_LOW", "tg_error_balance"),
    ("not enough rights", "tg_error_rights"), ("CHAT_ADMIN_REQUIRED", "tg_error_rights"),
    ("administrator rights", "tg_error_rights"), ("bot was kicked", "tg_error_not_member"),
    ("bot is not a member", "tg_error_not_member"), ("chat not found", "tg_error_no_chat"),
    ("wrong file identifier", "tg_error_no_file"), ("FILE_ID_INVALID", "tg_error_no_file"),
)


def telegram_error(description: str):
    """Telegram's refusal in the reader's words: a function of the language, as ``text`` takes a value."""
    key = next((key for fragment, key in TELEGRAM_ERRORS if fragment.lower() in description.lower()),
               "tg_error_other")
    return lambda lang: label(lang, key, description=description)


def has_visible_text(value: str) -> bool:
    """False for texts made only of spaces and invisible characters (zero-width, direction marks)."""
    return any(unicodedata.category(char)[0] not in "CZ" for char in value)


def html_to_plain(value: str) -> str:
    """Our HTML texts as plain text, for places that take no markup (toasts, checkout errors)."""
    return html.unescape(re.sub(r"<[^>]+>", "", value))


# ---------------------------------------------------------------------------
# Telegram's length rules
# ---------------------------------------------------------------------------

MESSAGE_LIMIT = 4096
CAPTION_LIMIT = 1024


def utf16_len(value: str) -> int:
    """Telegram measures texts in UTF-16 code units (an emoji counts as two)."""
    return len(value.encode("utf-16-le")) // 2


def truncate(value: str, limit: int) -> str:
    """Cut ``value`` to ``limit`` characters with an ellipsis (invoice titles, buttons)."""
    return value if len(value) <= limit else value[: limit - 1] + "…"


def cut_to_length(value: str, limit: int):
    """Yield pieces of ``value`` of at most ``limit`` UTF-16 code units."""
    piece, size = [], 0
    for char in value:
        width = 2 if ord(char) > 0xFFFF else 1
        if size + width > limit:
            yield "".join(piece)
            piece, size = [], 0
        piece.append(char)
        size += width
    if piece:
        yield "".join(piece)


def split_message(value: str, limit: int = MESSAGE_LIMIT) -> list[str]:
    """Split plain text into pieces Telegram accepts, preferably at line breaks."""
    pieces, current = [], ""
    for line in value.splitlines(keepends=True):
        for chunk in cut_to_length(line, limit):  # a single line longer than a message is cut
            if current and utf16_len(current + chunk) > limit:
                pieces.append(current)
                current = ""
            current += chunk
    pieces.append(current)
    return [piece for piece in pieces if piece.strip()]  # Telegram refuses blank messages


# ---------------------------------------------------------------------------
# Money: prices are integers in the currency's smallest unit
# ---------------------------------------------------------------------------

CURRENCY_SIGNS = {"USD": "${}", "EUR": "€{}", "GBP": "£{}", "RUB": "{}\u00a0₽", "UAH": "{} ₴",
                  "KZT": "{} ₸", "INR": "₹{}", STARS: "{} ⭐"}
# Telegram accepts Stars invoices of 1 to 100,000 Stars.
MAX_STARS = 100_000
# Card providers accept roughly up to 10,000 US dollars; this bound keeps typos out.
MAX_CARD_UNITS = 10_000


def decimals(currency: str) -> int:
    """Digits after the point, as Telegram counts them (config.CURRENCY_EXP): 2 for dollars, 0 for Stars and yen."""
    return CURRENCY_EXP.get(currency, 2)


def format_price(amount: int, currency: str) -> str:
    """1500, 'XTR' -> '1500 ⭐'; 999, 'USD' -> '$9.99'; 1500050, 'RUB' -> '15 000,50 ₽' (thousands: ``number``)."""
    places = decimals(currency)
    units, cents = divmod(amount, 10 ** places)
    point = "," if currency == "RUB" else "."  # the Russian way for roubles: a decimal comma
    written = f"{number(units)}{point}{cents:0{places}d}" if cents else number(units)
    return CURRENCY_SIGNS.get(currency, "{} " + currency).format(written)


NANOSTARS = 1_000_000_000  # in a Star: Telegram's ledger counts commissions and fees to the nanostar


def format_stars(nanostars: int) -> str:
    """An amount of Telegram's Stars ledger, exact: 37_500_000_000 -> '37.5 ⭐', -100_000_000 -> '-0.1 ⭐'."""
    whole, part = divmod(abs(nanostars), NANOSTARS)
    number = f"{whole}.{part:09d}".rstrip("0").rstrip(".")
    return CURRENCY_SIGNS[STARS].format(("-" if nanostars < 0 else "") + number)


def currency_name(lang: str, currency: str) -> str:
    """'Stars' ('звёздах' after Russian 'в'), or the currency's code: USD, EUR, RUB."""
    return label(lang, "currency_stars") if currency == STARS else currency


def price_example(currency: str) -> str:
    """A price as a seller would type it in this currency: 150 Stars, 9.99 dollars, 990 yen."""
    if currency == STARS:
        return "150"
    return "990" if decimals(currency) == 0 else "9." + "9" * decimals(currency)


def currency_hint(currency: str) -> dict:
    """The values of a text that names the shop's currency and gives an example price."""
    return {"currency": lambda lang: currency_name(lang, currency), "example": price_example(currency)}


class InputError(ValueError):
    """Input that cannot be used; ``key`` names the text that explains why, and the dialog asks again."""

    def __init__(self, key: str, **values):
        super().__init__(key)
        self.key, self.values = key, values


def parse_price(raw: str, currency: str) -> int:
    """Read a price the way people type it ('9.99', '9,99', '150', '1 500,50') into smallest units."""
    raw = re.sub(r"\s", "", raw).replace(",", ".")  # \s: no-break spaces too, as format_price writes them
    whole, _, fraction = raw.partition(".")
    if not is_number(whole) or (fraction and not is_number(fraction)):
        raise InputError("err_price_not_number", **currency_hint(currency))  # the example this currency takes
    if len(fraction) > decimals(currency):
        if not decimals(currency):
            raise InputError("err_price_whole", **currency_hint(currency))
        raise InputError("err_price_decimals", places=decimals(currency))
    amount = int(whole) * 10 ** decimals(currency) + int(fraction.ljust(decimals(currency), "0") or 0)
    limit = MAX_STARS if currency == STARS else MAX_CARD_UNITS * 10 ** decimals(currency)
    if amount > limit:
        raise InputError("err_price_too_high", limit=format_price(limit, currency))
    return amount


# ---------------------------------------------------------------------------
# Callback data: what a button sends back when tapped
# ---------------------------------------------------------------------------

# "<version>:<action>:<int>:<int>...", at most 64 bytes, e.g. "2:category:3:0".
# The action names a handler (see routes.py); the numbers are its arguments,
# in the order a Tap (below) names them.
# The version lets a new format turn away buttons of old messages politely:
# version 1 used short codes ("1:cat:3:0"), version 2 readable names.
CALLBACK_VERSION = "2"


def callback(action: str, *args: int) -> str:
    """Pack a button's callback data: callback('category', 3, 0) -> '2:category:3:0'."""
    return ":".join([CALLBACK_VERSION, action, *(str(int(a)) for a in args)])


def parse_callback(data: str | None) -> tuple[str, list[int]] | None:
    """'2:category:3:0' -> ('category', [3, 0]); None for anything we did not make."""
    parts = (data or "").split(":")
    if len(parts) < 2 or parts[0] != CALLBACK_VERSION:
        return None
    args = parts[2:]
    if not all(is_id(a) for a in args):
        return None
    return parts[1], [int(a) for a in args]


# ---------------------------------------------------------------------------
# Buttons, keyboards and screens
# ---------------------------------------------------------------------------

PAGE_SIZE = 8  # products or purchases per page
MAX_PAGE = 1_000_000  # more pages than any shop has; a forged bigger one would overflow a query's OFFSET
MAX_ROW_ID = 2**31 - 1  # the database's row ids are 32-bit on PostgreSQL: a bigger one is forged, and would not fit


class Tap:
    """A kind of button: the action it runs, and the names of the numbers it carries.

    Declared once, at the top of the chapter that makes such buttons, and used
    both where a button is made and where its handler is registered::

        CATEGORY = Tap("category", "category_id", page=True)

        CATEGORY.button("📚 Books", category_id=3, page=0)  # sends '2:category:3:0' when tapped

        @handlers.tap(CATEGORY)
        def tap_category(shop, call, session, category_id: int, page: int) -> Screen: ...

    A button must be given every number by name, and no other: a mistake
    raises at once, where the button is made. ``page=True`` adds a last
    number, ``page``, which the pager fills in; a forged page bigger than
    MAX_PAGE is cut down to it before the handler sees it.
    """

    def __init__(self, action: str, *names: str, page: bool = False):
        self.action = action
        self.names = (*names, "page") if page else names
        self.paged = page

    def __repr__(self) -> str:
        return f"Tap({self.action!r}, {', '.join(self.names)})"

    def button(self, caption: str, **numbers: int) -> types.InlineKeyboardButton:
        """An inline button that runs this action with these numbers when tapped."""
        if sorted(numbers) != sorted(self.names):
            raise TypeError(f"a {self.action!r} button carries {list(self.names)}, not {list(numbers)}")
        data = callback(self.action, *(numbers[name] for name in self.names))
        return types.InlineKeyboardButton(truncate(caption, 64), callback_data=data)

    def read(self, numbers: list[int]) -> dict[str, int] | None:
        """A tapped button's numbers by name (a page cut to MAX_PAGE); None if it carries the wrong count, or a
        number too big to be a row's id."""
        if len(numbers) != len(self.names):
            return None
        named = dict(zip(self.names, numbers, strict=True))
        if any(number > MAX_ROW_ID for name, number in named.items() if name != "page"):
            return None  # PostgreSQL would refuse to compare it with an INTEGER id: no button of ours carries one
        if self.paged:
            named["page"] = min(named["page"], MAX_PAGE)
        return named


NOTHING = Tap("noop")  # a button that only informs, such as the 2/5 of a pager (routes.py answers it)


def keyboard(*rows: list[types.InlineKeyboardButton]) -> types.InlineKeyboardMarkup:
    """Inline buttons, one list per row; empty rows are left out."""
    markup = types.InlineKeyboardMarkup()
    for row in rows:
        if row:
            markup.row(*row)
    return markup


# Telegram's 📋 copy button holds 1-256 characters (CopyTextButton): a key, a code, a link, an account line.
COPY_LIMIT = 256


def copy_row(lang: str, value: str, key: str = "btn_copy") -> list[types.InlineKeyboardButton]:
    """A 📋 Copy button (labelled by the text ``key``) that puts ``value`` on the clipboard in one tap; no
    button (an empty row) for a value Telegram's copy button cannot hold."""
    value = value.strip()
    if not 1 <= utf16_len(value) <= COPY_LIMIT:
        return []
    return [types.InlineKeyboardButton(label(lang, key), copy_text=types.CopyTextButton(value))]


def page_count(total: int, per_page: int = PAGE_SIZE) -> int:
    return max(1, -(-total // per_page))


def pager_row(lang: str, tap: Tap, page: int, pages: int, **numbers: int) -> list:
    """◀️ Prev · 2/5 · Next ▶️ (only when there is more than one page): ``tap`` is a Tap with
    ``page=True``, ``numbers`` its other numbers, as in pager_row(lang, CATEGORY, 0, 5, category_id=3)."""
    if pages <= 1:
        return []
    row = []
    if page > 0:
        row.append(tap.button(label(lang, "btn_prev"), **numbers, page=page - 1))
    row.append(NOTHING.button(f"{page + 1}/{pages}"))
    if page < pages - 1:
        row.append(tap.button(label(lang, "btn_next"), **numbers, page=page + 1))
    return row


@dataclass
class Screen:
    """What one message shows: HTML text, buttons, and optionally a photo or document."""

    text: str
    markup: types.InlineKeyboardMarkup | None = None
    file_id: str | None = None
    file_type: str | None = None  # "photo" or "document"
    toast: str | None = None  # a short note on the tapped button, shown with the screen
    new_message: bool = False  # after a tap: send it below, keeping the tapped message as it is


@dataclass
class Toast:
    """A short note on the tapped button, and nothing else changes.

    ``once_shown``: a note that promises what the rest of the reply does ("Invoice sent below"), said only
    once that is shown; the tap is then answered after it, not before.
    """

    text: str
    once_shown: bool = False


def with_toast(screen: Screen, toast: str | None) -> Screen:
    """The same screen, with a note on the tapped button."""
    screen.toast = toast
    return screen


def describe_user(user) -> str:
    """'Alice (@alice)', or 'Alice', for the seller's messages (a Telegram user or a models.User)."""
    name = user.first_name or ""
    return f"{name} (@{user.username})" if user.username else name or str(getattr(user, "id", ""))
