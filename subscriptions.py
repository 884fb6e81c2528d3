"""Subscriptions: monthly access to a private channel or group, paid in Telegram Stars.

Reading order: ... storefront.py → **subscriptions.py** → purchases.py → ...

What solo sellers sell most on Telegram is access: a private channel of
signals or lessons, a members' group. Telegram bills a Stars subscription
every 30 days by itself; this chapter keeps the chat's door.

1. **Subscribe.** A 📅 product's card has a Subscribe button, which brings an
   invoice link made with ``createInvoiceLink(subscription_period=30 days)``.
   Telegram then charges the customer every 30 days until they cancel.
2. **Payments.** checkout.py records every payment, renewals included, as a
   purchase; in the same transaction ``record_period`` starts the customer's
   subscription or moves its end to the date Telegram gives. A repeated update
   changes nothing (its charge id is recorded already), and a renewal says
   nothing to the customer.
3. **Joining.** The first delivery brings a join link of the customer's own.
   It makes a join request, which the bot approves for the paying subscriber
   only: a forwarded link lets nobody else in.
4. **Expiry.** About once a minute the bot removes whoever's paid time is over
   (ban, then unban, so that they may come back after paying again) and tells
   them, with ♻️ Renew. It removes only members it let in itself: never an
   admin, never someone who joined another way. After a restart, the first
   check catches up on what was missed.
5. **❌ Cancel / ♻️ Resume** in 📦 My purchases (editUserStarSubscription);
   cancelling keeps access until the paid date.
6. **Refunds** of a subscription payment end its access at once.
7. **Telegram's word** (Bot API 10.2, the ``subscription`` update, which
   checkout.py hands here): the customer cancelled in Telegram's own settings
   (shown at once; only they can turn it back on, there), re-enabled it, or
   Telegram could not charge the renewal (they hear at once, with ♻️ Renew).
   ♻️ Renew starts a new Telegram subscription, and Telegram may go on trying
   the old one: the shop cancels it, and refunds a renewal of it that still
   arrives, so that nobody pays twice for a month.
   Each is acted on once, in whatever order it and the payments arrive.
   Three days before a cancelled subscription ends, its customer is reminded,
   once, with ♻️ Resume when it was the shop's ❌ Cancel.

When the bot has lost its rights in the chat, the admins are told (once a
day) and the database stays as it was, so that the next check tries again.

This chapter comes before checkout.py and ledger.py because they call it
while they record a payment or a refund. The seller's side (the chat a 📅
product opens, its subscribers, the figures) is channels.py.
"""
from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import requests
from sqlalchemy import select, update
from sqlalchemy.orm import Session
from telebot import TeleBot, types
from telebot.apihelper import ApiException, ApiTelegramException

from menus import PURCHASES
from models import SUBSCRIPTION, Product, Purchase, Subscription, User
from shopkit import (
    MASS_SEND_INTERVAL,
    STARS,
    After,
    Handlers,
    Screen,
    Setting,
    Shop,
    Tap,
    Toast,
    add_handlers,
    call_api,
    chat_of,
    format_price,
    keyboard,
    label,
    language_for_code,
    language_of,
    notify_admins,
    put_setting,
    run_handler,
    send,
    telegram_error,
    text,
    truncate,
    utcnow,
    with_toast,
)
from storefront import BUY

logger = logging.getLogger("shopbot")
handlers = Handlers()

# The buttons of a subscription's card, and the numbers each carries (shopkit's Tap).
OPEN_SUBSCRIPTION = Tap("subscription", "subscription_id")
SUBSCRIPTION_LINK = Tap("subscription_link", "subscription_id")
CANCEL_SUBSCRIPTION = Tap("cancel_subscription", "subscription_id")
RESUME_SUBSCRIPTION = Tap("resume_subscription", "subscription_id")

PERIOD = 2_592_000  # seconds: 30 days, the one subscription period Telegram takes
CHECK_EVERY = 60.0  # seconds between two expiry checks
# Telegram charges a renewal when the paid time ends, and the payment may reach
# the shop a little later: a subscriber who renews is not removed meanwhile.
RENEWAL_GRACE = timedelta(hours=1)
ALERT_EVERY = timedelta(days=1)  # the admins hear at most this often that the bot lost its rights in a chat
# Telegram charges a renewal as the paid time ends: a failed charge is about the paid date within this long of it
# (one reported with a month paid ahead came before a renewal that has since been paid, and is stale).
RENEWAL_DUE = timedelta(days=1)
REMIND_BEFORE = timedelta(days=3)  # a cancelled subscription's customer is reminded this long before it ends
# Who cancelled a subscription (Subscription.cancelled_by): the shop can undo only its own cancel.
BY_SHOP, BY_USER = "shop", "user"

# ---------------------------------------------------------------------------
# Whose access is live
# ---------------------------------------------------------------------------


def bot_id(shop: Shop) -> int:
    """The bot's own user id, which every token starts with ("123456:ABC...")."""
    return int(shop.config.token.partition(":")[0])


def is_live(subscription: Subscription, now: datetime) -> bool:
    """Not ended (by expiry or a refund), and paid for now or in the hour of grace that waits for its renewal:
    meanwhile a second payment would start a second Telegram subscription, billed every month too."""
    return subscription.ended_at is None and subscription.expires_at > (
        now if subscription.cancelled_at else now - RENEWAL_GRACE)


def renewal_failed(subscription: Subscription) -> bool:
    """Telegram could not charge the renewal due at the paid date, and no payment has moved that date since."""
    failed = subscription.renewal_failed_at
    return failed is not None and failed >= subscription.expires_at - RENEWAL_DUE


def renews(subscription: Subscription, now: datetime) -> bool:
    """Live, and Telegram will go on charging it: a second subscription would be paid twice. After a failed
    renewal a new one may start (♻️ Renew)."""
    return is_live(subscription, now) and not renewal_failed(subscription)


def live(now: datetime):
    """``is_live``, as a query condition."""
    return Subscription.ended_at.is_(None) & (Subscription.expires_at > now - RENEWAL_GRACE) & (
        Subscription.cancelled_at.is_(None) | (Subscription.expires_at > now))


def customers_subscription(session: Session, telegram_id: int, product_id: int) -> Subscription | None:
    return session.scalar(select(Subscription).join(User)
                          .where(User.telegram_id == telegram_id, Subscription.product_id == product_id))


def renewed_by(shop: Shop, telegram_id: int, product_id: int, paid_at: datetime) -> bool:
    """Whether a payment found only in Telegram's ledger (which does not say) renewed the customer's subscription.

    Telegram charges a renewal as the paid time ends (taken here as up to a day
    before it, or in the hour of grace after). A payment made with more time
    left is a second subscription, and one made after access ended a new one;
    an older renewal, found after later ones, lies within the time paid for.
    """
    with shop.Session() as session:
        subscription = customers_subscription(session, telegram_id, product_id)
    if subscription is None or (subscription.ended_at is not None and subscription.ended_at < paid_at):
        return False
    expires = subscription.expires_at
    return (expires - timedelta(days=1) <= paid_at <= expires + RENEWAL_GRACE
            or paid_at + timedelta(seconds=PERIOD) < expires)


def paid_until(payment: types.SuccessfulPayment) -> datetime:
    """The end of the time a payment pays for: Telegram's date (30 days on, for a payment without one)."""
    if payment.subscription_expiration_date:
        return datetime.fromtimestamp(payment.subscription_expiration_date, UTC).replace(tzinfo=None)
    return utcnow() + timedelta(seconds=PERIOD)


def day(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d}"


# ---------------------------------------------------------------------------
# 1. Subscribe: an invoice link that Telegram bills every 30 days
# ---------------------------------------------------------------------------

def send_subscription_invoice(shop: Shop, chat_id: int, lang: str, title: str, description: str, price: int,
                              payload: str) -> None:
    """A message with a button that opens Telegram's payment sheet for a monthly subscription.

    ``title`` up to 32 characters, ``description`` up to 255; ``payload`` is
    checkout.invoice_payload: the product and the buyer, as for any invoice.
    """
    link = shop.bot.create_invoice_link(title, description, payload, None, STARS,
                                        [types.LabeledPrice(title, price)], subscription_period=PERIOD)
    shown_price = format_price(price, STARS)
    pay = types.InlineKeyboardButton(label(lang, "btn_subscribe_pay", price=shown_price), url=link)
    send(shop, chat_id, text(lang, "subscription_invoice", name=title, price=shown_price), keyboard([pay]))


def subscribe(shop: Shop, session: Session, call: types.CallbackQuery, product: Product, payload: str):
    """📅 Subscribe on a card (checkout.tap_buy): the invoice link, or the subscription the customer has."""
    lang = language_of(call.from_user)
    if shop.config.currency != STARS or product.chat_id is None:  # Telegram bills subscriptions in Stars only
        return Toast(text(lang, "unavailable"))
    subscription = customers_subscription(session, call.from_user.id, product.id)
    if subscription is not None and renews(subscription, utcnow()):
        return with_toast(subscription_screen(session, lang, subscription), text(lang, "subscription_already"))
    return Toast(text(lang, "invoice_sent"), once_shown=True), After(
        send_subscription_invoice, chat_of(call), lang, truncate(product.name, 32),
        truncate(product.description.strip() or product.name, 255), product.price, payload)


def checkout_problem(session: Session, telegram_id: int, product: Product) -> str | None:
    """Pre-checkout for a subscription (checkout.py): a second one to the same product is refused."""
    if product.chat_id is None:
        return "checkout_unavailable"
    subscription = customers_subscription(session, telegram_id, product.id)
    return "checkout_subscribed" if subscription and renews(subscription, utcnow()) else None


# ---------------------------------------------------------------------------
# 2. Payments: recorded by checkout.py, with the subscription in the same transaction
# ---------------------------------------------------------------------------

def record_period(session: Session, purchase: Purchase, payment: types.SuccessfulPayment) -> None:
    """Start the customer's subscription, or move its end to Telegram's new date; not committed (the caller does).

    A renewal has nothing to deliver, unless access had ended meanwhile: then
    the customer gets their join link again. A first payment while the
    customer's subscription is live (two payment sheets paid at once) changes
    nothing: checkout refunds it. Nor does a late renewal of the Telegram
    subscription a new one replaced: checkout refunds it and cancels that one.
    """
    subscription = session.scalar(select(Subscription).where(Subscription.user_id == purchase.user.id,
                                                             Subscription.product_id == purchase.product.id))
    charge, until = purchase.payment_id, paid_until(payment)
    renewal = subscription is not None and not payment.is_first_recurring
    purchase.subscription_charge_id = subscription.first_charge_id if renewal else charge
    if subscription is None:
        session.add(Subscription(user=purchase.user, product=purchase.product, chat_id=purchase.product.chat_id,
                                 first_charge_id=charge, price=purchase.price, expires_at=until))
    elif payment.is_first_recurring and renews(subscription, utcnow()):
        purchase.delivered_at = utcnow()  # paid twice: nothing to deliver, the charge goes back
    elif payment.is_first_recurring:  # subscribed again after the last one ended, or after its renewal failed
        # Unless cancelled, Telegram may still charge the old one (it retries a failed renewal): checkout cancels it.
        subscription.replaced_charge_id = subscription.first_charge_id if subscription.cancelled_at is None else None
        subscription.first_charge_id, subscription.expires_at = charge, until
        subscription.cancelled_at = subscription.cancelled_by = None  # a new Telegram subscription: it renews
        reopen(subscription, purchase)
    elif renews_replaced(subscription, utcnow()):  # the old subscription charged late: nothing to deliver
        purchase.subscription_charge_id, purchase.delivered_at = subscription.replaced_charge_id, utcnow()
    else:  # a renewal (ledger.renewal decides it for a payment found only in Telegram's ledger)
        subscription.expires_at = max(subscription.expires_at, until)
        reopen(subscription, purchase)


def renews_replaced(subscription: Subscription, now: datetime) -> bool:
    """Whether a renewal that arrives now is the replaced Telegram subscription's: the current one is not due
    (Telegram charges a renewal as the paid time ends), so it cannot be its renewal."""
    return subscription.replaced_charge_id is not None and now < subscription.expires_at - RENEWAL_DUE


def reopen(subscription: Subscription, purchase: Purchase) -> None:
    """Access goes on at this payment's price; if it had ended, the purchase is delivered again with the link.

    A renewal leaves a cancel as it is: Telegram charges nothing after one, so
    this payment was made before it (its update overtaken, or found late in the
    ledger); a customer who turns renewal back on is announced by Telegram.
    """
    subscription.price = purchase.price
    if subscription.ended_at is None:
        purchase.delivered_at = utcnow()  # nothing new to deliver
    else:
        subscription.ended_at = subscription.joined_at = None  # removed from the chat: to be let in again


def payment_role(session: Session, purchase: Purchase) -> str:
    """What a recorded subscription payment was: "first", "renewal", "second" (a duplicate, to refund) or
    "superseded" (a renewal of the Telegram subscription the customer's current one replaced, to refund)."""
    subscription = session.scalar(select(Subscription).where(Subscription.user_id == purchase.user_id,
                                                             Subscription.product_id == purchase.product_id))
    if subscription.first_charge_id == purchase.payment_id:
        return "first"
    if purchase.subscription_charge_id == purchase.payment_id:
        return "second"
    return "renewal" if purchase.subscription_charge_id == subscription.first_charge_id else "superseded"


def cancel_replaced(session: Session, purchase: Purchase) -> After | None:
    """The first payment of a subscription that replaced another Telegram may still charge: the step that
    cancels that one with Telegram, to take once this payment is committed (None if there is none)."""
    subscription = session.scalar(select(Subscription).where(Subscription.user_id == purchase.user_id,
                                                             Subscription.product_id == purchase.product_id))
    replaced = subscription.replaced_charge_id if subscription.first_charge_id == purchase.payment_id else None
    return After(edit_renewal, purchase.user.telegram_id, replaced) if replaced else None


def edit_renewal(shop: Shop, telegram_id: int, charge_id: str, cancel: bool = True) -> bool:
    """Tell Telegram to renew a subscription no more (or again); False when it refuses."""
    try:
        shop.bot.edit_user_star_subscription(telegram_id, charge_id, cancel)
        return True
    except ApiTelegramException as error:
        logger.warning("Telegram refused to %s subscription %s: %s", "cancel" if cancel else "resume", charge_id,
                       error.description)
        return False


# ---------------------------------------------------------------------------
# 3. Joining: the customer's own link, and join requests for the subscriber only
# ---------------------------------------------------------------------------

def access_query():
    """A subscription with what its messages need: the customer, the product and its chat."""
    return (select(Subscription, User.telegram_id, User.language_code, Product.name, Product.chat_title)
            .join(User, Subscription.user_id == User.id).join(Product, Subscription.product_id == Product.id))


def new_invite_link(shop: Shop, subscription: Subscription, chat_title: str) -> str | None:
    """A join link for one subscriber: it makes join requests, so that only they are let in (on_join_request)."""
    try:
        link = call_api(shop, None, shop.bot.create_chat_invite_link, subscription.chat_id, hiccups=True,
                        name=f"Subscription #{subscription.id}", creates_join_request=True).invite_link
    except ApiTelegramException as error:
        report_refusal(shop, subscription.chat_id, chat_title, error)
        return None
    except requests.RequestException as error:  # the network failed under the call: 🔗 Join makes it later
        logger.warning("Could not make a join link for subscription %s: %s", subscription.id, error)
        return None
    with shop.Session() as session:
        session.execute(update(Subscription).where(Subscription.id == subscription.id).values(invite_link=link))
        session.commit()
    return link


def show_invite(shop: Shop, chat_id: int, subscription: Subscription, chat_title: str, lang: str) -> None:
    """Send the subscriber their join link (made the first time it is needed)."""
    link = subscription.invite_link or new_invite_link(shop, subscription, chat_title)
    if link is None:
        send(shop, chat_id, text(lang, "subscription_link_later", chat=chat_title))
        return
    join = types.InlineKeyboardButton(label(lang, "btn_join", chat=truncate(chat_title, 40)), url=link)
    send(shop, chat_id, text(lang, "subscription_join", chat=chat_title), keyboard([join]))


def send_invite(shop: Shop, chat_id: int, purchase_id: int, lang: str) -> None:
    """After a subscription's delivery (purchases.deliver): its join link, while access is live."""
    with shop.Session() as session:
        found = session.execute(access_query().join(Purchase, (Purchase.user_id == Subscription.user_id) & (
            Purchase.product_id == Subscription.product_id)).where(Purchase.id == purchase_id)).first()
    if found is not None and found.Subscription.ended_at is None:
        show_invite(shop, chat_id, found.Subscription, found.chat_title, lang)


def admit(shop: Shop, subscription_id: int, chat_id: int, chat_title: str, telegram_id: int, lang: str) -> None:
    """Approve a subscriber's join request, and remember that the bot let them in."""
    try:
        call_api(shop, None, shop.bot.approve_chat_join_request, chat_id, telegram_id, hiccups=True)
    except ApiTelegramException as error:
        if "USER_ALREADY_PARTICIPANT" not in error.description:  # in already, another way: theirs to keep
            report_refusal(shop, chat_id, chat_title, error)
        return
    with shop.Session() as session:
        # Open again if a refund or the expiry ended it since the look (on_join_request): the bot let them
        # in, so the bot must take them out, now or at the next check.
        session.execute(update(Subscription).where(Subscription.id == subscription_id)
                        .values(joined_at=utcnow(), ended_at=None))
        found = session.execute(access_query().where(Subscription.id == subscription_id)).one()
        session.commit()
    if not is_live(found.Subscription, utcnow()):
        end_access(shop, found, note=None)  # the refund's or the expiry's own message told them
        return
    logger.info("Let subscriber %s into chat %s", telegram_id, chat_id)
    send(shop, telegram_id, text(lang, "subscription_joined", chat=chat_title))


def decline(shop: Shop, chat_id: int, chat_title: str, telegram_id: int, product_id: int | None, lang: str) -> None:
    """A join request from someone who is not a live subscriber: declined, and shown how to subscribe."""
    try:
        shop.bot.decline_chat_join_request(chat_id, telegram_id)
    except ApiTelegramException as error:
        logger.info("Could not decline %s's request to join %s: %s", telegram_id, chat_id, error.description)
    subscribe = [BUY.button(label(lang, "btn_subscribe_short"), product_id=product_id)] if product_id else []
    send(shop, telegram_id, text(lang, "subscription_members_only", chat=chat_title), keyboard(subscribe))


def on_join_request(shop: Shop, request: types.ChatJoinRequest, session: Session, lang: str):
    """Someone asks to join through one of the shop's links: a live subscriber is let in, anyone else declined."""
    if request.invite_link is None or request.invite_link.creator.id != bot_id(shop):
        return None  # a link of the chat's own admins: theirs to decide
    # Any live subscription to this chat (two products may open it): the one paid the longest answers for them.
    found = session.execute(access_query().where(Subscription.chat_id == request.chat.id,
                                                 User.telegram_id == request.from_user.id, live(utcnow()))
                            .order_by(Subscription.expires_at.desc())).first()
    if found is not None:
        return After(admit, found.Subscription.id, request.chat.id, found.chat_title, request.from_user.id, lang)
    logger.info("Declined user %s's request to join chat %s: not a subscriber", request.from_user.id, request.chat.id)
    product_id = session.scalar(select(Product.id).where(Product.chat_id == request.chat.id, Product.is_active)
                                .order_by(Product.id).limit(1))
    return After(decline, request.chat.id, request.chat.title, request.user_chat_id, product_id, lang)


# ---------------------------------------------------------------------------
# 4. Expiry: out at the right time, and told so
# ---------------------------------------------------------------------------

def lost_rights(error: ApiTelegramException) -> bool:
    """Telegram's answer when the bot is no longer in the chat, or no longer an admin with the rights it needs."""
    description = error.description.lower()
    return error.error_code == 403 or any(words in description for words in (
        "rights", "chat not found", "admin_required", "not a member", "kicked"))


def report_refusal(shop: Shop, chat_id: int, chat_title: str, error: ApiTelegramException) -> None:
    """Telegram refused something in a subscription's chat: lost rights are told to the admins (once a day per
    chat); anything else (flood control, a request gone) is only logged, and uses up no alert."""
    if not lost_rights(error):
        logger.warning("Telegram refused an action in chat %s: %s", chat_id, error.description)
        return
    key, now = f"chat_alert:{chat_id}", utcnow()
    with shop.Session() as session:
        last = session.get(Setting, key)
        if last is not None and now - datetime.fromisoformat(last.value) < ALERT_EVERY:
            logger.debug("Still cannot manage chat %s: %s", chat_id, error.description)  # said already today
            return
        put_setting(session, key, now.isoformat())
        session.commit()
    logger.warning("Cannot manage chat %s: %s", chat_id, error.description)
    notify_admins(shop, "admin_chat_rights_lost", chat=chat_title, error=telegram_error(error.description))


def remove_member(shop: Shop, chat_id: int, telegram_id: int, chat_title: str) -> bool:
    """Take a member out of the chat (ban, then unban: they may come back after paying again); never an admin.

    False when the bot cannot: the admins are told, and the next check tries again.
    """
    try:
        member = shop.bot.get_chat_member(chat_id, telegram_id)
        if member.status in ("member", "restricted"):  # not an admin or the owner, and still in
            shop.bot.ban_chat_member(chat_id, telegram_id)
        # "kicked" as well: the bot's own ban, whose unban failed last time (flood control, a crash). Left
        # banned, they could never come back, even after paying again.
        if member.status in ("member", "restricted", "kicked"):
            shop.bot.unban_chat_member(chat_id, telegram_id, only_if_banned=True)
            logger.info("Removed user %s from chat %s", telegram_id, chat_id)
    except ApiTelegramException as error:
        report_refusal(shop, chat_id, chat_title, error)
        if lost_rights(error) or error.error_code != 400:  # flood control, or Telegram unwell: the next check tries
            return False
    return True  # or nothing left to remove (a deleted account, say)


def overdue(now: datetime):
    """Subscriptions whose paid time is over (no longer ``live``): at once when cancelled, after the renewal's
    grace otherwise."""
    return Subscription.ended_at.is_(None) & (Subscription.expires_at <= now) & (
        Subscription.cancelled_at.is_not(None) | (Subscription.expires_at <= now - RENEWAL_GRACE))


def close(shop: Shop, subscription: Subscription) -> str | None:
    """Mark a subscription ended: "ended"; "renewed" when a renewal moved its date meanwhile (access goes on,
    but the member is out of the chat now); None when something else ended it first, or when the bot let them
    in since it looked (admit): then they are still in, and the next check takes them out."""
    still_open = (Subscription.id == subscription.id) & Subscription.ended_at.is_(None) & (
        Subscription.joined_at.is_not_distinct_from(subscription.joined_at))
    with shop.Session() as session:
        if session.execute(update(Subscription).where(still_open, Subscription.expires_at == subscription.expires_at)
                           .values(ended_at=utcnow(), joined_at=None)).rowcount:
            outcome = "ended"
        else:
            outcome = "renewed" if session.execute(update(Subscription).where(still_open)
                                                   .values(joined_at=None)).rowcount else None
        session.commit()
    return outcome


def hand_over(shop: Shop, subscription: Subscription) -> bool:
    """Whether another live subscription of theirs to the same chat keeps them in (a seller may sell a month and
    a promotion for one channel); if so, that one now answers for the member the bot let in."""
    with shop.Session() as session:
        other = session.scalar(select(Subscription).where(
            Subscription.user_id == subscription.user_id, Subscription.chat_id == subscription.chat_id,
            Subscription.id != subscription.id, live(utcnow())).limit(1))
        if other is not None:
            other.joined_at = other.joined_at or subscription.joined_at
            session.commit()
        return other is not None


def end_access(shop: Shop, found, note: str | None = "subscription_ended") -> str | None:
    """Remove one subscriber whose access is over (if the bot let them in), mark it ended, and tell them.

    Returns close()'s outcome, or "refused" when Telegram would not let the bot remove them.
    """
    subscription = found.Subscription
    kept = subscription.joined_at is not None and hand_over(shop, subscription)
    if subscription.joined_at is not None and not kept and not remove_member(
            shop, subscription.chat_id, found.telegram_id, found.chat_title):
        return "refused"
    outcome, lang = close(shop, subscription), language_for_code(found.language_code)
    if outcome == "renewed":
        show_invite(shop, found.telegram_id, subscription, found.chat_title, lang)
    elif outcome == "ended" and note:
        renew = [BUY.button(label(lang, "btn_renew"), product_id=subscription.product_id)]
        send(shop, found.telegram_id, text(lang, "subscription_ended_still_in" if kept else note, name=found.name,
                                           chat=found.chat_title), keyboard(renew))
    return outcome


def remove_expired(shop: Shop, now: datetime | None = None) -> int:
    """Everyone whose paid time is over leaves the chat and is told; how many. Safe to run again."""
    with shop.Session() as session:
        overdue_ones = session.execute(access_query().where(overdue(now or utcnow()))
                                       .order_by(Subscription.expires_at)).all()
    ended, refused = 0, set()  # chats that refused a removal (lost rights, flood control): left until the next check
    for found in overdue_ones:
        if found.Subscription.chat_id in refused and found.Subscription.joined_at is not None:
            continue
        try:
            outcome = end_access(shop, found)
        except ApiException as error:  # Telegram unreachable, or that customer's message refused
            logger.warning("Could not end subscription %s yet: %s", found.Subscription.id, error)
            outcome = None
        ended += outcome == "ended"
        if outcome == "refused":
            refused.add(found.Subscription.chat_id)
        shop.sleep(MASS_SEND_INTERVAL)  # a message to each: keep under Telegram's limit, as a broadcast does
    return ended


def check_expiry(shop: Shop) -> int:
    """Remind the subscribers whose cancelled subscription ends in 3 days; then end the expired ones (how many)."""
    remind_before_end(shop)
    return remove_expired(shop)


# ---------------------------------------------------------------------------
# 5. My purchases: each subscription's status, ❌ Cancel and ♻️ Resume
# ---------------------------------------------------------------------------

# How a subscription's state reads: in a sentence, and short, on its button in My purchases.
STATE_LINES = {"active": "sub_state_active", "cancelled": "sub_state_cancelled", "failed": "sub_state_failed",
               "ended": "sub_state_ended"}
STATE_BUTTONS = {"active": "sub_button_active", "cancelled": "sub_button_cancelled", "failed": "sub_button_failed",
                 "ended": "sub_button_ended"}


def status_of(lang: str, subscription: Subscription, wording: dict = STATE_LINES) -> str:
    """Active until its next renewal, cancelled or unpaid (a failed renewal) with access until a date, or ended."""
    if subscription.ended_at is not None:
        return label(lang, wording["ended"], date=day(subscription.ended_at))
    state = "cancelled" if subscription.cancelled_at else "failed" if renewal_failed(subscription) else "active"
    return label(lang, wording[state], date=day(subscription.expires_at))


def cancelled_in_telegram(subscription: Subscription) -> bool:
    """Cancelled by its customer in Telegram's settings: the bot cannot turn it back on (editUserStarSubscription
    re-enables only what the bot cancelled), the customer can, there."""
    return subscription.cancelled_at is not None and subscription.cancelled_by == BY_USER


def purchase_rows(session: Session, lang: str, telegram_id: int) -> list[list]:
    """📦 My purchases (purchases.py): a button for each subscription, with its status and date."""
    rows = session.execute(select(Subscription, Product.name).join(User, Subscription.user_id == User.id)
                           .join(Product, Subscription.product_id == Product.id)
                           .where(User.telegram_id == telegram_id).order_by(Subscription.id)).all()
    return [[OPEN_SUBSCRIPTION.button(f"📅 {truncate(name, 30)} · {status_of(lang, subscription, STATE_BUTTONS)}",
                    subscription_id=subscription.id)] for subscription, name in rows]


def subscription_screen(session: Session, lang: str, subscription: Subscription) -> Screen:
    """One subscription: its chat, status and price, with 🔗 Join and ❌ Cancel / ♻️ Resume, or ♻️ Renew."""
    product = session.get(Product, subscription.product_id)
    body = text(lang, "subscription", name=product.name, chat=product.chat_title,
                status=status_of(lang, subscription), price=format_price(subscription.price, STARS))
    back = [PURCHASES.button(label(lang, "btn_back"), page=0)]
    if subscription.ended_at is not None:
        again = "btn_subscribe_again" if subscription.cancelled_by == BY_USER else "btn_renew"
        return Screen(body, keyboard([BUY.button(label(lang, again), product_id=product.id)], back))
    if cancelled_in_telegram(subscription):  # only the customer can turn it back on, in Telegram
        body, switch = body + text(lang, "subscription_reenable_in_telegram"), []
    elif subscription.cancelled_at:
        switch = [RESUME_SUBSCRIPTION.button(label(lang, "btn_resume_subscription"), subscription_id=subscription.id)]
    elif renewal_failed(subscription):  # Telegram renews it no more: a new subscription, paid now
        body += text(lang, "subscription_renewal_failed_note")
        switch = [BUY.button(label(lang, "btn_renew"), product_id=product.id)]
    else:
        switch = [CANCEL_SUBSCRIPTION.button(label(lang, "btn_cancel_subscription"), subscription_id=subscription.id)]
    join = SUBSCRIPTION_LINK.button(label(lang, "btn_join", chat=truncate(product.chat_title, 40)),
                                    subscription_id=subscription.id)
    return Screen(body, keyboard([join], switch, back))


def own_subscription(session: Session, call: types.CallbackQuery, subscription_id: int) -> Subscription | None:
    """The subscription, if it is the caller's own (forged buttons find nothing)."""
    return session.scalar(select(Subscription).join(User).where(Subscription.id == subscription_id,
                                                                User.telegram_id == call.from_user.id))


@handlers.tap(OPEN_SUBSCRIPTION)
def tap_subscription(shop: Shop, call: types.CallbackQuery, session: Session, lang: str, subscription_id: int):
    """A subscription in 📦 My purchases."""
    subscription = own_subscription(session, call, subscription_id)
    return subscription_screen(session, lang, subscription) if subscription else Toast(text(lang, "not_your_purchase"))


def send_join_link(shop: Shop, chat_id: int, subscription_id: int, lang: str) -> None:
    """The subscriber's join link, as a new message."""
    with shop.Session() as session:
        found = session.execute(access_query().where(Subscription.id == subscription_id)).one()
    show_invite(shop, chat_id, found.Subscription, found.chat_title, lang)


@handlers.tap(SUBSCRIPTION_LINK)
def tap_subscription_link(shop: Shop, call: types.CallbackQuery, session: Session, lang: str, subscription_id: int):
    """🔗 Join: the subscriber's own join link again."""
    subscription = own_subscription(session, call, subscription_id)
    if subscription is None or subscription.ended_at is not None:
        return Toast(text(lang, "not_your_purchase"))
    return After(send_join_link, chat_of(call), subscription.id, lang)


def change_renewal(shop: Shop, session: Session, call: types.CallbackQuery, subscription_id: int, cancel: bool):
    """❌ Cancel or ♻️ Resume, asked of Telegram first: the database changes only if Telegram agrees."""
    lang = language_of(call.from_user)
    subscription = own_subscription(session, call, subscription_id)
    if subscription is None or subscription.ended_at is not None:
        return Toast(text(lang, "not_your_purchase"))
    if not cancel and cancelled_in_telegram(subscription):  # an old ♻️ Resume: Telegram would not let the bot
        return Toast(text(lang, "subscription_resume_in_telegram"))
    session.commit()  # end the read: no transaction may wait for Telegram's answer
    if not edit_renewal(shop, call.from_user.id, subscription.first_charge_id, cancel):
        return Toast(text(lang, "subscription_edit_failed"))
    subscription.cancelled_at, subscription.cancelled_by = (utcnow(), BY_SHOP) if cancel else (None, None)
    subscription.customer_cancelled_at = subscription.cancelled_at  # the customer's own: 📊 Sales counts it
    session.commit()
    logger.info("User %s %s subscription %s", call.from_user.id, "cancelled" if cancel else "resumed", subscription.id)
    toast = text(lang, "subscription_cancel_done" if cancel else "subscription_resume_done",
                 date=day(subscription.expires_at))
    return with_toast(subscription_screen(session, lang, subscription), toast)


@handlers.tap(CANCEL_SUBSCRIPTION)
def tap_cancel_subscription(shop: Shop, call: types.CallbackQuery, session: Session, lang: str, subscription_id: int):
    """❌ Cancel: Telegram renews it no more; access lasts until the paid date."""
    return change_renewal(shop, session, call, subscription_id, cancel=True)


@handlers.tap(RESUME_SUBSCRIPTION)
def tap_resume_subscription(shop: Shop, call: types.CallbackQuery, session: Session, lang: str, subscription_id: int):
    """♻️ Resume: Telegram may renew it again."""
    return change_renewal(shop, session, call, subscription_id, cancel=False)


# ---------------------------------------------------------------------------
# 6. Refunds end access at once
# ---------------------------------------------------------------------------

def end_refunded_access(shop: Shop, subscription_id: int, note: str | None) -> None:
    """A refunded subscription leaves the chat now, and Telegram renews it no more.

    ``note``: what the customer is told (None: the refund's own message says it).
    """
    with shop.Session() as session:
        found = session.execute(access_query().where(Subscription.id == subscription_id)).one()
    edit_renewal(shop, found.telegram_id, found.Subscription.first_charge_id)
    end_access(shop, found, note)  # if the bot cannot now, the expiry check tries again


def end_by_refund(session: Session, purchase: Purchase, note: str | None = "subscription_refunded"):
    """A subscription payment was refunded (in the caller's transaction): its access is over now, with no grace.

    Returns the step that removes the member, or None for any other purchase.
    A payment of another Telegram subscription than the live one (a second one,
    paid by mistake) ends nothing: that one only renews no more.
    """
    if purchase.product.kind != SUBSCRIPTION:
        return None
    subscription = session.scalar(select(Subscription).where(Subscription.user_id == purchase.user_id,
                                                             Subscription.product_id == purchase.product_id))
    if subscription is not None and purchase.subscription_charge_id != subscription.first_charge_id:
        return After(edit_renewal, purchase.user.telegram_id, purchase.subscription_charge_id)
    if subscription is None or subscription.ended_at is not None:
        return None
    subscription.expires_at = min(subscription.expires_at, utcnow())
    if subscription.cancelled_at is None:  # the refund's step cancels it with Telegram
        subscription.cancelled_at, subscription.cancelled_by = utcnow(), BY_SHOP
    return After(end_refunded_access, subscription.id, note)


# ---------------------------------------------------------------------------
# 7. Telegram's word: cancelled or re-enabled in Telegram, a renewal it could not charge; the reminder
# ---------------------------------------------------------------------------

def state_changed(session: Session, telegram_id: int, product_id: int | None, state: str, lang: str):
    """A ``subscription`` update (checkout.py reads its payload): act on the state once; its After, if any.

    Telegram sends no date with it, so each state is checked against what the
    shop knows: a repeated one finds it done already, and a failure reported for
    a paid date that a renewal has since moved (the payment overtook the update)
    is stale. A payload that names no subscription of this customer is logged.
    """
    subscription = customers_subscription(session, telegram_id, product_id) if product_id else None
    if subscription is None or state not in ("canceled", "active", "failed"):
        logger.warning("Ignored a subscription update (%s) from user %s: no such subscription here", state,
                       telegram_id)
        return None
    now = utcnow()
    if subscription.ended_at is not None:
        logger.info("Subscription %s has ended: its %s update changes nothing", subscription.id, state)
    elif state == "canceled" and subscription.cancelled_at is None:
        subscription.cancelled_at, subscription.cancelled_by = now, BY_USER
        subscription.customer_cancelled_at = now  # the customer's own choice: 📊 Sales counts it
        logger.info("User %s cancelled subscription %s in Telegram", telegram_id, subscription.id)
    elif state == "active" and subscription.cancelled_at is not None:
        subscription.cancelled_at = subscription.cancelled_by = subscription.customer_cancelled_at = None
        logger.info("User %s re-enabled subscription %s in Telegram", telegram_id, subscription.id)
    elif state == "failed" and subscription.expires_at <= now + RENEWAL_DUE and not renewal_failed(subscription):
        subscription.renewal_failed_at = now
        logger.info("Telegram could not charge user %s's renewal of subscription %s", telegram_id, subscription.id)
        session.commit()
        return After(tell_renewal_failed, subscription.id, lang)
    else:
        logger.info("Subscription %s: its %s update changes nothing (done already, or stale)", subscription.id,
                    state)
    session.commit()
    return None


def tell_renewal_failed(shop: Shop, subscription_id: int, lang: str) -> None:
    """The customer hears at once that Telegram could not charge them: top up Stars, or ♻️ Renew."""
    with shop.Session() as session:
        found = session.execute(access_query().where(Subscription.id == subscription_id)).one()
    renew = [BUY.button(label(lang, "btn_renew"), product_id=found.Subscription.product_id)]
    send(shop, found.telegram_id, text(lang, "subscription_renewal_failed", name=found.name,
                                       date=day(found.Subscription.expires_at)), keyboard(renew))


def ending_soon(now: datetime):
    """Cancelled subscriptions whose paid time ends within REMIND_BEFORE, not reminded for that date yet."""
    return (Subscription.cancelled_at.is_not(None) & Subscription.ended_at.is_(None)
            & (Subscription.expires_at > now) & (Subscription.expires_at <= now + REMIND_BEFORE)
            & Subscription.reminded_for.is_distinct_from(Subscription.expires_at))


def claim_reminder(shop: Shop, subscription: Subscription, now: datetime) -> bool:
    """Write the reminder down before sending it: once per paid date, across restarts. (A crash in between
    loses it, which is better than a second one.)"""
    with shop.Session() as session:
        claimed = session.execute(update(Subscription).where(Subscription.id == subscription.id, ending_soon(now))
                                  .values(reminded_for=Subscription.expires_at)).rowcount
        session.commit()
    return bool(claimed)


def send_reminder(shop: Shop, found) -> None:
    """"Ends on <date>": with ♻️ Resume after the shop's ❌ Cancel; after a cancel in Telegram, where to undo it."""
    subscription, lang = found.Subscription, language_for_code(found.language_code)
    values = {"name": found.name, "chat": found.chat_title, "date": day(subscription.expires_at)}
    if cancelled_in_telegram(subscription):
        send(shop, found.telegram_id, text(lang, "subscription_ending_in_telegram", **values))
        return
    resume = RESUME_SUBSCRIPTION.button(label(lang, "btn_resume_subscription"), subscription_id=subscription.id)
    send(shop, found.telegram_id, text(lang, "subscription_ending", **values), keyboard([resume]))


def remind_before_end(shop: Shop, now: datetime | None = None) -> int:
    """Remind each customer whose cancelled subscription ends within three days, once; how many. One that
    renews gets nothing: Telegram renews it."""
    now = now or utcnow()
    with shop.Session() as session:
        due = session.execute(access_query().where(ending_soon(now)).order_by(Subscription.expires_at)).all()
    reminded = 0
    for found in due:
        if not claim_reminder(shop, found.Subscription, now):
            continue  # resumed, renewed or reminded meanwhile
        try:
            send_reminder(shop, found)
            reminded += 1
        except ApiException as error:  # Telegram unreachable: a reminder is not worth a second try
            logger.warning("Could not remind subscriber %s: %s", found.telegram_id, error)
        shop.sleep(MASS_SEND_INTERVAL)
    return reminded


def register(bot: TeleBot, shop: Shop) -> None:
    """Wire the subscriptions into the bot: join requests, the subscriber's buttons, and the expiry checks."""
    shop.jobs_at_start.append(lambda shop: shop.start_repeating(check_expiry, CHECK_EVERY, "%s subscriptions ended"))
    bot.register_chat_join_request_handler(lambda request: run_handler(shop, request, on_join_request),
                                           func=lambda request: True)
    add_handlers(shop, handlers)
