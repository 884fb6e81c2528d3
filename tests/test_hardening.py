"""Hostile input, forged buttons, Telegram errors and many customers at once (routes.py, shop.py)."""
from __future__ import annotations

import inspect
import logging
import sqlite3
import threading
import time
import warnings
from pathlib import Path

import pytest
from sqlalchemy import select

import storefront
from conftest import (
    CONTACT,
    LOCATION,
    VOICE,
    Person,
    add_stock,
    admin_texts,
    start_adding_a_product,
    stock_of,
    upload_stock,
)
from models import PAID_MEDIA, Category, Product, Purchase, User
from shopkit import MAX_ID, After, Handlers, Screen, Tap, Toast, callback, screens, show_reply

HERE = Path(__file__).resolve().parent.parent  # the project's root


V = screens.CALLBACK_VERSION
FORGED_CALLBACK_DATA = [
    "", "garbage", "x" * 64, V, f"{V}:", f"{V}:nope",  # not ours at all
    "1:cats", "1:cat:3:0",  # buttons from before the upgrade (callback data version 1)
    callback("category"), callback("category", 1), callback("category", 1, 0, 0),  # a wrong number of arguments
    f"{V}:category:a:0", f"{V}:category:-1:0", f"{V}:category:²:0", f"{V}:product:١٢:0",  # not ASCII digits
    f"{V}:category:" + "9" * 30 + ":0", f"{V}:category:9223372036854775808:0",  # beyond 64 bits
    callback("product", 99999, 0), callback("open_purchase", 424242), callback("buy", 77), callback("purchases", 999),
    callback("admin"), callback("refund", 1), callback("confirm_refund", 1), callback("send_broadcast"),
    callback("backup"), callback("export_csv"), callback("admin_product", 1),
]
BIGGEST = 2**63 - 1  # callback data may carry it; OFFSET page * 8 would overflow


@pytest.mark.parametrize("data", [callback("purchases", BIGGEST), callback("search_page", BIGGEST),
                                  callback("category", 1, BIGGEST), callback("product", 1, BIGGEST)])
def test_a_forged_page_number_shows_a_page_and_no_error(shop, alice, data, caplog):
    shop.add_product("Guide", price=0)
    alice.sends("guide")  # a search to page through
    alice.taps_data(data)
    assert "Error" not in caplog.text and "Sorry" not in alice.all_texts()
    assert len(alice.callback_answers()) == 1


def test_a_screen_that_fails_after_the_tap_was_answered_apologises_in_a_message(shop, alice, caplog):
    alice.sends("/start")
    shop.api.fail("editMessageText", 500, "Internal Server Error")  # the answer went out, the screen does not
    alice.taps("Catalog")
    assert alice.callback_answers()[-1].get("text") is None
    assert "Sorry, something went wrong" in alice.last_text() and "Error showing the reply" in caplog.text


BEYOND_32_BITS = 2**31  # fits the callback data's 64 bits, not PostgreSQL's INTEGER row ids


@pytest.mark.parametrize("data", [callback("product", BEYOND_32_BITS, 0), callback("buy_media", BEYOND_32_BITS),
                                  callback("reviews", BEYOND_32_BITS, 0), callback("rate", BEYOND_32_BITS, 3),
                                  callback("ticket_close", BEYOND_32_BITS), callback("open_purchase", MAX_ID)])
def test_a_forged_id_too_big_for_a_row_is_stale_and_no_error(shop, alice, data, caplog):
    alice.sends("/start")
    alice.taps_data(data)
    assert len(alice.callback_answers()) == 1
    assert "Error handling" not in caplog.text and "Sorry" not in alice.all_texts()


@pytest.mark.parametrize("data", FORGED_CALLBACK_DATA)
def test_forged_or_stale_callback_data_gets_a_polite_answer(shop, alice, data, caplog):
    shop.add_product("Guide", price=0, hidden="SECRET")
    alice.sends("/start")
    alice.taps_data(data)
    assert len(alice.callback_answers()) == 1
    assert "SECRET" not in alice.all_texts()
    assert "Traceback" not in caplog.text and "Error handling" not in caplog.text
    assert not shop.api.of("refundStarPayment") and not shop.api.of("sendDocument")
    assert shop.purchases() == []


def test_all_our_callback_data_fits_64_bytes():
    biggest = MAX_ID
    assert len(callback("arefok", biggest).encode()) <= 64
    assert len(callback("aedit", biggest, 4).encode()) <= 64
    assert screens.parse_callback(callback("cat", biggest, 3)) == ("cat", [biggest, 3])


def test_a_crashing_handler_apologises_and_the_bot_keeps_serving(shop, alice, bob, caplog, monkeypatch):
    monkeypatch.setattr(storefront, "catalog_screen", lambda *a: 1 / 0)
    alice.taps_data(callback("catalog"))
    assert alice.last_toast() == "😔 Sorry, something went wrong on our side. Please try again in a moment."
    assert "ZeroDivisionError" in caplog.text and "CallbackQuery from user 1001" in caplog.text
    bob.sends("/help")
    assert "How it works" in bob.last_text()


class ShowsItself:
    """A reply of the old kind: an object with its own show(), which the contract no longer takes."""

    def show(self, shop, update):
        shop.bot.send_message(update.message.chat.id, "shown by itself")


@pytest.mark.parametrize("reply", [ShowsItself(), "a text", (Screen("one"), Toast("two"))])
def test_a_reply_outside_the_contract_is_refused_loudly(shop, alice, reply, caplog, monkeypatch):
    monkeypatch.setattr(storefront, "catalog_screen", lambda *a: reply)
    alice.sends("/start")
    alice.taps_data(callback("catalog"))
    assert "TypeError: a handler returned" in caplog.text and "shown by itself" not in alice.all_texts()
    assert "Sorry, something went wrong" in alice.last_text()
    with pytest.raises(TypeError):
        show_reply(shop.bot.shop, None, reply)


def test_after_steps_run_once_the_session_is_closed_in_the_order_written(shop, alice, monkeypatch):
    done, the_shop = [], shop.bot.shop
    steps = (After(lambda given, *args, **keywords: done.append((given is the_shop, args, keywords)), 1, 2, three=3),
             After(lambda given: done.append("second")))
    monkeypatch.setattr(storefront, "catalog_screen", lambda *a: (Screen("The catalog"), *steps))
    alice.sends("/start")
    alice.taps_data(callback("catalog"))
    assert alice.last_text() == "The catalog" and done == [(True, (1, 2), {"three": 3}), "second"]


@pytest.mark.parametrize("command", ["/admin", "/refund ch-1", "/grant 1001 1"])
def test_non_admins_get_the_customer_menu_for_admin_commands(shop, alice, command, caplog):
    shop.add_product("Pro")
    alice.sends(command)
    assert alice.button_labels() == ["🛍 Catalog", "📦 My purchases", "❓ Help"]
    assert "is not in ADMIN_IDS: shown the customer's menu instead" in caplog.text
    assert shop.purchases() == []


ADMIN_ACTIONS = [
    "add_product", "add_product_in", "admin", "admin_category", "admin_product", "admin_purchase", "backup",
    "broadcast", "broadcast_audience", "broadcast_preview", "broadcast_products", "broadcast_to", "categories",
    "category_down", "category_up", "choose_kind", "clear_stock", "confirm_clear_stock", "confirm_delete_product",
    "confirm_refund", "daily_backup", "delete_category", "delete_product", "edit_kind", "edit_product", "export_csv",
    "fast_broadcast", "generate_promos", "ledger_refund", "media_done", "new_category", "new_promo",
    "post_to_channel", "products", "promo", "promo_batch", "promo_category", "promo_file", "promo_scope",
    "promo_scopes", "promos", "recent_purchases", "referral_number", "referral_reward", "referral_welcome",
    "referrals", "refund", "rename_category", "reply", "review_hide", "review_reply", "review_show", "sale_alerts",
    "sales", "save_product", "send_broadcast", "send_fast_broadcast", "stock_done", "subscribers", "ticket_resolve",
    "toggle_batch", "toggle_product", "toggle_promo", "toggle_protected", "toggle_referrals", "upload_stock"
]


def test_the_admin_action_list_below_covers_every_admin_button(shop):
    assert sorted(name for name, route in shop.bot.shop.taps.items() if route.admin) == ADMIN_ACTIONS


@pytest.mark.parametrize("action", ADMIN_ACTIONS)
def test_non_admins_cannot_use_any_admin_button(shop, alice, action, caplog):
    product = shop.add_product("Pro", price=25)
    alice.taps_data(callback("buy", product.id))
    alice.pays()
    alice.taps_data(callback(action, *[1] * len(shop.bot.shop.taps[action].tap.names)))
    assert "is not in ADMIN_IDS: shown the customer's menu instead" in caplog.text
    assert alice.button_labels() == ["🛍 Catalog", "📦 My purchases", "❓ Help"]
    assert not shop.api.of("refundStarPayment") and not shop.api.of("sendDocument")
    with shop.Session() as session:
        assert session.get(Product, product.id).is_active and session.get(Purchase, 1).refunded_at is None


def shop_contents(shop) -> list:
    """Everything a hostile update must leave alone."""
    with shop.Session() as session:
        return [session.execute(select(*table.__table__.columns)).all() for table in (Category, Product, Purchase)]


STRANGE_NAME = "\u202eevil\u200b 𝕏 <b>"  # right-to-left override, zero-width space, astral letter, a tag


HOSTILE_CUSTOMER_INPUTS = {
    "4096 characters": lambda p: p.sends("я" * 4096),
    "emoji only": lambda p: p.sends("🔥🛍️👨‍👩‍👧"),
    "zero-width and RTL": lambda p: p.sends("\u200b\u200f\u202e"),
    "voice": lambda p: p.sends_content(**VOICE),
    "contact": lambda p: p.sends_content(**CONTACT),
    "location": lambda p: p.sends_content(**LOCATION),
    "sticker": lambda p: p.sends_sticker(),
    "photo": lambda p: p.sends_photo(),
    "junk deep link": lambda p: p.sends("/start p_1'; DROP TABLE products;--"),
    "huge deep link": lambda p: p.sends("/start " + "p_" + "9" * 4000),
    "junk command": lambda p: p.sends("/" + "x" * 100),
    "empty callback": lambda p: p.taps_data(""),
    "64 bytes of junk": lambda p: p.taps_data("\x00" * 64),
    "someone else's purchase": lambda p: p.taps_data(callback("open_purchase", 1)),
    "an id that never existed": lambda p: p.taps_data(callback("product", 123456789, 0)),
    "a refund": lambda p: p.taps_data(callback("confirm_refund", 1)),
    "forged pre-checkout": lambda p: p.pays({"invoice": {"total_amount": 1, "currency": "XTR"}, "payload": "x"}),
}


@pytest.mark.parametrize("case", HOSTILE_CUSTOMER_INPUTS, ids=list(HOSTILE_CUSTOMER_INPUTS))
def test_hostile_customer_input_is_answered_and_changes_nothing(shop, alice, bob, case, caplog):
    product = shop.add_product("Pro", price=0, hidden="BOB-SECRET")
    bob.taps_data(callback("buy", product.id))
    alice.user["first_name"] = STRANGE_NAME
    alice.user.pop("username")
    before, calls = shop_contents(shop), len(shop.api.calls)

    HOSTILE_CUSTOMER_INPUTS[case](alice)

    answers = [c for c in shop.api.calls[calls:] if c.method in (
        "sendMessage", "editMessageText", "answerCallbackQuery", "answerPreCheckoutQuery")]
    assert answers, "every input gets an answer"
    assert "BOB-SECRET" not in alice.all_texts()
    assert "Error handling" not in caplog.text
    assert shop_contents(shop) == before


@pytest.mark.parametrize("content", [VOICE, CONTACT, LOCATION, {"text": "\u200b\u200f"}, {"text": "  "}],
                         ids=["voice", "contact", "location", "invisible", "blank"])
def test_hostile_input_in_an_admin_dialog_is_explained(shop, seller, content, caplog):
    shop.add_category("Keys")
    start_adding_a_product(seller, "Keys")
    seller.sends_content(**content)
    assert "I need a text here" in seller.last_text()
    assert "Error handling" not in caplog.text
    seller.sends("Real name")
    assert "price" in seller.last_text()


def test_strange_names_are_shown_as_typed(shop, seller, alice):
    alice.user["first_name"] = STRANGE_NAME
    alice.sends("/start")
    assert f"Hello, {STRANGE_NAME}!" in alice.last_text()
    shop.add_category("Keys")
    start_adding_a_product(seller, "Keys")
    seller.sends(STRANGE_NAME)
    assert "price" in seller.last_text()


def test_in_groups_the_shop_points_to_the_private_chat_once(shop, alice):
    group = {"id": -100123, "type": "supergroup", "title": "Chat"}
    alice.feed("message", {"message_id": 5, "date": 1, "from": alice.user, "chat": group, "text": "/start",
                           "entities": [{"type": "bot_command", "offset": 0, "length": 6}]})
    alice.feed("message", {"message_id": 6, "date": 1, "from": alice.user, "chat": group, "text": "hi all"})
    replies = [c for c in shop.api.of("sendMessage") if c.params["chat_id"] == "-100123"]
    assert len(replies) == 1 and "https://t.me/test_shop_bot" in replies[0].params["text"]


def test_edited_messages_and_channel_posts_are_ignored(shop, alice, caplog):
    alice.feed("edited_message", {**alice.message(text="/start"), "edit_date": 2})
    alice.feed("channel_post", {"message_id": 1, "date": 1, "chat": {"id": -100, "type": "channel"}, "text": "x"})
    assert shop.api.calls == [] and "Error" not in caplog.text


def test_a_returning_customer_browses_while_another_process_holds_the_write_lock(sqlite_shop, tmp_path):
    """Another program writing to shop.db (the seller in the sqlite3 shell, say): browsing only reads, so it
    goes on."""
    product = sqlite_shop.add_product("Guide", price=10)
    alice = Person(sqlite_shop, 1001, "Alice", "alice")
    alice.sends("/start")  # a customer the shop knows
    writer = sqlite3.connect(tmp_path / "plans.db", isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    try:
        started = time.monotonic()
        alice.sends("/start")
        assert alice.last_text().startswith("👋 Hello, Alice")
        alice.taps("Catalog")
        alice.sends(f"/start p_{product.id}")
        assert alice.last_text().startswith("Guide\n💰 10 ⭐")
        assert time.monotonic() - started < 2  # nothing waited for the lock
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_a_flood_limit_is_waited_out_and_the_message_sent(shop, alice):
    waits = []
    shop.bot.shop.sleep = waits.append
    shop.api.fail("sendMessage", 429, "Too Many Requests: retry after 7", retry_after=7)
    alice.sends("/help")
    assert waits == [7.0]
    assert "How it works" in alice.last_text()


def test_an_ordinary_send_is_not_tried_again_after_a_network_drop(shop, alice):
    """After a timeout the message may have gone: a second try could send it twice."""
    shop.api.drop_connection("sendMessage")
    alice.sends("/help")
    help_text = shop.api.of("sendMessage")[0].params["text"]
    assert [call.params["text"] for call in shop.api.of("sendMessage")].count(help_text) == 1  # then an apology


def test_a_flood_limit_on_an_edit_is_waited_out_too(shop, alice):
    alice.sends("/start")
    shop.api.fail("editMessageText", 429, "Too Many Requests: retry after 2", retry_after=2)
    alice.taps("Catalog")
    assert "being stocked" in alice.last_text()


def test_a_user_who_blocked_the_bot_is_marked_and_nothing_breaks(shop, alice, caplog):
    alice.sends("/start")
    shop.api.fail("sendMessage", 403, "Forbidden: bot was blocked by the user")
    alice.sends("/help")
    with shop.Session() as session:
        assert session.scalar(select(User.is_blocked).where(User.telegram_id == alice.id)) is True
    assert "Error handling" not in caplog.text
    alice.sends("/start")  # they unblocked us and wrote again
    with shop.Session() as session:
        assert session.scalar(select(User.is_blocked).where(User.telegram_id == alice.id)) is False


def test_logs_at_info_hold_no_hidden_content(shop, seller, alice, caplog):
    caplog.set_level("DEBUG", logger="shopbot")
    product = shop.add_product("Pro", price=25, hidden="TOP-SECRET-KEY")
    alice.taps_data(callback("buy", product.id))
    alice.pays()
    alice.repeats_payment()
    seller.taps_data(callback("admin_product", product.id))
    assert "TOP-SECRET-KEY" in alice.all_texts()
    assert "TOP-SECRET-KEY" not in caplog.text


def test_many_customers_buying_and_browsing_at_once(shop, seller, caplog):
    """Threads share one SQLite file, as telebot's workers do, while a broadcast runs."""
    products = [shop.add_product(f"Item {n}", price=5 + n) for n in range(4)]
    people = [Person(shop, 5000 + n, f"User {n}") for n in range(8)]
    for person in people:
        person.sends("/start")
    seller.taps_data(callback("broadcast"))
    seller.sends("Sale today!")
    seller.taps("Send")

    def shop_around(person):
        for product in products:
            person.sends("/catalog")
            person.taps("Keys")
            person.taps(product.name)
            person.taps("Buy")
            person.pays()
            person.sends("/purchases")

    threads = [threading.Thread(target=shop_around, args=(p,)) for p in people]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    shop.finish_background()

    assert "locked" not in caplog.text and "Error handling" not in caplog.text
    with shop.Session() as session:
        charges = session.scalars(select(Purchase.payment_id)).all()
    assert len(charges) == len(set(charges)) == len(people) * len(products)
    taps = len(people) * len(products) * 3 + 2  # and the seller's two taps to start the broadcast
    assert len(shop.api.of("answerCallbackQuery")) == taps
    assert "8 sent, 0 blocked the bot, 0 failed" in admin_texts(shop)  # the seller is left out


def taps_in_the_code() -> tuple[dict[str, Tap], set[str]]:
    """Every Tap the code declares ({name: the Tap}), and the names buttons and pagers are made with."""
    import ast
    import importlib

    declared, used = {}, set()
    for path in sorted([*HERE.glob("*.py"), *HERE.glob("shopkit/*.py")]):  # the chapters, and the machinery
        if path.stem == "__main__":  # python -m shopkit: a command, not a module to import
            continue
        module = importlib.import_module(("shopkit." if path.parent.name == "shopkit" else "") + path.stem)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call) and \
                    getattr(node.value.func, "id", None) == "Tap":
                name = node.targets[0].id
                assert name not in declared, f"{path.name}: {name} is declared twice"
                declared[name] = getattr(module, name)
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "button" \
                    and isinstance(node.func.value, ast.Name):
                used.add(node.func.value.id)  # CATEGORY.button(...)
            elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "pager_row":
                used.add(node.args[1].id)  # pager_row(lang, CATEGORY, page, pages, category_id=...)
    return declared, {name for name in used if name.isupper()}  # not pager_row's own ``tap.button``


def test_every_button_in_the_code_leads_to_a_handler_with_its_arguments(shop):
    declared, used = taps_in_the_code()
    assert len(declared) > 50  # the scan sees the code
    taps = shop.bot.shop.taps
    for name, tap in declared.items():
        assert tap.action in taps, f"{name}: no handler takes it"
        assert taps[tap.action].tap is tap, f"{name}: its handler is registered with another Tap"
        numbers = tuple(inspect.signature(taps[tap.action].handler).parameters)[4:]  # after shop, call, session, lang
        assert numbers == tap.names, f"{name}: the handler takes {numbers}"
    # one Tap for each handler, each made into a button somewhere, and every button made of a declared Tap
    assert sorted(tap.action for tap in declared.values()) == sorted(taps)
    assert used == set(declared)


def test_a_button_is_made_with_every_number_its_tap_names_and_no_other():
    category = Tap("category", "category_id", page=True)
    assert category.button("Books", page=0, category_id=3).callback_data == callback("category", 3, 0)
    for wrong in ({"category_id": 3}, {"category_id": 3, "page": 0, "product_id": 1}, {"id": 3, "page": 0}):
        with pytest.raises(TypeError, match="category_id"):
            category.button("Books", **wrong)


def test_a_tap_handler_must_take_the_numbers_its_tap_names():
    handlers = Handlers()
    with pytest.raises(TypeError, match="product_id"):
        @handlers.tap(Tap("buy", "product_id"))
        def tap_buy(shop, call, session, id: int): ...
    assert handlers.taps == {}


def test_a_tapped_button_is_read_by_name_and_only_a_declared_page_is_cut_down():
    tap = Tap("it", "product_id", page=True)
    assert tap.read([7, BIGGEST]) == {"product_id": 7, "page": screens.MAX_PAGE}
    assert tap.read([7]) is None and tap.read([7, 0, 0]) is None
    assert Tap("it", "page", "product_id").read([BIGGEST, 7]) == {"page": BIGGEST, "product_id": 7}  # a name alone


def test_a_typical_journey_warns_of_nothing_deprecated_and_logs_in_plain_words(shop, seller, alice, bob, caplog):
    """A promo link, a purchase, a sale lost to another buyer, a stranger at /admin: with deprecation warnings
    as errors, and every logger's lines read as a seller would read them."""
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.WARNING, logger="TeleBot")  # as the shop runs it: "keyboard is deprecated" is a log line
    product = shop.add_product("Key", price=10)
    add_stock(shop, product, "KEY-A")
    shop.add_promo("KEY20", product_id=product.id)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        alice.sends("/start promo_KEY20")  # one product's code: its card is a button above the menu
        alice.taps("Open")
        alice.taps("Buy for")
        bob.sends(f"/start p_{product.id}")
        bob.taps("Buy for")
        bob_invoice = bob.last_invoice()
        assert alice.pays(charge_id="ch-alice")["ok"] is True
        bob.payment_lands(10, bob_invoice["payload"], "XTR", "ch-bob")  # the last key went to Alice
        bob.sends("/admin")
    assert "deprecated" not in caplog.text.lower()
    assert "refunded at once" not in caplog.text and "(sold_out)" not in caplog.text and ": True" not in caplog.text
    assert "Purchase 2 could not be honoured (another buyer got the last item a moment before): its Stars were " \
           "given back at once" in caplog.text
    assert "tried admin action" not in caplog.text
    assert "User 1002 sent /admin, but is not in ADMIN_IDS" in caplog.text


@pytest.mark.parametrize("argument", ["gift_abc\0def", "promo_SAVE\0", "r_abcdefg\0"])
def test_a_start_link_typed_with_a_nul_character_greets_and_no_error(shop, alice, argument, caplog):
    alice.sends("/start " + argument)  # PostgreSQL refuses NUL in a query's text
    assert "Error handling" not in caplog.text and "Sorry" not in alice.all_texts()
    assert alice.last_text()  # the welcome, as after a plain /start


def test_refund_with_a_nul_character_is_explained_and_no_error(shop, seller, caplog):
    seller.sends("/refund ch\0arge")
    assert "Error handling" not in caplog.text and "/refund" in seller.last_text()


def test_a_nul_character_in_the_sellers_texts_is_dropped_not_a_postgresql_error(shop, seller, caplog):
    product = shop.add_product("Guide", price=10)
    media = shop.add_product("Beach set", price=150, hidden="", kind=PAID_MEDIA, caption="",
                             media=[{"type": "photo", "file_id": "P1"}])
    for field_index, answer in ((0, "Gu\0ide"), (2, "Ab\0out"), (4, "KE\0Y")):
        seller.taps_data(callback("edit_product", product.id, field_index))
        seller.sends(answer)
    seller.taps_data(callback("edit_product", product.id, 4))
    seller.sends_photo("P9", caption="sec\0ret")
    seller.taps_data(callback("edit_product", media.id, 5))
    seller.sends("Sum\0mer")
    stocked = shop.add_product("Keys", price=10)
    add_stock(shop, stocked)
    upload_stock(seller, stocked, lambda person: person.sends("K\0-1\nK-2"))
    assert "Error handling" not in caplog.text
    with shop.Session() as session:
        assert (session.get(Product, product.id).name, session.get(Product, product.id).description,
                session.get(Product, product.id).hidden_content, session.get(Product, media.id).caption) == \
            ("Guide", "About", "secret", "Summer")
    assert stock_of(shop, stocked) == ["K-1", "K-2"]
