"""Menus: where every conversation starts and returns — /start, the customer's menu, the seller's panel, /cancel.

Reading order: ... models.py → **menus.py** → promos.py → ...

/start greets the customer with their menu (🛍 Catalog, 📦 My purchases,
Help, and 🤝 Invite friends while the seller runs the referral program). A
shared link, t.me/<bot>?start=p_42, opens the chat with /start p_42: the
chapter that made the link answers it (storefront.py a product's link,
promos.py a promo code's, gifts.py a gift's, referrals.py an invite). The
ids in ADMIN_IDS also have the seller's panel (/admin, admin.py). /cancel and
the ✖️ Cancel button under a question lead back to whichever home is theirs.

``register`` also hands the machinery (shopkit) what it needs of the shop:
the customer's menu, for a stale button or a stranger at an admin button, and
the two questions it asks about people (models.py): did they block the bot,
and which admins can it reach, in which language.
"""
from __future__ import annotations

from sqlalchemy.orm import Session
from telebot import TeleBot, types

from models import User, grant_waits, mark_blocked, reachable_people, save_user
from shopkit import (
    CANCEL,
    SALE_ALERTS,
    Dialog,
    Handlers,
    Screen,
    Setting,
    Shop,
    Tap,
    add_handlers,
    end_dialog,
    follow_start_link,
    keyboard,
    label,
    language_of,
    muted_admins,
    sqlite_file,
    text,
)
from texts import SHOP_NAME

handlers = Handlers()

# The buttons of the customer's menu and the seller's panel: each names what it runs, and the numbers
# it carries (shopkit's Tap). The chapters that answer them import them from here.
CATALOG = Tap("catalog")
HELP = Tap("help")
PURCHASES = Tap("purchases", page=True)
ADMIN = Tap("admin")
ADD_PRODUCT = Tap("add_product")
CATEGORIES = Tap("categories", page=True)
PRODUCTS = Tap("products")
SALES = Tap("sales")
RECENT_PURCHASES = Tap("recent_purchases", page=True)
BROADCAST = Tap("broadcast")
EXPORT_CSV = Tap("export_csv")
BACKUP = Tap("backup")
PROMOS = Tap("promos", page=True)
INVITE = Tap("invite")  # 🤝 Invite friends (referrals.py)
REFERRALS = Tap("referrals")  # the seller's 🤝 Referrals (referrals.py)
TOGGLE_SALE_ALERTS = Tap("sale_alerts")
TOGGLE_DAILY_BACKUP = Tap("daily_backup")  # 🔁 Daily to me (backups.py)
DAILY_BACKUP = "daily_backup"  # Setting "daily_backup:<admin id>": "on", or "off" (the default); see backups.py
REFERRALS_ON = "referrals_on"  # Setting: "on" while the referral program runs (the seller's switch, referrals.py)


def menu_keyboard(lang: str, invite: bool = False) -> types.InlineKeyboardMarkup:
    """The customer's main menu: Catalog, My purchases, Help; and 🤝 Invite friends while the referral program
    runs (``invite``: the caller looked, with ``invite_shown``)."""
    return keyboard(
        [CATALOG.button(label(lang, "btn_catalog"))],
        [PURCHASES.button(label(lang, "btn_purchases"), page=0), HELP.button(label(lang, "btn_help"))],
        [INVITE.button(label(lang, "btn_invite"))] if invite else [],
    )


def invite_shown(session: Session) -> bool:
    """Whether the menu offers 🤝 Invite friends: the seller has turned the referral program on."""
    setting = session.get(Setting, REFERRALS_ON)
    return setting is not None and setting.value == "on"


def menu_screen(lang: str, key: str = "menu", invite: bool = False, **values) -> Screen:
    """The customer's menu under a text (the menu's own, or a word about what just happened)."""
    return Screen(text(lang, key, **values), menu_keyboard(lang, invite))


def welcome_screen(shop: Shop, session: Session, user: User, lang: str) -> Screen:
    """/start's greeting and the menu (a seller is reminded of /admin)."""
    greeting = text(lang, "welcome", name=user.first_name, shop=SHOP_NAME)
    if shop.is_admin(user.telegram_id):
        greeting += "\n\n" + text(lang, "admin_hint")
    return Screen(greeting, menu_keyboard(lang, invite_shown(session)))


@handlers.command("start")
def on_start(shop: Shop, message: types.Message, session: Session, lang: str):
    """/start: the greeting and the menu; /start p_42 (a shared link) opens what the link names."""
    end_dialog(session, message)  # /start leaves any dialog
    # Kept while the link is followed: the session hands the link's handler this same object, which says
    # whether this /start is their very first (models.User.first_visit; an invite counts only then).
    user = save_user(session, message.from_user)
    # A product the seller granted before they had opened the bot (sales.py) comes after the reply.
    steps = shop.grants_waiting(shop, session, message.from_user) if grant_waits(session, message.from_user.id) \
        else []
    opened = follow_start_link(shop, message, session) or welcome_screen(shop, session, user, lang)
    return (*opened, *steps) if isinstance(opened, tuple) else (opened, *steps)


def admin_keyboard(lang: str, alerts_on: bool = True, daily_on: bool | None = None) -> types.InlineKeyboardMarkup:
    """The seller's panel (/admin); the 🔁 Daily to me switch only where the shop makes copies (SQLite)."""
    return keyboard(
        [ADD_PRODUCT.button(label(lang, "btn_add_product")), CATEGORIES.button(label(lang, "btn_categories"), page=0)],
        [PRODUCTS.button(label(lang, "btn_products")), SALES.button(label(lang, "btn_sales"))],
        [RECENT_PURCHASES.button(label(lang, "btn_recent"), page=0), BROADCAST.button(label(lang, "btn_broadcast"))],
        [EXPORT_CSV.button(label(lang, "btn_export")), BACKUP.button(label(lang, "btn_backup"))],
        [PROMOS.button(label(lang, "btn_promos"), page=0), REFERRALS.button(label(lang, "btn_referrals"))],
        [TOGGLE_SALE_ALERTS.button(label(lang, "btn_alerts_on" if alerts_on else "btn_alerts_off"))],
        [] if daily_on is None else [TOGGLE_DAILY_BACKUP.button(label(lang, "btn_daily_on" if daily_on else
                                                                  "btn_daily_off"))],
    )


def daily_backup_on(session: Session, admin_id: int) -> bool | None:
    """Whether this admin has 🔁 Daily to me on (backups.py sends the copies); None on a database server."""
    if sqlite_file(session.get_bind().url) is None:  # a server is backed up with its own tools
        return None
    setting = session.get(Setting, f"{DAILY_BACKUP}:{admin_id}")
    return setting is not None and setting.value == "on"


def admin_panel(session: Session, lang: str, admin_id: int) -> Screen:
    """The seller's panel, with their sale-alerts and daily-backup switches as they stand."""
    alerts_on = admin_id not in muted_admins(session, SALE_ALERTS, [admin_id])
    return Screen(text(lang, "admin_panel"), admin_keyboard(lang, alerts_on, daily_backup_on(session, admin_id)))


def home_screen(shop: Shop, session: Session, user: types.User) -> Screen:
    """The admin panel for an admin, the customer menu for everyone else."""
    lang = language_of(user)
    if shop.is_admin(user.id):
        return admin_panel(session, lang, user.id)
    return menu_screen(lang)


@handlers.command("cancel")
def on_cancel(shop: Shop, message: types.Message, session: Session, lang: str) -> Screen:
    """/cancel: leave whatever dialog the user is in."""
    if session.get(Dialog, message.from_user.id) is None:
        return menu_screen(lang, "nothing_to_cancel")
    end_dialog(session, message)
    screen = home_screen(shop, session, message.from_user)
    screen.text = text(lang, "cancelled")
    return screen


@handlers.tap(CANCEL)
def tap_cancel(shop: Shop, call: types.CallbackQuery, session: Session, lang: str) -> Screen:
    """✖️ Cancel under a question: leave the dialog."""
    end_dialog(session, call)
    screen = home_screen(shop, session, call.from_user)
    screen.toast = text(lang, "cancelled")
    return screen


def register(bot: TeleBot, shop: Shop) -> None:
    """Wire /start, /cancel and ✖️ Cancel, and hand the machinery the menu and what it asks about people."""
    shop.menu_screen = menu_screen
    shop.set_blocked, shop.reachable = mark_blocked, reachable_people
    add_handlers(shop, handlers)
