"""Promo codes: what a code takes off a price, who may still use it, and how its uses are counted.

Reading order: ... menus.py → **promos.py** → storefront.py → ...

A promo code (models.PromoCode) takes a percentage (1-100 %) or a fixed
amount off the price of the whole shop, of one category or of one product.
It may expire and may be limited to a number of uses in all; each customer
uses it once. A customer chooses a code by typing it under a product's card
(storefront.py) or by opening a link ``t.me/<bot>?start=promo_CODE`` (below);
it stays theirs (users.promo_code_id) until they buy something it covers.
The card, the invoice and the pre-checkout all price with ``price_after``, so
a price is rounded the same way everywhere.

A limit is hard to keep when twenty customers pay for the last ten uses at
the same moment. Three rules keep it:

1. A use *is* a live purchase made with the code (purchases.promo_code_id),
   written in the payment's own transaction: counted only when a payment
   succeeds, uncounted when it is refunded.
2. Pre-checkout *holds* a use for the customer (promo_holds) for
   ``HOLD_TIME``: the payment Telegram is about to take always finds it.
   A hold is never lengthened, and a customer whose hold on a code's last
   use lapsed unpaid waits before holding it again: nobody keeps a use from
   others without paying. A payment that lands after its hold lapsed is
   honoured all the same (the money was taken), even over the limit.
3. Holding and using both start by locking the code's row (``lock_code``):
   on SQLite and PostgreSQL alike, two of them never count at once.

Codes are guessed by trying them, so a customer who typed ``WRONG_CODES``
codes that do not apply within ``WRONG_CODES_TIME`` waits that long before
trying again.

The seller makes and follows codes in promo_panel.py.
"""
from __future__ import annotations

import logging
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

from sqlalchemy import delete, exists, func, select, true, update
from sqlalchemy.orm import Session
from telebot import TeleBot, types

from menus import menu_keyboard
from models import Category, Product, PromoCode, PromoHold, Purchase, User, owning, save_user
from shopkit import (
    STARS,
    Handlers,
    InputError,
    Screen,
    Setting,
    Shop,
    Tap,
    add_handlers,
    copy_row,
    currency_hint,
    format_price,
    insert_for,
    is_number,
    keyboard,
    label,
    parse_price,
    put_setting,
    text,
    utcnow,
)

logger = logging.getLogger("shopbot")
handlers = Handlers()

# A product's card, which a promo link for one product opens (storefront.py answers it): the product,
# and the page of its category that ⬅️ Back returns to (shopkit's Tap).
PRODUCT = Tap("product", "product_id", page=True)

CODE_PATTERN = re.compile(r"[A-Za-z0-9_-]{3,32}")  # letters, digits, - and _; matched in any case
# A use held at pre-checkout waits this long for the payment: Telegram takes it seconds after our OK.
HOLD_TIME = timedelta(minutes=2)
# A customer whose hold on a code's last use lapsed unpaid holds it again only this much later (texts_en.py's
# "promo_hold_wait" says 10 minutes); meanwhile another customer may take it.
HOLD_AGAIN_AFTER = timedelta(minutes=10)
# A lapsed hold is remembered this long: the payment it was for is honoured whenever it lands.
HOLD_REMEMBERED = timedelta(days=1)
WRONG_CODES = 5  # codes that do not apply, within...
WRONG_CODES_TIME = timedelta(minutes=10)  # ...this long: the customer then waits as long before trying again
# The smallest price a discount may leave. Telegram takes Stars invoices from 1 Star, and card
# invoices from its currencies.json "min_amount", about one US dollar: 100 cents for the dollar
# and the currencies near it. Other currencies' minimums follow exchange rates; for them the floor
# is 1 unit, and Telegram itself refuses an invoice under its minimum.
MINIMUM_PRICE = {STARS: 1, "USD": 100, "EUR": 100, "GBP": 100, "CHF": 100, "CAD": 100, "AUD": 100}


def normalized(raw: str) -> str | None:
    """A code as stored (in capitals), or None when it is not one: 'summer-20' -> 'SUMMER-20'."""
    raw = raw.strip()
    return raw.upper() if CODE_PATTERN.fullmatch(raw) else None


def promo_link(shop: Shop, code: str) -> str:
    """The link that gives a customer the code: t.me/<bot>?start=promo_CODE."""
    return f"https://t.me/{shop.bot.user.username}?start=promo_{code}"


# ---------------------------------------------------------------------------
# Prices: one function, so that the card, the invoice and pre-checkout agree
# ---------------------------------------------------------------------------

def price_after(list_price: int, currency: str, percent: int | None, amount: int | None) -> int:
    """The price with a discount: ``percent`` off rounded to the nearest unit (halves in the customer's favour),
    or ``amount`` off. A paid price never falls under the currency's minimum; it is free only when the whole
    price is taken off, or when the product costs less than the minimum (it cannot be paid at a discount)."""
    off = (list_price * percent + 50) // 100 if percent is not None else amount or 0
    minimum = MINIMUM_PRICE.get(currency, 1)
    whole_price_off = percent == 100 or (percent is None and off >= list_price)
    if whole_price_off or list_price < minimum:
        return 0
    return max(list_price - off, minimum)


def parse_discount(raw: str, currency: str) -> dict:
    """What a seller typed for a discount: '20%' or '20 %' -> a percentage; '50', '9.99' -> an amount in the
    shop's currency (promo_panel.py, referrals.py)."""
    if raw.endswith("%"):
        return {"percent": whole_number(raw[:-1], "err_promo_percent", 100)}
    try:
        amount = parse_price(raw, currency)
    except InputError:
        raise InputError("err_promo_discount", **currency_hint(currency)) from None
    if amount == 0:
        raise InputError("err_promo_discount", **currency_hint(currency))
    return {"amount": amount}


def whole_number(raw: str, key: str, most: int) -> int:
    """A whole number from 1 to ``most``, or the text ``key`` explaining what is expected."""
    raw = raw.replace(" ", "")
    if not is_number(raw) or not 1 <= int(raw) <= most:
        raise InputError(key, most=most)
    return int(raw)


GENERATED_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no O/0 or I/1 to misread
GENERATED_LENGTH = 10  # 32**10 codes: guessing one is hopeless


def random_code(prefix: str = "") -> str:
    """A code nobody can guess, for the shop to hand out (🎟 Generate codes, a referral's reward)."""
    return prefix + "".join(secrets.choice(GENERATED_ALPHABET) for _ in range(GENERATED_LENGTH))


def discount_label(code: PromoCode) -> str:
    """'−20 %' or '−50 ⭐': what a code takes off."""
    return f"−{code.percent} %" if code.percent is not None else "−" + format_price(code.amount, code.currency)


def promo_line(session: Session, lang: str, purchase: Purchase) -> str:
    """A line on the seller's screen of a purchase made with a code (sales.py): the code and the list price."""
    if purchase.promo_code_id is None:
        return ""
    code = session.get(PromoCode, purchase.promo_code_id)
    return "\n" + text(lang, "admin_purchase_promo", code=code.code, discount=discount_label(code),
                       list_price=format_price(purchase.list_price, purchase.currency))


@dataclass(frozen=True)
class Offer:
    """What a customer pays for a product: its price after their promo code, if the code applies."""

    price: int
    code: PromoCode | None = None  # None: no code, or one that does not apply

    @property
    def code_id(self) -> int:
        return self.code.id if self.code else 0


# ---------------------------------------------------------------------------
# Whether a code applies
# ---------------------------------------------------------------------------

def covers(code: PromoCode, product: Product) -> bool:
    """The code is for the whole shop, the product's category, or the product itself."""
    if code.product_id is not None:
        return code.product_id == product.id
    return code.category_id is None or code.category_id == product.category_id


KEPT_FOR_OTHERS = ("promo_not_for_product", "promo_nothing_off")  # why_not's reasons a code stays chosen for


def why_not(code: PromoCode | None, currency: str, uses: int, product: Product | None = None,
            used: bool = False) -> str | None:
    """The text key saying why a code cannot be used (for ``product``, if given, by a customer who ``used`` it
    already, or not), or None when it can."""
    if code is None:
        return "promo_unknown"
    if not code.is_active or (code.expires_at and code.expires_at <= utcnow()) or (
            code.amount is not None and code.currency != currency):  # a fixed amount in a currency the shop left
        return "promo_expired"
    if used:
        return "promo_used_already"
    if code.max_uses is not None and uses >= code.max_uses:
        return "promo_used_up"
    if product is not None and not (product.one_off and covers(code, product)):
        return "promo_not_for_product"
    # A 1 ⭐ product at 50 %, or a $1 one at 10 %, stays at the currency's minimum: a use spent there is lost.
    if product is not None and price_after(product.price, currency, code.percent, code.amount) >= product.price:
        return "promo_nothing_off"
    return None


def lowers_something(session: Session, code: PromoCode) -> bool:
    """Something on sale that the code covers (``covers``, as a query) and may lower: a link to a code for a
    subscription, a free product or a hidden one must not greet with a discount that never applies."""
    if code.product_id is not None:
        scope = Product.id == code.product_id
    elif code.category_id is not None:
        scope = Product.category_id == code.category_id
    else:
        scope = true()
    return session.scalar(select(exists().where(scope, Product.is_active, Product.discountable)))


def live_uses(code_id):
    """How many live purchases used the code (ix_purchases_promo_live): its uses so far."""
    return (select(func.count(Purchase.id))
            .where(Purchase.promo_code_id == code_id, Purchase.refunded_at.is_(None)).scalar_subquery())


def has_used(code_id, user_id):
    """The customer (users.id) has a live purchase made with the code: a condition, for a statement's column."""
    return exists().where(Purchase.promo_code_id == code_id, Purchase.user_id == user_id,
                          Purchase.refunded_at.is_(None))


def used_by(session: Session, code_id: int, user_id: int) -> bool:
    """The customer (users.id) has a live purchase made with the code."""
    return session.scalar(select(has_used(code_id, user_id)))


def offer_and_owned(session: Session, telegram_id: int, product: Product, currency: str) -> tuple[Offer, int | None]:
    """What the customer pays for the product, and their live purchase of it (or None), in one statement:
    a product card is a few indexed statements at most (test_speed.py). A code they used already is not theirs
    any more: the card must not offer a price pre-checkout would refuse."""
    owned = select(Purchase.id).where(Purchase.user_id == User.id, owning(product.id)).limit(1).scalar_subquery()
    row = session.execute(select(PromoCode, owned.label("owned"), live_uses(PromoCode.id).label("uses"),
                                 has_used(PromoCode.id, User.id).label("used"))
                          .select_from(User).outerjoin(PromoCode, PromoCode.id == User.promo_code_id)
                          .where(User.telegram_id == telegram_id)).first()
    code, owned_id, uses, used = row if row else (None, None, 0, False)
    if why_not(code, currency, uses, product, used):
        return Offer(product.price), owned_id
    return Offer(price_after(product.price, currency, code.percent, code.amount), code), owned_id


def applied_code_id(session: Session, telegram_id: int) -> int:
    """The code the customer applied (users.promo_code_id), or 0: the only one their pre-checkout prices with,
    whatever an invoice's payload names."""
    return session.scalar(select(User.promo_code_id).where(User.telegram_id == telegram_id)) or 0


def price_with(session: Session, product: Product, code_id: int, currency: str) -> int:
    """An invoice's price: the product's, after the code it was sent with (checkout.py's pre-checkout)."""
    code = session.get(PromoCode, code_id) if code_id else None
    return price_after(product.price, currency, code.percent, code.amount) if code else product.price


# ---------------------------------------------------------------------------
# Guessing: a customer who typed too many codes that do not apply waits
# ---------------------------------------------------------------------------

# Each customer's latest wrong codes are a setting "wrong_promo_codes:<telegram id>": the times, never the codes
# (a near miss may be someone's real code). In the database, so that a restart does not reset the count. The
# answers still tell "no such code", "expired" and "used up" apart: an honest customer needs to know, and
# they name only codes nobody can use; a guess that hits a live code is applied, whatever the wording.

def wrong_codes_key(telegram_id: int) -> str:
    return f"wrong_promo_codes:{telegram_id}"


def wrong_code_times(session: Session, telegram_id: int) -> list[datetime]:
    """When the customer typed their latest codes that did not apply (WRONG_CODES at most), oldest first."""
    value = session.scalar(select(Setting.value).where(Setting.key == wrong_codes_key(telegram_id)))
    return [datetime.fromisoformat(time) for time in value.split(",")] if value else []


def minutes_to_wait(session: Session, telegram_id: int) -> int:
    """0, or the minutes (rounded up) the customer waits before trying another code: WRONG_CODES_TIME after the
    last of WRONG_CODES wrong codes typed within WRONG_CODES_TIME."""
    times = wrong_code_times(session, telegram_id)
    if len(times) < WRONG_CODES:
        return 0
    wait = times[-1] + WRONG_CODES_TIME - utcnow()
    return max(0, -(-wait // timedelta(minutes=1)))


def count_wrong_code(session: Session, telegram_id: int) -> None:
    """Remember a code that did not apply, and commit; the one that makes WRONG_CODES is logged, once a burst.
    Called only when the customer need not wait: by then every earlier time is older than WRONG_CODES_TIME."""
    now = utcnow()
    times = [time for time in wrong_code_times(session, telegram_id) if time > now - WRONG_CODES_TIME] + [now]
    put_setting(session, wrong_codes_key(telegram_id), ",".join(time.isoformat(timespec="seconds") for time in times))
    session.commit()
    if len(times) == WRONG_CODES:
        logger.warning("User %s typed %s promo codes that do not apply within %s minutes: no more for %s minutes",
                       telegram_id, WRONG_CODES, WRONG_CODES_TIME // timedelta(minutes=1),
                       WRONG_CODES_TIME // timedelta(minutes=1))


class Choice(NamedTuple):
    """A code the customer typed or followed (None if there is no such code), and why it does not apply (a text
    key, or None); ``minutes`` to wait, for "promo_wait"."""

    code: PromoCode | None
    problem: str | None
    minutes: int = 0


def choose_code(session: Session, customer: types.User, raw: str, currency: str,
                product: Product | None = None) -> Choice:
    """A code the customer typed or followed: theirs from now on if they may use it; and why it does not apply
    (to ``product``, if given). A code for other products is kept: it applies to their next purchase of one.
    A code they used already never is, whatever product it is typed under. After too many codes that did not
    apply, none is looked at for a while."""
    minutes = minutes_to_wait(session, customer.id)
    if minutes:
        return Choice(None, "promo_wait", minutes)
    wanted = normalized(raw)
    code = session.scalar(select(PromoCode).where(PromoCode.code == wanted)) if wanted else None
    user = save_user(session, customer)
    problem = why_not(code, currency, session.scalar(select(live_uses(code.id))) if code else 0, product,
                      code is not None and used_by(session, code.id, user.id))
    if problem is None and product is None and not lowers_something(session, code):  # a link's code
        problem = "promo_for_nothing"
    if problem in (None, *KEPT_FOR_OTHERS):
        user.promo_code_id = code.id
        session.commit()
        logger.info("User %s chose promo code %s", customer.id, code.id)
    if problem:
        count_wrong_code(session, customer.id)
    return Choice(code, problem)


# ---------------------------------------------------------------------------
# Holding a use at pre-checkout, and counting it when the payment lands
# ---------------------------------------------------------------------------

def lock_code(session: Session, code_id: int) -> PromoCode | None:
    """Begin the caller's transaction by locking the code's row, and read it as it is now.

    An UPDATE that changes nothing still takes the row's lock on PostgreSQL
    and SQLite's write lock, which the next holder waits for until we commit:
    so every count below is taken alone.
    """
    session.execute(update(PromoCode).where(PromoCode.id == code_id).values(is_active=PromoCode.is_active))
    return session.scalars(select(PromoCode).where(PromoCode.id == code_id)
                           .execution_options(populate_existing=True)).first()


def uses_left(session: Session, code: PromoCode, telegram_id: int) -> int | None:
    """Under the code's lock: the uses its live purchases and the live holds of other customers leave for this
    customer (None: no limit)."""
    if code.max_uses is None:
        return None
    held = session.scalar(select(func.count(PromoHold.id)).where(
        PromoHold.promo_code_id == code.id, PromoHold.telegram_id != telegram_id, PromoHold.expires_at > utcnow()))
    return code.max_uses - session.scalar(select(live_uses(code.id))) - held


def has_room(session: Session, code: PromoCode, telegram_id: int) -> bool:
    """Under the code's lock: a use is left for this customer."""
    left = uses_left(session, code, telegram_id)
    return left is None or left > 0


def hold_of(session: Session, code_id: int, telegram_id: int) -> PromoHold | None:
    """The customer's hold on the code: live, or lapsed within HOLD_REMEMBERED."""
    return session.scalar(select(PromoHold).where(PromoHold.promo_code_id == code_id,
                                                  PromoHold.telegram_id == telegram_id))


def hold_use(session: Session, code_id: int, customer: types.User, product: Product, currency: str) -> str | None:
    """Pre-checkout: set a use aside for this customer until their payment lands; the text key of why not, or None.
    The caller commits (with checkout's own small write).

    A hold lasts HOLD_TIME from the first pre-checkout, however often it is asked again. A customer whose
    hold on the last use lapsed unpaid (a declined card, or a hoarder) gets it again only HOLD_AGAIN_AFTER
    later, unless someone else has taken it meanwhile."""
    code = lock_code(session, code_id)
    user_id = session.scalar(select(User.id).where(User.telegram_id == customer.id))
    problem = why_not(code, currency, 0, product, bool(user_id) and used_by(session, code_id, user_id))
    left = uses_left(session, code, customer.id) if problem is None else None
    if left is not None and left <= 0:
        problem = "promo_used_up"
    if problem:
        return problem
    now, mine = utcnow(), hold_of(session, code_id, customer.id)
    if mine and mine.expires_at > now:
        return None  # held already: never lengthened
    if mine and left == 1 and mine.expires_at > now - HOLD_AGAIN_AFTER:
        logger.info("User %s may not hold the last use of promo code %s again yet", customer.id, code_id)
        return "promo_hold_wait"
    session.execute(delete(PromoHold).where(PromoHold.promo_code_id == code_id,
                                            PromoHold.expires_at <= now - HOLD_REMEMBERED))
    expires = now + HOLD_TIME
    session.execute(insert_for(session)(PromoHold).values(promo_code_id=code_id, telegram_id=customer.id,
                                                          expires_at=expires)
                    .on_conflict_do_update(index_elements=["promo_code_id", "telegram_id"],
                                           set_={"expires_at": expires}))
    return None


def take_use(session: Session, code_id: int, user: User) -> bool:
    """At payment, in its transaction: count a use for the customer, releasing their hold; False when none is
    left for them (the caller records the payment without the code and refunds it). The code's expiry and
    switch were checked at pre-checkout: a payment Telegram took with them is honoured. So is a payment whose
    hold lapsed before it landed, even when the last use went to someone else meanwhile: pre-checkout said
    OK to this price, the money was taken, and the admins are told (checkout.py) that the limit was passed."""
    code = lock_code(session, code_id)
    held = code is not None and hold_of(session, code_id, user.telegram_id) is not None
    if code is None or used_by(session, code_id, user.id) or not (held or has_room(session, code, user.telegram_id)):
        logger.warning("A payment by user %s found no use of promo code %s left", user.telegram_id, code_id)
        return False
    session.execute(delete(PromoHold).where(PromoHold.promo_code_id == code_id,
                                            PromoHold.telegram_id == user.telegram_id))
    if user.promo_code_id == code_id:
        user.promo_code_id = None  # used: the next purchase is at full price again
    return True


# ---------------------------------------------------------------------------
# The customer's link: t.me/<bot>?start=promo_CODE
# ---------------------------------------------------------------------------

def scope_name(session: Session, lang: str, code: PromoCode) -> str:
    """'everything', 'the category Keys', 'Pro license': what the code applies to, for a sentence."""
    if code.product_id is not None:
        return label(lang, "promo_scope_product", name=session.get(Product, code.product_id).name)
    if code.category_id is not None:
        return label(lang, "promo_scope_category", name=session.get(Category, code.category_id).name)
    return label(lang, "promo_scope_shop")


@handlers.start_link("promo_")
def open_promo_link(shop: Shop, message: types.Message, session: Session, lang: str, argument: str) -> Screen:
    """/start promo_CODE, from a link t.me/<bot>?start=promo_SUMMER: greet the customer with the code's
    discount, and keep it for their next purchase."""
    code, problem, minutes = choose_code(session, message.from_user, argument, shop.config.currency)
    if problem not in (None, *KEPT_FOR_OTHERS):
        return Screen(text(lang, problem, minutes=minutes), menu_keyboard(lang))
    greeting = text(lang, "promo_welcome", name=message.from_user.first_name or "", code=code.code,
                    discount=discount_label(code), scope=scope_name(session, lang, code))
    rows = []
    if code.product_id is not None:  # one product: straight to it
        rows.append([PRODUCT.button(label(lang, "btn_open_product"), product_id=code.product_id, page=0)])
    rows.append(copy_row(lang, code.code))  # 📋 Copy: to paste the code anywhere, or pass it on
    return Screen(greeting, keyboard(*rows, *menu_keyboard(lang).inline_keyboard))


def register(bot: TeleBot, shop: Shop) -> None:
    """Wire the promo link, t.me/<bot>?start=promo_CODE."""
    add_handlers(shop, handlers)
