"""Pricing: which currency the catalog is priced in, and --reprice to change it.

Reading order: ... status.py → **pricing.py** → texts.py → ...

Prices are whole numbers of the currency's smallest unit (models.py), so the
number 150 means 150 ⭐ in a Stars shop and $1.50 in a USD one. The shop
records which currency its catalog is priced in; starting with another
CURRENCY while products have prices is refused with one line, because every
price would silently change its meaning. ``python shopbot.py --reprice RATE``
converts the catalog once (``--reprice 0.013``: 1 ⭐ is worth 1.3 US cents).
``python shopbot.py --check`` says the same in its "payments" line. A subscription
stays in Stars (Telegram bills them in Stars only), and --reprice lists the
prices that fall under the least the shop charges in the new currency.
"""
from __future__ import annotations

import os
import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from sqlalchemy import create_engine, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool
from telebot import TeleBot

from models import SUBSCRIPTION, Product, Purchase
from promos import MINIMUM_PRICE
from shopkit import (
    MAX_CARD_UNITS,
    MAX_STARS,
    STARS,
    Config,
    Setting,
    Shop,
    StartRefused,
    check_line,
    decimals,
    format_price,
    open_database,
    sqlite_file,
)

CATALOG_CURRENCY = "catalog_currency"  # a Setting: prices are whole numbers of this currency's smallest unit


def paid_products(session: Session) -> int:
    return session.scalar(select(func.count()).where(Product.price > 0))


def catalog_currency(session: Session) -> str | None:
    """The recorded currency; a shop from before it was recorded is priced in the currency of its last sale."""
    recorded = session.get(Setting, CATALOG_CURRENCY)
    if recorded is not None:
        return recorded.value
    return session.scalar(select(Purchase.currency).order_by(Purchase.id.desc()).limit(1))


def check_catalog_currency(session: Session, currency: str) -> None:
    """Record the catalog's currency; refuse another CURRENCY while products have prices in the old one."""
    priced_in = catalog_currency(session)
    if priced_in not in (None, currency) and paid_products(session):
        raise StartRefused(
            f"the catalog is priced in {priced_in} but CURRENCY is {currency}, so every price would change its "
            f"meaning. Start with CURRENCY={priced_in} again, or convert the prices once with "
            f"CURRENCY={currency} python shopbot.py --reprice <what 1 {priced_in} is worth in {currency}>")
    session.merge(Setting(key=CATALOG_CURRENCY, value=currency))
    session.commit()


def convert(amount: int, rate: Decimal, old: str, new: str) -> int:
    """A price in ``old``'s smallest units, in ``new``'s: 450 XTR at 0.013 -> 585 (US cents). A paid product stays
    paid: nothing rounds down to free."""
    value = Decimal(amount) / 10 ** decimals(old) * rate * 10 ** decimals(new)
    return max(1, int(value.to_integral_value(ROUND_HALF_UP))) if amount else 0


def parse_rate(raw: str) -> Decimal:
    try:
        rate = Decimal(raw.replace(",", "."))
    except InvalidOperation:
        rate = Decimal(0)
    if not rate.is_finite() or rate <= 0:
        raise StartRefused(f"--reprice takes what one unit of the old currency is worth in the new one, "
                           f"e.g. --reprice 0.013; got {raw!r}")
    return rate


def reprice(config: Config, raw_rate: str) -> int:
    """``python shopbot.py --reprice RATE``: convert every price from the catalog's currency to CURRENCY."""
    rate, new = parse_rate(raw_rate), config.currency
    session_factory = open_database(config.database_url)
    with session_factory() as session:
        old = catalog_currency(session)
        if old is None:
            raise StartRefused("the shop has not recorded its catalog's currency yet: start it once with the "
                               "CURRENCY its prices were entered in, then convert them")
        if old == new:
            raise StartRefused(f"the catalog is already priced in {new}: there is nothing to convert")
        limit = MAX_STARS if new == STARS else MAX_CARD_UNITS * 10 ** decimals(new)
        minimum = MINIMUM_PRICE.get(new, 1)  # what the shop itself keeps a paid price above (promos.py)
        products = session.scalars(select(Product).where(Product.price > 0).order_by(Product.id)).all()
        too_cheap, repriced = [], 0
        for product in products:
            if product.kind == SUBSCRIPTION:  # Telegram bills subscriptions in Stars only, whatever CURRENCY is
                print(f"#{product.id} {product.name}: {format_price(product.price, STARS)} a month, left in Stars "
                      f"(Telegram bills subscriptions in Stars only)")
                continue
            before, product.price = product.price, convert(product.price, rate, old, new)
            if product.price > limit:
                raise StartRefused(f"#{product.id} {product.name} would cost {format_price(product.price, new)}, "
                                   f"over the {format_price(limit, new)} a payment may be; nothing was changed")
            print(f"#{product.id} {product.name}: {format_price(before, old)} -> {format_price(product.price, new)}")
            repriced += 1
            if product.price < minimum:
                too_cheap.append(f"#{product.id} {product.name} ({format_price(product.price, new)})")
        session.merge(Setting(key=CATALOG_CURRENCY, value=new))
        session.commit()
    session_factory.kw["bind"].dispose()
    print(f"Repriced {repriced} products from {old} to {new} (1 {old} = {rate} {new}).")
    if too_cheap:
        print(f"Warning: under {format_price(minimum, new)}, the least the shop "
              f"charges in {new} (Telegram refuses smaller payments): {', '.join(too_cheap)}. Raise them in "
              f"/admin → 📦 Products, or make them free.")
    return 0



def priced_in(database_url: str) -> str | None:
    """The catalog's currency while products have prices; None when nothing is priced or it cannot be read."""
    path = sqlite_file(database_url)
    if path and not os.path.exists(path):
        return None  # --check creates nothing
    engine = create_engine(database_url, poolclass=NullPool, hide_parameters=True)
    try:
        with Session(engine) as session:
            return catalog_currency(session) if paid_products(session) else None
    except SQLAlchemyError:
        return None  # the database line has said what is wrong
    finally:
        engine.dispose()


def check_payments(config: Config) -> bool:
    """The currency against the catalog's, and the provider token's mode (never the token itself)."""
    catalog = priced_in(config.database_url)
    if catalog not in (None, config.currency):
        return check_line("payments", "FAIL", f"the catalog is priced in {catalog}, CURRENCY is "
                                              f"{config.currency}: see --reprice in the README")
    if config.currency == STARS:
        return check_line("payments", "ok", "Telegram Stars (XTR), no provider token needed")
    mode = re.search(r":(TEST|LIVE):", config.provider_token)
    if mode is None:
        return check_line("payments", "WARN", "PAYMENT_PROVIDER_TOKEN does not look like one from @BotFather → "
                                              "Payments (123:LIVE:...)")
    if mode.group(1) == "TEST":
        return check_line("payments", "WARN", f"cards in {config.currency} in TEST mode: no real money is taken")
    return check_line("payments", "ok", f"cards in {config.currency}, LIVE provider token")


def check_at_start(shop: Shop) -> None:
    """Before the shop serves: the catalog's currency is CURRENCY, or the start is refused."""
    with shop.Session() as session:
        check_catalog_currency(session, shop.config.currency)


def register(bot: TeleBot, shop: Shop) -> None:
    """Refuse a start whose CURRENCY would change every price's meaning."""
    shop.checks_at_start.append(check_at_start)
