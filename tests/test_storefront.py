"""The storefront (storefront.py): menu, catalog, product cards, deep links and search."""
from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from conftest import (
    ADMIN_ID,
    VOICE,
    Person,
    admin_texts,
    buttons,
    set_product,
)
from models import Product, User
from shopkit import callback, is_id, screens

HERE = Path(__file__).resolve().parent.parent  # the project's root


def test_start_greets_by_name_and_saves_the_user(shop, alice):
    alice.user["first_name"] = "<b>Al & Co</b>"
    alice.sends("/start")
    assert "Hello, <b>Al & Co</b>!" in alice.last_text()
    assert alice.button_labels() == ["🛍 Catalog", "📦 My purchases", "❓ Help"]
    with shop.Session() as session:
        assert session.scalar(select(User.username).where(User.telegram_id == alice.id)) == "alice"


def test_start_updates_a_changed_username_and_language(shop, alice):
    alice.sends("/start")
    alice.user.update(username="alice2", language_code="ru")
    alice.sends("/start")
    with shop.Session() as session:
        user = session.scalar(select(User).where(User.telegram_id == alice.id))
        assert (user.username, user.language_code) == ("alice2", "ru")
        assert session.query(User).count() == 1
    assert "Здравствуйте" in alice.last_text()


def test_a_customer_reaches_a_product_in_three_taps_and_goes_back(shop, alice):
    shop.add_product("Netflix 1 month", price=150, description="One month of Netflix.")
    alice.sends("/start")
    alice.taps("Catalog")
    assert alice.button_labels() == ["Keys (1)", "⬅️ Back"]
    alice.taps("Keys")
    assert alice.button_labels() == ["Netflix 1 month — 150 ⭐", "⬅️ Back"]
    alice.taps("Netflix")
    assert alice.last_text() == "Netflix 1 month\n💰 150 ⭐\n\nOne month of Netflix."
    assert alice.button_labels() == ["Buy for 150 ⭐", "🏷 Promo code", "🎁 Buy as a gift", "⬅️ Back"]
    alice.taps("Back")
    assert "Keys" in alice.last_text()
    assert len(shop.api.messages(alice.id)) == 1  # one message, edited in place


def test_catalog_hides_empty_categories_and_counts_products_on_sale(shop, alice):
    games = shop.add_category("Games", position=2)
    keys = shop.add_category("Keys", position=1)
    shop.add_category("Empty", position=0)
    shop.add_product("A", category=games)
    shop.add_product("B", category=keys)
    shop.add_product("C", category=keys)
    shop.add_product("Hidden", category=keys, is_active=False)
    alice.sends("/catalog")
    assert alice.button_labels() == ["Keys (2)", "Games (1)", "⬅️ Back"]


def test_an_empty_shop_says_it_is_being_stocked(shop, alice):
    alice.sends("/catalog")
    assert "being stocked" in alice.last_text()
    assert alice.button_labels() == ["⬅️ Back"]


def test_a_category_of_20_products_has_three_pages(shop, alice):
    category = shop.add_category("Keys")
    for n in range(20):
        shop.add_product(f"Key {n:02d}", price=10 + n, category=category)
    alice.sends("/catalog")
    alice.taps("Keys")
    assert alice.button_labels()[:8] == [f"Key {n:02d} — {10 + n} ⭐" for n in range(8)]
    assert alice.button_labels()[8:] == ["1/3", "Next ▶️", "⬅️ Back"]
    alice.taps("Next")
    assert alice.button_labels()[0] == "Key 08 — 18 ⭐"
    assert alice.button_labels()[8:] == ["◀️ Prev", "2/3", "Next ▶️", "⬅️ Back"]
    alice.taps("Next")
    assert alice.button_labels() == [f"Key {n} — {10 + n} ⭐" for n in range(16, 20)] + ["◀️ Prev", "3/3",
                                                                                        "⬅️ Back"]
    alice.taps("Key 17")
    alice.taps("Back")  # back to the page the customer came from
    assert "3/3" in alice.button_labels()
    alice.taps("3/3")  # the page indicator does nothing, but is answered
    assert shop.api.of("answerCallbackQuery")[-1].params == {"callback_query_id": shop.api.calls[-1].params[
        "callback_query_id"]}


def test_a_page_that_no_longer_exists_shows_the_last_one(shop, alice):
    category = shop.add_category("Keys")
    for n in range(10):
        shop.add_product(f"Key {n}", category=category)
    alice.taps_data(callback("category", category.id, 7))
    assert alice.button_labels() == ["Key 8 — 25 ⭐", "Key 9 — 25 ⭐", "◀️ Prev", "2/2", "⬅️ Back"]
    assert alice.last_toast() == "That page no longer exists."


def test_product_card_with_a_photo_is_sent_as_a_photo_with_caption(shop, alice):
    shop.add_product("Poster", description_file_id="PHOTO-9", description_file_type="photo")
    alice.sends("/catalog")
    alice.taps("Keys")
    alice.taps("Poster")
    photo = shop.api.of("sendPhoto")[-1].params
    assert photo["photo"] == "PHOTO-9" and "Poster" in photo["caption"]
    assert alice.button_labels() == ["Buy for 25 ⭐", "🏷 Promo code", "🎁 Buy as a gift", "⬅️ Back"]
    assert shop.api.of("deleteMessage")  # the old text screen made way for the photo
    alice.taps("Back")
    assert "Choose a product" in alice.last_text()


def test_a_long_card_with_a_document_puts_the_text_below_the_file(shop, alice):
    shop.add_product("Manual", description="x" * 2000, description_file_id="DOC-9",
                     description_file_type="document")
    alice.sends("/catalog")
    alice.taps("Keys")
    alice.taps("Manual")
    document = shop.api.of("sendDocument")[-1].params
    assert document["document"] == "DOC-9" and not document.get("caption")
    assert alice.last_text().startswith("Manual") and alice.button_labels()[0] == "Buy for 25 ⭐"


def test_deep_link_opens_the_product_card(shop, alice):
    product = shop.add_product("Netflix", price=150)
    alice.sends(f"/start p_{product.id}")
    assert alice.last_text().startswith("Netflix")
    assert alice.button_labels() == ["Buy for 150 ⭐", "🏷 Promo code", "🎁 Buy as a gift", "⬅️ Back"]


@pytest.mark.parametrize("argument", ["p_999", "p_", "p_-1", "p_12abc", "junk<>&", "p_" + "9" * 40, "p_²"])
def test_a_deep_link_to_nothing_says_so_and_shows_the_menu(shop, alice, argument):
    shop.add_product("Hidden", is_active=False)
    alice.sends(f"/start {argument}")
    assert alice.button_labels() == ["🛍 Catalog", "📦 My purchases", "❓ Help"]
    if argument.startswith("p_") and is_id(argument[2:]):
        assert "not available" in alice.last_text()


def test_deep_link_to_a_hidden_product_says_it_is_gone(shop, alice):
    product = shop.add_product("Hidden", is_active=False)
    alice.sends(f"/start p_{product.id}")
    assert "not available any more" in alice.last_text()


def test_seller_text_is_escaped_everywhere(shop, alice):
    category = shop.add_category("<i>Tom & Jerry</i>")
    shop.add_product("<b>&", price=5, description="<script>alert(1)</script> & co", category=category)
    alice.sends("/catalog")
    assert alice.button_labels()[0] == "<i>Tom & Jerry</i> (1)"
    alice.taps("Tom")
    assert "<i>Tom & Jerry</i>" in alice.last_text()
    alice.taps("<b>&")
    assert alice.last_text() == "<b>&\n💰 5 ⭐\n\n<script>alert(1)</script> & co"
    assert "&lt;b&gt;&amp;" in shop.api.of("editMessageText")[-1].params["text"]


def test_free_and_owned_products_have_the_right_button(shop, alice):
    free = shop.add_product("Guide", price=0)
    alice.sends(f"/start p_{free.id}")
    assert alice.button_labels()[0] == "Get for free"
    assert "Free" in alice.last_text()
    alice.taps("Get for free")
    alice.sends(f"/start p_{free.id}")
    assert alice.button_labels()[0] == "✅ Yours — open"


def test_russian_speakers_get_russian(shop):
    ivan = Person(shop, 2001, "Иван", language_code="ru")
    shop.add_product("Ключ", price=100)
    ivan.sends("/start")
    assert "Здравствуйте, Иван" in ivan.last_text()
    assert ivan.button_labels() == ["🛍 Каталог", "📦 Мои покупки", "❓ Помощь"]
    ivan.taps("Каталог")
    ivan.taps("Keys")
    ivan.taps("Ключ")
    assert ivan.button_labels() == ["Купить за 100 ⭐", "🏷 Промокод", "🎁 Купить в подарок", "⬅️ Назад"]


def test_help_and_commands(shop, alice):
    alice.sends("/help")
    assert "/paysupport" in alice.last_text() and "/purchases" in alice.last_text()
    alice.taps("Help")
    assert "How it works" in alice.last_text()
    alice.sends("/terms")
    assert "Terms of sale" in alice.last_text()


@pytest.mark.parametrize("send", [
    lambda p: p.sends_sticker(), lambda p: p.sends_photo(), lambda p: p.sends_document(),
    lambda p: p.sends("/unknown"), lambda p: p.sends_content(**VOICE),
], ids=["sticker", "photo", "document", "unknown command", "voice"])
def test_anything_else_gets_a_hint_and_the_menu(shop, alice, send):
    send(alice)
    assert "/help" in alice.last_text()
    assert alice.button_labels() == ["🛍 Catalog", "📦 My purchases", "❓ Help"]


def test_tapping_the_screen_you_are_on_edits_nothing(shop, alice, caplog):
    alice.sends("/catalog")
    alice.taps("Back")
    alice.taps("Catalog")
    edits = len(shop.api.of("editMessageText"))
    alice.taps_data(callback("catalog"))  # the same screen again: Telegram would say "message is not modified"
    assert len(shop.api.of("editMessageText")) == edits
    assert len(alice.callback_answers()) == 3


def test_a_message_is_not_modified_answer_is_not_an_error(shop, alice, caplog):
    alice.sends("/start")
    shop.api.fail("editMessageText", 400, "Bad Request: message is not modified: specified new message content "
                  "and reply markup are exactly the same as a current content and reply markup of the message")
    alice.taps("Catalog")
    assert "Error" not in caplog.text and alice.last_toast() is None


def test_a_screen_that_cannot_be_edited_is_sent_anew(shop, alice):
    alice.sends("/start")
    gone = {"message_id": 99999, "date": 1, "chat": {"id": alice.id, "type": "private"}, "text": "old"}
    alice.taps_data(callback("catalog"), gone)
    assert "being stocked" in alice.last_text()


@pytest.mark.parametrize("query, found", [
    ("netflix", ["Netflix 1 month"]),
    ("NETFLIX month", ["Netflix 1 month"]),
    ("ключ", ["Ключ Office", "Windows key"]),  # in a name and in a description, any case
    ("КЛЮЧ ОФИС", ["Ключ Office"]),  # one word in the name, the other in the description
    ("netflix ключ", []),  # every word must match
    ("офис", ["Ключ Office"]),
    ("100%", ["Discount"]),  # % is a character here, not a wildcard
    ("_", []),
])
def test_search_finds_products_in_any_case_and_alphabet(shop, alice, query, found):
    shop.add_product("Netflix 1 month", description="Streaming for a month")
    shop.add_product("Ключ Office", description="Лицензия для ОФИСА")
    shop.add_product("Windows key", description="Лицензионный КЛЮЧ")
    shop.add_product("Discount", description="100% off the second")
    shop.add_product("Hidden Netflix", description="ключ", is_active=False)
    alice.sends(query)
    assert [label.rsplit(" — ", 1)[0] for label in alice.button_labels()[:-2]] == found
    alice.sends(f"/search {query}")
    assert [label.rsplit(" — ", 1)[0] for label in alice.button_labels()[:-2]] == found


def test_search_results_are_paginated(shop, alice):
    for n in range(10):
        shop.add_product(f"Course {n}")
    alice.sends("course")
    assert "10 found" in alice.last_text()
    assert alice.button_labels()[8:] == ["1/2", "Next ▶️", "🛍 Catalog", "🏠 Menu"]
    alice.taps("Next")
    assert alice.button_labels()[:2] == ["Course 8 — 25 ⭐", "Course 9 — 25 ⭐"]
    alice.taps("Course 9")
    assert alice.last_text().startswith("Course 9")


def test_nothing_found_says_so_with_a_way_on(shop, alice):
    alice.sends("hello")
    assert "Nothing found for «hello»" in alice.last_text()
    assert alice.button_labels() == ["🛍 Catalog", "🏠 Menu"]
    alice.sends("/search")
    assert "/search netflix" in alice.last_text()


@pytest.mark.parametrize("lang, counts", [
    ("en", {1: "1 product", 2: "2 products", 5: "5 products", 21: "21 products"}),
    ("ru", {1: "1 товар", 2: "2 товара", 5: "5 товаров", 11: "11 товаров", 21: "21 товар", 22: "22 товара",
            112: "112 товаров"}),
])
def test_counted_words_take_the_right_form(lang, counts):
    assert {n: screens.counted(lang, "n_products", n) for n in counts} == counts


def test_russian_screens_speak_only_russian(shop):
    seller = Person(shop, ADMIN_ID, "Продавец", language_code="ru")
    ivan = Person(shop, 2001, "Иван", language_code="ru")
    seller.sends("/start")
    product = shop.add_product("Ключ", price=100, description_file_id="PHOTO-1", description_file_type="photo")
    ivan.taps_data(callback("buy", product.id))
    ivan.pays()
    ivan.sends("/paysupport")
    ivan.sends("Не работает")
    assert "💬 Ответить" in [b["text"] for m in shop.api.messages(ADMIN_ID) for b in buttons(m)]
    seller.taps_data(callback("admin_purchase", 1))
    seller_screen = seller.last_text()
    assert "Оплата: звёзды Telegram" in seller_screen and "stars" not in seller_screen
    seller.taps_data(callback("admin_product", product.id))
    assert "Файл описания: фото" in seller.last_text() and "photo" not in seller.last_text()
    assert "Новая продажа: «Ключ» — 100 ⭐ (звёзды Telegram)" in admin_texts(shop)


def test_the_pager_buttons_are_told_apart_from_back_in_russian(shop):
    ivan = Person(shop, 2001, "Иван", language_code="ru")
    category = shop.add_category("Ключи")
    for n in range(20):
        shop.add_product(f"Ключ {n:02d}", category=category)
    ivan.taps_data(callback("category", category.id, 1))
    labels = ivan.button_labels()
    assert "◀️ Предыдущие" in labels and "Следующие ▶️" in labels and labels.count("⬅️ Назад") == 1


@pytest.mark.parametrize("query, found", [
    ("4k", ["Monitor 4K"]),  # too short for the text index, still found
    ("monitor 4K", ["Monitor 4K"]),
    ("tv", ["Smart box"]),  # in the description
    ("я", ["Ключ Office"]),
    ("4k tv", []),
])
def test_words_of_one_or_two_characters_are_found_too(shop, alice, query, found):
    shop.add_product("Monitor 4K", description="27 inches")
    shop.add_product("Smart box", description="Turns any TV into a smart one")
    shop.add_product("Ключ Office", description="Лицензия")
    shop.add_product("Hidden 4K", is_active=False)
    alice.sends(query)
    assert [label.rsplit(" — ", 1)[0] for label in alice.button_labels()[:-2]] == found


@pytest.mark.parametrize("query", ['"netflix"', 'netflix"', 'net*', "NEAR(netflix month)", "netflix OR x",
                                   "-netflix", "name:netflix", "^netflix", "(netflix", "\\"])
def test_search_syntax_in_a_query_is_taken_literally(shop, alice, query):
    shop.add_product("Netflix 1 month")
    shop.add_product('Say "netflix"', description="net* name:netflix ^netflix NEAR(netflix month) OR x \\ -netflix")
    alice.sends(query)
    assert [label.rsplit(" — ", 1)[0] for label in alice.button_labels()[:-2]] == ['Say "netflix"']


def test_a_nul_character_in_a_search_is_a_space(shop, alice):
    shop.add_product("Netflix 1 month")
    alice.sends("netflix\x00month")  # PostgreSQL refuses NUL in a text, and FTS5 would end the query at it
    assert alice.last_text() == "🔎 «netflix month»: 1 found"


def test_the_search_index_follows_renamed_and_deleted_products(shop, alice):
    kept, gone = shop.add_product("Old name"), shop.add_product("Old name too")
    set_product(shop, kept.id, name="New title", description="Fresh words")
    with shop.Session() as session:
        session.delete(session.get(Product, gone.id))
        session.commit()
    alice.sends("old name")
    assert "Nothing found" in alice.last_text()
    alice.sends("title fresh")
    assert alice.button_labels()[0].startswith("New title")


def test_a_search_that_matches_too_much_shows_the_first_ten_pages(shop, alice):
    category = shop.add_category("Courses")
    with shop.Session() as session:
        session.add_all(Product(category_id=category.id, name=f"Course {n}", price=5) for n in range(85))
        session.commit()
    alice.sends("course")
    assert alice.last_text() == ("🔎 «course»: more than 80 found. Here are the first 80; add a word to narrow "
                                 "the search.")
    assert alice.button_labels()[8:] == ["1/10", "Next ▶️", "🛍 Catalog", "🏠 Menu"]
    alice.taps_data(callback("search_page", 9))
    assert alice.button_labels()[0] == "Course 72 — 5 ⭐"
    assert alice.button_labels()[8:10] == ["◀️ Prev", "10/10"]
    alice.sends("course 84")
    assert alice.last_text() == "🔎 «course 84»: 1 found"
