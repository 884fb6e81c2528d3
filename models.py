"""The shop's data: SQLAlchemy models, and the queries several chapters share.

    from shopkit import open_database
    from models import User, Category, Product, Purchase

    Session = open_database("sqlite:///shop.db")   # creates or upgrades the tables
    with Session() as session:
        session.add(Category(name="Keys"))
        session.commit()

Four models from the spec: a ``User`` buys ``Purchase``s of ``Product``s, which
live in ``Category``s (User 1-N Purchase, Category 1-N Product, Product 1-N
Purchase). Prices are integers in the currency's smallest unit, exactly as the
Telegram Bot API counts them (Stars: 1 = 1 star; USD: cents).

Reading order: ... shopbot.py → **models.py** → menus.py → ...

After the models come the queries that several chapters share; nothing here
opens a session on its own: each update gets one short-lived session, passed
to the helpers that need it.
A change to a model needs a migration too (see shopkit/database.py).
"""
from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    and_,
    delete,
    event,
    false,
    func,
    null,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship
from sqlalchemy.sql.expression import FunctionElement

from shopkit import Base, utcnow

# What a seller may store, checked again by the admin dialogs. Telegram's own
# limits: a product name must fit an invoice title (32) comfortably shown on a
# button, file ids are opaque strings of about 70-90 characters.
NAME_MAX = 64
FILE_ID_MAX = 255

# What kind of thing a product is (Product.kind).
UNLIMITED = "unlimited"  # every buyer receives the same hidden content: a guide, a course, a link
STOCKED = "stocked"  # every buyer receives a unique item of their own (StockItem): a key, a code
SUBSCRIPTION = "subscription"  # monthly access to a channel or group, paid in Stars (Subscription)
PAID_MEDIA = "paid_media"  # photos and videos shown blurred, unlocked in place once paid (paid_media.py)
ONE_OFF_KINDS = (UNLIMITED, STOCKED)  # bought with one payment (Product.one_off)


class User(Base):
    """A Telegram user who has talked to the shop."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Telegram user ids need more than 32 bits.
    telegram_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    username: Mapped[str | None] = mapped_column(String(64), default=None)
    first_name: Mapped[str] = mapped_column(String(128), default="")
    language_code: Mapped[str] = mapped_column(String(16), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    # Set when Telegram answers 403: the user blocked the bot. Cleared when
    # they write to the bot again.
    is_blocked: Mapped[bool] = mapped_column(default=False)
    # The promo code the customer chose last (promos.py): it prices their next purchase it covers.
    promo_code_id: Mapped[int | None] = mapped_column(ForeignKey("promo_codes.id", ondelete="SET NULL"),
                                                      default=None)

    purchases: Mapped[list[Purchase]] = relationship(back_populates="user")
    subscriptions: Mapped[list[Subscription]] = relationship(back_populates="user")
    # Not stored: True on the object save_user has just created, so that a link this same /start opened knows
    # they never opened the shop before (an invite counts only then: referrals.py).
    first_visit = False

    def __repr__(self) -> str:
        return f"<User {self.id} {self.telegram_id} @{self.username}>"


class Category(Base):
    """A shelf of products, shown in the seller's order (``position``)."""

    __tablename__ = "categories"
    # Ids in buttons and links are never given to another row after a delete (SQLite; PostgreSQL never reuses).
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_MAX), unique=True)
    position: Mapped[int] = mapped_column(default=0)

    products: Mapped[list[Product]] = relationship(back_populates="category")

    def __repr__(self) -> str:
        return f"<Category {self.id} {self.name!r}>"


class Product(Base):
    """Something to sell: a public card plus hidden content delivered after payment."""

    __tablename__ = "products"
    # The storefront lists the products on sale in one category, page by page.
    # AUTOINCREMENT: a deleted product's id is never another's, so its old links say it is gone.
    __table_args__ = (Index("ix_products_category_active", "category_id", "is_active", "id"),
                      {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(primary_key=True)
    # RESTRICT: a category can only be deleted once it is empty.
    category_id: Mapped[int] = mapped_column(ForeignKey("categories.id", ondelete="RESTRICT"))
    name: Mapped[str] = mapped_column(String(NAME_MAX))
    description: Mapped[str] = mapped_column(Text, default="")
    price: Mapped[int] = mapped_column(default=0)
    # UNLIMITED or STOCKED, chosen by the seller. A stocked product with no items left is sold
    # out, never unlimited: the kind does not follow from whether stock items exist.
    kind: Mapped[str] = mapped_column(String(16), default=UNLIMITED, server_default=UNLIMITED)
    # The "file with the description": a photo or a document shown with the card.
    description_file_id: Mapped[str | None] = mapped_column(String(FILE_ID_MAX), default=None)
    description_file_type: Mapped[str | None] = mapped_column(String(16), default=None)
    # What the buyer receives: a text, a file, or both. Never shown before payment.
    hidden_content: Mapped[str] = mapped_column(Text, default="")
    hidden_file_id: Mapped[str | None] = mapped_column(String(FILE_ID_MAX), default=None)
    hidden_file_type: Mapped[str | None] = mapped_column(String(16), default=None)
    # Hidden instead of deleted, so that people who bought it keep their access.
    is_active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # A subscription's channel or group, where the bot lets subscribers in (subscriptions.py).
    chat_id: Mapped[int | None] = mapped_column(BigInteger, default=None)
    chat_title: Mapped[str] = mapped_column(String(255), default="", server_default="")
    # A 📸 paid-media product's photos and videos, [{"type": "photo" | "video", "file_id": ...}], and their caption.
    media: Mapped[list | None] = mapped_column(JSON, default=None)
    caption: Mapped[str] = mapped_column(Text, default="", server_default="")
    # 🔒 Sent with protect_content: Telegram lets nobody forward or save its hidden content or paid media.
    protected: Mapped[bool] = mapped_column(default=False, server_default=false())

    category: Mapped[Category] = relationship(back_populates="products")
    purchases: Mapped[list[Purchase]] = relationship(back_populates="product")
    subscriptions: Mapped[list[Subscription]] = relationship(back_populates="product")
    # The unique items of a stocked product: each buyer gets one of their own.
    stock_items: Mapped[list[StockItem]] = relationship(back_populates="product", passive_deletes=True)

    @property
    def stocked(self) -> bool:
        return self.kind == STOCKED

    @property
    def one_off(self) -> bool:
        """Bought with one payment and delivered (unlimited, stocked): what a promo code may price and a gift may
        be (promos.py, gifts.py). Any other kind, such as a subscription billed every month, is neither."""
        return self.kind in ONE_OFF_KINDS

    @hybrid_property
    def discountable(self) -> bool:
        """Paid, and bought with one payment: what a promo code may lower (promos.py); also in a query."""
        return self.one_off and self.price > 0

    @discountable.inplace.expression
    @classmethod
    def _discountable_expression(cls):
        return and_(cls.kind.in_(ONE_OFF_KINDS), cls.price > 0)

    @property
    def sold_once_per_customer(self) -> bool:
        """The buy-again rule. An unlimited product is bought once (everyone gets the same content),
        and so is a free item (or one customer could take them all); a paid stocked product may be
        bought again: a second key. A subscription is paid again every month: one purchase a payment."""
        if self.kind == SUBSCRIPTION:
            return False
        return not self.stocked or self.price == 0

    def __repr__(self) -> str:
        return f"<Product {self.id} {self.name!r} {self.price}>"


class Purchase(Base):
    """One sale: who bought what, for how much, and Telegram's charge id."""

    __tablename__ = "purchases"
    __table_args__ = (
        # My purchases: a customer's purchases by date, and which are a subscription's payments (those
        # show as one line per subscription), so that a page and the count behind its pager read this alone.
        Index("ix_purchases_user_created", "user_id", "created_at", "subscription_charge_id"),
        Index("ix_purchases_product_user", "product_id", "user_id"),  # "do they own it?"
        # The sales report reads dates, refunds, currencies and prices from these alone.
        Index("ix_purchases_sales", "created_at", "refunded_at", "payment_type", "currency", "price", "product_id"),
        # Refunds only: an index holding the live sales too would tempt SQLite's planner to read
        # "refunded_at IS NULL" (nearly every sale) through it, instead of the date range above.
        Index("ix_purchases_refunded", "refunded_at", sqlite_where=text("refunded_at IS NOT NULL"),
              postgresql_where=text("refunded_at IS NOT NULL")),
        # The database itself keeps one live purchase per customer of a product sold once per
        # customer: two payments landing at once cannot both be recorded as live.
        Index("ux_purchases_one_live", "user_id", "product_id", unique=True,
              sqlite_where=text("refunded_at IS NULL AND once_per_customer"),
              postgresql_where=text("refunded_at IS NULL AND once_per_customer")),
        # What still has to be delivered (after a crash between the commit and the send).
        Index("ix_purchases_undelivered", "id", sqlite_where=text("delivered_at IS NULL"),
              postgresql_where=text("delivered_at IS NULL")),
        # A promo code's uses, and whether a customer has used it (promos.py).
        Index("ix_purchases_promo_live", "promo_code_id", "user_id",
              sqlite_where=text("promo_code_id IS NOT NULL AND refunded_at IS NULL"),
              postgresql_where=text("promo_code_id IS NOT NULL AND refunded_at IS NULL")),
        # 📊 Sales' line on promo codes reads a month of them from this alone, however many sales there are
        # (the last two columns only because SQLite checks the WHERE terms again, from the index if it can).
        Index("ix_purchases_promo_sales", "created_at", "currency", "list_price", "price", "promo_code_id",
              "refunded_at",
              sqlite_where=text("promo_code_id IS NOT NULL AND refunded_at IS NULL"),
              postgresql_where=text("promo_code_id IS NOT NULL AND refunded_at IS NULL")),
        # A paid-media purchase is recorded once per payload (paid_media.py), however often Telegram tells it.
        Index("ux_purchases_paid_media", "paid_media_payload", unique=True),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # RESTRICT: a sale is a record of money; deleting a buyer or a product
    # must never delete it silently.
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="RESTRICT"))
    price: Mapped[int] = mapped_column(default=0)  # what was paid: the price may change later
    currency: Mapped[str] = mapped_column(String(8), default="XTR")
    payment_type: Mapped[str] = mapped_column(String(16), default="stars")  # stars, card, free, manual
    # Telegram's telegram_payment_charge_id. Unique, so a payment that Telegram
    # delivers twice is recorded once. NULL for free and manual purchases.
    payment_id: Mapped[str | None] = mapped_column(String(255), unique=True, default=None)
    provider_payment_id: Mapped[str | None] = mapped_column(String(255), default=None)  # the provider's charge id
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    refunded_at: Mapped[datetime | None] = mapped_column(default=None)
    # Product.sold_once_per_customer when it was bought (see ux_purchases_one_live).
    once_per_customer: Mapped[bool] = mapped_column(default=False, server_default=false())
    delivered_at: Mapped[datetime | None] = mapped_column(default=None)
    # A payment the shop could not honour (checkout.refund_at_once: sold out, a second payment, a spent promo code),
    # to be refunded: until refunded_at is set it delivers nothing, owns nothing, and a gift of it is not claimed.
    refund_due: Mapped[bool] = mapped_column(default=False, server_default=false())
    # Who refunds it: "shop" (the seller's ↩️ Refund), "auto" (checkout.refund_at_once) or "telegram". Written before
    # the shop asks Telegram, so that Telegram's refunded_payment echo of the shop's own refund knows it
    # (purchases.close_refund); with refunded_at still NULL, that refund is under way.
    refunded_by: Mapped[str | None] = mapped_column(String(8), default=None)
    # A 📅 payment's Telegram subscription, named (as editUserStarSubscription names it) by the charge id of its
    # first payment: a renewal's is its subscription's, a second subscription paid by mistake has its own.
    subscription_charge_id: Mapped[str | None] = mapped_column(String(255), default=None)
    # Bought with a promo code (promos.py): the code, and the product's price before it.
    promo_code_id: Mapped[int | None] = mapped_column(ForeignKey("promo_codes.id", ondelete="RESTRICT"),
                                                      default=None)
    list_price: Mapped[int | None] = mapped_column(default=None)
    # A 📸 paid-media purchase's payload (paid_media.py): unique, so that a purchased_paid_media update Telegram
    # sends twice, or the ledger's record of the same payment, is recorded once. Its charge id comes from the ledger.
    paid_media_payload: Mapped[str | None] = mapped_column(String(128), default=None)  # ux_purchases_paid_media
    # What Telegram's affiliate program took of this payment, in nanostars (10⁻⁹ ⭐), as Telegram's Stars ledger
    # shows it (ledger.py fills it on reading); NULL when nobody referred the buyer, or the ledger was not read yet.
    commission_nanostars: Mapped[int | None] = mapped_column(BigInteger, default=None)

    user: Mapped[User] = relationship(back_populates="purchases")
    product: Mapped[Product] = relationship(back_populates="purchases")
    # Bought for someone else (gifts.py): the gift's link, and who claimed it.
    gift: Mapped[Gift | None] = relationship(back_populates="purchase", foreign_keys="Gift.purchase_id")

    def __repr__(self) -> str:
        return f"<Purchase {self.id} user={self.user_id} product={self.product_id} {self.price} {self.currency}>"


def item_digest(content: str, file_id: str | None = None) -> str:
    """A fingerprint of a stock item: two items of a product with the same one are the same key."""
    return hashlib.sha256((f"file:{file_id}" if file_id else content).encode()).hexdigest()


def _digest_of_row(context) -> str:
    row = context.get_current_parameters()
    return item_digest(row.get("content") or "", row.get("file_id"))


class StockItem(Base):
    """One unique thing to sell (a licence key, a gift code, an account): delivered to exactly one buyer."""

    __tablename__ = "stock_items"
    __table_args__ = (
        # "How many are left" and "take the next unsold one" both read this index.
        Index("ix_stock_items_product_unsold", "product_id", "purchase_id", "id"),
        # The database refuses the same key twice for a product, however it arrives.
        UniqueConstraint("product_id", "digest", name="uq_stock_items_product_digest"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # CASCADE: deleting a product (only possible while nobody bought it) drops its unsold stock.
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"))
    content: Mapped[str] = mapped_column(Text, default="")
    file_id: Mapped[str | None] = mapped_column(String(FILE_ID_MAX), default=None)
    file_type: Mapped[str | None] = mapped_column(String(16), default=None)
    digest: Mapped[str] = mapped_column(String(64), default=_digest_of_row)  # item_digest(), filled in by itself
    # NULL until sold; unique, so one purchase can never hold two items.
    purchase_id: Mapped[int | None] = mapped_column(ForeignKey("purchases.id", ondelete="RESTRICT"), unique=True,
                                                    default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    product: Mapped[Product] = relationship(back_populates="stock_items")

    def __repr__(self) -> str:
        state = f"sold in purchase {self.purchase_id}" if self.purchase_id else "unsold"
        return f"<StockItem {self.id} product={self.product_id} {state}>"


class WaitlistEntry(Base):
    """A customer who tapped "Notify me" on a sold-out product."""

    __tablename__ = "waitlist"
    __table_args__ = (UniqueConstraint("product_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def __repr__(self) -> str:
        return f"<WaitlistEntry product={self.product_id} user={self.user_id}>"


class Subscription(Base):
    """A customer's monthly access to a product's channel or group, paid in Stars and renewed by Telegram.

    One row per customer and product (subscriptions.py keeps it). Every payment,
    renewals included, is also a Purchase; this row says until when access is
    paid, and whether it was the bot that let the customer into the chat.
    """

    __tablename__ = "subscriptions"
    __table_args__ = (
        UniqueConstraint("user_id", "product_id", name="uq_subscriptions_user_product"),
        Index("ix_subscriptions_product", "product_id", "expires_at"),  # a product's subscribers, soonest first
        # The expiry check reads only the subscriptions whose access has not ended.
        Index("ix_subscriptions_live", "expires_at", sqlite_where=text("ended_at IS NULL"),
              postgresql_where=text("ended_at IS NULL")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="RESTRICT"))
    chat_id: Mapped[int] = mapped_column(BigInteger)  # the product's chat when they subscribed
    # Telegram names a subscription by the charge id of its first payment (editUserStarSubscription).
    first_charge_id: Mapped[str] = mapped_column(String(255))
    price: Mapped[int] = mapped_column(default=0)  # Stars a month, as Telegram charges them
    expires_at: Mapped[datetime] = mapped_column()  # paid until: Telegram's date, from the latest payment
    cancelled_at: Mapped[datetime | None] = mapped_column(default=None)  # no more renewals; access lasts
    # Who cancelled it: "shop" (❌ Cancel, a refund: editUserStarSubscription can re-enable it) or "user" (in
    # Telegram's own settings: only they can re-enable it there). NULL for the shop's cancels made before.
    cancelled_by: Mapped[str | None] = mapped_column(String(8), default=None)
    # When Telegram could not charge a renewal (too few Stars); access still ends at the paid date.
    renewal_failed_at: Mapped[datetime | None] = mapped_column(default=None)
    # The first charge of the Telegram subscription this one replaced (♻️ Renew after a failed renewal, or
    # subscribing again): Telegram may still charge that one late. The shop cancels it and refunds its renewals.
    replaced_charge_id: Mapped[str | None] = mapped_column(String(255), default=None)
    # The paid date a "your subscription ends soon" reminder was sent for: one reminder per date.
    reminded_for: Mapped[datetime | None] = mapped_column(default=None)
    # When the customer last tapped ❌ Cancel: their own choice, which neither a refund (cancelled_at) nor their
    # next payment (which clears cancelled_at) writes over. 📊 Sales counts cancellations by it.
    customer_cancelled_at: Mapped[datetime | None] = mapped_column(default=None)
    invite_link: Mapped[str | None] = mapped_column(String(255), default=None)  # the customer's own join link
    # When the bot let them into the chat: only such members are ever removed from it.
    joined_at: Mapped[datetime | None] = mapped_column(default=None)
    ended_at: Mapped[datetime | None] = mapped_column(default=None)  # expired or refunded; a renewal reopens
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    user: Mapped[User] = relationship(back_populates="subscriptions")
    product: Mapped[Product] = relationship(back_populates="subscriptions")

    def __repr__(self) -> str:
        return f"<Subscription {self.id} user={self.user_id} product={self.product_id} until {self.expires_at}>"


class StarLedgerEntry(Base):
    """One transaction of Telegram's Stars ledger, as ledger.py read it: what 📊 Sales sums into gross, commissions,
    fees and net for any period. Each is kept at its place in the ledger, so reading it again changes nothing."""

    __tablename__ = "star_ledger"

    position: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)  # 0 = the ledger's first
    transaction_id: Mapped[str] = mapped_column(String(255))  # a refund has its payment's id
    date: Mapped[datetime] = mapped_column(index=True)
    # payment, refund, fee (paid broadcasts), withdrawal, affiliate_program, ads, gift, chat, other, unknown
    kind: Mapped[str] = mapped_column(String(24))
    partner: Mapped[str] = mapped_column(String(40))  # Telegram's own name for it: user, telegram_api, fragment...
    nanostars: Mapped[int] = mapped_column(BigInteger)  # signed: what came into the bot's balance (+) or left it (-)
    # The affiliate's commission on a payment (a refund's is negative, as Telegram writes it), in nanostars.
    commission_nanostars: Mapped[int] = mapped_column(BigInteger, default=0)

    def __repr__(self) -> str:
        return f"<StarLedgerEntry {self.position} {self.kind} {self.nanostars}>"


class Broadcast(Base):
    """A message the seller sent to their customers (all, or a part: ``audience``), and how far the sending got.

    Kept in the database so that a restart resumes it where it stopped, to the
    same people, at the same speed, without writing to anyone twice.
    """

    __tablename__ = "broadcasts"

    id: Mapped[int] = mapped_column(primary_key=True)
    admin_chat_id: Mapped[int] = mapped_column(BigInteger)  # where the message to copy is, and the reports go
    message_id: Mapped[int] = mapped_column(BigInteger)  # the admin's message, copied to everyone
    language_code: Mapped[str] = mapped_column(String(16), default="")  # the reports' language
    progress_message_id: Mapped[int | None] = mapped_column(BigInteger, default=None)
    # Recipients are the customers with users.id in (done_until, last_user_id], taken in order of id.
    last_user_id: Mapped[int] = mapped_column(default=0)
    done_until: Mapped[int] = mapped_column(default=0)
    total: Mapped[int] = mapped_column(default=0)
    sent: Mapped[int] = mapped_column(default=0)
    blocked: Mapped[int] = mapped_column(default=0)
    failed: Mapped[int] = mapped_column(default=0)
    # Who it is for (broadcast.py's AUDIENCES): "all", "buyers", "product" (its buyers) or "subscribers" (of
    # ``product_id``, a subscription).
    audience: Mapped[str] = mapped_column(String(16), default="all", server_default="all")
    # No foreign key: a product a past broadcast named may still be deleted (a resumed one then reaches nobody).
    product_id: Mapped[int | None] = mapped_column(default=None)
    # ⚡ Fast: every message with allow_paid_broadcast (0.1 ⭐ each, up to 1,000 a second). Its place is saved a
    # batch at a time: claimed_until is the last users.id whose message may have gone out. After a kill, the ones
    # in (done_until, claimed_until] are counted as unsure and skipped rather than written to twice.
    fast: Mapped[bool] = mapped_column(default=False, server_default=false())
    claimed_until: Mapped[int] = mapped_column(default=0, server_default="0")
    unsure: Mapped[int] = mapped_column(default=0, server_default="0")
    # True while it runs, NULL once finished: unique, so only one broadcast runs at a time
    # (NULLs never collide in a unique constraint, on SQLite or PostgreSQL).
    running: Mapped[bool | None] = mapped_column(unique=True, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)

    def __repr__(self) -> str:
        state = "running" if self.running else "finished"
        return f"<Broadcast {self.id} {state} {self.sent}/{self.total}>"


# ---------------------------------------------------------------------------
# Promo codes and gifts (promos.py, gifts.py)
# ---------------------------------------------------------------------------

class PromoCode(Base):
    """A discount a customer types or follows a link to: a percentage or an amount off, for the shop,
    a category or one product; perhaps limited in uses, perhaps expiring."""

    __tablename__ = "promo_codes"
    __table_args__ = {"sqlite_autoincrement": True}  # a deleted code's buttons never open another

    id: Mapped[int] = mapped_column(primary_key=True)
    # In capitals, so that a code typed in any case is found by this unique index (no timing to compare).
    code: Mapped[str] = mapped_column(String(32), unique=True)
    percent: Mapped[int | None] = mapped_column(default=None)  # 1-100, or None for a fixed amount
    amount: Mapped[int | None] = mapped_column(default=None)  # in the smallest unit of ``currency``
    currency: Mapped[str] = mapped_column(String(8), default="XTR")
    # What it applies to: one product, one category, or (both None) the whole shop. CASCADE: a
    # product or category can only be deleted once nobody bought it, so no use of the code is lost.
    category_id: Mapped[int | None] = mapped_column(ForeignKey("categories.id", ondelete="CASCADE"), default=None)
    product_id: Mapped[int | None] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"), default=None)
    max_uses: Mapped[int | None] = mapped_column(default=None)  # in all; each customer uses it once
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    is_active: Mapped[bool] = mapped_column(default=True)
    batch: Mapped[int | None] = mapped_column(default=None, index=True)  # made together by 🎟 Generate codes
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def __repr__(self) -> str:
        return f"<PromoCode {self.id} {self.code[:3]}… {self.percent or 0}% {self.amount or 0}>"


class PromoHold(Base):
    """A use of a promo code set aside at pre-checkout for one customer, until their payment lands."""

    __tablename__ = "promo_holds"
    __table_args__ = (UniqueConstraint("promo_code_id", "telegram_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    promo_code_id: Mapped[int] = mapped_column(ForeignKey("promo_codes.id", ondelete="CASCADE"))
    telegram_id: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[datetime] = mapped_column()

    def __repr__(self) -> str:
        return f"<PromoHold code={self.promo_code_id} user={self.telegram_id}>"


class PendingGrant(Base):
    """A product the seller granted (/grant) to someone who has not opened the bot yet: Telegram lets no bot
    write first, so it waits, and becomes their purchase at their first /start (sales.py)."""

    __tablename__ = "pending_grants"

    id: Mapped[int] = mapped_column(primary_key=True)
    telegram_id: Mapped[int] = mapped_column(BigInteger, index=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"))
    admin_id: Mapped[int] = mapped_column(BigInteger)  # who granted it: they hear when it is delivered
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


GIFT_TOKEN_BYTES = 16  # 128 random bits: a gift's link cannot be guessed


def new_gift_token() -> str:
    return secrets.token_urlsafe(GIFT_TOKEN_BYTES)


class Gift(Base):
    """A purchase bought for someone else: the secret of its link, and the purchase of whoever claimed it."""

    __tablename__ = "gifts"

    id: Mapped[int] = mapped_column(primary_key=True)
    purchase_id: Mapped[int] = mapped_column(ForeignKey("purchases.id", ondelete="RESTRICT"), unique=True)
    # Found by this unique index, never compared by hand, so that no timing tells how much of a guess was right.
    token: Mapped[str] = mapped_column(String(32), unique=True, default=new_gift_token)
    # Unique: a gift is claimed once, whoever opens its link at the same moment.
    claimed_purchase_id: Mapped[int | None] = mapped_column(ForeignKey("purchases.id", ondelete="RESTRICT"),
                                                            unique=True, default=None)
    claimed_at: Mapped[datetime | None] = mapped_column(default=None)

    purchase: Mapped[Purchase] = relationship(back_populates="gift", foreign_keys=[purchase_id])
    claimed_purchase: Mapped[Purchase | None] = relationship(foreign_keys=[claimed_purchase_id])

    def __repr__(self) -> str:
        state = f"claimed in purchase {self.claimed_purchase_id}" if self.claimed_purchase_id else "unclaimed"
        return f"<Gift {self.id} purchase={self.purchase_id} {state}>"


# ---------------------------------------------------------------------------
# Support tickets (support.py)
# ---------------------------------------------------------------------------

class SupportTicket(Base):
    """A customer's /paysupport conversation with the seller: open until resolved, or a day without a word."""

    __tablename__ = "support_tickets"
    __table_args__ = (
        # The customer's open ticket, and how many they opened this hour.
        Index("ix_support_tickets_customer", "customer_id", "opened_at"),
        # The open tickets only, by their last message: which have fallen silent.
        Index("ix_support_tickets_open", "last_message_at", sqlite_where=text("closed_at IS NULL"),
              postgresql_where=text("closed_at IS NULL")),
        {"sqlite_autoincrement": True},  # a ticket's number, which the admins see, is never given twice
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(BigInteger)  # their Telegram id
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_message_at: Mapped[datetime] = mapped_column(default=utcnow)  # either way: 24 hours after it, it closes
    # How many of the customer's messages were passed on; 0: the admins have not heard of the ticket yet.
    messages: Mapped[int] = mapped_column(default=0)
    closed_at: Mapped[datetime | None] = mapped_column(default=None)
    # Who closed it: the admin who tapped ✅ Resolved, or the customer; NULL once closed: a day without a word.
    closed_by: Mapped[int | None] = mapped_column(BigInteger, default=None)

    def __repr__(self) -> str:
        return f"<SupportTicket {self.id} customer={self.customer_id} {'closed' if self.closed_at else 'open'}>"


class TicketMessage(Base):
    """A message of a ticket in an admin's chat: an admin who replies to it answers the ticket."""

    __tablename__ = "ticket_messages"

    chat_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    message_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("support_tickets.id", ondelete="CASCADE"), index=True)

    def __repr__(self) -> str:
        return f"<TicketMessage {self.chat_id}/{self.message_id} ticket={self.ticket_id}>"


# ---------------------------------------------------------------------------
# The referral program (referrals.py)
# ---------------------------------------------------------------------------

INVITE_CODE_BYTES = 6  # 48 random bits, 8 characters in a link: short, and not a customer's id to count up


def new_invite_code() -> str:
    return secrets.token_urlsafe(INVITE_CODE_BYTES)


class InviteLink(Base):
    """A customer's personal invite link: the code in t.me/<bot>?start=r_<code>."""

    __tablename__ = "invite_links"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True,
                                         autoincrement=False)
    # Found by this unique index, never compared by hand (as a gift's token).
    code: Mapped[str] = mapped_column(String(16), unique=True, default=new_invite_code)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def __repr__(self) -> str:
        return f"<InviteLink user={self.user_id}>"


class Referral(Base):
    """A new customer who came through someone's invite link, and what their first paid purchase earned."""

    __tablename__ = "referrals"
    # The reward job reads the referrals still waiting for a decision, and only them.
    __table_args__ = (Index("ix_referrals_waiting", "id", sqlite_where=text("outcome IS NULL"),
                            postgresql_where=text("outcome IS NULL")),)

    id: Mapped[int] = mapped_column(primary_key=True)
    inviter_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"), index=True)
    # Unique: a customer is invited once, by whoever's link brought them first.
    friend_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    # The friend's one-time welcome discount, if the seller offers one.
    welcome_code_id: Mapped[int | None] = mapped_column(ForeignKey("promo_codes.id", ondelete="SET NULL"),
                                                        unique=True, default=None)
    # Decided once the friend's first paid purchase has been kept for the holding time: "rewarded", "refunded"
    # (within the holding time) or "capped" (the inviter had earned the month's most); NULL until then.
    outcome: Mapped[str | None] = mapped_column(String(16), default=None)
    purchase_id: Mapped[int | None] = mapped_column(ForeignKey("purchases.id", ondelete="RESTRICT"), default=None)
    decided_at: Mapped[datetime | None] = mapped_column(default=None)
    reward_code_id: Mapped[int | None] = mapped_column(ForeignKey("promo_codes.id", ondelete="RESTRICT"),
                                                       unique=True, default=None)
    told_at: Mapped[datetime | None] = mapped_column(default=None)  # when the inviter heard of their reward

    def __repr__(self) -> str:
        return f"<Referral {self.id} {self.inviter_id}->{self.friend_id} {self.outcome or 'waiting'}>"


# ---------------------------------------------------------------------------
# Reviews (reviews.py)
# ---------------------------------------------------------------------------

REVIEW_TEXT_MAX = 500  # characters, as Telegram counts them (utf16_len): four reviews and replies fit a message


class Review(Base):
    """A buyer's rating of a product they own, 1 to 5 stars and a few words, and the seller's reply under it."""

    __tablename__ = "reviews"
    __table_args__ = (
        # One review per buyer and product: writing again replaces it.
        UniqueConstraint("user_id", "product_id", name="uq_reviews_user_product"),
        # A card's average and count, and the newest reviews a page at a time, read this index.
        Index("ix_reviews_product_shown", "product_id", "hidden", "updated_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    # CASCADE: a product can only be deleted while nobody bought it, so it never takes a real review with it.
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"))
    stars: Mapped[int] = mapped_column()  # 1 to 5, checked before it is stored (reviews.py)
    text: Mapped[str] = mapped_column(Text, default="")  # the buyer's words, at most REVIEW_TEXT_MAX; may be empty
    reply: Mapped[str] = mapped_column(Text, default="")  # the seller's, shown under the review
    hidden: Mapped[bool] = mapped_column(default=False)  # by the seller: counted nowhere, listed nowhere
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)  # written or rewritten: the newest show first
    # The buyer's changes within the hour that began at edits_since: a flood of edits is turned away.
    edits: Mapped[int] = mapped_column(default=0)
    edits_since: Mapped[datetime | None] = mapped_column(default=None)

    user: Mapped[User] = relationship()
    product: Mapped[Product] = relationship()

    def __repr__(self) -> str:
        state = " hidden" if self.hidden else ""
        return f"<Review {self.id} user={self.user_id} product={self.product_id} {self.stars}★{state}>"


# ---------------------------------------------------------------------------
# Queries the chapters share. Each takes the caller's session and runs one or
# two indexed statements: nothing here loads the whole catalog.
# ---------------------------------------------------------------------------

def save_user(session: Session, telegram_user) -> User:
    """Create or refresh the shop's record of a Telegram user (username and language may change)."""
    user = session.scalar(select(User).where(User.telegram_id == telegram_user.id))
    if user is None:
        user = User(telegram_id=telegram_user.id)
        user.first_visit = True
        session.add(user)
    user.username = telegram_user.username
    user.first_name = telegram_user.first_name or ""
    user.language_code = telegram_user.language_code or ""
    user.is_blocked = False  # they are talking to us, so they have not blocked the bot
    try:
        session.commit()
    except IntegrityError:  # the same new user, saved by another thread a moment ago
        session.rollback()
        user = session.scalar(select(User).where(User.telegram_id == telegram_user.id))
    return user


def mark_blocked(session: Session, telegram_id: int) -> None:
    """Someone blocked the bot: broadcasts skip them until they write again (save_user clears it)."""
    session.execute(update(User).where(User.telegram_id == telegram_id).values(is_blocked=True))


def reachable_people(session: Session, telegram_ids) -> dict[int, str]:
    """{telegram id: language code} of those among ``telegram_ids`` who opened the bot and have not blocked it."""
    return dict(session.execute(select(User.telegram_id, User.language_code)
                                .where(User.telegram_id.in_(telegram_ids), User.is_blocked.is_(False))).all())


def category_with_count(session: Session, category_id: int, active_only: bool = True):
    """(name, number of products) of a category, or None: one statement, counted from the index."""
    counted = select(func.count(Product.id)).where(Product.category_id == category_id)
    if active_only:
        counted = counted.where(Product.is_active)
    return session.execute(select(Category.name, counted.scalar_subquery().label("total"))
                           .where(Category.id == category_id)).first()


def stock_columns():
    """Per-product columns for listings: is it stocked, and how many items are left."""
    unsold = (select(func.count(StockItem.id)).where(StockItem.product_id == Product.id,
                                                      StockItem.purchase_id.is_(None))
              .correlate(Product).scalar_subquery())
    return (Product.kind == STOCKED).label("stocked"), unsold.label("left")


def listing_columns():
    """What a listing shows of each product: its button's name and price, and its stock figures."""
    return Product.id, Product.name, Product.price, Product.is_active, *stock_columns()


def products_page(session: Session, category_id: int, page: int, per_page: int, active_only: bool = True):
    """One page of a category's products, with stock figures for just those rows.

    The page's ids come from the index alone, so the products of earlier pages
    cost an index entry each to skip (PostgreSQL would otherwise work out their
    stock figures too): page 50 takes as long as page 1.
    """
    ids = select(Product.id).where(Product.category_id == category_id)
    if active_only:
        ids = ids.where(Product.is_active)
    page_ids = ids.order_by(Product.id).limit(per_page).offset(page * per_page)
    return session.execute(select(*listing_columns()).where(Product.id.in_(page_ids)).order_by(Product.id)).all()


def unsold_count(product_id: int):
    """The query that counts a product's unsold items."""
    return select(func.count(StockItem.id)).where(StockItem.product_id == product_id, StockItem.purchase_id.is_(None))


def unsold_items(session: Session, product_id: int) -> int:
    """How many items of a product are still unsold."""
    return session.scalar(unsold_count(product_id))


def stock_left(session: Session, product: Product) -> int | None:
    """Unsold items of a stocked product (0 means sold out); None for an unlimited one."""
    return unsold_items(session, product.id) if product.stocked else None


def stock_and_rating(session: Session, product: Product) -> tuple[int | None, tuple[float | None, int]]:
    """What a card shows under the price, in one statement: ``stock_left`` and ``rating_of``."""
    left = unsold_count(product.id).scalar_subquery() if product.stocked else null()
    left, *rating = session.execute(rating_query(product.id, left.label("unsold"))).one()
    return left, as_rating(*rating)


def owning(product_id):
    """The condition on a purchase that makes its customer an owner of the product: live (not refunded, nor
    being refunded), and not a gift they bought for someone else."""
    return and_(Purchase.product_id == product_id, Purchase.refunded_at.is_(None), ~Purchase.refund_due,
                ~Purchase.gift.has())


def grant_waits(session: Session, telegram_id: int) -> bool:
    """The seller granted this person something before they had opened the bot (sales.py delivers it)."""
    return session.scalar(select(PendingGrant.id).where(PendingGrant.telegram_id == telegram_id).limit(1)) is not None


def highest_id_given(session: Session, table: str) -> int:
    """The highest id the database ever gave a row of ``table`` (its rows deleted since included): the ids of
    categories, products and promo codes are never given twice (AUTOINCREMENT on SQLite, a sequence on PostgreSQL),
    so an id under it that finds nothing belonged to something removed."""
    if session.get_bind().dialect.name == "sqlite":
        given = session.execute(text("SELECT seq FROM sqlite_sequence WHERE name = :table"), {"table": table})
    else:
        sequence = session.scalar(text("SELECT pg_get_serial_sequence(:table, 'id')"), {"table": table})
        given = session.execute(text(f"SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM {sequence}"))
    return given.scalar() or 0


def shown_reviews(product_id):
    """The condition on a review that lets it count: of this product, and not hidden by the seller."""
    return and_(Review.product_id == product_id, Review.hidden == false())  # "= false": an index can serve it


def rating_query(product_id: int, *columns):
    """One row: ``columns``, then a product's average stars and its number of reviews, hidden ones left out."""
    return select(*columns, func.avg(Review.stars), func.count(Review.id)).where(shown_reviews(product_id))


def as_rating(average, count: int) -> tuple[float | None, int]:
    return (float(average) if count else None), count


def rating_of(session: Session, product_id: int) -> tuple[float | None, int]:
    """A product's average stars and how many reviews count: (None, 0) without any."""
    return as_rating(*session.execute(rating_query(product_id)).one())


def drop_unowned_reviews(session: Session, product_id: int) -> None:
    """After a refund: the reviews of a product by people who no longer own it go (in the caller's transaction).

    A buyer who still owns it through another purchase keeps theirs; a gift's
    recipient whose copy the refund took back loses theirs too.
    """
    session.flush()  # the refund's own changes first: the claimed copy it took back
    owner = select(Purchase.id).where(Purchase.user_id == Review.user_id, owning(product_id)).exists()
    session.execute(delete(Review).where(Review.product_id == product_id, ~owner)
                    .execution_options(synchronize_session=False))


def owned_purchase_id(session: Session, telegram_id: int, product_id: int) -> int | None:
    """The id of the purchase that makes this user an owner of a product (``owning``), if any."""
    return session.scalar(select(Purchase.id).join(User)
                          .where(User.telegram_id == telegram_id, owning(product_id)).limit(1))


# What each figure counts, defined once: 📊 Sales, a product's screen, the promo lines and the export all
# read these, so that no two screens disagree on what a sale is.
PAID = ("stars", "card")  # a sale is a payment over zero: in Stars or by card
FREE = "free"  # a free item, or one a 100 % promo code made free: counted apart from sales
GRANTED = "manual"  # the seller's /grant: counted apart too
RECEIVED_GIFT = "gift"  # a claimed gift: its sale is the giver's purchase, so it counts in no figure


def figure_of(payment_type: str) -> str | None:
    """The figure a purchase counts in: "sales", "free", "granted", or None (a received gift)."""
    if payment_type in PAID:
        return "sales"
    return {FREE: "free", GRANTED: "granted"}.get(payment_type)


def is_sale():
    """The condition on a purchase that makes it a sale: money was paid (a refunded one is a sale refunded)."""
    return Purchase.payment_type.in_(PAID)


def is_live():
    """Not refunded: a refund takes a sale out of every figure but the refunds."""
    return Purchase.refunded_at.is_(None)


def is_renewal():
    """A subscription's payment after its first: a first payment names its own subscription (so does a second
    subscription paid by mistake, which is no renewal either)."""
    return Purchase.subscription_charge_id.is_not(None) & (Purchase.subscription_charge_id != Purchase.payment_id)


def product_figures(session: Session, product_id: int) -> dict[str, int]:
    """A product's live sales, their revenue, and its free items and grants (a product's admin screen)."""
    rows = session.execute(select(Purchase.payment_type, func.count(), func.coalesce(func.sum(Purchase.price), 0))
                           .where(Purchase.product_id == product_id, is_live()).group_by(Purchase.payment_type))
    figures = {"sales": 0, "revenue": 0, "free": 0, "granted": 0}
    for payment_type, count, amount in rows:
        if figure := figure_of(payment_type):
            figures[figure] += count
            figures["revenue"] += amount if figure == "sales" else 0
    return figures


def claim_stock_item(session: Session, product_id: int, purchase: Purchase) -> bool:
    """Give the next unsold item to ``purchase``, in the caller's transaction. False when none is left.

    Two buyers may reach for the same row at once. The UPDATE only succeeds
    while the row is still unsold, so the loser sees 0 rows and tries the next
    one. SKIP LOCKED lets PostgreSQL hand a waiting buyer another row at once;
    SQLite ignores it (its writers take turns anyway).
    """
    session.flush()  # the purchase needs its id
    for _attempt in range(20):
        candidate = session.scalar(
            select(StockItem.id).where(StockItem.product_id == product_id, StockItem.purchase_id.is_(None))
            .order_by(StockItem.id).limit(1).with_for_update(skip_locked=True))
        if candidate is None:
            return False
        claimed = session.execute(update(StockItem).where(StockItem.id == candidate, StockItem.purchase_id.is_(None))
                                  .values(purchase_id=purchase.id))
        if claimed.rowcount == 1:
            return True
    return False


def stock_item_of(session: Session, purchase_id: int) -> StockItem | None:
    """The unique item a purchase received, if its product is stocked."""
    return session.scalar(select(StockItem).where(StockItem.purchase_id == purchase_id))


# ---------------------------------------------------------------------------
# Search in any alphabet, through a text index
# ---------------------------------------------------------------------------

class lowercase(FunctionElement):
    """lower() that knows every alphabet: SQLite's own lower() only folds ASCII ("Ключ" stays "Ключ").

    Search compares ``lowercase(column)`` with the lower-cased words; PostgreSQL's
    lower() already handles Unicode, SQLite gets Python's str.lower (database._tune_sqlite).
    """

    type = Text()
    name = "lowercase"
    inherit_cache = True


@compiles(lowercase)
def _lowercase_default(element, compiler, **kw) -> str:
    return f"lower({compiler.process(element.clauses, **kw)})"


@compiles(lowercase, "sqlite")
def _lowercase_sqlite(element, compiler, **kw) -> str:
    return f"unicode_lower({compiler.process(element.clauses, **kw)})"


# The text index that lets a search (storefront.py) find words without reading every
# product: an index of trigrams (each run of three characters), so it serves words of three
# characters or more (the search_index migration explains both kinds).
# On SQLite it is an FTS5 table whose rowid is the product's id; on PostgreSQL a
# GIN index on name || ' ' || description. Neither is a model.
SEARCH_INDEX = "products_search"
def is_modelled(name: str | None, type_: str, parent_names) -> bool:
    """Alembic's include_name hook: the search index (and FTS5's own tables) is left out of the comparison
    between the database and the models (database.matches, migrations/env.py)."""
    return not (name or "").startswith(SEARCH_INDEX)


Base.metadata.info["include_name"] = is_modelled  # so shopkit's database.py compares the models, not the index


# On SQLite, the index is an FTS5 table beside products and the triggers that keep it in step.
SQLITE_SEARCH_INDEX = [
    "CREATE VIRTUAL TABLE products_search USING fts5(name, description, content='products', content_rowid='id', "
    "tokenize='trigram')",
    "CREATE TRIGGER products_search_insert AFTER INSERT ON products BEGIN "
    "INSERT INTO products_search (rowid, name, description) VALUES (new.id, new.name, new.description); END",
    "CREATE TRIGGER products_search_delete AFTER DELETE ON products BEGIN "
    "INSERT INTO products_search (products_search, rowid, name, description) "
    "VALUES ('delete', old.id, old.name, old.description); END",
    "CREATE TRIGGER products_search_update AFTER UPDATE OF name, description ON products BEGIN "
    "INSERT INTO products_search (products_search, rowid, name, description) "
    "VALUES ('delete', old.id, old.name, old.description); "
    "INSERT INTO products_search (rowid, name, description) VALUES (new.id, new.name, new.description); END",
]


@event.listens_for(Product.__table__, "after_create")
def create_search_index(_table, connection, **_) -> None:
    """Base.metadata.create_all() makes the search index too, as the search_index migration does for a
    migrated database."""
    if connection.dialect.name == "sqlite":
        for statement in SQLITE_SEARCH_INDEX:
            connection.exec_driver_sql(statement)
        return
    connection.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    schema = connection.exec_driver_sql("SELECT extnamespace::regnamespace::text FROM pg_extension "
                                        "WHERE extname = 'pg_trgm'").scalar()
    connection.exec_driver_sql(f"CREATE INDEX products_search ON products USING gin "
                               f"((name || ' ' || description) {schema}.gin_trgm_ops) WITH (fastupdate = off)")
