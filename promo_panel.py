"""Promo panel: the seller's 🏷 Promo codes — new codes, 🎟 generated batches, their uses and revenue.

Reading order: ... export.py → **promo_panel.py** → broadcast.py → ...

What a code is worth and how its uses are counted is in promos.py; here the
seller makes and follows codes. ➕ New code is a dialog, every answer
checked and asked again when wrong::

    the code → the discount (20% or an amount) → what it applies to (buttons) → a limit of uses → an expiry

What it applies to offers only the products a code can lower: paid, and not a
subscription (models.Product.discountable).

🎟 Generate codes asks how many (up to 10,000) instead of the code and the
limit: each generated code is used once, and they come as a .txt file, one
code and its link a line. Codes made together form a *batch*, listed and
switched off as one. Each code shows its uses, the revenue it brought and its
share link ``https://t.me/<bot>?start=promo_<CODE>``.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import case, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from telebot import TeleBot, types

from admin import categories_in_order, message_text
from export import send_made_file
from menus import ADMIN, PROMOS
from models import Category, Product, PromoCode, Purchase
from promos import discount_label, normalized, parse_discount, promo_link, random_code, scope_name, whole_number
from referrals import made_by_the_program
from shopkit import (
    CANCEL,
    PAGE_SIZE,
    SKIP,
    After,
    Handlers,
    InputError,
    Screen,
    Shop,
    Tap,
    add_handlers,
    ask,
    chat_of,
    copy_row,
    counted,
    currency_hint,
    dialog_data,
    end_dialog,
    format_price,
    insert_for,
    keyboard,
    label,
    page_count,
    pager_row,
    put_setting,
    text,
    utcnow,
    with_toast,
)

logger = logging.getLogger("shopbot")
handlers = Handlers(admin=True)

# The buttons of the promo codes' screens, and the numbers each carries.
PROMO = Tap("promo", "code_id")
PROMO_BATCH = Tap("promo_batch", "batch")
PROMO_FILE = Tap("promo_file", "batch")
TOGGLE_PROMO = Tap("toggle_promo", "code_id")
TOGGLE_BATCH = Tap("toggle_batch", "batch")
NEW_PROMO = Tap("new_promo")
GENERATE_PROMOS = Tap("generate_promos")
PROMO_SCOPES = Tap("promo_scopes")
PROMO_CATEGORY = Tap("promo_category", "category_id", page=True)
PROMO_SCOPE = Tap("promo_scope", "scope", "target_id")

MAX_GENERATED = 10_000  # codes per 🎟 Generate codes
MAX_LIMIT = 1_000_000  # the largest total of uses a seller may set
SCOPES = ("shop", "category", "product")  # a scope travels in callback data as its index here


# ---------------------------------------------------------------------------
# 🏷 Promo codes: the list, a code, a batch
# ---------------------------------------------------------------------------

def entry_label(lang: str, row, currency: str) -> str:
    """A line of the list: 'SUMMER20 · −20 %', '⛔ OLD · −50 ⭐' (off), '🎟 500 codes · −10 %'."""
    discount = f"−{row.percent} %" if row.percent is not None else "−" + format_price(row.amount, currency)
    if row.batch is not None:
        return label(lang, "promo_batch_button", codes=row.codes, discount=discount)
    return ("" if row.active else "⛔ ") + f"{row.code} · {discount}"


def codes_screen(shop: Shop, session: Session, lang: str, page: int) -> Screen:
    """🏷 Promo codes: each code, and each generated batch as one line, newest first (the referral program's own
    codes, one for each friend and reward, are on its screen instead: referrals.py)."""
    group = func.coalesce(PromoCode.batch, -PromoCode.id)  # a batch is one line; any other code its own
    rows = session.execute(
        select(func.min(PromoCode.id).label("id"), func.max(PromoCode.batch).label("batch"),
               func.count().label("codes"), func.max(PromoCode.code).label("code"),
               func.max(PromoCode.percent).label("percent"), func.max(PromoCode.amount).label("amount"),
               func.max(case((PromoCode.is_active, 1), else_=0)).label("active"), func.count().over().label("total"))
        .where(~made_by_the_program(PromoCode.id))
        .group_by(group).order_by(func.min(PromoCode.id).desc()).limit(PAGE_SIZE).offset(page * PAGE_SIZE)).all()
    if not rows and page:
        return codes_screen(shop, session, lang, 0)
    buttons = [[PROMO_BATCH.button(entry_label(lang, row, shop.config.currency), batch=row.batch)]
               if row.batch is not None else [PROMO.button(entry_label(lang, row, shop.config.currency),
                                                           code_id=row.id)]
               for row in rows]
    return Screen(text(lang, "admin_promos" if rows else "admin_no_promos"), keyboard(
        *buttons, pager_row(lang, PROMOS, page, page_count(rows[0].total if rows else 0)),
        [NEW_PROMO.button(label(lang, "btn_new_promo")), GENERATE_PROMOS.button(label(lang, "btn_generate_promos"))],
        [ADMIN.button(label(lang, "btn_back"))]))


def sales_with(session: Session, *conditions) -> tuple[int, int, int]:
    """(uses, revenue, discounts given) of the live purchases made with the codes that match ``conditions``."""
    return session.execute(
        select(func.count(Purchase.id), func.coalesce(func.sum(Purchase.price), 0),
               func.coalesce(func.sum(Purchase.list_price - Purchase.price), 0))
        .join(PromoCode, Purchase.promo_code_id == PromoCode.id)
        .where(Purchase.refunded_at.is_(None), *conditions)).one()


def terms(session: Session, lang: str, code: PromoCode) -> dict:
    """The values every code's screen shows: discount, what it covers, expiry, on or off."""
    last_day = code.expires_at and code.expires_at - timedelta(days=1)  # it works until that day ends
    expires = label(lang, "promo_until", date=f"{last_day:%Y-%m-%d}") if last_day else label(lang, "promo_never")
    return dict(discount=discount_label(code), scope=scope_name(session, lang, code), expires=expires,
                status=label(lang, "promo_on" if code.is_active else "promo_off"))


def code_screen(shop: Shop, session: Session, lang: str, code_id: int, link_base: str) -> Screen:
    """One code: its terms, uses, revenue and share link, with ⛔ Turn off (or ✅ Turn on)."""
    code = session.get(PromoCode, code_id)
    if code is None:
        return codes_screen(shop, session, lang, 0)
    uses, revenue, discounts = sales_with(session, PromoCode.id == code_id)
    limit = f" / {code.max_uses}" if code.max_uses is not None else ""
    body = text(lang, "admin_promo", code=code.code, uses=f"{uses}{limit}", link=link_base + code.code,
                revenue=format_price(revenue, shop.config.currency),
                discounts=format_price(discounts, shop.config.currency), **terms(session, lang, code))
    toggle = label(lang, "btn_promo_off" if code.is_active else "btn_promo_on")
    return Screen(body, keyboard(copy_row(lang, link_base + code.code, "btn_copy_link"),
                                 [TOGGLE_PROMO.button(toggle, code_id=code_id)],
                                 [PROMOS.button(label(lang, "btn_back"), page=0)]))


def batch_screen(shop: Shop, session: Session, lang: str, batch: int) -> Screen:
    """A generated batch: its terms, how many of its codes were used, their revenue; the file again; ⛔ all off."""
    first = session.scalar(select(PromoCode).where(PromoCode.batch == batch).order_by(PromoCode.id).limit(1))
    if first is None:
        return codes_screen(shop, session, lang, 0)
    codes, active = session.execute(select(func.count(), func.coalesce(func.sum(case((PromoCode.is_active, 1),
                                                                                     else_=0)), 0))
                                    .where(PromoCode.batch == batch)).one()
    uses, revenue, discounts = sales_with(session, PromoCode.batch == batch)
    body = text(lang, "admin_promo_batch", codes=counted(lang, "n_codes", codes), uses=uses,
                revenue=format_price(revenue, shop.config.currency),
                discounts=format_price(discounts, shop.config.currency),
                **terms(session, lang, first) | {"status": label(lang, "promo_on" if active else "promo_off")})
    toggle = label(lang, "btn_promo_off" if active else "btn_promo_on")
    return Screen(body, keyboard([PROMO_FILE.button(label(lang, "btn_promo_file"), batch=batch),
                                  TOGGLE_BATCH.button(toggle, batch=batch)],
                                 [PROMOS.button(label(lang, "btn_back"), page=0)]))


def codes_file(session: Session, chat_id: int, batch: int, link_base: str) -> After:
    """A batch as a .txt file, sent to ``chat_id``: one code and its link a line."""
    codes = session.scalars(select(PromoCode.code).where(PromoCode.batch == batch).order_by(PromoCode.id))
    lines = "".join(f"{code} {link_base}{code}\n" for code in codes)
    return After(send_made_file, chat_id, f"promo-codes-{batch}.txt", lines.encode())


@handlers.tap(PROMOS)
def tap_promos(shop: Shop, call: types.CallbackQuery, session: Session, lang: str, page: int) -> Screen:
    """🏷 Promo codes."""
    return codes_screen(shop, session, lang, page)


@handlers.tap(PROMO)
def tap_promo(shop: Shop, call: types.CallbackQuery, session: Session, lang: str, code_id: int) -> Screen:
    """A code, as the seller sees it."""
    link_base = promo_link(shop, "")  # first: it may ask Telegram for the bot's name, never inside a transaction
    return code_screen(shop, session, lang, code_id, link_base)


@handlers.tap(PROMO_BATCH)
def tap_promo_batch(shop: Shop, call: types.CallbackQuery, session: Session, lang: str, batch: int) -> Screen:
    """A batch of generated codes."""
    return batch_screen(shop, session, lang, batch)


@handlers.tap(PROMO_FILE)
def tap_promo_file(shop: Shop, call: types.CallbackQuery, session: Session, lang: str, batch: int) -> After:
    """📄 The batch's codes again, as a .txt file."""
    link_base = promo_link(shop, "")  # first: see tap_promo
    return codes_file(session, chat_of(call), batch, link_base)


@handlers.tap(TOGGLE_PROMO)
def tap_toggle_promo(shop: Shop, call: types.CallbackQuery, session: Session, lang: str, code_id: int) -> Screen:
    """⛔ Turn off / ✅ Turn on a code: off, it is refused as expired (a payment already approved still counts)."""
    link_base = promo_link(shop, "")  # first: see tap_promo
    code = session.get(PromoCode, code_id)
    if code is not None:
        code.is_active = not code.is_active
        session.commit()
        logger.info("Admin %s turned promo code %s %s", call.from_user.id, code_id, "on" if code.is_active else "off")
    return code_screen(shop, session, lang, code_id, link_base)


@handlers.tap(TOGGLE_BATCH)
def tap_toggle_batch(shop: Shop, call: types.CallbackQuery, session: Session, lang: str, batch: int) -> Screen:
    """⛔ Turn off every code of a batch (or ✅ all on again)."""
    any_on = session.scalar(select(PromoCode.id).where(PromoCode.batch == batch, PromoCode.is_active).limit(1))
    session.execute(update(PromoCode).where(PromoCode.batch == batch).values(is_active=not any_on))
    session.commit()
    logger.info("Admin %s turned promo batch %s %s", call.from_user.id, batch, "off" if any_on else "on")
    return batch_screen(shop, session, lang, batch)


# ---------------------------------------------------------------------------
# ➕ New code and 🎟 Generate codes: one dialog
# ---------------------------------------------------------------------------

def read_code(session: Session, message: types.Message) -> str:
    code = normalized(message_text(message))
    if code is None:
        raise InputError("err_promo_code")
    if session.scalar(select(PromoCode.id).where(PromoCode.code == code)):
        raise InputError("err_promo_code_taken")
    return code


def read_discount(message: types.Message, currency: str) -> dict:
    """'20%' or '20 %' -> a percentage; '50', '9.99' -> an amount in the shop's currency."""
    return parse_discount(message_text(message), currency)


DATE_FORMATS = ("%Y-%m-%d", "%d.%m.%Y")


def read_expiry(message: types.Message) -> str | None:
    """The last day the code works ('2026-01-31' or '31.01.2026'), or /skip: it ends when that day ends (UTC)."""
    raw = message_text(message)
    if raw == SKIP:
        return None
    for date_format in DATE_FORMATS:
        try:
            day = datetime.strptime(raw, date_format)
        except ValueError:
            continue
        if day.date() < utcnow().date():
            raise InputError("err_promo_past")
        return (day + timedelta(days=1)).isoformat()
    raise InputError("err_promo_date")


@handlers.tap(NEW_PROMO)
def tap_new_promo(shop: Shop, call: types.CallbackQuery, session: Session, lang: str) -> Screen:
    """➕ New code: first, the code itself."""
    end_dialog(session, call)
    return ask(session, call, "promo_code_text", "admin_ask_promo_code")


@handlers.tap(GENERATE_PROMOS)
def tap_generate_promos(shop: Shop, call: types.CallbackQuery, session: Session, lang: str) -> Screen:
    """🎟 Generate codes: first, how many."""
    end_dialog(session, call)
    return ask(session, call, "promo_count", "admin_ask_promo_count", {"most": MAX_GENERATED})


def ask_discount(shop: Shop, session: Session, message: types.Message, **data) -> Screen:
    return ask(session, message, "promo_discount", "admin_ask_promo_discount", currency_hint(shop.config.currency),
               **data)


@handlers.answer("promo_code_text")
def answer_promo_code_text(shop: Shop, message: types.Message, session: Session, lang: str, dialog: dict) -> Screen:
    """The new code's text: next, its discount."""
    return ask_discount(shop, session, message, code=read_code(session, message))


@handlers.answer("promo_count")
def answer_promo_count(shop: Shop, message: types.Message, session: Session, lang: str, dialog: dict) -> Screen:
    """How many codes to generate: next, their discount."""
    return ask_discount(shop, session, message, count=whole_number(message_text(message), "err_promo_count",
                                                                    MAX_GENERATED))


def scope_screen(session: Session, lang: str) -> Screen:
    """What the code applies to: the whole shop, or a category (and then perhaps one of its products)."""
    rows = [[PROMO_CATEGORY.button(name, category_id=cid, page=0)] for cid, name in categories_in_order(session)]
    return Screen(text(lang, "admin_choose_promo_scope"), keyboard(
        [PROMO_SCOPE.button(label(lang, "btn_promo_shop"), scope=0, target_id=0)], *rows,
        [CANCEL.button(label(lang, "btn_cancel"))]))


@handlers.answer("promo_discount")
def answer_promo_discount(shop: Shop, message: types.Message, session: Session, lang: str, dialog: dict) -> Screen:
    """The discount: next, what it applies to (buttons)."""
    ask(session, message, "promo_scope", "admin_choose_promo_scope", **read_discount(message, shop.config.currency))
    return scope_screen(session, lang)


@handlers.answer("promo_scope")
def answer_promo_scope(shop: Shop, message: types.Message, session: Session, lang: str, dialog: dict) -> Screen:
    """A message where a button is expected."""
    raise InputError("err_promo_use_buttons")


@handlers.tap(PROMO_SCOPES)
def tap_promo_scopes(shop: Shop, call: types.CallbackQuery, session: Session, lang: str) -> Screen:
    """⬅️ Back to the choice of what the code applies to."""
    return scope_screen(session, lang)


def category_scope_screen(session: Session, lang: str, category: Category, page: int) -> Screen:
    """The whole category, or one of its products a code can lower (Product.discountable; hidden ones too: a
    code may wait for one), a page at a time."""
    rows = session.execute(select(Product.id, Product.name, func.count().over().label("total"))
                           .where(Product.category_id == category.id, Product.discountable)
                           .order_by(Product.id).limit(PAGE_SIZE).offset(page * PAGE_SIZE)).all()
    if not rows and page:
        return category_scope_screen(session, lang, category, 0)
    products = [[PROMO_SCOPE.button(row.name, scope=2, target_id=row.id)] for row in rows]
    return Screen(text(lang, "admin_choose_promo_product", name=category.name), keyboard(
        [PROMO_SCOPE.button(label(lang, "btn_promo_category", name=category.name), scope=1, target_id=category.id)],
        *products,
        pager_row(lang, PROMO_CATEGORY, page, page_count(rows[0].total if rows else 0), category_id=category.id),
        [PROMO_SCOPES.button(label(lang, "btn_back"))]))


@handlers.tap(PROMO_CATEGORY)
def tap_promo_category(shop: Shop, call: types.CallbackQuery, session: Session, lang: str, category_id: int,
                       page: int) -> Screen:
    """A category picked: the whole category, or one of its products."""
    category = session.get(Category, category_id)
    if category is None:
        return scope_screen(session, lang)
    return category_scope_screen(session, lang, category, page)


@handlers.tap(PROMO_SCOPE)
def tap_promo_scope(shop: Shop, call: types.CallbackQuery, session: Session, lang: str, scope: int, target_id: int):
    """What the code applies to, chosen: next, a limit of uses (not for generated codes: one use each)."""
    draft = dialog_data(session, call, "promo_scope")
    if draft is None or scope >= len(SCOPES):
        return with_toast(codes_screen(shop, session, lang, 0), text(lang, "stale_button"))
    target = {"category": Category, "product": Product}.get(SCOPES[scope])
    found = session.get(target, target_id) if target is not None else None
    if target is not None and (found is None or target is Product and not found.discountable):  # stale: changed
        return scope_screen(session, lang)
    scoped = {f"{SCOPES[scope]}_id": target_id} if target is not None else {}
    if "count" in draft:
        return ask(session, call, "promo_expiry", "admin_ask_promo_expiry", **scoped)
    return ask(session, call, "promo_limit", "admin_ask_promo_limit", **scoped)


@handlers.answer("promo_limit")
def answer_promo_limit(shop: Shop, message: types.Message, session: Session, lang: str, dialog: dict) -> Screen:
    """The total uses allowed, or /skip for no limit: next, the expiry."""
    raw = message_text(message)
    max_uses = None if raw == SKIP else whole_number(raw, "err_promo_limit", MAX_LIMIT)
    return ask(session, message, "promo_expiry", "admin_ask_promo_expiry", max_uses=max_uses)


def code_columns(dialog: dict, currency: str, expiry: str | None) -> dict:
    """The columns every code of the dialog shares, from its answers."""
    return dict(percent=dialog.get("percent"), amount=dialog.get("amount"), currency=currency,
                category_id=dialog.get("category_id"), product_id=dialog.get("product_id"),
                expires_at=datetime.fromisoformat(expiry) if expiry else None)


def new_batch(session: Session) -> int:
    """Begin the caller's transaction with a write that two admins cannot make at once (the setting's row lock
    on PostgreSQL, the write lock on SQLite), then read the numbers taken: a second 🎟 Generate codes at the same
    moment waits for this one's commit, and never gets the same batch."""
    put_setting(session, "promo_batch_made_at", utcnow().isoformat())
    return (session.scalar(select(func.max(PromoCode.batch))) or 0) + 1


def generate(session: Session, count: int, columns: dict) -> int:
    """Insert ``count`` new one-use codes as a batch; a code that happens to exist already is drawn again."""
    batch = new_batch(session)
    made = 0
    while made < count:
        rows = [dict(columns, code=random_code(), batch=batch, max_uses=1) for _ in range(count - made)]
        session.execute(insert_for(session)(PromoCode).on_conflict_do_nothing(), rows)
        made = session.scalar(select(func.count()).where(PromoCode.batch == batch))
    session.commit()
    return batch


@handlers.answer("promo_expiry")
def answer_promo_expiry(shop: Shop, message: types.Message, session: Session, lang: str, dialog: dict):
    """The expiry, or /skip: the code is saved (the generated codes made, and sent as a file)."""
    link_base = promo_link(shop, "")  # first: see tap_promo
    lang, columns = lang, code_columns(dialog, shop.config.currency, read_expiry(message))
    end_dialog(session, message)
    if "count" in dialog:
        batch = generate(session, dialog["count"], columns)
        logger.info("Admin %s generated %s promo codes (batch %s)", message.from_user.id, dialog["count"], batch)
        return batch_screen(shop, session, lang, batch), codes_file(session, message.chat.id, batch, link_base)
    code = PromoCode(code=dialog["code"], max_uses=dialog.get("max_uses"), **columns)
    session.add(code)
    try:
        session.commit()
    except IntegrityError:  # another admin took the same code a moment ago
        session.rollback()
        return Screen(text(lang, "err_promo_code_taken"))
    logger.info("Admin %s added promo code %s", message.from_user.id, code.id)
    screen = code_screen(shop, session, lang, code.id, link_base)
    screen.text = text(lang, "admin_saved_promo") + "\n\n" + screen.text
    return screen


def register(bot: TeleBot, shop: Shop) -> None:
    """Wire 🏷 Promo codes into the seller's panel."""
    add_handlers(shop, handlers)
