"""Gifts: a product bought for someone else, who claims it with a link.

Reading order: ... ledger.py → **gifts.py** → support.py → ...

🎁 Buy as a gift, under a card, sends the usual invoice with a gift mark in
its payload, at the buyer's promo price if they have a code (checkout.py). The
payment is recorded as the buyer's purchase with a ``Gift`` (models.py): a
secret token of 128 random bits, never a sequential id. The buyer's purchase
does not make them an owner of the product, and it never delivers the
content to them: they receive a message to forward, with the product's name
and the link ``https://t.me/<bot>?start=gift_<token>`` (purchases.deliver), and
find it again in 📦 My purchases until it is claimed. For a stocked product
the key is taken from stock at payment, so the gift can never sell out. A
payment the shop could not honour (the last key went to another buyer a moment
before, say: checkout.refund_at_once) is no gift: its link says so until the
refund lands.

The first person other than the buyer who opens the link claims it: a
purchase of their own (payment type "gift"), delivered at once, with the key
moved to it; the buyer hears who it was. The database lets it be claimed once,
however many people open the link at the same moment. Refunding the buyer's
purchase takes the claimed copy back too, or puts an unclaimed gift's key back
in stock (purchases.close_purchase).
"""
from __future__ import annotations

import logging

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from telebot import TeleBot, types

from checkout import ADMIN_PURCHASE, Invoice, give_product, send_invoice
from menus import menu_keyboard
from models import Gift, Product, Purchase, StockItem, User, owned_purchase_id, save_user, stock_item_of, stock_left
from promos import offer_and_owned
from purchases import deliver
from shopkit import (
    SALE_ALERTS,
    After,
    Handlers,
    Screen,
    Shop,
    Toast,
    add_handlers,
    chat_of,
    describe_user,
    format_price,
    keyboard,
    language_for_code,
    notify_admins,
    send,
    text,
    utcnow,
    with_toast,
)
from storefront import BUY_GIFT, product_or_catalog, removed

logger = logging.getLogger("shopbot")
handlers = Handlers()


# ---------------------------------------------------------------------------
# Buying a gift
# ---------------------------------------------------------------------------

@handlers.tap(BUY_GIFT)
def tap_buy_gift(shop: Shop, call: types.CallbackQuery, session: Session, lang: str, product_id: int):
    """🎁 Buy as a gift: an invoice marked as a gift (at once and free, when a promo code takes the whole price)."""
    product = session.get(Product, product_id)
    if product is None or not product.is_active or not product.one_off or product.price == 0:
        return Toast(text(lang, "unavailable_removed" if removed(session, product_id) else "unavailable"))
    if stock_left(session, product) == 0:
        return with_toast(product_or_catalog(shop, session, lang, call.from_user.id, product_id),
                          text(lang, "sold_out_toast"))
    offer, _owned = offer_and_owned(session, call.from_user.id, product, shop.config.currency)
    if offer.price > 0:
        return Toast(text(lang, "invoice_sent"), once_shown=True), After(send_invoice, chat_of(call), call.from_user.id,
                                                                         Invoice.of(product, offer, gift=True))
    purchase = give_product(session, save_user(session, call.from_user), product, "free", shop.config.currency,
                            offer.code_id, gift=True)
    if purchase is None:  # the code's last use, or the last key, went to someone else a moment ago
        return Toast(text(lang, "promo_used_up"))
    return After(deliver, chat_of(call), purchase.id, text(lang, "gift_paid", name=product.name), lang)


# ---------------------------------------------------------------------------
# Claiming it: t.me/<bot>?start=gift_<token>
# ---------------------------------------------------------------------------

def claim(session: Session, gift: Gift, recipient: User) -> Purchase | None:
    """Give the gift to ``recipient`` in one transaction: a purchase of their own, the key moved to it, the
    gift marked claimed. None when someone claimed it a moment before (the UPDATE below finds it taken), when
    it was refunded a moment before, or when a stocked gift's key is gone: a gift is never handed over keyless."""
    bought = gift.purchase
    purchase = Purchase(user=recipient, product=bought.product, price=0, currency=bought.currency,
                        payment_type="gift", once_per_customer=bought.product.sold_once_per_customer)
    session.add(purchase)
    try:
        session.flush()
        # Holds the bought purchase's row, as its refund does (purchases.close_purchase): one waits for the other,
        # and a gift refunded a moment before is not handed over.
        live = session.execute(update(Purchase).where(Purchase.id == bought.id, Purchase.refunded_at.is_(None),
                                                      ~Purchase.refund_due).values(refund_due=False))
        if live.rowcount != 1:
            session.rollback()
            return None
        taken = session.execute(update(Gift).where(Gift.id == gift.id, Gift.claimed_purchase_id.is_(None))
                                .values(claimed_purchase_id=purchase.id, claimed_at=utcnow()))
        if taken.rowcount != 1:
            session.rollback()
            return None
        key = session.execute(update(StockItem).where(StockItem.purchase_id == bought.id)
                              .values(purchase_id=purchase.id))
        if bought.product.stocked and key.rowcount != 1:
            session.rollback()
            return None
        session.commit()
    except IntegrityError:  # claimed by someone else, or the recipient got the product meanwhile
        session.rollback()
        return None
    return purchase


def why_not_claim(session: Session, gift: Gift | None, recipient: User) -> str | None:
    """The text key saying why ``recipient`` cannot claim the gift, or None when they can."""
    if gift is None:
        return "gift_unknown"
    bought = gift.purchase
    if bought.user_id == recipient.id:
        return "gift_own"
    if bought.refunded_at is not None:
        return "gift_refunded"
    if gift.claimed_purchase_id is not None:
        return "gift_already_claimed"
    # A payment the shop could not honour (purchases.set_aside_for_refund), or one whose key never came:
    # whoever opened the link would receive nothing, and lose it when the refund lands.
    if bought.refund_due or (bought.product.stocked and stock_item_of(session, bought.id) is None):
        return "gift_refund_due"
    if bought.product.sold_once_per_customer and owned_purchase_id(session, recipient.telegram_id,
                                                                   bought.product_id):
        return "gift_already_owned"
    return None


@handlers.start_link("gift_")
def open_gift_link(shop: Shop, message: types.Message, session: Session, lang: str, token: str):
    """/start gift_<token>: the first person other than the buyer who opens it gets the product."""
    recipient = save_user(session, message.from_user)
    gift = session.scalar(select(Gift).where(Gift.token == token))  # the unique index: no timing to compare
    problem = why_not_claim(session, gift, recipient)
    purchase = None if problem else claim(session, gift, recipient)
    if purchase is None:
        problem = problem or why_not_claim(session, gift, recipient)  # what changed while it was being claimed
        logger.info("User %s opened gift link %s: %s", recipient.telegram_id, gift.id if gift else "?",
                    problem or "claimed a moment before")
        name = gift.purchase.product.name if gift else ""
        return Screen(text(lang, problem or "gift_already_claimed", name=name), menu_keyboard(lang))
    buyer, name = gift.purchase.user, purchase.product.name
    logger.info("Gift %s claimed by user %s: purchase %s", gift.id, recipient.telegram_id, purchase.id)
    buyer_lang = language_for_code(buyer.language_code)
    return (After(deliver, message.chat.id, purchase.id, text(lang, "gift_received", name=name,
                                                              giver=buyer.first_name), lang),
            After(send, buyer.telegram_id, text(buyer_lang, "gift_claimed", name=name, who=recipient.first_name)),
            After(notify_admins, "admin_gift_claimed_alert", product=name, giver=describe_user(buyer),
                  recipient=describe_user(recipient), setting=SALE_ALERTS,
                  markup=keyboard([ADMIN_PURCHASE.button(f"🧾 #{purchase.id}", purchase_id=purchase.id)])))


# ---------------------------------------------------------------------------
# What the seller sees on a purchase (sales.py)
# ---------------------------------------------------------------------------

def giver_purchase(session: Session, purchase: Purchase) -> Purchase | None:
    """For a gift received, the giver's purchase: the payment behind it, which its refund gives back. Else None."""
    if purchase.payment_type != "gift":
        return None
    return session.scalar(select(Purchase).join(Gift, Gift.purchase_id == Purchase.id)
                          .where(Gift.claimed_purchase_id == purchase.id))


def gift_line(session: Session, lang: str, purchase: Purchase) -> str:
    """A line on the seller's screen of a purchase: a gift, claimed or not; or received as one, with who paid
    for it and how much. Else ''."""
    if purchase.gift is not None:
        claimed = purchase.gift.claimed_purchase
        if claimed is None:
            return "\n" + text(lang, "admin_gift_unclaimed")
        return "\n" + text(lang, "admin_gift_claimed", who=claimed.user.first_name, id=claimed.id)
    given = giver_purchase(session, purchase)
    if given is not None:
        return "\n" + text(lang, "admin_gift_received", id=given.id, giver=describe_user(given.user),
                            price=format_price(given.price, given.currency))
    return ""


def register(bot: TeleBot, shop: Shop) -> None:
    """Wire 🎁 Buy as a gift and the gift links, t.me/<bot>?start=gift_<token>."""
    add_handlers(shop, handlers)
