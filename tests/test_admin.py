"""The seller's panel (admin.py): adding and editing products and categories."""
from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

import shopbot
from conftest import (
    ADMIN_ID,
    Person,
    ShopUnderTest,
    add_stock,
    admin_texts,
    start_adding_a_product,
)
from models import Category, Product
from shopkit import callback

HERE = Path(__file__).resolve().parent.parent  # the project's root


def test_seller_adds_a_product_with_a_photo_and_a_hidden_file(shop, seller, alice):
    seller.sends("/admin")
    seller.taps("Add product")
    seller.taps("New category")
    seller.sends("E-books")
    assert "What does each buyer receive?" in seller.last_text()
    seller.taps("The same content")
    assert "product's name" in seller.last_text()
    seller.sends("Python <3")
    seller.sends("4.5")
    assert "A price in Stars is a whole number: send e.g. 150" in seller.last_text()  # asked again
    seller.sends("45")
    seller.sends("A friendly book & exercises.")
    seller.sends_photo("COVER")
    seller.sends_document("BOOK-PDF", caption="Your password: py3")
    assert "Preview" in seller.all_texts()
    preview = shop.api.of("sendPhoto")[-1].params
    assert preview["photo"] == "COVER" and "Python &lt;3" in preview["caption"] and "45 ⭐" in preview["caption"]
    seller.taps("Save")
    with shop.Session() as session:
        product = session.scalar(select(Product))
        assert (product.name, product.price, product.category.name) == ("Python <3", 45, "E-books")
        assert (product.description_file_id, product.description_file_type) == ("COVER", "photo")
        assert (product.hidden_file_id, product.hidden_file_type, product.hidden_content) == (
            "BOOK-PDF", "document", "Your password: py3")
        assert product.is_active
    alice.sends("/catalog")
    assert alice.button_labels()[0] == "E-books (1)"


@pytest.mark.parametrize("field, bad, reason", [
    ("name", "N" * 65, "at most 64"),
    ("name", None, "need a text"),  # a sticker
    ("price", "ten", "not a price"),
    ("price", "1²", "not a price"),
    ("price", "-5", "not a price"),
    ("price", "1.5", "A price in Stars is a whole number"),
    ("price", "100001", "at most 100\u202f000 ⭐"),  # one number format: a narrow no-break space
    ("description", "d" * 3501, "at most 3500"),
    ("description_file", "a text", "photo or a document"),
    ("hidden", None, "need a text"),
])
def test_bad_input_is_explained_and_asked_again(shop, seller, field, bad, reason):
    shop.add_category("Keys")
    answers = {"name": "Key", "price": "10", "description": "About", "description_file": "/skip"}
    start_adding_a_product(seller, "Keys")
    for step, value in answers.items():
        if step == field:
            break
        seller.sends(value)
    seller.sends_sticker() if bad is None else seller.sends(bad)
    assert reason in seller.last_text() and "/cancel" in seller.last_text()
    seller.sends("/cancel")
    assert "Cancelled" in seller.last_text()
    seller.sends("Key")  # no dialog any more: a plain text
    with shop.Session() as session:
        assert session.query(Product).count() == 0


def test_a_free_product_and_skipping_the_description_file(shop, seller):
    shop.add_category("Keys")
    start_adding_a_product(seller, "Keys")
    for answer in ["Guide", "0", "Free guide", "/skip", "https://example.com/guide"]:
        seller.sends(answer)
    assert "Get for free" not in seller.all_texts()  # the preview is the card, without the buy button
    seller.taps("Save")
    with shop.Session() as session:
        product = session.scalar(select(Product))
        assert (product.price, product.description_file_id, product.hidden_content) == (
            0, None, "https://example.com/guide")


@pytest.mark.parametrize("command, leaves", [("/admin", True), ("/start", True), ("/help", False),
                                              ("/catalog", False)])
def test_a_command_is_never_taken_as_a_dialog_answer(shop, seller, command, leaves):
    shop.add_category("Keys")
    start_adding_a_product(seller, "Keys")
    seller.sends(command)
    seller.sends("Pro")
    if leaves:  # no dialog any more: a plain text is a search
        assert "Nothing found for «Pro»" in seller.last_text()
    else:  # the dialog goes on: "Pro" is the product's name, the price comes next
        assert "Send the price" in seller.last_text()
    with shop.Session() as session:
        assert session.query(Product).count() == 0


def test_text_sent_where_buttons_are_expected_is_explained(shop, seller):
    shop.add_category("Keys")
    start_adding_a_product(seller, "Keys")
    for answer in ["Guide", "1", "About", "/skip", "KEY"]:
        seller.sends(answer)
    seller.sends("save please")
    assert "Use the buttons" in seller.last_text()
    seller.taps("Save")
    with shop.Session() as session:
        assert session.query(Product).count() == 1


def test_a_price_prompt_suggests_what_the_shops_currency_takes(shop, card_shop, seller):
    product = shop.add_product("Pro", price=25)
    seller.taps_data(callback("edit_product", product.id, 1))  # ✏️ Price, in a Stars shop
    assert "e.g. 150." in seller.last_text()
    seller.sends("abc")
    assert "Send a number such as 150." in seller.last_text() and "9.99" not in seller.last_text()
    seller.sends("150")
    assert "Price: 150 ⭐" in seller.last_text()
    card_product = card_shop.add_product("Pro", price=999)
    card_seller = Person(card_shop, ADMIN_ID, "Seller")
    card_seller.taps_data(callback("edit_product", card_product.id, 1))  # in a USD shop
    card_seller.sends("abc")
    assert "Send a number such as 9.99." in card_seller.last_text() and "150" not in card_seller.last_text()
    card_seller.sends("9.99")
    assert "Price: $9.99" in card_seller.last_text()


def test_seller_edits_a_price_with_the_same_validation(shop, seller, alice):
    product = shop.add_product("Pro", price=25, hidden="KEY-1")
    seller.taps_data(callback("admin_product", product.id))
    assert "KEY-1" in seller.last_text() and "Sold: 0" in seller.last_text()
    seller.taps("Price")
    seller.sends("abc")
    assert "not a price" in seller.last_text()
    seller.sends("30")
    assert "Price: 30 ⭐" in seller.last_text()
    alice.sends(f"/start p_{product.id}")
    assert alice.button_labels()[0] == "Buy for 30 ⭐"


def test_hiding_showing_and_deleting_products(shop, seller, alice):
    sold = shop.add_product("Sold", price=0)
    unsold = shop.add_product("Unsold", price=5)
    alice.taps_data(callback("buy", sold.id))
    seller.taps_data(callback("admin_product", unsold.id))
    seller.taps("Hide")
    assert "hidden" in seller.last_text()
    alice.sends(f"/start p_{unsold.id}")
    assert "not available" in alice.last_text()
    seller.taps_data(callback("admin_product", unsold.id))
    seller.taps("Show")
    seller.taps("Delete")
    assert "for good" in seller.last_text()
    seller.taps("Delete")
    seller.taps_data(callback("admin_product", sold.id))
    seller.taps("Delete")
    assert "hidden instead" in seller.last_toast()
    with shop.Session() as session:
        assert session.get(Product, unsold.id) is None
        assert session.get(Product, sold.id).is_active is False
    alice.sends("/purchases")
    alice.taps("Sold")
    assert "KEY-123" in alice.last_text()  # buyers keep their access


def test_a_deleted_products_id_is_never_given_again_and_its_link_says_it_is_gone(shop, seller, alice):
    shop.add_product("Old")
    newest = shop.add_product("Newest")
    alice.sends(f"/start p_{newest.id}")  # a card with its buttons, kept in Alice's chat
    seller.taps_data(callback("confirm_delete_product", newest.id))
    assert shop.add_product("Another").id > newest.id  # SQLite without AUTOINCREMENT would give it newest's id
    alice.sends(f"/start p_{newest.id}")  # the old link
    assert "this item was removed from the shop" in alice.last_text() and "Another" not in alice.last_text()
    alice.taps_data(callback("buy", newest.id))  # the old card's button
    assert alice.last_toast() == "This item was removed from the shop."
    alice.taps_data(callback("product", newest.id, 0))
    assert alice.last_toast() == "This item was removed from the shop."


def test_products_list_marks_hidden_ones(shop, seller):
    category = shop.add_category("Keys")
    shop.add_product("Visible", category=category)
    shop.add_product("Secret", category=category, is_active=False)
    seller.sends("/admin")
    seller.taps("Products")
    seller.taps("Keys")
    assert seller.button_labels()[:2] == ["Visible — 25 ⭐", "🙈 Secret — 25 ⭐"]


def test_categories_rename_reorder_and_delete_when_empty(shop, seller):
    first, second = shop.add_category("First", 0), shop.add_category("Second", 0)
    shop.add_product("P", category=first)
    seller.sends("/admin")
    seller.taps("Categories")
    assert [b for b in seller.button_labels() if "(" in b] == ["First (1)", "Second (0)"]
    seller.taps_data(callback("category_down", first.id))
    assert [b for b in seller.button_labels() if "(" in b] == ["Second (0)", "First (1)"]
    seller.taps_data(callback("rename_category", second.id))
    seller.sends("First")
    assert "already exists" in seller.last_text()
    seller.sends("Renamed")
    assert "Renamed (0)" in seller.button_labels()
    seller.taps_data(callback("delete_category", first.id))
    assert seller.last_toast() == "Only an empty category can be deleted."
    seller.taps_data(callback("delete_category", second.id))
    with shop.Session() as session:
        assert [c.name for c in session.scalars(select(Category))] == ["First"]
    seller.taps("New category")
    seller.sends("Third")
    assert [b for b in seller.button_labels() if "(" in b] == ["First (1)", "Third (0)"]  # no product dialog
    seller.sends("Not a product")
    assert "Nothing found" in seller.last_text()


def test_card_prices_are_read_the_human_way(card_shop):
    seller = Person(card_shop, ADMIN_ID, "Seller")
    seller.sends("/start")
    card_shop.add_category("Courses")
    start_adding_a_product(seller, "Courses")
    seller.sends("Course")
    seller.sends("9.999")
    assert "2 decimal places" in seller.last_text()
    seller.sends("9,99")  # a decimal comma is fine
    seller.sends("About")
    seller.sends("/skip")
    seller.sends("https://example.com/course")
    assert "💰 $9.99" in seller.all_texts()
    seller.taps("Save")
    with card_shop.Session() as session:
        assert session.scalar(select(Product.price)) == 999


def test_sale_alerts_can_be_switched_off(shop, seller, alice):
    product = shop.add_product("Pro", price=0)
    seller.sends("/admin")
    seller.taps("Sale alerts: on")
    assert "🔕 Sale alerts: off" in seller.button_labels()
    alice.taps_data(callback("buy", product.id))
    product2 = shop.add_product("Pro 2", price=5)
    alice.taps_data(callback("buy", product2.id))
    alice.pays()
    assert "New sale" not in admin_texts(shop)


def test_the_seller_picks_a_products_kind_and_can_change_it(shop, seller, alice):
    shop.add_category("Cards")
    start_adding_a_product(seller, "Cards", kind="A unique item")
    for answer in ["Gift card", "10", "A code for the store", "/skip", "Redeem at example.com"]:
        seller.sends(answer)
    seller.taps("Save")
    assert "Stock: 0 unsold items" in seller.last_text() and "📥 Upload stock" in seller.button_labels()
    with shop.Session() as session:
        product = session.scalar(select(Product))
        assert product.kind == "stocked"
    alice.sends(f"/start p_{product.id}")
    assert "❌ Sold out" in alice.last_text()  # until the seller uploads codes
    seller.taps("Kind")
    seller.taps("The same content")
    assert "Stock: unlimited" in seller.last_text() and "📥 Upload stock" not in seller.button_labels()
    alice.sends(f"/start p_{product.id}")
    assert alice.button_labels()[0] == "Buy for 10 ⭐"


def test_a_stocked_product_without_items_says_it_is_sold_out_with_upload_at_hand(shop, seller):
    shop.add_category("Cards")
    start_adding_a_product(seller, "Cards", kind="A unique item")
    for answer in ["Gift card", "10", "A code for the store", "/skip", "Redeem at example.com"]:
        seller.sends(answer)
    seller.taps("Save")
    assert "Status: ❌ sold out until you upload stock" in seller.last_text()
    assert "on sale" not in seller.last_text() and "📥 Upload stock" in seller.button_labels()


def test_changing_a_products_kind_says_first_what_becomes_of_its_unsold_items(shop, seller, alice):
    product = shop.add_product("Key", price=10, kind="stocked")
    add_stock(shop, product, "KEY-A", "KEY-B", "KEY-C")
    seller.taps_data(callback("admin_product", product.id))
    seller.taps("Kind")
    assert "with 3 unsold items. Switched to ♾ the same content for everyone, those items are kept but no longer " \
           "sold" in seller.last_text()
    seller.taps("The same content")
    assert "Stock: unlimited" in seller.last_text()
    seller.taps("Kind")
    assert "it sells the 3 unsold items kept from before" in seller.last_text()
    seller.taps("A unique item")
    assert "Stock: 3 unsold items" in seller.last_text()
    fresh = shop.add_product("Guide", price=10)
    seller.taps_data(callback("edit_kind", fresh.id))
    assert "it is sold out until you upload stock" in seller.last_text()


def test_a_subscriptions_screen_has_no_stock_line_in_russian(shop, seller):
    product = shop.add_product("VIP", price=300, kind="subscription", chat_id=-100, chat_title="VIP")
    ru_seller = Person(shop, ADMIN_ID, "Seller", language_code="ru")
    ru_seller.taps_data(callback("admin_product", product.id))
    assert "Наличие:" not in ru_seller.last_text() and "📅 «VIP»: 0 подписчиков" in ru_seller.last_text()


def test_a_draft_survives_a_restart(shop, seller, config):
    shop.add_category("Keys")
    start_adding_a_product(seller, "Keys")
    seller.sends("Pro license")
    seller.sends("25")
    restarted = shopbot.create_bot(config, threaded=False)  # the bot restarts in the middle of the dialog
    try:
        seller.shop = ShopUnderTest(restarted, shop.api)
        for answer in ["A licence", "/skip", "KEY"]:
            seller.sends(answer)
        seller.taps("Save")
        assert seller.shop.purchases() == [] and "Saved" in seller.last_toast()
        with shop.Session() as session:
            assert session.scalar(select(Product.name)) == "Pro license"
    finally:
        seller.shop.close()


def test_the_price_question_names_the_shops_currency_with_an_example_that_parses(shop, seller):
    shop.add_category("Keys")
    start_adding_a_product(seller, "Keys")
    seller.sends("Key")
    assert "Send the price in Stars, e.g. 150." in seller.last_text()
    seller.sends("150")  # the example is a price the shop accepts
    assert "description" in seller.last_text()


def test_a_card_shop_asks_the_price_in_its_currency(card_shop):
    seller = Person(card_shop, ADMIN_ID, "Seller", language_code="ru")
    seller.sends("/start")
    card_shop.add_category("Courses")
    seller.sends("/admin")
    seller.taps("Добавить товар")
    seller.taps("Courses")
    seller.taps("Одно и то же")
    seller.sends("Course")
    assert "Отправьте цену в USD, например 9.99." in seller.last_text() and "звёзд" not in seller.last_text()
    seller.sends("9.99")
    assert "описание" in seller.last_text()


def test_category_names_that_differ_only_in_case_are_refused(shop, seller):
    shop.add_category("Guides")
    seller.sends("/admin")
    seller.taps("Categories")
    seller.taps("New category")
    seller.sends("guides")
    assert "already exists" in seller.last_text()
    seller.sends("ГАЙДЫ")
    with shop.Session() as session:
        assert sorted(session.scalars(select(Category.name))) == ["Guides", "ГАЙДЫ"]


def test_moving_the_first_category_up_says_why_nothing_moved(shop, seller):
    first, last = shop.add_category("First", 0), shop.add_category("Last", 1)
    seller.sends("/admin")
    seller.taps("Categories")
    seller.taps_data(callback("category_up", first.id))
    assert seller.last_toast() == "It is first already."
    seller.taps_data(callback("category_down", last.id))
    assert seller.last_toast() == "It is last already."
