"""Storefront: what a customer sees before buying — the menu, the catalog, a product's card, search.

Reading order: ... promos.py → **storefront.py** → subscriptions.py → ...

A customer's path is /start → 🛍 Catalog → a category → a product's card,
whose Buy button leads into checkout.py. Navigation edits one message in
place, so the chat does not fill up with menus. A product can be shared as a
deep link, ``https://t.me/<bot>?start=p_42``, and typing any words searches
the catalog. Under a card, 🏷 Promo code asks for a code (promos.py prices
with it) and 🎁 Buy as a gift leads into gifts.py. A card shows
what buyers think ("★ 4.8 · 23 reviews"), and 💬 Reviews opens them (reviews.py).
"""
from __future__ import annotations

import contextlib
import logging
import threading
import time

from sqlalchemy import column, delete, func, literal_column, or_, select, table
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from telebot import TeleBot, types
from telebot.apihelper import ApiTelegramException

from menus import CATALOG, HELP, invite_shown, menu_keyboard, menu_screen
from models import (
    PAID_MEDIA,
    SEARCH_INDEX,
    SUBSCRIPTION,
    Category,
    Product,
    User,
    WaitlistEntry,
    highest_id_given,
    listing_columns,
    lowercase,
    products_page,
    save_user,
    stock_and_rating,
    stock_left,
)
from promos import PRODUCT, Offer, choose_code, discount_label, offer_and_owned
from shopkit import (
    MASS_SEND_INTERVAL,
    PAGE_SIZE,
    Handlers,
    Screen,
    Setting,
    Shop,
    Tap,
    Toast,
    add_handlers,
    ask,
    counted,
    end_dialog,
    format_price,
    has_visible_text,
    is_id,
    keyboard,
    label,
    language_for_code,
    number,
    page_count,
    pager_row,
    put_setting,
    send,
    text,
    truncate,
    with_toast,
)

logger = logging.getLogger("shopbot")
handlers = Handlers()

# The buttons of the shop window, and the numbers each carries (shopkit's Tap).
MENU = Tap("menu")
CATEGORY = Tap("category", "category_id", page=True)
SEARCH_PAGE = Tap("search_page", page=True)
NOTIFY_ME = Tap("notify_me", "product_id")
PROMO_CODE = Tap("promo_code", "product_id")
BUY_GIFT = Tap("buy_gift", "product_id")
BUY = Tap("buy", "product_id")
BUY_MEDIA = Tap("buy_media", "product_id")  # 📸 paid media: no invoice, Telegram takes the Stars (paid_media.py)
OPEN_PURCHASE = Tap("open_purchase", "purchase_id")
REVIEWS = Tap("reviews", "product_id", page=True)  # 💬 Reviews under a card: reviews.py answers it

# ---------------------------------------------------------------------------
# The catalog's counts, kept a few seconds
# ---------------------------------------------------------------------------

def categories_on_sale(session: Session) -> list[tuple[int, str, int]]:
    """(id, name, products on sale) for every category that has any, in the seller's order."""
    rows = session.execute(
        select(Category.id, Category.name, func.count(Product.id))
        .join(Product, (Product.category_id == Category.id) & Product.is_active)
        .group_by(Category.id, Category.name, Category.position)
        .order_by(Category.position, Category.id)
    )
    return [tuple(row) for row in rows]


class CatalogCache:
    """The catalog screen's categories and counts (the category screen's pager reads them too), kept for a
    few seconds.

    Counting every product on sale takes ~15 ms on a 100,000-product shop, and
    the catalog is the most tapped screen. Admin actions clear the cache at
    once; changes made to the database by other means show within ``ttl``.
    """

    def __init__(self, ttl: float = 30.0):
        self.ttl, self.lock = ttl, threading.Lock()
        self.categories: list[tuple[int, str, int]] = []
        self.expires = 0.0

    def categories_on_sale(self, session: Session) -> list[tuple[int, str, int]]:
        with self.lock:
            if time.monotonic() >= self.expires:
                self.categories = categories_on_sale(session)
                self.expires = time.monotonic() + self.ttl
            return self.categories

    def category(self, session: Session, category_id: int) -> tuple[str, int] | None:
        """(name, products on sale) of one category, from the same figures; None when nothing in it is on sale.

        The category screen's pager ("2/5") needs the count on every tap, and
        counting a 100,000-product category took 6 ms; from here it costs nothing.
        """
        return next(((name, count) for cid, name, count in self.categories_on_sale(session) if cid == category_id),
                    None)

    def clear(self) -> None:
        with self.lock:
            self.expires = 0.0


# ---------------------------------------------------------------------------
# Screens
# ---------------------------------------------------------------------------


def product_label(shop: Shop, lang: str, row) -> str:
    """'Netflix 1 month — 150 ⭐' on a listing button; 'sold out' for stock that ran out."""
    if row.stocked and not row.left:
        return label(lang, "product_button", name=row.name, price=label(lang, "sold_out"))
    price = format_price(row.price, shop.config.currency) if row.price else label(lang, "free")
    return label(lang, "product_button", name=row.name, price=price)


def rating_line(lang: str, rating: tuple[float | None, int]) -> str:
    """'★ 4.8 · 23 reviews' ('★ 4,8 · 23 отзыва'): what buyers think, or nothing before anyone has said."""
    average, count = rating
    if not count:
        return ""
    whole, tenth = divmod(round(average * 10), 10)
    return text(lang, "rating_line", average=label(lang, "rating_average", whole=whole, tenth=tenth),
                reviews=lambda lang: counted(lang, "n_reviews", count))


def product_card(shop: Shop, lang: str, product: Product, left: int | None = None, offer: Offer | None = None,
                 rating: tuple[float | None, int] = (None, 0)) -> str:
    """The card customers see: name, price (struck through under a promo code's), stock, stars, description."""
    price = format_price(product.price, shop.config.currency) if product.price else text(lang, "free")
    if product.kind == SUBSCRIPTION:  # subscriptions.py: billed every month
        price = text(lang, "subscription_price", price=price)
    stock_line = "" if left is None else "\n" + text(lang, "in_stock" if left else "sold_out_line", count=number(left))
    if product.kind == PAID_MEDIA:  # paid_media.py: no promo code or gift lowers a price Telegram collects itself
        stock_line += "\n" + text(lang, "paid_media_card", count=len(product.media or []))
    if product.protected:
        stock_line += "\n" + text(lang, "protected_card")
    if rating[1]:  # below the stock, so that both read as facts about the price above them
        stock_line += "\n" + rating_line(lang, rating)
    if offer and offer.code:
        new_price = format_price(offer.price, shop.config.currency) if offer.price else text(lang, "free")
        return text(lang, "product_card_promo", name=product.name, old=price, new=new_price, code=offer.code.code,
                    discount=discount_label(offer.code), stock=stock_line, description=product.description)
    if product.kind == SUBSCRIPTION:  # its price line starts with 📅: no 💰 before it
        return text(lang, "product_card_subscription", name=product.name, price=price, description=product.description)
    return text(lang, "product_card", name=product.name, price=price + stock_line, description=product.description)


def catalog_screen(shop: Shop, session: Session, lang: str) -> Screen:
    """🛍 Catalog: the categories that have something on sale, with their counts."""
    rows = [[CATEGORY.button(label(lang, "category_button", name=name, count=count), category_id=cid, page=0)]
            for cid, name, count in shop.catalog.categories_on_sale(session)]
    back = [MENU.button(label(lang, "btn_back"))]
    if not rows:
        return Screen(text(lang, "catalog_empty"), keyboard(back))
    return Screen(text(lang, "catalog"), keyboard(*rows, back))


def category_screen(shop: Shop, session: Session, lang: str, category_id: int, page: int) -> Screen:
    """One page of a category's products; the catalog again if the category is empty or gone."""
    category = shop.catalog.category(session, category_id)
    if category is None:
        return with_toast(catalog_screen(shop, session, lang), text(lang, "unavailable"))
    name, total = category
    pages, toast = page_count(total), None
    if page >= pages:  # products were hidden since: show the last page there is
        page, toast = pages - 1, text(lang, "page_out_of_range")
    rows = [[PRODUCT.button(product_label(shop, lang, p), product_id=p.id, page=page)]
            for p in products_page(session, category_id, page, PAGE_SIZE)]
    return Screen(text(lang, "category", name=name), keyboard(
        *rows, pager_row(lang, CATEGORY, page, pages, category_id=category_id),
        [CATALOG.button(label(lang, "btn_back"))]), toast=toast)


def buy_button(shop: Shop, lang: str, product: Product, price: int) -> types.InlineKeyboardButton:
    """Buy for the price the customer pays (after their promo code); 📅 Subscribe; or 🎁 Get for free."""
    if product.kind == SUBSCRIPTION:
        return BUY.button(label(lang, "btn_subscribe", price=format_price(price, shop.config.currency)),
                          product_id=product.id)
    if product.kind == PAID_MEDIA:
        return BUY_MEDIA.button(label(lang, "btn_buy", price=format_price(price, shop.config.currency)),
                                product_id=product.id)
    if price == 0:
        return BUY.button(label(lang, "btn_get_free"), product_id=product.id)
    return BUY.button(label(lang, "btn_buy", price=format_price(price, shop.config.currency)), product_id=product.id)


def more_ways_to_buy(lang: str, product: Product) -> list:
    """🏷 Promo code and 🎁 Buy as a gift, for a paid product bought once (not a subscription: models.one_off)."""
    if not (product.price and product.one_off):
        return []
    return [PROMO_CODE.button(label(lang, "btn_promo_code"), product_id=product.id),
            BUY_GIFT.button(label(lang, "btn_buy_gift"), product_id=product.id)]


def product_screen(shop: Shop, session: Session, lang: str, telegram_id: int, product_id: int,
                   page: int = 0) -> Screen | None:
    """A product's card with its Buy button (or 🔔 Notify me when sold out); None when it is not on sale."""
    product = session.get(Product, product_id)
    if product is None or not product.is_active:
        return None
    offer, owned = offer_and_owned(session, telegram_id, product, shop.config.currency)
    left, rating = stock_and_rating(session, product)
    rows = []
    if not (owned and product.sold_once_per_customer):
        rows.append([NOTIFY_ME.button(label(lang, "btn_notify"), product_id=product.id)] if left == 0
                    else [buy_button(shop, lang, product, offer.price)])
    if owned:
        rows.append([OPEN_PURCHASE.button(label(lang, "btn_owned"), purchase_id=owned)])
    if left != 0:
        rows.append(more_ways_to_buy(lang, product))
    if rating[1]:
        rows.append([REVIEWS.button(label(lang, "btn_reviews"), product_id=product.id, page=0)])
    rows.append([CATEGORY.button(label(lang, "btn_back"), category_id=product.category_id, page=page)])
    return Screen(product_card(shop, lang, product, left, offer, rating), keyboard(*rows),
                  product.description_file_id, product.description_file_type)


def removed(session: Session, product_id: int) -> bool:
    """The product was deleted (not just hidden, nor never made). Ids are never given again (models.py:
    AUTOINCREMENT), so an old link or button to a deleted product finds nothing, never another product."""
    return session.get(Product, product_id) is None and product_id <= highest_id_given(session, "products")


def product_or_catalog(shop: Shop, session: Session, lang: str, telegram_id: int, product_id: int,
                       page: int = 0) -> Screen:
    """A product's card, or the catalog with "no longer available" (or "removed") when it is not on sale."""
    screen = product_screen(shop, session, lang, telegram_id, product_id, page)
    if screen:
        return screen
    why = text(lang, "unavailable_removed" if removed(session, product_id) else "unavailable")
    return with_toast(catalog_screen(shop, session, lang), why)


# ---------------------------------------------------------------------------
# Search: every word must appear in the name or the description, in any case
# ---------------------------------------------------------------------------

def contains_word(column, word: str):
    """``column`` contains ``word`` in any case; % and _ in the word are plain characters.

    One form for every word, ASCII or not: each form of a search is one more
    compiled statement that SQLAlchemy keeps (about 100 KB each), and the text
    index leaves few rows to check, so SQLite's ASCII-only lower() saves nothing.
    """
    return lowercase(column).contains(word.lower(), autoescape=True)


def has_word(word: str, name, description):
    """The word is in the name or in the description."""
    return or_(contains_word(name, word), contains_word(description, word))


TRIGRAM = 3
PRODUCTS_SEARCH = table(SEARCH_INDEX, column("rowid"))
# The most products a search looks at where it cannot take them in id order: what PostgreSQL's
# index finds (below), and the products a word too short for any index is looked for in (storefront.py).
SEARCH_CANDIDATES = 1000


def search_index_has(query, words: list[str], dialect: str):
    """``query`` (of products, id first) narrowed to those with every word (of 3 characters or more) in
    their name or description, in any case, in the order of their ids: found through the text index."""
    if dialect == "sqlite":
        phrases = " ".join('"{}"'.format(word.replace('"', '""')) for word in words)  # FTS5: every phrase required
        # FTS5 folds case its own way: what it finds is checked again as search always did.
        return (query.join(PRODUCTS_SEARCH, PRODUCTS_SEARCH.c.rowid == Product.id)
                .where(literal_column(SEARCH_INDEX).match(phrases),
                       *(has_word(word, Product.name, Product.description) for word in words))
                .order_by(PRODUCTS_SEARCH.c.rowid))  # the order FTS5 hands rows out in: nothing to sort
    # pg_trgm serves ILIKE on the indexed expression, written here exactly as in the index. It is the
    # check itself: a word holds no space, so it cannot run from the name into the description.
    # A GIN index finds rows in no useful order, and asked for "the first 81 by id", the planner may
    # walk the primary key instead, hoping to meet matches early: 50 ms when they all sit late in
    # the table. So it is asked for any SEARCH_CANDIDATES matches, which are then sorted: all of
    # them, in id order, unless more match (then the first the database comes across).
    indexed = Product.name.concat(literal_column("' '")).concat(Product.description)
    found = query.where(*(indexed.icontains(word, autoescape=True) for word in words))
    candidates = found.limit(SEARCH_CANDIDATES).subquery()
    return select(*candidates.c).order_by(candidates.c.id)


SEARCH_MAX = 200  # characters of a search we remember for its Next/Prev buttons
SEARCH_WORDS = 5
LAST_SEARCH = "last_search"  # Setting key prefix: the customer's latest search
# A search shows at most this many results (ten pages), so that it costs the same in any catalog;
# when more match, the customer is asked for another word.
SEARCH_RESULTS = 10 * PAGE_SIZE


def matching_products(session: Session, words: list[str]):
    """A query for the ids of the products on sale with every word in their name or description, in id order.

    The text index finds the products that have the long words; it cannot find
    words of one or two characters, which are looked for among the first
    SEARCH_CANDIDATES of those (or of all products on sale).
    """
    long_words = [word for word in words if len(word) >= TRIGRAM]
    short_words = [word for word in words if len(word) < TRIGRAM]
    searched = (Product.name, Product.description) if short_words else ()  # where the short words are looked for
    found = select(Product.id, *searched).where(Product.is_active)
    if long_words:
        found = search_index_has(found, long_words, session.get_bind().dialect.name)
    else:
        found = found.order_by(Product.id)
    if short_words:
        candidates = found.limit(SEARCH_CANDIDATES).subquery()
        found = select(candidates.c.id).where(
            *(has_word(word, candidates.c.name, candidates.c.description) for word in short_words)
        ).order_by(candidates.c.id)
    return found


def search_page(session: Session, words: list[str], page: int):
    """One page of the products that match, and how many match: SEARCH_RESULTS + 1 means "more than that"."""
    found = matching_products(session, words).limit(SEARCH_RESULTS + 1).subquery()
    rows = session.execute(
        select(*listing_columns(), func.count().over().label("found"))
        .join(found, found.c.id == Product.id)
        .order_by(Product.id).limit(PAGE_SIZE).offset(page * PAGE_SIZE)).all()
    return rows, (rows[0].found if rows else 0)


def search_screen(shop: Shop, session: Session, lang: str, query: str, page: int) -> Screen:
    """🔎 The products that match, a page at a time."""
    if page >= SEARCH_RESULTS // PAGE_SIZE:  # beyond the pages a search shows: an old or forged button
        page = 0
    products, found = search_page(session, query.split()[:SEARCH_WORDS], page)
    if not products and page:  # a page that no longer exists: the first one
        return search_screen(shop, session, lang, query, 0)
    shown = min(found, SEARCH_RESULTS)
    rows = [[PRODUCT.button(product_label(shop, lang, p), product_id=p.id, page=0)] for p in products]
    key = "search_more" if found > SEARCH_RESULTS else "search_results" if found else "search_nothing"
    return Screen(text(lang, key, query=truncate(query, 100), count=shown), keyboard(
        *rows, pager_row(lang, SEARCH_PAGE, page, page_count(shown)),
        [CATALOG.button(label(lang, "btn_catalog")), MENU.button(label(lang, "btn_menu"))]))


# ---------------------------------------------------------------------------
# Commands and messages
# ---------------------------------------------------------------------------

@handlers.start_link("p_")
def open_product_link(shop: Shop, message: types.Message, session: Session, lang: str, argument: str) -> Screen:
    """/start p_42, from a product's shared link t.me/<bot>?start=p_42."""
    screen = is_id(argument) and product_screen(shop, session, lang, message.from_user.id, int(argument))
    if screen:
        return screen
    gone = is_id(argument) and removed(session, int(argument))
    return menu_screen(lang, "product_not_found_removed" if gone else "product_not_found")


@handlers.command("catalog")
def on_catalog_command(shop: Shop, message: types.Message, session: Session, lang: str) -> Screen:
    """/catalog"""
    return catalog_screen(shop, session, lang)


@handlers.command("help")
def on_help(shop: Shop, message: types.Message, session: Session, lang: str) -> Screen:
    """/help"""
    return menu_screen(lang, "help")


@handlers.command("terms")
def on_terms(shop: Shop, message: types.Message, session: Session, lang: str) -> Screen:
    """/terms: Telegram asks bots that take payments to show their terms."""
    return Screen(text(lang, "terms"))


@handlers.command("search")
def on_search(shop: Shop, message: types.Message, session: Session, lang: str) -> Screen:
    """/search <words>, or any plain text: look for it in the catalog."""
    query = message.text.partition(" ")[2] if message.text.startswith("/search") else message.text
    # A NUL character is a space here: PostgreSQL refuses it in a text, and SQLite's FTS5 would end the query at it.
    query = " ".join(query.replace("\0", " ").split())[:SEARCH_MAX]
    if not has_visible_text(query):
        return Screen(text(lang, "search_how"), menu_keyboard(lang))
    put_setting(session, f"{LAST_SEARCH}:{message.from_user.id}", query)
    session.commit()  # remembered for the Next/Prev buttons
    return search_screen(shop, session, lang, query, 0)


def on_other_message(shop: Shop, message: types.Message, session: Session, lang: str) -> Screen:
    """Any text that is no command is a search; stickers, photos, voice, unknown commands...: a hint and the
    menu, never silence."""
    if message.content_type == "text" and not message.text.startswith("/"):
        return on_search(shop, message, session, lang)
    return menu_screen(lang, "hint")


@handlers.command("start", "help", chat_types=("group", "supergroup"))
def on_group_message(shop: Shop, message: types.Message, session: Session, lang: str) -> Screen:
    """The shop sells in private chats; in a group it only points there (when called)."""
    link = f"https://t.me/{shop.bot.user.username}"
    return Screen(text(lang, "private_only", link=link))


# ---------------------------------------------------------------------------
# Buttons
# ---------------------------------------------------------------------------

@handlers.tap(MENU)
def tap_menu(shop: Shop, call: types.CallbackQuery, session: Session, lang: str) -> Screen:
    """🏠 The main menu (an admin's panel stays one /admin away)."""
    return menu_screen(lang, invite=invite_shown(session))


@handlers.tap(HELP)
def tap_help(shop: Shop, call: types.CallbackQuery, session: Session, lang: str) -> Screen:
    """❓ Help."""
    return Screen(text(lang, "help"), keyboard([MENU.button(label(lang, "btn_back"))]))


@handlers.tap(CATALOG)
def tap_catalog(shop: Shop, call: types.CallbackQuery, session: Session, lang: str) -> Screen:
    """🛍 Catalog."""
    return catalog_screen(shop, session, lang)


@handlers.tap(CATEGORY)
def tap_category(shop: Shop, call: types.CallbackQuery, session: Session, lang: str,
                 category_id: int, page: int) -> Screen:
    """A category, one page of products at a time."""
    return category_screen(shop, session, lang, category_id, page)


@handlers.tap(PRODUCT)
def tap_product(shop: Shop, call: types.CallbackQuery, session: Session, lang: str,
                product_id: int, page: int) -> Screen:
    """A product's card; ``page`` is the category page to go back to."""
    return product_or_catalog(shop, session, lang, call.from_user.id, product_id, page)


@handlers.tap(SEARCH_PAGE)
def tap_search_page(shop: Shop, call: types.CallbackQuery, session: Session, lang: str, page: int) -> Screen:
    """◀️ ▶️ under search results: the customer's latest search, another page."""
    query = session.get(Setting, f"{LAST_SEARCH}:{call.from_user.id}")
    if query is None:
        return menu_screen(lang)
    return search_screen(shop, session, lang, query.value, page)


@handlers.tap(NOTIFY_ME)
def tap_notify_me(shop: Shop, call: types.CallbackQuery, session: Session, lang: str, product_id: int) -> Toast:
    """🔔 Notify me: remember who waits for a sold-out product (notify_waitlist tells them when it is back)."""
    product = session.get(Product, product_id)
    if product is None or not product.is_active:
        return Toast(text(lang, "unavailable"))
    user = save_user(session, call.from_user)
    session.add(WaitlistEntry(product_id=product_id, user_id=user.id))
    try:
        session.commit()
    except IntegrityError:  # already waiting
        session.rollback()
    return Toast(text(lang, "notify_saved"))


def announce_restock(shop: Shop, product_id: int) -> None:
    """After a restock (``After(announce_restock, product_id)``): the waiting customers hear, in the background."""
    shop.start_background(notify_waitlist, product_id)


def notify_waitlist(shop: Shop, product_id: int) -> None:
    """Tell everyone who tapped "Notify me" that the product is back, once each; nobody while it is hidden
    or sold out (they hear when it is shown again, or restocked)."""
    with shop.Session() as session:
        product = session.get(Product, product_id)
        if product is None or not product.is_active or (product.stocked and not stock_left(session, product)):
            return
        name = product.name
        waiting = session.execute(
            select(WaitlistEntry.id, User.telegram_id, User.language_code)
            .join(User, WaitlistEntry.user_id == User.id).where(WaitlistEntry.product_id == product_id)).all()
    told = 0
    for entry_id, telegram_id, language_code in waiting:
        # Off the list before the message: two notices at once (two keys back) tell each customer once.
        with shop.Session() as session:
            taken = session.execute(delete(WaitlistEntry).where(WaitlistEntry.id == entry_id)).rowcount
            session.commit()
        if not taken:
            continue
        lang = language_for_code(language_code)
        with contextlib.suppress(ApiTelegramException):
            send(shop, telegram_id, text(lang, "back_in_stock", name=name),
                 keyboard([PRODUCT.button(label(lang, "btn_open_product"), product_id=product_id, page=0)]))
        told += 1
        shop.sleep(MASS_SEND_INTERVAL)
    logger.info("Told %s waiting customers that product %s is back", told, product_id)


@handlers.tap(PROMO_CODE)
def tap_promo_code(shop: Shop, call: types.CallbackQuery, session: Session, lang: str, product_id: int) -> Screen:
    """🏷 Promo code under a card: ask for the code."""
    return ask(session, call, "promo_code", "promo_ask", product_id=product_id)


@handlers.answer("promo_code", expires_after=600)
def answer_promo_code(shop: Shop, message: types.Message, session: Session, lang: str, dialog: dict) -> Screen:
    """The code typed under a card: the card again, at the new price, or saying why the code does not apply."""
    end_dialog(session, message)
    product = session.get(Product, dialog["product_id"])
    if product is None or not product.is_active:
        return menu_screen(lang, "product_not_found")
    code, problem, minutes = choose_code(session, message.from_user, message.text or "", shop.config.currency,
                                         product)
    screen = product_or_catalog(shop, session, lang, message.from_user.id, product.id)
    note = text(lang, problem, minutes=minutes) if problem else text(lang, "promo_applied", code=code.code)
    screen.text = note + "\n\n" + screen.text
    return screen


def register(bot: TeleBot, shop: Shop) -> None:
    """Wire the storefront's commands and buttons into the bot; a message that is no command is a search."""
    shop.catalog = CatalogCache()  # the catalog screen's counts, kept a few seconds
    shop.caches.append(shop.catalog)  # ...and forgotten after any admin action
    shop.other_message = on_other_message
    add_handlers(shop, handlers)
