"""📋 Copy buttons (Telegram's copy_text): a bought key, a promo code, a gift's link, in one tap."""
from __future__ import annotations

from conftest import add_stock, buttons, buys, visible_text
from shopkit import callback


def copies(person) -> dict[str, list[str]]:
    """Each message's text, with what its 📋 buttons put on the clipboard (messages without one left out)."""
    found = {}
    for message in person.api.messages(person.id):
        texts = [b["copy_text"]["text"] for b in buttons(message) if "copy_text" in b]
        if texts:
            found[visible_text(message)] = texts
    return found


def test_a_delivered_key_copies_in_one_tap_and_again_from_my_purchases(shop, alice):
    product = shop.add_product("Windows key", price=10, hidden="Activate in Settings.")
    add_stock(shop, product, "KEY-AAAA-BBBB")
    buys(alice, product)
    assert copies(alice) == {"KEY-AAAA-BBBB": ["KEY-AAAA-BBBB"]}  # the key alone; the shared instructions not
    key_message = next(m for m in alice.api.messages(alice.id) if visible_text(m) == "KEY-AAAA-BBBB")
    assert [b["text"] for b in buttons(key_message)] == ["📋 Copy"]
    alice.sends("/start")
    alice.taps("My purchases")
    alice.taps("Windows key")
    sent = [m for m in alice.api.messages(alice.id) if visible_text(m) == "KEY-AAAA-BBBB"]
    assert len(sent) == 2 and all(buttons(m) == buttons(key_message) for m in sent)  # sent again, with its 📋


def test_an_item_longer_than_telegram_can_copy_has_no_button(shop, alice):
    product = shop.add_product("Account", price=10, hidden="")
    long_item = "login:" + "x" * 294  # 300 characters: over the copy button's 256
    add_stock(shop, product, long_item)
    buys(alice, product)
    assert long_item in alice.all_texts() and copies(alice) == {}


def test_the_unlimited_products_hidden_content_has_no_copy_button(shop, alice):
    product = shop.add_product("Guide", price=10, hidden="https://example.com/guide")
    buys(alice, product)
    assert "https://example.com/guide" in alice.all_texts() and copies(alice) == {}


def test_a_promo_link_greets_with_the_code_to_copy_in_russian_too(shop, alice):
    shop.add_product("Guide", price=100)
    shop.add_promo("SUMMER")
    alice.sends("/start promo_SUMMER")
    assert list(copies(alice).values()) == [["SUMMER"]]
    assert alice.button_labels()[0] == "📋 Copy" and "Catalog" in " ".join(alice.button_labels())
    ivan = type(alice)(shop, 1010, "Иван", language_code="ru")
    ivan.sends("/start promo_SUMMER")
    assert ivan.button_labels()[0] == "📋 Скопировать"


def test_a_gifts_link_copies_in_one_tap(shop, alice):
    product = shop.add_product("Course", price=100, hidden="COURSE-LINK")
    alice.taps_data(callback("buy_gift", product.id))
    alice.pays()
    [(message, [copied])] = copies(alice).items()
    assert copied.startswith("https://t.me/test_shop_bot?start=gift_") and copied in message


def test_the_seller_copies_a_codes_share_link(shop, seller):
    code = shop.add_promo("SUMMER")
    seller.taps_data(callback("promo", code.id))
    assert list(copies(seller).values()) == [["https://t.me/test_shop_bot?start=promo_SUMMER"]]
    assert seller.button_labels()[0] == "📋 Copy link"
