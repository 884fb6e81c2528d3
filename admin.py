"""Admin: the seller's panel, and the catalog it fills — categories and products.

Reading order: ... channels.py → **admin.py** → stock.py → ...

/admin opens the panel for the ids in ADMIN_IDS. Every handler in this file
is registered as an admin handler, so shopkit checks ADMIN_IDS before any
of them runs; anyone else gets the customer menu, and the attempt is logged.

Adding a product is a dialog: the bot asks, the seller's next message
answers, and a wrong answer is explained and asked again, keeping what was
entered so far::

    category → name → price → description → description file → hidden content → preview → ✅ Save
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from telebot import TeleBot, types

from channels import ADMIN_PRODUCT, ask_chat, check_price, read_chat, subscribers_summary
from menus import ADD_PRODUCT, ADMIN, CATEGORIES, PRODUCTS, TOGGLE_SALE_ALERTS, admin_panel
from models import (
    NAME_MAX,
    PAID_MEDIA,
    STOCKED,
    SUBSCRIPTION,
    UNLIMITED,
    Category,
    Product,
    Purchase,
    category_with_count,
    lowercase,
    product_figures,
    products_page,
    save_user,
    stock_left,
    unsold_items,
)
from paid_media import MEDIA_DONE, ask_media, collected_media, media_summary, read_caption
from paid_media import check_price as check_paid_media_price
from shopkit import (
    CANCEL,
    PAGE_SIZE,
    SALE_ALERTS,
    SKIP,
    After,
    Handlers,
    InputError,
    Screen,
    Setting,
    Shop,
    Tap,
    Toast,
    add_handlers,
    ask,
    counted,
    currency_hint,
    dialog_data,
    end_dialog,
    format_price,
    has_visible_text,
    keyboard,
    label,
    language_of,
    number,
    page_count,
    pager_row,
    parse_price,
    text,
    truncate,
    utf16_len,
    with_toast,
)
from storefront import announce_restock, product_card

logger = logging.getLogger("shopbot")
handlers = Handlers(admin=True)

# The buttons of the catalog's screens, and the numbers each carries (stock.py answers the stock ones).
ADD_PRODUCT_IN = Tap("add_product_in", "category_id")
NEW_CATEGORY = Tap("new_category", "for_new_product")
CHOOSE_KIND = Tap("choose_kind", "target_id", "kind", "for_new_product")
SAVE_PRODUCT = Tap("save_product")
ADMIN_CATEGORY = Tap("admin_category", "category_id", page=True)
CATEGORY_UP = Tap("category_up", "category_id")
CATEGORY_DOWN = Tap("category_down", "category_id")
RENAME_CATEGORY = Tap("rename_category", "category_id")
DELETE_CATEGORY = Tap("delete_category", "category_id")
EDIT_PRODUCT = Tap("edit_product", "product_id", "field_index")
EDIT_KIND = Tap("edit_kind", "product_id")
TOGGLE_PRODUCT = Tap("toggle_product", "product_id")
TOGGLE_PROTECTED = Tap("toggle_protected", "product_id")
DELETE_PRODUCT = Tap("delete_product", "product_id")
CONFIRM_DELETE_PRODUCT = Tap("confirm_delete_product", "product_id")
UPLOAD_STOCK = Tap("upload_stock", "product_id")
CLEAR_STOCK = Tap("clear_stock", "product_id")

# ---------------------------------------------------------------------------
# Reading the seller's answers
# ---------------------------------------------------------------------------

# The card (name, price, description) must fit one message of 4,096 characters.
DESCRIPTION_MAX = 3500


def message_text(message: types.Message) -> str:
    """The text of a message, or an explained refusal when a file or a sticker came instead; NUL characters
    (which PostgreSQL refuses in a text) dropped."""
    if message.content_type != "text":
        raise InputError("err_expected_text")
    return message.text.replace("\0", "").strip()


def read_name(message: types.Message) -> str:
    name = " ".join(message_text(message).split())  # one line: it is shown on buttons
    if not has_visible_text(name):
        raise InputError("err_expected_text")
    if len(name) > NAME_MAX:
        raise InputError("err_name_too_long", limit=NAME_MAX)
    return name


def read_description(message: types.Message) -> str:
    description = message_text(message)
    if utf16_len(description) > DESCRIPTION_MAX:
        raise InputError("err_description_too_long", limit=DESCRIPTION_MAX, length=utf16_len(description))
    return description


def attached_file(message: types.Message) -> tuple[str, str] | None:
    """(file_id, 'photo' | 'document') of a photo or document message."""
    if message.content_type == "photo":
        return message.photo[-1].file_id, "photo"  # the largest size
    if message.content_type == "document":
        return message.document.file_id, "document"
    return None


def read_description_file(message: types.Message) -> dict:
    if message.content_type == "text" and message.text.strip() == SKIP:
        return {"description_file_id": None, "description_file_type": None}
    file = attached_file(message)
    if file is None:
        raise InputError("err_expected_file")
    return {"description_file_id": file[0], "description_file_type": file[1]}


def read_hidden(message: types.Message) -> dict:
    """A text, or a photo/document (its caption, if any, is kept as the text)."""
    file = attached_file(message)
    if file is None:
        content = message_text(message)
        if not has_visible_text(content):
            raise InputError("err_expected_text")
        return {"hidden_content": content, "hidden_file_id": None, "hidden_file_type": None}
    return {"hidden_content": (message.caption or "").replace("\0", ""), "hidden_file_id": file[0],
            "hidden_file_type": file[1]}


@dataclass(frozen=True)
class ProductField:
    """One question of the add/edit product dialog and how to read its answer."""

    name: str
    prompt: str  # text key of the question
    button: str  # text key of its "✏️" button on the product's screen
    read: Callable[[types.Message, str], dict]  # (message, currency) -> Product attributes
    hint: Callable[[str], dict] = lambda currency: {}  # (currency) -> values for the question's text


PRODUCT_FIELDS = [
    ProductField("name", "admin_ask_name", "btn_edit_name", lambda m, currency: {"name": read_name(m)}),
    ProductField("price", "admin_ask_price", "btn_edit_price",
                 lambda m, currency: {"price": parse_price(message_text(m), currency)}, currency_hint),
    ProductField("description", "admin_ask_description", "btn_edit_description",
                 lambda m, currency: {"description": read_description(m)}),
    ProductField("description_file", "admin_ask_description_file", "btn_edit_description_file",
                 lambda m, currency: read_description_file(m)),
    ProductField("hidden", "admin_ask_hidden", "btn_edit_hidden", lambda m, currency: read_hidden(m)),
    ProductField("caption", "admin_ask_paid_media_caption", "btn_edit_caption", lambda m, currency: read_caption(m)),
]
# Which of them each kind asks, in order: 📸 paid media has a caption instead of files and hidden content.
KIND_FIELDS = {PAID_MEDIA: (0, 1, 2, 5)}
USUAL_FIELDS = (0, 1, 2, 3, 4)


def fields_of(kind: str) -> tuple[int, ...]:
    """The indexes in PRODUCT_FIELDS of the questions a product of this kind is asked, in order."""
    return KIND_FIELDS.get(kind, USUAL_FIELDS)


def ask_field(shop: Shop, session: Session, update, state: str, field: ProductField, kind: str = UNLIMITED,
              **data) -> Screen:
    """Ask for a product field's value; the price question names the shop's currency, with an example."""
    prompt = {SUBSCRIPTION: "admin_ask_subscription_price", PAID_MEDIA: "admin_ask_paid_media_price"}.get(
        kind, field.prompt) if field.name == "price" else field.prompt
    return ask(session, update, state, prompt, field.hint(shop.config.currency), **data)


def read_field(shop: Shop, field: ProductField, message: types.Message, kind: str) -> dict:
    """A field's answer, checked; a subscription's price (per month) and paid media's, within Telegram's limits."""
    values = field.read(message, shop.config.currency)
    if kind == SUBSCRIPTION and "price" in values:
        check_price(values["price"])
    if kind == PAID_MEDIA and "price" in values:
        check_paid_media_price(values["price"])
    return values


# ---------------------------------------------------------------------------
# The panel
# ---------------------------------------------------------------------------

@handlers.command("admin")
def on_admin(shop: Shop, message: types.Message, session: Session, lang: str) -> Screen:
    """/admin: the seller's panel."""
    end_dialog(session, message)
    save_user(session, message.from_user)  # remembers the admin's language for notifications
    return admin_panel(session, lang, message.from_user.id)


@handlers.tap(ADMIN)
def tap_admin(shop: Shop, call: types.CallbackQuery, session: Session, lang: str) -> Screen:
    """⬅️ Back to the panel (leaving any dialog)."""
    end_dialog(session, call)
    return admin_panel(session, lang, call.from_user.id)


@handlers.tap(TOGGLE_SALE_ALERTS)
def tap_sale_alerts(shop: Shop, call: types.CallbackQuery, session: Session, lang: str) -> Screen:
    """🔔 Sale alerts: on or off, for this admin only."""
    key = f"{SALE_ALERTS}:{call.from_user.id}"
    setting = session.get(Setting, key) or Setting(key=key, value="on")
    setting.value = "on" if setting.value == "off" else "off"
    session.add(setting)
    session.commit()
    return admin_panel(session, lang, call.from_user.id)


# ---------------------------------------------------------------------------
# Adding a product
# ---------------------------------------------------------------------------

def categories_in_order(session: Session) -> list[tuple[int, str]]:
    """(id, name) of every category, empty ones too, in the seller's order (for the pickers).

    At most 90: with the panel's own buttons that stays under Telegram's 100 buttons.
    """
    return session.execute(select(Category.id, Category.name)
                           .order_by(Category.position, Category.id).limit(90)).all()


@handlers.tap(ADD_PRODUCT)
def tap_add_product(shop: Shop, call: types.CallbackQuery, session: Session, lang: str) -> Screen:
    """➕ Add product: first, its category."""
    rows = [[ADD_PRODUCT_IN.button(name, category_id=cid)] for cid, name in categories_in_order(session)]
    return Screen(text(lang, "admin_choose_category"), keyboard(
        *rows, [NEW_CATEGORY.button(label(lang, "btn_new_category"), for_new_product=1)],
        [ADMIN.button(label(lang, "btn_back"))]))


KINDS = (UNLIMITED, STOCKED, SUBSCRIPTION, PAID_MEDIA)  # a kind travels in callback data as its index here
KIND_BUTTONS = {UNLIMITED: "btn_kind_unlimited", STOCKED: "btn_kind_stocked", SUBSCRIPTION: "btn_kind_subscription",
                PAID_MEDIA: "btn_kind_paid_media"}
FIXED_KINDS = (SUBSCRIPTION, PAID_MEDIA)  # a product of these kinds stays one (change_kind)
FILE_KINDS = {"photo": "file_photo", "document": "file_document"}  # a description or hidden file's kind


def kind_screen(lang: str, target_id: int, for_new_product: bool, note: str = "") -> Screen:
    """What does each buyer receive? ♾ the same content, 🔑 a unique item, or (new products) 📅 a subscription or
    📸 paid media;
    ``note``: what a change would do to an existing product's items (what_a_kind_change_does)."""
    kinds = KINDS if for_new_product else KINDS[:2]
    rows = [[CHOOSE_KIND.button(label(lang, KIND_BUTTONS[kind]), target_id=target_id, kind=index,
                                for_new_product=int(for_new_product))] for index, kind in enumerate(kinds)]
    question = text(lang, "admin_choose_kind") + (
        text(lang, "admin_kind_subscription") + text(lang, "admin_kind_paid_media") if for_new_product else "")
    return Screen(question + note, keyboard(*rows, [CANCEL.button(label(lang, "btn_cancel"))]))


def what_a_kind_change_does(session: Session, lang: str, product: Product) -> str:
    """Said before the seller picks: a stocked product's unsold items are kept but no longer sold as the same
    content for everyone (🔑 again sells them); an unlimited one becomes sold out until stock is uploaded."""
    unsold = unsold_items(session, product.id)
    if product.kind == STOCKED:
        return text(lang, "admin_kind_to_unlimited", items=counted(lang, "n_unsold_items", unsold))
    if unsold:  # unlimited, with items kept from when it was stocked
        return text(lang, "admin_kind_to_stocked_again", items=counted(lang, "n_unsold_items", unsold))
    return text(lang, "admin_kind_to_stocked")


@handlers.tap(ADD_PRODUCT_IN)
def tap_add_product_in(shop: Shop, call: types.CallbackQuery, session: Session, lang: str, category_id: int) -> Screen:
    """A category picked for the new product: next, its kind."""
    if session.get(Category, category_id) is None:
        return tap_add_product(shop, call, session, lang)
    return kind_screen(lang, category_id, for_new_product=True)


def start_new_product(shop: Shop, update, session: Session, category_id: int, product: dict):
    """The new product's category and kind (a subscription's chat too) are known: the questions begin."""
    if session.get(Category, category_id) is None:
        return tap_add_product(shop, update, session, language_of(update.from_user))
    end_dialog(session, update)
    return ask_field(shop, session, update, "new_product", PRODUCT_FIELDS[0], product["kind"],
                     category_id=category_id, step=0, product=product)


@handlers.answer("subscription_chat")
def answer_subscription_chat(shop: Shop, message: types.Message, session: Session, lang: str, dialog: dict) -> Screen:
    """The 📅 subscription's chat, checked with Telegram (channels.py); then the usual questions."""
    chat = read_chat(shop, message)  # asks Telegram: before any query
    return start_new_product(shop, message, session, dialog["category_id"], {"kind": SUBSCRIPTION, **chat})


@handlers.tap(MEDIA_DONE)
def tap_media_done(shop: Shop, call: types.CallbackQuery, session: Session, lang: str):
    """✅ Done under the 📸 paid media's photos and videos (paid_media.py): then the usual questions."""
    dialog = dialog_data(session, call, "paid_media_items")
    if dialog is None:
        return Toast(text(lang, "stale_button"))
    media = collected_media(dialog)
    if media is None:  # nothing to sell yet: the dialog waits for a photo or a video
        return Toast(text(lang, "err_paid_media_none"))
    return start_new_product(shop, call, session, dialog["category_id"], {"kind": PAID_MEDIA, "media": media})


def change_kind(shop: Shop, call: types.CallbackQuery, session: Session, product_id: int, kind: str) -> Screen:
    """A product's new kind (a subscription or paid media stays one); a stocked one without items is sold out until
    stocked."""
    product = session.get(Product, product_id)
    if product is not None and kind not in FIXED_KINDS and product.kind not in FIXED_KINDS:
        product.kind = kind
        session.commit()
        logger.info("Admin %s made product %s %s", call.from_user.id, product_id, kind)
    return product_or_list(shop, session, language_of(call.from_user), product_id)


@handlers.tap(CHOOSE_KIND)
def tap_choose_kind(shop: Shop, call: types.CallbackQuery, session: Session, lang: str, target_id: int, kind: int,
                    for_new_product: int) -> Screen:
    """A kind picked: for a new product (``target_id`` is its category), or for an existing one."""
    if kind >= len(KINDS):
        return admin_panel(session, lang, call.from_user.id)
    if for_new_product and KINDS[kind] == SUBSCRIPTION:
        return ask_chat(shop, session, call, target_id)  # then answer_subscription_chat
    if for_new_product and KINDS[kind] == PAID_MEDIA:
        return ask_media(shop, session, call, target_id)  # then tap_media_done
    if for_new_product:
        return start_new_product(shop, call, session, target_id, {"kind": KINDS[kind]})
    return change_kind(shop, call, session, target_id, KINDS[kind])


@handlers.answer("new_product")
def answer_product_field(shop: Shop, message: types.Message, session: Session, lang: str, dialog: dict) -> Screen:
    """An answer in the add-product dialog; after the last one, the preview."""
    step, kind = dialog["step"], dialog["product"].get("kind", UNLIMITED)
    fields = fields_of(kind)
    product = {**dialog["product"], **read_field(shop, PRODUCT_FIELDS[fields[step]], message, kind)}
    if step + 1 < len(fields):
        return ask_field(shop, session, message, "new_product", PRODUCT_FIELDS[fields[step + 1]], kind,
                         step=step + 1, product=product)
    ask(session, message, "new_product_preview", "admin_preview", product=product)
    preview = Product(**product)
    return Screen(text(lang, "admin_preview") + "\n\n" + product_card(shop, lang, preview),
                  keyboard([SAVE_PRODUCT.button(label(lang, "btn_save")),
                            CANCEL.button(label(lang, "btn_cancel"))]),
                  preview.description_file_id, preview.description_file_type)


@handlers.answer("new_product_preview")
def answer_preview(shop: Shop, message: types.Message, session: Session, lang: str, dialog: dict) -> Screen:
    """A message under the preview, where a button is expected."""
    raise InputError("err_use_buttons")


@handlers.tap(SAVE_PRODUCT)
def tap_save_product(shop: Shop, call: types.CallbackQuery, session: Session, lang: str):
    """✅ Save under the preview: the product goes on sale."""
    draft = dialog_data(session, call, "new_product_preview")
    if draft is None:
        return Toast(text(lang, "stale_button"))
    end_dialog(session, call)
    if session.get(Category, draft["category_id"]) is None:
        return Toast(text(lang, "unavailable"))
    product = Product(category_id=draft["category_id"], **draft["product"])
    session.add(product)
    session.commit()
    logger.info("Admin %s added product %s", call.from_user.id, product.id)
    return with_toast(admin_product_screen(shop, session, lang, product.id), text(lang, "admin_saved"))


# ---------------------------------------------------------------------------
# Categories
# ---------------------------------------------------------------------------

ADMIN_CATEGORY_PAGE = 10


def move_category(session: Session, category_id: int, step: int) -> bool:
    """Swap a category with its neighbour above (-1) or below (+1); False when it is at the end already."""
    ordered = list(session.scalars(select(Category).order_by(Category.position, Category.id)))
    index = next((i for i, c in enumerate(ordered) if c.id == category_id), None)
    if index is None or not 0 <= index + step < len(ordered):
        return False
    ordered[index], ordered[index + step] = ordered[index + step], ordered[index]
    for position, category in enumerate(ordered):  # renumber: old rows may share a position
        category.position = position
    session.commit()
    return True


def categories_screen(session: Session, lang: str, page: int) -> Screen:
    """🗂 Categories: each with its product count and ⬆️ ⬇️ ✏️ 🗑."""
    total = session.scalar(select(func.count(Category.id)))
    categories = session.execute(
        select(Category.id, Category.name, func.count(Product.id))
        .outerjoin(Product, Product.category_id == Category.id)
        .group_by(Category.id, Category.name, Category.position)
        .order_by(Category.position, Category.id).limit(ADMIN_CATEGORY_PAGE).offset(page * ADMIN_CATEGORY_PAGE))
    rows = [[ADMIN_CATEGORY.button(f"{name} ({count})", category_id=cid, page=0),
             CATEGORY_UP.button("⬆️", category_id=cid), CATEGORY_DOWN.button("⬇️", category_id=cid),
             RENAME_CATEGORY.button("✏️", category_id=cid), DELETE_CATEGORY.button("🗑", category_id=cid)]
            for cid, name, count in categories]
    return Screen(text(lang, "admin_categories"), keyboard(
        *rows, pager_row(lang, CATEGORIES, page, page_count(total, ADMIN_CATEGORY_PAGE)),
        [NEW_CATEGORY.button(label(lang, "btn_new_category"), for_new_product=0)],
        [ADMIN.button(label(lang, "btn_back"))]))


@handlers.tap(CATEGORIES)
def tap_categories(shop: Shop, call: types.CallbackQuery, session: Session, lang: str, page: int) -> Screen:
    """🗂 Categories."""
    return categories_screen(session, lang, page)


@handlers.tap(NEW_CATEGORY)
def tap_new_category(shop: Shop, call: types.CallbackQuery, session: Session, lang: str,
                     for_new_product: int) -> Screen:
    """➕ New category: from the Categories screen (0), or on the way to adding a product (1)."""
    return ask(session, call, "new_category", "admin_ask_category_name", for_new_product=bool(for_new_product))


def read_category_name(session: Session, message: types.Message, renaming: int | None = None) -> str:
    """A category's name, refused when another category has it already, in any case ("Guides", "guides")."""
    name = read_name(message)
    taken = session.scalar(select(Category.id).where(lowercase(Category.name) == name.lower(),
                                                     Category.id != (renaming or 0)).limit(1))
    if taken:
        raise InputError("err_category_exists")
    return name


@handlers.answer("new_category")
def answer_new_category(shop: Shop, message: types.Message, session: Session, lang: str, dialog: dict) -> Screen:
    """The new category's name."""
    last_position = session.scalar(select(func.max(Category.position))) or 0
    category = Category(name=read_category_name(session, message), position=last_position + 1)
    session.add(category)
    try:
        session.commit()
    except IntegrityError:
        raise InputError("err_category_exists") from None
    end_dialog(session, message)
    if dialog["for_new_product"]:  # straight on to the product that needed this category
        return kind_screen(lang, category.id, for_new_product=True)
    return categories_screen(session, lang, 0)


@handlers.tap(RENAME_CATEGORY)
def tap_rename_category(shop: Shop, call: types.CallbackQuery, session: Session, lang: str, category_id: int) -> Screen:
    """✏️ on a category: ask for its new name."""
    if session.get(Category, category_id) is None:
        return categories_screen(session, lang, 0)
    return ask(session, call, "rename_category", "admin_ask_category_name", category_id=category_id)


@handlers.answer("rename_category")
def answer_rename_category(shop: Shop, message: types.Message, session: Session, lang: str, dialog: dict) -> Screen:
    """A category's new name."""
    category = session.get(Category, dialog["category_id"])
    if category is not None:
        category.name = read_category_name(session, message, renaming=category.id)
        try:
            session.commit()
        except IntegrityError:
            raise InputError("err_category_exists") from None
    end_dialog(session, message)
    return categories_screen(session, lang, 0)


@handlers.tap(CATEGORY_UP)
def tap_category_up(shop: Shop, call: types.CallbackQuery, session: Session, lang: str, category_id: int) -> Screen:
    """⬆️ a category one place up (or why it did not move)."""
    moved = move_category(session, category_id, -1)
    return with_toast(categories_screen(session, lang, 0), None if moved else text(lang, "admin_category_first"))


@handlers.tap(CATEGORY_DOWN)
def tap_category_down(shop: Shop, call: types.CallbackQuery, session: Session, lang: str, category_id: int) -> Screen:
    """⬇️ a category one place down (or why it did not move)."""
    moved = move_category(session, category_id, +1)
    return with_toast(categories_screen(session, lang, 0), None if moved else text(lang, "admin_category_last"))


@handlers.tap(DELETE_CATEGORY)
def tap_delete_category(shop: Shop, call: types.CallbackQuery, session: Session, lang: str, category_id: int) -> Screen:
    """🗑 a category: only an empty one."""
    category = session.get(Category, category_id)
    has_products = session.scalar(select(Product.id).where(Product.category_id == category_id).limit(1))
    toast = text(lang, "admin_category_not_empty") if has_products else None
    if category is not None and not has_products:
        session.delete(category)
        session.commit()
        toast = text(lang, "admin_deleted")
    return with_toast(categories_screen(session, lang, 0), toast)


# ---------------------------------------------------------------------------
# Products: look, edit, hide, delete
# ---------------------------------------------------------------------------

def products_screen(session: Session, lang: str) -> Screen:
    """📦 Products: first, a category."""
    rows = [[ADMIN_CATEGORY.button(name, category_id=cid, page=0)] for cid, name in categories_in_order(session)]
    return Screen(text(lang, "admin_products"), keyboard(*rows, [ADMIN.button(label(lang, "btn_back"))]))


@handlers.tap(PRODUCTS)
def tap_products(shop: Shop, call: types.CallbackQuery, session: Session, lang: str) -> Screen:
    """📦 Products."""
    return products_screen(session, lang)


@handlers.tap(ADMIN_CATEGORY)
def tap_admin_category(shop: Shop, call: types.CallbackQuery, session: Session, lang: str, category_id: int,
                       page: int) -> Screen:
    """A category's products, hidden ones too (🙈)."""
    category = category_with_count(session, category_id, active_only=False)
    if category is None:
        return products_screen(session, lang)
    pages = page_count(category.total)
    products = products_page(session, category_id, min(page, pages - 1), PAGE_SIZE, active_only=False)
    rows = [[ADMIN_PRODUCT.button(("" if p.is_active else "🙈 ") + f"{p.name} — "
                                  + format_price(p.price, shop.config.currency), product_id=p.id)] for p in products]
    count = counted(lang, "n_products", category.total)
    return Screen(text(lang, "admin_category", name=category.name, products=count), keyboard(
        *rows, pager_row(lang, ADMIN_CATEGORY, page, pages, category_id=category_id),
        [PRODUCTS.button(label(lang, "btn_back"))]))


def file_kind(lang: str, file_type: str | None) -> str:
    """'photo', 'document' (in the admin's language), or — for none."""
    return label(lang, FILE_KINDS[file_type]) if file_type else "—"


def kind_details(session: Session, lang: str, product: Product) -> tuple[str, list]:
    """What a product's kind adds to its admin screen: the stock line (plain text), and its buttons."""
    if product.kind == SUBSCRIPTION:  # its subscribers, not a stock
        return subscribers_summary(session, lang, product)
    if product.kind == PAID_MEDIA:
        return media_summary(lang, product)
    left = stock_left(session, product)
    if left is None:
        return label(lang, "admin_stock", stock=label(lang, "admin_unlimited")), []
    buttons = [UPLOAD_STOCK.button(label(lang, "btn_upload_stock"), product_id=product.id)]
    if left:
        buttons.append(CLEAR_STOCK.button(label(lang, "btn_clear_stock"), product_id=product.id))
    return label(lang, "admin_stock", stock=counted(lang, "n_unsold_items", left)), buttons


def status_label(session: Session, lang: str, product: Product) -> str:
    """On sale, hidden, or, for a stocked product with no items, sold out until stock is uploaded."""
    if not product.is_active:
        return label(lang, "admin_hidden")
    return label(lang, "admin_sold_out_status" if stock_left(session, product) == 0 else "admin_on_sale")


def admin_product_screen(shop: Shop, session: Session, lang: str, product_id: int) -> Screen:
    """Everything about one product, its hidden content too, with ✏️ buttons for every field."""
    product = session.get(Product, product_id)
    sold = product_figures(session, product_id)  # sales as 📊 Sales counts them; free items and grants apart
    stock_line, kind_buttons = kind_details(session, lang, product)
    body = text(lang, "admin_product", stock=stock_line, id=product.id, name=product.name,
                category=product.category.name, price=format_price(product.price, shop.config.currency),
                status=status_label(session, lang, product),
                description=truncate(product.description, 1000), file=file_kind(lang, product.description_file_type),
                hidden=truncate(product.hidden_content, 1500), hidden_file=file_kind(lang, product.hidden_file_type),
                sales=number(sold["sales"]), revenue=format_price(sold["revenue"], shop.config.currency),
                free=number(sold["free"]), granted=number(sold["granted"]))
    edit_buttons = [EDIT_PRODUCT.button(label(lang, PRODUCT_FIELDS[i].button), product_id=product.id, field_index=i)
                    for i in fields_of(product.kind)]
    if product.kind not in FIXED_KINDS:  # a subscription or paid media stays one (change_kind)
        edit_buttons.append(EDIT_KIND.button(label(lang, "btn_edit_kind"), product_id=product.id))
    toggle = label(lang, "btn_hide" if product.is_active else "btn_show")
    protect = label(lang, "btn_protected_on" if product.protected else "btn_protected_off")
    return Screen(body, keyboard(
        edit_buttons[:2], edit_buttons[2:4], edit_buttons[4:], kind_buttons,
        [TOGGLE_PROTECTED.button(protect, product_id=product.id)],
        [TOGGLE_PRODUCT.button(toggle, product_id=product.id),
         DELETE_PRODUCT.button(label(lang, "btn_delete"), product_id=product.id)],
        [ADMIN_CATEGORY.button(label(lang, "btn_back"), category_id=product.category_id, page=0)]))


def product_or_list(shop: Shop, session: Session, lang: str, product_id: int) -> Screen:
    """A product's admin screen, or the list of categories when it was deleted meanwhile."""
    if session.get(Product, product_id) is None:
        return products_screen(session, lang)
    return admin_product_screen(shop, session, lang, product_id)


@handlers.tap(ADMIN_PRODUCT)
def tap_admin_product(shop: Shop, call: types.CallbackQuery, session: Session, lang: str, product_id: int) -> Screen:
    """A product, as the seller sees it."""
    return product_or_list(shop, session, lang, product_id)


@handlers.tap(EDIT_PRODUCT)
def tap_edit_product(shop: Shop, call: types.CallbackQuery, session: Session, lang: str, product_id: int,
                     field_index: int) -> Screen:
    """✏️ a field of a product: ask for its new value."""
    product = session.get(Product, product_id)
    if product is None or field_index not in fields_of(product.kind):
        return products_screen(session, lang)
    end_dialog(session, call)
    return ask_field(shop, session, call, "edit_product", PRODUCT_FIELDS[field_index],
                     session.get(Product, product_id).kind, product_id=product_id, field_index=field_index)


@handlers.answer("edit_product")
def answer_edit_product(shop: Shop, message: types.Message, session: Session, lang: str, dialog: dict) -> Screen:
    """A product field's new value, checked like in the add dialog."""
    product = session.get(Product, dialog["product_id"])
    values = read_field(shop, PRODUCT_FIELDS[dialog["field_index"]], message, product.kind if product else UNLIMITED)
    end_dialog(session, message)
    if product is None:
        return products_screen(session, lang)
    for name, value in values.items():
        setattr(product, name, value)
    session.commit()
    logger.info("Admin %s edited %s of product %s", message.from_user.id, list(values), product.id)
    return admin_product_screen(shop, session, lang, product.id)


@handlers.tap(EDIT_KIND)
def tap_edit_kind(shop: Shop, call: types.CallbackQuery, session: Session, lang: str, product_id: int) -> Screen:
    """✏️ Kind: unlimited or unique items."""
    product = session.get(Product, product_id)
    if product is None:
        return products_screen(session, lang)
    return kind_screen(lang, product_id, for_new_product=False, note=what_a_kind_change_does(session, lang, product))


@handlers.tap(TOGGLE_PRODUCT)
def tap_toggle_product(shop: Shop, call: types.CallbackQuery, session: Session, lang: str, product_id: int):
    """🙈 Hide / 👁 Show a product; shown again, it tells whoever waits for it (if it is in stock)."""
    product = session.get(Product, product_id)
    if product is not None:
        product.is_active = not product.is_active
        session.commit()
    screen = product_or_list(shop, session, lang, product_id)
    if product is not None and product.is_active and product.stocked:  # only a stocked product has a waiting list
        return screen, After(announce_restock, product_id)
    return screen


@handlers.tap(TOGGLE_PROTECTED)
def tap_toggle_protected(shop: Shop, call: types.CallbackQuery, session: Session, lang: str, product_id: int):
    """🔒 Protected on or off: its hidden content and paid media are sent with protect_content (no forwarding,
    no saving), the first time and from 📦 My purchases."""
    product = session.get(Product, product_id)
    if product is not None:
        product.protected = not product.protected
        session.commit()
        logger.info("Admin %s made product %s %s", call.from_user.id, product_id,
                    "protected" if product.protected else "unprotected")
    return product_or_list(shop, session, lang, product_id)


@handlers.tap(DELETE_PRODUCT)
def tap_delete_product(shop: Shop, call: types.CallbackQuery, session: Session, lang: str, product_id: int) -> Screen:
    """🗑 Delete: asks first; a product somebody bought is hidden instead, so buyers keep their access."""
    product = session.get(Product, product_id)
    if product is None:
        return products_screen(session, lang)
    if session.scalar(select(Purchase.id).where(Purchase.product_id == product_id).limit(1)):
        product.is_active = False
        session.commit()
        return with_toast(admin_product_screen(shop, session, lang, product_id), text(lang, "admin_hidden_not_deleted"))
    return Screen(text(lang, "admin_confirm_delete", name=product.name), keyboard(
        [CONFIRM_DELETE_PRODUCT.button(label(lang, "btn_delete"), product_id=product_id),
         ADMIN_PRODUCT.button(label(lang, "btn_back"), product_id=product_id)]))


@handlers.tap(CONFIRM_DELETE_PRODUCT)
def tap_confirm_delete_product(shop: Shop, call: types.CallbackQuery, session: Session, lang: str,
                               product_id: int) -> Screen:
    """🗑 Delete, confirmed."""
    product = session.get(Product, product_id)
    if product is None or product.purchases:  # bought meanwhile: never delete a sale's product
        return tap_delete_product(shop, call, session, lang, product_id)
    category_id = product.category_id
    session.delete(product)
    session.commit()
    logger.info("Admin %s deleted product %s", call.from_user.id, product_id)
    screen = tap_admin_category(shop, call, session, lang, category_id, 0)
    return with_toast(screen, text(lang, "admin_deleted"))


def register(bot: TeleBot, shop: Shop) -> None:
    """Wire the panel into the bot."""
    add_handlers(shop, handlers)
