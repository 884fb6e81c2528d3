"""📸 Paid media (paid_media.py), 🔒 protected content, and telebot 4.37.1's two paid-media bugs (issue 28)."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select
from telebot import types

import ledger
import paid_media
from conftest import ADMIN_ID, ADMIN_RIGHTS, CHANNEL_ID, Person, admin_texts, set_product, start_adding_a_product
from models import PAID_MEDIA, Product, Purchase
from shopkit import bot as shopkit_bot
from shopkit import callback

FOUR = [{"type": "photo", "file_id": "P1"}, {"type": "photo", "file_id": "P2"}, {"type": "video", "file_id": "V1"},
        {"type": "photo", "file_id": "P3"}]


def add_paid_media(shop, name="Beach set", price=150, media=None, caption="Summer <3", **fields) -> Product:
    return shop.add_product(name, price=price, hidden="", kind=PAID_MEDIA, media=media or FOUR, caption=caption,
                            **fields)


def paid_media_purchases(shop) -> list[tuple]:
    with shop.Session() as session:
        return session.execute(select(Purchase.price, Purchase.payment_id, Purchase.refunded_at.is_not(None))
                               .where(Purchase.paid_media_payload.is_not(None)).order_by(Purchase.id)).all()


def ledger_entry(shop, person, payload: str, charge_id: str = "pm-charge-1", amount: int = 150) -> None:
    """Telegram's ledger: a paid-media payment (as Telegram writes it: the payload is paid_media_payload)."""
    shop.api.star_transactions.append({"id": charge_id, "amount": amount, "date": 1_790_000_000, "source": {
        "type": "user", "transaction_type": "paid_media_payment", "user": person.user,
        "paid_media": [{"type": "photo", "photo": [{"file_id": "P1", "file_unique_id": "u", "width": 1,
                                                    "height": 1}]}],
        "paid_media_payload": payload}})


# ---------------------------------------------------------------------------
# The seller's dialog
# ---------------------------------------------------------------------------

def test_the_dialog_builds_a_three_photo_one_video_product(shop, seller):
    shop.add_category("Photos")
    start_adding_a_product(seller, "Photos", "Paid media")
    seller.sends_photo("P1")
    seller.sends_photo("P2")
    seller.sends_video("V1")
    seller.sends_photo("P3")
    assert "4 of 10 received" in seller.last_text()
    seller.taps("Done")
    for answer in ("Beach set", "150", "Four summer shots", "Summer <3"):
        seller.sends(answer)
    assert "promo codes and gifts do not apply" in seller.all_texts()  # the preview is the card
    seller.taps("Save")
    with shop.Session() as session:
        product = session.scalar(select(Product).where(Product.name == "Beach set"))
        assert (product.kind, product.price, product.caption, product.media) == (PAID_MEDIA, 150, "Summer <3", FOUR)
    assert "📸 3 photos, 1 video" in seller.last_text()
    assert "📣 Post to channel" in seller.button_labels()


def test_a_card_shop_cannot_sell_paid_media(card_shop):
    card_shop.add_category("Photos")
    seller = Person(card_shop, ADMIN_ID, "Seller")
    seller.sends("/start")
    start_adding_a_product(seller, "Photos", "Paid media")
    assert "Telegram sells paid media for Stars only" in seller.last_text()


def no_product_saved(shop) -> bool:
    with shop.Session() as session:
        return session.scalar(select(func.count(Product.id))) == 0


@pytest.mark.parametrize("send, explained", [
    (lambda seller: seller.sends_document("DOC-1"), "Only photos and videos"),
    (lambda seller: seller.sends_sticker(), "Only photos and videos"),
    (lambda seller: seller.sends("Hello"), "Only photos and videos"),
])
def test_a_document_a_sticker_or_a_text_is_refused_and_asked_again(shop, seller, send, explained):
    shop.add_category("Photos")
    start_adding_a_product(seller, "Photos", "Paid media")
    seller.sends_photo("P1")
    send(seller)
    assert explained in seller.last_text() and "1 of 10 received" in seller.last_text()
    seller.sends_photo("P2")
    assert "2 of 10 received" in seller.last_text()
    assert no_product_saved(shop)


def test_no_media_and_an_eleventh_are_refused(shop, seller):
    shop.add_category("Photos")
    start_adding_a_product(seller, "Photos", "Paid media")
    seller.taps("Done")
    assert seller.last_toast() == "Send at least one photo or video first."
    for number in range(11):
        seller.sends_photo(f"P{number}")
    assert "at most 10 photos and videos" in seller.last_text() and "10 of 10 received" in seller.last_text()
    seller.taps("Done")
    assert "name" in seller.last_text().lower()
    assert no_product_saved(shop)


@pytest.mark.parametrize("answers, explained", [
    (["Beach set", "0"], "Paid media costs from 1 to 25\u202f000 ⭐"),
    (["Beach set", "25001"], "Paid media costs from 1 to 25\u202f000 ⭐"),
    (["Beach set", "150", "Four shots", "x" * 1025], "at most 1024 characters; this one has 1025"),
])
def test_a_wrong_price_or_a_long_caption_is_explained_and_asked_again(shop, seller, answers, explained):
    shop.add_category("Photos")
    start_adding_a_product(seller, "Photos", "Paid media")
    seller.sends_photo("P1")
    seller.taps("Done")
    for answer in answers:
        seller.sends(answer)
    assert explained in seller.last_text() and "send it again" in seller.last_text()
    assert no_product_saved(shop)


def test_a_caption_of_exactly_1024_characters_is_taken(shop, seller):
    shop.add_category("Photos")
    start_adding_a_product(seller, "Photos", "Paid media")
    seller.sends_photo("P1")
    seller.taps("Done")
    for answer in ("Beach set", "25000", "Four shots", "x" * 1024):
        seller.sends(answer)
    seller.taps("Save")
    assert not no_product_saved(shop)


# ---------------------------------------------------------------------------
# Buying
# ---------------------------------------------------------------------------

def test_buy_sends_the_paid_media_with_its_price_and_a_payload_naming_product_and_customer(shop, alice):
    product = add_paid_media(shop)
    alice.sends(f"/start p_{product.id}")
    assert "4 photos and videos" in alice.last_text() and alice.button_labels()[0] == "Buy for 150 ⭐"
    alice.taps("Buy for 150")
    sent = shop.api.of("sendPaidMedia")[-1].params
    assert (int(sent["chat_id"]), int(sent["star_count"])) == (alice.id, 150)
    assert json.loads(sent["media"]) == [{"type": item["type"], "media": item["file_id"]} for item in FOUR]
    assert sent["caption"] == "Summer &lt;3"
    assert paid_media.parse_payload(sent["payload"]) == (product.id, alice.id, 150)
    assert len(sent["payload"].encode()) <= 128
    assert not shop.api.of("sendInvoice")


def test_a_promo_code_does_not_lower_a_price_telegram_collects_itself(shop, alice):
    product = add_paid_media(shop)
    shop.add_promo("SAVE20")
    alice.sends("/start promo_SAVE20")
    alice.sends(f"/start p_{product.id}")
    assert "promo codes and gifts do not apply" in alice.last_text()
    assert "Promo code" not in " ".join(alice.button_labels()) and "gift" not in " ".join(alice.button_labels())
    alice.taps("Buy for 150")
    assert int(shop.api.of("sendPaidMedia")[-1].params["star_count"]) == 150


def test_an_invoice_is_never_sent_for_paid_media(shop, alice):
    product = add_paid_media(shop)
    alice.taps_data(callback("buy", product.id))
    assert not shop.api.of("sendInvoice")
    answer = alice.pre_checkout(150, f"shop1:{product.id}:{alice.id}")
    assert answer["ok"] in (False, "False", "false")


def test_the_update_records_one_purchase_however_often_it_comes(shop, alice, seller):
    product = add_paid_media(shop)
    alice.taps_data(callback("buy_media", product.id))
    payload = alice.buys_paid_media()
    alice.buys_paid_media(payload)  # Telegram sends it again after a restart
    assert shop.purchases() == [("alice", "Beach set", 150, "stars")]
    assert "Beach set is unlocked above" in alice.all_texts()
    assert admin_texts(shop).count("New sale: Beach set") == 1


def test_a_forwarded_copy_paid_by_someone_else_is_their_purchase(shop, alice, bob):
    product = add_paid_media(shop)
    alice.taps_data(callback("buy_media", product.id))
    payload = shop.api.of("sendPaidMedia")[-1].params["payload"]
    bob.buys_paid_media(payload)  # Alice forwarded her blurred copy, and Bob paid for it: his Stars, his purchase
    bob.buys_paid_media(payload)  # Telegram repeats the update: still one
    assert shop.purchases() == [("bob", "Beach set", 150, "stars")]
    alice.buys_paid_media(payload)  # and Alice may still pay for her own
    assert shop.purchases() == [("bob", "Beach set", 150, "stars"), ("alice", "Beach set", 150, "stars")]


def test_paying_for_two_blurred_copies_asks_the_admins_to_refund_the_second(shop, seller, alice):
    product = add_paid_media(shop)
    alice.taps_data(callback("buy_media", product.id))
    alice.taps_data(callback("buy_media", product.id))  # Buy tapped twice: two blurred copies, before either is paid
    first, second = [call.params["payload"] for call in shop.api.of("sendPaidMedia")]
    alice.buys_paid_media(first)
    assert "paid a second time" not in seller.last_text()
    alice.buys_paid_media(second)  # Telegram has no pre-checkout for paid media: the money is taken
    assert "Alice (@alice) (id 1001) paid a second time for Beach set (150 ⭐)" in seller.last_text()
    assert "refund purchase #2" in seller.last_text() and seller.button_labels() == ["🧾 #2"]


def test_a_payload_that_is_not_the_shops_records_nothing(shop, bob):
    add_paid_media(shop)
    bob.buys_paid_media("media1:1:1002:1:forged:more")
    bob.buys_paid_media("someone else's bot")
    assert shop.purchases() == []


def test_my_purchases_sends_it_again_unlocked(shop, alice):
    product = add_paid_media(shop)
    alice.taps_data(callback("buy_media", product.id))
    alice.buys_paid_media()
    alice.taps("My purchases") if "My purchases" in " ".join(alice.button_labels()) else alice.sends("/purchases")
    alice.taps("Beach set")
    album = json.loads(shop.api.of("sendMediaGroup")[-1].params["media"])
    assert [(item["type"], item["media"]) for item in album] == [(item["type"], item["file_id"]) for item in FOUR]
    assert album[0]["caption"] == "Summer &lt;3"
    alice.taps_data(callback("buy_media", product.id))  # Buy again: hers again, not a second payment
    assert len(shop.api.of("sendPaidMedia")) == 1 and len(shop.api.of("sendMediaGroup")) == 2


# ---------------------------------------------------------------------------
# Telegram's Stars ledger: the source of truth
# ---------------------------------------------------------------------------

def test_a_payment_only_the_ledger_shows_is_recorded_at_the_next_check(shop, alice, seller):
    product = add_paid_media(shop)
    alice.taps_data(callback("buy_media", product.id))
    payload = shop.api.of("sendPaidMedia")[-1].params["payload"]
    ledger_entry(shop, alice, payload)  # paid, but the update never came
    check = ledger.check_ledger(shop.bot.shop)
    assert check.recorded == ["pm-charge-1"]
    assert paid_media_purchases(shop) == [(150, "pm-charge-1", False)]
    assert "New sale: Beach set" in admin_texts(shop)
    alice.buys_paid_media(payload)  # the update, late after all: still one sale
    assert ledger.check_ledger(shop.bot.shop).recorded == []
    assert paid_media_purchases(shop) == [(150, "pm-charge-1", False)]


def test_the_sale_gets_its_charge_id_from_the_ledger_and_the_seller_can_refund_it(shop, alice, seller):
    product = add_paid_media(shop)
    alice.taps_data(callback("buy_media", product.id))
    payload = shop.api.of("sendPaidMedia")[-1].params["payload"]
    ledger_entry(shop, alice, payload)  # Telegram writes it before it tells the bot
    alice.buys_paid_media(payload)
    assert paid_media_purchases(shop) == [(150, "pm-charge-1", False)]
    seller.sends("/refund pm-charge-1")
    seller.taps("Yes, refund") if "Yes, refund" in " ".join(seller.button_labels()) else None
    refund = shop.api.of("refundStarPayment")[-1].params
    assert (int(refund["user_id"]), refund["telegram_payment_charge_id"]) == (alice.id, "pm-charge-1")
    assert paid_media_purchases(shop) == [(150, "pm-charge-1", True)]


def test_a_ledger_refund_ends_it(shop, alice):
    product = add_paid_media(shop)
    alice.taps_data(callback("buy_media", product.id))
    payload = alice.buys_paid_media()
    ledger_entry(shop, alice, payload)
    shop.api.ledger_refund(alice, 150, "pm-charge-1")  # Telegram refunded it: no refunded_payment message for media
    ledger.check_ledger(shop.bot.shop)
    assert paid_media_purchases(shop) == [(150, "pm-charge-1", True)]
    with shop.Session() as session:
        purchase_id = session.scalar(select(Purchase.id))
    alice.taps_data(callback("open_purchase", purchase_id))
    assert alice.last_toast() == "This purchase was refunded."


# ---------------------------------------------------------------------------
# 📣 Post to channel
# ---------------------------------------------------------------------------

def post_to_channel(seller, product) -> None:
    seller.taps_data(callback("admin_product", product.id))
    seller.taps("Post to channel")
    assert "tells me nothing" in seller.last_text()
    seller.sends(str(CHANNEL_ID))


def test_post_to_channel_with_the_right_to_post(shop, seller):
    product = add_paid_media(shop)
    shop.api.channels.add(CHANNEL_ID, "VIP signals", rights={**ADMIN_RIGHTS, "can_post_messages": True})
    post_to_channel(seller, product)
    sent = shop.api.of("sendPaidMedia")[-1].params
    assert (int(sent["chat_id"]), int(sent["star_count"]), sent.get("payload")) == (CHANNEL_ID, 150, None)
    assert "Posted in VIP signals" in seller.last_text() and "not counted in 📊 Sales" in seller.last_text()


def test_post_to_channel_without_the_right_to_post_says_which_right(shop, seller):
    product = add_paid_media(shop)
    shop.api.channels.add(CHANNEL_ID, "VIP signals")  # an administrator, but not allowed to post
    post_to_channel(seller, product)
    assert "I still need these administrator rights: Post messages" in seller.last_text()
    assert not shop.api.of("sendPaidMedia")


def test_a_post_refused_by_telegram_is_told(shop, seller):
    product = add_paid_media(shop)
    chat = shop.api.channels.add(CHANNEL_ID, "VIP signals", rights={**ADMIN_RIGHTS, "can_post_messages": True})
    seller.taps_data(callback("admin_product", product.id))
    seller.taps("Post to channel")
    shop.api.fail("sendPaidMedia", 400, "Bad Request: need administrator rights in the channel chat")
    seller.sends(str(chat.id))
    assert "I could not post in VIP signals" in seller.last_text()


# ---------------------------------------------------------------------------
# 🔒 Protected content
# ---------------------------------------------------------------------------

def test_the_seller_protects_a_product_and_the_card_says_so(shop, seller, alice):
    product = shop.add_product("Guide", price=0, hidden="SECRET")
    seller.taps_data(callback("admin_product", product.id))
    seller.taps("Protected: off")
    assert "🔒 Protected: on" in seller.button_labels()
    alice.sends(f"/start p_{product.id}")
    assert "cannot be forwarded or saved" in alice.last_text()


def test_a_protected_products_delivery_and_redelivery_carry_protect_content(shop, alice):
    product = shop.add_product("Guide", price=0, hidden="SECRET", protected=True)
    alice.taps_data(callback("buy", product.id))
    secret = [c.params for c in shop.api.of("sendMessage") if c.params["text"] == "SECRET"]
    alice.sends("/purchases")
    alice.taps("Guide")
    secret = [c.params for c in shop.api.of("sendMessage") if c.params["text"] == "SECRET"]
    assert len(secret) == 2 and all(params.get("protect_content") for params in secret)


def test_protected_paid_media_is_sent_and_sent_again_protected(shop, alice):
    product = add_paid_media(shop, protected=True)
    alice.taps_data(callback("buy_media", product.id))
    assert shop.api.of("sendPaidMedia")[-1].params.get("protect_content")
    alice.buys_paid_media()
    alice.sends("/purchases")
    alice.taps("Beach set")
    assert shop.api.of("sendMediaGroup")[-1].params.get("protect_content")


def test_an_unprotected_product_is_sent_as_before(shop, alice):
    product = shop.add_product("Guide", price=0, hidden="SECRET")
    set_product(shop, product.id, protected=False)
    alice.taps_data(callback("buy", product.id))
    assert not [c for c in shop.api.of("sendMessage") if c.params.get("protect_content")]


# ---------------------------------------------------------------------------
# telebot 4.37.1's two bugs, worked around in shopkit/telebot_fixes.py
# ---------------------------------------------------------------------------

BUYER = {"id": 1001, "is_bot": False, "first_name": "Alice"}


def test_a_purchased_paid_media_update_as_telegram_sends_it_is_read():
    update = types.Update.de_json({"update_id": 7, "purchased_paid_media": {"from": BUYER,
                                                                           "paid_media_payload": "media1:1:1001:5:ab"}})
    assert (update.purchased_paid_media.from_user.id, update.purchased_paid_media.paid_media_payload) == (
        1001, "media1:1:1001:5:ab")
    assert "purchased_paid_media" in shopkit_bot.ALLOWED_UPDATES


def test_the_ledger_keeps_a_paid_media_payload():
    transaction = types.StarTransaction.de_json({"id": "c1", "amount": 5, "date": 1, "source": {
        "type": "user", "transaction_type": "paid_media_payment", "user": BUYER, "paid_media_payload": "p"}})
    assert transaction.source.paid_media_payload == "p"


def test_the_workarounds_step_aside_once_telebot_reads_the_fields_itself(monkeypatch):
    from shopkit import telebot_fixes

    def fixed_reader(json_string):  # a telebot that reads "from" and keeps the payload
        obj = dict(json_string)
        return types.PaidMediaPurchased(types.User.de_json(obj["from"]), obj["paid_media_payload"])
    monkeypatch.setattr(telebot_fixes, "_read_purchase", fixed_reader)
    purchased = telebot_fixes.read_paid_media_purchase({"from": BUYER, "paid_media_payload": "x"})
    assert (purchased.from_user.id, purchased.paid_media_payload) == (1001, "x")

    def fixed_partner(json_string):
        partner = types.TransactionPartnerUser("user", types.User.de_json(BUYER))
        partner.paid_media_payload = "kept by telebot"
        return partner
    monkeypatch.setattr(telebot_fixes, "_read_partner", fixed_partner)
    partner = telebot_fixes.read_transaction_partner_user({"type": "user", "user": BUYER, "paid_media_payload": "x"})
    assert partner.paid_media_payload == "kept by telebot"


def test_a_paid_media_purchase_takes_the_payment_lane_never_trimmed_with_a_flood():
    from shopkit import journal
    assert journal.is_payment(types.PaidMediaPurchased.de_json({"from": BUYER, "paid_media_payload": "x"}))


def test_a_ledger_out_of_reach_right_after_the_sale_costs_nothing(shop, alice, caplog):
    product = add_paid_media(shop)
    alice.taps_data(callback("buy_media", product.id))
    shop.api.fail("getStarTransactions", 502, "Bad Gateway")  # no charge id yet: the next reading finds it
    alice.buys_paid_media()
    assert paid_media_purchases(shop) == [(150, None, False)]
    assert alice.last_text() == "✅ Thank you! Beach set is unlocked above, and stays in 📦 My purchases."
    assert "Could not look for the charge" in caplog.text and "Traceback" not in caplog.text
