"""Referrals: 🤝 Invite friends — customers bring friends, and earn a promo code when a friend's purchase is kept.

Reading order: ... stock.py → **referrals.py** → sales.py → ...

1. While the seller has the program on, the customer's menu has
   **🤝 Invite friends**: a personal link ``t.me/<bot>?start=r_<code>`` with
   📋 Copy and 📤 Share. The code is random (models.InviteLink), never the
   customer's id: nobody can make up someone else's link.
2. A friend opens it. It counts only when that /start is the first time they
   open the shop (models.User.first_visit): a referral is written down, and if
   the seller offers a welcome discount the friend gets a one-time promo code
   for it, already chosen for their first purchase. Anyone else who opens an
   invite link (a customer already, the inviter themselves, someone with a
   made-up code) is greeted, and nothing changes.
3. Rewards are earned, never gamed. The friend's first paid purchase must be
   kept for the holding time (3 days by default). A job (``grant_due_rewards``:
   at start, then every minute) decides each waiting referral once: refunded
   within the hold, no reward; the inviter has earned the month's cap, none;
   otherwise a one-time promo code is made for the inviter, who hears of it
   with 📋 Copy. Each decision is a conditional UPDATE of a row still
   undecided, so a restart or a second run decides nothing twice.
4. The seller sets the terms in /admin → 🤝 Referrals and sees the program
   work there (and in 📊 Sales, sales.py).

Every discount here is an ordinary promo code (promos.py): priced, held at
pre-checkout and counted at payment like any other. The program's codes stay
out of the seller's 🏷 Promo codes list (``made_by_the_program``).
"""
from __future__ import annotations

import json
import logging
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from urllib.parse import quote

from sqlalchemy import case, exists, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased
from telebot import TeleBot, types

from admin import message_text
from menus import ADMIN, INVITE, REFERRALS, REFERRALS_ON, invite_shown, menu_screen, welcome_screen
from models import InviteLink, PromoCode, Purchase, Referral, User, new_invite_code, save_user
from promos import discount_label, parse_discount, promo_link, random_code, whole_number
from shopkit import (
    SKIP,
    Handlers,
    Screen,
    Setting,
    Shop,
    Tap,
    Toast,
    add_handlers,
    ask,
    copy_row,
    counted,
    currency_hint,
    describe_user,
    end_dialog,
    format_price,
    insert_for,
    keyboard,
    label,
    language_for_code,
    put_setting,
    send,
    text,
    utcnow,
)
from storefront import MENU

logger = logging.getLogger("shopbot")
handlers = Handlers()
seller = Handlers(admin=True)

# The seller's buttons on 🤝 Referrals.
TOGGLE_REFERRALS = Tap("toggle_referrals")
REFERRAL_REWARD = Tap("referral_reward")
REFERRAL_WELCOME = Tap("referral_welcome")
REFERRAL_NUMBER = Tap("referral_number", "setting")  # a number of NUMBERS, by its place there

INVITE_PREFIX = "r_"  # t.me/<bot>?start=r_<code>
INVITE_CODE = re.compile(r"[A-Za-z0-9_-]{8}")  # what models.new_invite_code makes; anything else is no code
PAID = ("stars", "card")  # a friend's purchase counts when it brought money, as 📊 Sales counts it
CHECK_EVERY = 60  # seconds between two rounds of the reward job
TOP_INVITERS = 5
# The terms the seller sets as a whole number, from 1 to the most each may be, and the question that asks it.
NUMBERS = {"valid_days": (365, "admin_ask_referral_days"), "hold_days": (30, "admin_ask_referral_hold"),
           "monthly_cap": (1000, "admin_ask_referral_cap")}


# ---------------------------------------------------------------------------
# The seller's terms: one setting, as JSON
# ---------------------------------------------------------------------------

TERMS = "referral_terms"  # Setting: the terms below, as JSON (the switch is menus.REFERRALS_ON)


@dataclass
class Terms:
    """What the program gives, and when."""

    reward: dict = field(default_factory=lambda: {"percent": 10})  # the inviter's: {"percent": 10} or {"amount": 50}
    welcome: dict | None = None  # the friend's, on their first purchase; None: no welcome discount
    valid_days: int = 30  # how long each code the program makes works
    hold_days: int = 3  # how long a friend's first paid purchase must be kept before it earns the reward
    monthly_cap: int = 10  # the most rewards an inviter earns in a calendar month (UTC)


def read_terms(session: Session) -> Terms:
    setting = session.get(Setting, TERMS)
    return Terms(**json.loads(setting.value)) if setting else Terms()


def save_terms(session: Session, terms: Terms) -> None:
    put_setting(session, TERMS, json.dumps(asdict(terms)))
    session.commit()


def discount_text(discount: dict, currency: str) -> str:
    """'−10 %' or '−50 ⭐', as promos.py says it of a code."""
    return discount_label(PromoCode(currency=currency, **discount))


def new_program_code(session: Session, prefix: str, discount: dict, terms: Terms, currency: str,
                     now: datetime) -> PromoCode:
    """A one-time promo code for the whole shop, valid ``terms.valid_days``: a welcome or a reward."""
    code = PromoCode(code=random_code(prefix), max_uses=1, currency=currency,
                     expires_at=now + timedelta(days=terms.valid_days), **discount)
    session.add(code)
    session.flush()
    return code


def made_by_the_program(code_id):
    """The condition that a promo code is a referral's welcome or reward (🏷 Promo codes leaves those out)."""
    return or_(exists().where(Referral.reward_code_id == code_id), exists().where(Referral.welcome_code_id == code_id))


# ---------------------------------------------------------------------------
# 🤝 Invite friends: the customer's link
# ---------------------------------------------------------------------------

def invite_link(shop: Shop, code: str) -> str:
    return f"https://t.me/{shop.bot.user.username}?start={INVITE_PREFIX}{code}"


def invite_code_of(session: Session, user: User) -> str:
    """The customer's invite code, made the first time they ask for it."""
    link = session.get(InviteLink, user.id)
    if link is None:
        session.execute(insert_for(session)(InviteLink).values(user_id=user.id, code=new_invite_code(),
                                                               created_at=utcnow())
                        .on_conflict_do_nothing(index_elements=["user_id"]))  # asked twice at once: one code
        session.commit()
        link = session.get(InviteLink, user.id)
    return link.code


def kept_sales(*conditions):
    """The conditions on a purchase that it brought money and was not given back, and ``conditions``."""
    return (*conditions, Purchase.payment_type.in_(PAID), Purchase.price > 0, Purchase.refunded_at.is_(None),
            ~Purchase.refund_due)


def kept_purchase_by(user_id):
    """The conditions on a purchase that it is the customer's (users.id), paid and kept."""
    return kept_sales(Purchase.user_id == user_id)


def reward_codes_of(session: Session, lang: str, user_id: int) -> str:
    """The customer's reward codes they may still use, a line each ('' when none)."""
    used = exists().where(Purchase.promo_code_id == PromoCode.id, Purchase.refunded_at.is_(None))
    codes = session.scalars(select(PromoCode).join(Referral, Referral.reward_code_id == PromoCode.id)
                            .where(Referral.inviter_id == user_id, PromoCode.is_active, ~used,
                                   PromoCode.expires_at > utcnow()).order_by(PromoCode.id)).all()
    return "".join("\n" + text(lang, "invite_code_line", code=code.code, discount=discount_label(code),
                               until=f"{code.expires_at - timedelta(days=1):%Y-%m-%d}") for code in codes)


def invite_screen(session: Session, lang: str, user: User, link: str, currency: str) -> Screen:
    """🤝 Invite friends: the terms, the link with 📋 Copy and 📤 Share, how it went, and the codes earned."""
    terms = read_terms(session)
    invited, bought, rewarded = session.execute(
        select(func.count(Referral.id), func.count(case((exists().where(*kept_purchase_by(Referral.friend_id)), 1))),
               func.count(case((Referral.outcome == "rewarded", 1))))
        .where(Referral.inviter_id == user.id)).one()
    body = text(lang, "invite", reward=discount_text(terms.reward, currency),
                hold=counted(lang, "n_days", terms.hold_days))
    if terms.welcome:
        body += " " + text(lang, "invite_welcome_part", discount=discount_text(terms.welcome, currency))
    body += "\n\n" + text(lang, "invite_link", link=link, invited=invited, bought=bought, rewards=rewarded)
    codes = reward_codes_of(session, lang, user.id)
    if codes:
        body += "\n\n" + text(lang, "invite_codes") + codes
    share = f"https://t.me/share/url?url={quote(link, safe='')}&text={quote(label(lang, 'invite_share_text'))}"
    return Screen(body, keyboard(
        copy_row(lang, link, "btn_copy_link"),
        [types.InlineKeyboardButton(label(lang, "btn_share"), url=share)],
        [MENU.button(label(lang, "btn_back"))]))


@handlers.tap(INVITE)
def tap_invite(shop: Shop, call: types.CallbackQuery, session: Session, lang: str):
    """🤝 Invite friends."""
    # The routing has read this customer's dialog: that transaction ends here, for the link may ask Telegram for
    # the bot's name, and never inside one.
    session.commit()
    link_base = invite_link(shop, "")
    if not invite_shown(session):  # turned off since the menu was drawn
        return Toast(text(lang, "invite_off"))
    user = save_user(session, call.from_user)
    return invite_screen(session, lang, user, link_base + invite_code_of(session, user), shop.config.currency)


# ---------------------------------------------------------------------------
# A friend opens the link: t.me/<bot>?start=r_<code>
# ---------------------------------------------------------------------------

def inviter_by_code(session: Session, code: str) -> User | None:
    """Whose link this is; None for anything that is not a code someone has."""
    if not INVITE_CODE.fullmatch(code):
        return None
    return session.scalar(select(User).join(InviteLink, InviteLink.user_id == User.id).where(InviteLink.code == code))


def write_down(session: Session, inviter: User, friend: User, currency: str) -> PromoCode | None:
    """A new customer came through ``inviter``'s link: the referral, and their welcome code (chosen for their next
    purchase) if the seller offers one. Committed; None when there is no welcome code."""
    terms = read_terms(session)
    referral = Referral(inviter_id=inviter.id, friend_id=friend.id)
    welcome = None
    if terms.welcome:
        welcome = new_program_code(session, "HI-", terms.welcome, terms, currency, utcnow())
        referral.welcome_code_id = friend.promo_code_id = welcome.id
    session.add(referral)
    session.commit()
    logger.info("User %s came invited by user %s", friend.telegram_id, inviter.telegram_id)
    return welcome


@handlers.start_link(INVITE_PREFIX)
def open_invite_link(shop: Shop, message: types.Message, session: Session, lang: str, code: str) -> Screen:
    """/start r_<code>: a new customer is written down as the inviter's friend; anyone else is greeted."""
    # The very object /start saved (the session keeps one per row): first_visit is still on it.
    friend = session.scalar(select(User).where(User.telegram_id == message.from_user.id))
    if not invite_shown(session):
        return welcome_screen(shop, session, friend, lang)
    inviter = inviter_by_code(session, code)
    if inviter is None:
        logger.info("User %s opened an invite link with an unknown code", friend.telegram_id)
        return menu_screen(lang, "invite_unknown", invite=True, name=friend.first_name)
    if inviter.id == friend.id:
        return menu_screen(lang, "invite_own", invite=True)
    if not friend.first_visit or shop.is_admin(friend.telegram_id):  # they knew the shop before the link
        return menu_screen(lang, "invite_known", invite=True, name=friend.first_name)
    try:
        welcome = write_down(session, inviter, friend, shop.config.currency)
    except IntegrityError:  # the same /start, handled twice at once: the first one wrote it down
        session.rollback()
        return menu_screen(lang, "invite_known", invite=True, name=message.from_user.first_name or "")
    greeting = text(lang, "invite_welcome", name=friend.first_name, inviter=inviter.first_name)
    if welcome is not None:
        greeting += "\n\n" + text(lang, "invite_welcome_code", code=welcome.code, discount=discount_label(welcome))
    return Screen(greeting, menu_screen(lang, invite=True).markup)


# ---------------------------------------------------------------------------
# Rewards: decided once the friend's first paid purchase has been kept for the holding time
# ---------------------------------------------------------------------------

def first_paid_purchase():
    """For a statement over referrals: the id of the friend's first purchase that brought money (a payment the
    shop could not honour and gave back at once does not count: their next one does)."""
    return (select(func.min(Purchase.id))
            .where(Purchase.user_id == Referral.friend_id, Purchase.payment_type.in_(PAID), Purchase.price > 0,
                   ~Purchase.refund_due)
            .correlate(Referral).scalar_subquery())


def month_start(now: datetime) -> datetime:
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def rewards_this_month(session: Session, inviter_id: int, now: datetime) -> int:
    return session.scalar(select(func.count(Referral.id)).where(
        Referral.inviter_id == inviter_id, Referral.outcome == "rewarded", Referral.decided_at >= month_start(now)))


def outcome_of(session: Session, inviter_id: int, purchase: Purchase, terms: Terms, now: datetime) -> str | None:
    """"refunded" (within the hold), "capped", "rewarded", or None: the hold is not over yet."""
    hold_ends = purchase.created_at + timedelta(days=terms.hold_days)
    if purchase.refunded_at is not None and purchase.refunded_at <= hold_ends:
        return "refunded"
    if now < hold_ends:
        return None
    return "capped" if rewards_this_month(session, inviter_id, now) >= terms.monthly_cap else "rewarded"


def decide(session: Session, referral_id: int, inviter_id: int, purchase: Purchase, terms: Terms, now: datetime,
           currency: str) -> str | None:
    """Decide one referral, once, and commit: its outcome, or None while its hold runs."""
    outcome = outcome_of(session, inviter_id, purchase, terms, now)
    if outcome is None:
        return None
    reward = new_program_code(session, "THANKS-", terms.reward, terms, currency, now) if outcome == "rewarded" \
        else None
    decided = session.execute(update(Referral).where(Referral.id == referral_id, Referral.outcome.is_(None))
                              .values(outcome=outcome, decided_at=now, purchase_id=purchase.id,
                                      reward_code_id=reward.id if reward else None)
                              .execution_options(synchronize_session=False))
    if not decided.rowcount:  # decided a moment ago elsewhere
        session.rollback()
        return None
    session.commit()
    logger.info("Referral %s decided: %s", referral_id, outcome)
    return outcome


def retire_welcome_code(session: Session, welcome_code_id: int | None) -> None:
    """The friend has made their first paid purchase: their welcome code was for it, and for nothing after."""
    if welcome_code_id is not None:
        session.execute(update(PromoCode).where(PromoCode.id == welcome_code_id, PromoCode.is_active)
                        .values(is_active=False).execution_options(synchronize_session=False))
        session.commit()


def grant_due_rewards(shop: Shop, now: datetime | None = None) -> int:
    """Decide every waiting referral whose friend has paid and whose hold is over; tell the inviters who earned a
    reward. Returns how many rewards were earned. Safe to run again at any time (after a restart, say)."""
    now = now or utcnow()
    earned = 0
    with shop.Session() as session:
        terms = read_terms(session)
        paid = session.execute(select(Referral.id, Referral.inviter_id, Referral.welcome_code_id, Purchase)
                               .join(Purchase, Purchase.id == first_paid_purchase())
                               .where(Referral.outcome.is_(None)).order_by(Referral.id)).all()
        for referral_id, inviter_id, welcome_code_id, purchase in paid:
            retire_welcome_code(session, welcome_code_id)
            earned += decide(session, referral_id, inviter_id, purchase, terms, now, shop.config.currency) == \
                "rewarded"
    tell_inviters(shop)
    return earned


def tell_inviters(shop: Shop) -> None:
    """🎉 Each inviter hears of a reward earned (once; again after a crash between the message and the note)."""
    friend = aliased(User)
    with shop.Session() as session:
        rows = session.execute(
            select(Referral.id, User.telegram_id, User.language_code, friend.first_name, PromoCode)
            .join(User, Referral.inviter_id == User.id).join(friend, Referral.friend_id == friend.id)
            .join(PromoCode, Referral.reward_code_id == PromoCode.id)
            .where(Referral.outcome == "rewarded", Referral.told_at.is_(None))).all()
    for referral_id, telegram_id, language_code, friend_name, code in rows:  # closed: the link may ask Telegram
        lang = language_for_code(language_code)  # for the bot's name
        note = text(lang, "referral_reward", friend=friend_name, code=code.code, discount=discount_label(code),
                    until=f"{code.expires_at - timedelta(days=1):%Y-%m-%d}", link=promo_link(shop, code.code))
        # Someone who blocked the bot finds it under 🤝 Invite friends.
        send(shop, telegram_id, note, keyboard(copy_row(lang, code.code, "btn_copy_code")))
        with shop.Session() as session:
            session.execute(update(Referral).where(Referral.id == referral_id).values(told_at=utcnow()))
            session.commit()


# ---------------------------------------------------------------------------
# The program's figures: the seller's 🤝 Referrals, 📊 Sales, the export
# ---------------------------------------------------------------------------

def invited_by():
    """For a statement over purchases (the export): the Telegram id of whoever invited the buyer, or NULL."""
    inviter = aliased(User)
    return (select(inviter.telegram_id).join(Referral, Referral.inviter_id == inviter.id)
            .where(Referral.friend_id == Purchase.user_id).correlate(Purchase).scalar_subquery())


@dataclass
class ReferralFigures:
    """How the program went for the friends invited in a period."""

    invited: int
    bought: int  # of them, those with a purchase paid and kept
    rewarded: int  # rewards earned by their purchases...
    used: int  # ...and used by the inviters
    revenue: str  # what the friends have paid, per currency, refunds left out


def program_figures(session: Session, since: datetime) -> ReferralFigures:
    """The figures of the friends invited since ``since``."""
    used = exists().where(Purchase.promo_code_id == Referral.reward_code_id, Purchase.refunded_at.is_(None))
    invited, bought, rewarded, used = session.execute(
        select(func.count(Referral.id), func.count(case((exists().where(*kept_purchase_by(Referral.friend_id)), 1))),
               func.count(case((Referral.outcome == "rewarded", 1))), func.count(case((used, 1))))
        .where(Referral.created_at >= since)).one()
    friends = select(Referral.friend_id).where(Referral.created_at >= since)  # IN: each friend's purchases by index
    revenue = session.execute(select(Purchase.currency, func.sum(Purchase.price))
                              .where(Purchase.user_id.in_(friends), *kept_sales()).group_by(Purchase.currency)).all()
    return ReferralFigures(invited, bought, rewarded, used,
                   " + ".join(format_price(amount, currency) for currency, amount in revenue) or "0")


def sales_line(session: Session, lang: str, since: datetime) -> str:
    """📊 Sales' line on the friends invited since ``since``; '' when nobody was."""
    figures = program_figures(session, since)
    if not figures.invited:
        return ""
    return text(lang, "admin_sales_referrals", **asdict(figures))


def top_inviters(session: Session, lang: str) -> str:
    """The inviters whose friends bought most, a line each ('' when nobody invited anyone)."""
    bought = func.count(case((exists().where(*kept_purchase_by(Referral.friend_id)), 1)))
    invited = func.count(Referral.id)
    best = (select(Referral.inviter_id, invited.label("invited"), bought.label("bought"),
                   func.count(case((Referral.outcome == "rewarded", 1))).label("rewards"))
            .group_by(Referral.inviter_id).order_by(bought.desc(), invited.desc(), Referral.inviter_id)
            .limit(TOP_INVITERS).subquery())
    rows = session.execute(select(User, best.c.invited, best.c.bought, best.c.rewards)
                           .join(best, best.c.inviter_id == User.id)
                           .order_by(best.c.bought.desc(), best.c.invited.desc(), User.id)).all()
    return "".join("\n" + text(lang, "admin_referrals_top_line", place=place, who=describe_user(user),
                               invited=invited, bought=bought, rewards=rewards)
                   for place, (user, invited, bought, rewards) in enumerate(rows, 1))


# ---------------------------------------------------------------------------
# /admin → 🤝 Referrals: the seller's terms and switch, and the figures
# ---------------------------------------------------------------------------

def referrals_screen(session: Session, lang: str, currency: str) -> Screen:
    """🤝 Referrals: on or off, the terms, how it goes, and the top inviters, with a button for each setting."""
    terms, on = read_terms(session), invite_shown(session)
    figures = program_figures(session, datetime(1970, 1, 1))
    welcome = discount_text(terms.welcome, currency) if terms.welcome else label(lang, "referral_no_welcome")
    body = text(lang, "admin_referrals", status=label(lang, "promo_on" if on else "promo_off"),
                reward=discount_text(terms.reward, currency), valid=counted(lang, "n_days", terms.valid_days),
                welcome=welcome, hold=counted(lang, "n_days", terms.hold_days), cap=terms.monthly_cap,
                **asdict(figures))
    if top := top_inviters(session, lang):
        body += "\n\n" + text(lang, "admin_referrals_top") + top
    return Screen(body, keyboard(
        [TOGGLE_REFERRALS.button(label(lang, "btn_promo_off" if on else "btn_promo_on"))],
        [REFERRAL_REWARD.button(label(lang, "btn_referral_reward")),
         REFERRAL_WELCOME.button(label(lang, "btn_referral_welcome"))],
        [REFERRAL_NUMBER.button(label(lang, "btn_referral_hold"), setting=list(NUMBERS).index("hold_days")),
         REFERRAL_NUMBER.button(label(lang, "btn_referral_cap"), setting=list(NUMBERS).index("monthly_cap"))],
        [ADMIN.button(label(lang, "btn_back"))]))


def saved(session: Session, message: types.Message, lang: str, currency: str, **changes) -> Screen:
    """Save a change of terms, end the dialog, and show 🤝 Referrals again."""
    save_terms(session, Terms(**asdict(read_terms(session)) | changes))
    end_dialog(session, message)
    logger.info("Admin %s changed the referral terms: %s", message.from_user.id, changes)
    screen = referrals_screen(session, lang, currency)
    screen.text = text(lang, "admin_referrals_saved") + "\n\n" + screen.text
    return screen


@seller.tap(REFERRALS)
def tap_referrals(shop: Shop, call: types.CallbackQuery, session: Session, lang: str) -> Screen:
    """🤝 Referrals."""
    return referrals_screen(session, lang, shop.config.currency)


@seller.tap(TOGGLE_REFERRALS)
def tap_toggle_referrals(shop: Shop, call: types.CallbackQuery, session: Session, lang: str) -> Screen:
    """⛔ Turn off / ✅ Turn on: off, the menu loses 🤝 Invite friends and links count nobody; friends invited
    before still earn their inviter's reward."""
    on = not invite_shown(session)
    put_setting(session, REFERRALS_ON, "on" if on else "off")
    session.commit()
    logger.info("Admin %s turned the referral program %s", call.from_user.id, "on" if on else "off")
    return referrals_screen(session, lang, shop.config.currency)


@seller.tap(REFERRAL_REWARD)
def tap_referral_reward(shop: Shop, call: types.CallbackQuery, session: Session, lang: str) -> Screen:
    """🎁 The inviter's reward: first the discount."""
    return ask(session, call, "referral_reward", "admin_ask_referral_reward", currency_hint(shop.config.currency))


def ask_number(session: Session, update, name: str, **data) -> Screen:
    """Ask for one of NUMBERS; ``data`` rides along to be saved with it."""
    most, question = NUMBERS[name]
    return ask(session, update, "referral_number", question, {"most": most}, setting=name, **data)


@seller.answer("referral_reward")
def answer_referral_reward(shop: Shop, message: types.Message, session: Session, lang: str, dialog: dict) -> Screen:
    """The reward's discount: next, how many days the codes work."""
    return ask_number(session, message, "valid_days", reward=parse_discount(message_text(message),
                                                                            shop.config.currency))


@seller.tap(REFERRAL_WELCOME)
def tap_referral_welcome(shop: Shop, call: types.CallbackQuery, session: Session, lang: str) -> Screen:
    """👋 The friend's welcome discount."""
    return ask(session, call, "referral_welcome", "admin_ask_referral_welcome", currency_hint(shop.config.currency))


@seller.answer("referral_welcome")
def answer_referral_welcome(shop: Shop, message: types.Message, session: Session, lang: str, dialog: dict) -> Screen:
    """The welcome discount, or /skip for none: saved."""
    raw = message_text(message)
    welcome = None if raw == SKIP else parse_discount(raw, shop.config.currency)
    return saved(session, message, lang, shop.config.currency, welcome=welcome)


@seller.tap(REFERRAL_NUMBER)
def tap_referral_number(shop: Shop, call: types.CallbackQuery, session: Session, lang: str, setting: int) -> Screen:
    """⏳ The holding time, or 🔢 the monthly cap."""
    if setting >= len(NUMBERS):  # forged
        return referrals_screen(session, lang, shop.config.currency)
    return ask_number(session, call, list(NUMBERS)[setting])


@seller.answer("referral_number")
def answer_referral_number(shop: Shop, message: types.Message, session: Session, lang: str, dialog: dict) -> Screen:
    """A number of NUMBERS (and what rode along with it, the reward before its days): saved."""
    name = dialog["setting"]
    changes = {name: whole_number(message_text(message), "err_referral_number", NUMBERS[name][0])}
    if "reward" in dialog:
        changes["reward"] = dialog["reward"]
    return saved(session, message, lang, shop.config.currency, **changes)


def register(bot: TeleBot, shop: Shop) -> None:
    """Wire 🤝 Invite friends, the invite link and the seller's 🤝 Referrals; start the reward job."""
    # Catches up at start, then every minute.
    shop.jobs_at_start.append(lambda shop: shop.start_repeating(grant_due_rewards, CHECK_EVERY,
                                                                "%s referral rewards earned"))
    add_handlers(shop, handlers)
    add_handlers(shop, seller)
