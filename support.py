"""Support: /paysupport opens a ticket, a conversation between the customer and the seller.

Reading order: ... gifts.py → **support.py** → channels.py → ...

Telegram requires every bot that takes payments to answer /paysupport. Here
it opens a *ticket*. From then on, whatever the customer sends that is
neither a command nor the answer to a question the bot asked (a text, a
screenshot, a document, a voice message...) is copied to the admins under a
line naming the customer and the ticket's number; the first message comes
with their latest purchases. An admin answers by replying to any message of
the ticket in their chat, or with 💬 Reply; the customer gets the answer from
the bot, and the other admins get it too, with who answered. Neither side
needs the other's Telegram account.

The ticket stays open while the customer taps the shop's buttons and uses
its commands. It ends when an admin taps ✅ Resolved, when the customer closes
it, or after 24 hours without a message either way; both sides are told. A
customer opens at most 3 tickets an hour; inside one only a flood is held
back, so that the admins' chats stay within Telegram's limits.
"""
from __future__ import annotations

import logging
import time
from collections import deque
from datetime import timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session
from telebot import TeleBot, types

from menus import menu_keyboard, menu_screen
from models import Gift, Purchase, SupportTicket, TicketMessage, User, save_user
from shopkit import (
    After,
    Handlers,
    Screen,
    Shop,
    Tap,
    Toast,
    add_handlers,
    ask,
    call_api,
    describe_user,
    end_dialog,
    format_price,
    keyboard,
    label,
    language_for_code,
    language_of,
    message_admins,
    send,
    text,
    utcnow,
)

logger = logging.getLogger("shopbot")
SILENT_HOURS = 24  # a ticket without a message either way for this long is closed
TICKETS_PER_HOUR = 3  # how many tickets one customer may open in an hour
FLOOD_MESSAGES = 20  # a minute, inside one ticket: each is two messages to every admin, and Telegram holds back
CHECK_EVERY = 60  # seconds between looks for tickets fallen silent

customer = Handlers()  # /paysupport, the customer's messages in their ticket, ✖️ Close
seller = Handlers(admin=True)  # the admins' answers, 💬 Reply and ✅ Resolved

# The buttons of a ticket, and the number each carries.
REPLY = Tap("reply", "ticket_id")  # a ↩️ Reply from before tickets carries a customer id: "no such ticket"
RESOLVE = Tap("ticket_resolve", "ticket_id")
CLOSE = Tap("ticket_close", "ticket_id")  # the customer's


def ticket_keyboard(ticket_id: int):
    """💬 Reply and ✅ Resolved under a ticket's messages to the admins, in each admin's language."""
    return lambda lang: keyboard([REPLY.button(label(lang, "btn_reply"), ticket_id=ticket_id),
                                  RESOLVE.button(label(lang, "btn_resolve"), ticket_id=ticket_id)])


def close_keyboard(lang: str, ticket_id: int) -> types.InlineKeyboardMarkup:
    """The customer's ✖️ Close the ticket."""
    return keyboard([CLOSE.button(label(lang, "btn_close_ticket"), ticket_id=ticket_id)])


# ---------------------------------------------------------------------------
# Tickets: which is open, and what the admins are told of the customer
# ---------------------------------------------------------------------------

def silent_since():
    """A ticket whose last message is older than this has fallen silent."""
    return utcnow() - timedelta(hours=SILENT_HOURS)


def open_ticket(session: Session, customer_id: int) -> SupportTicket | None:
    """The customer's open ticket: not closed, and not silent for a day."""
    return session.scalar(select(SupportTicket).where(
        SupportTicket.customer_id == customer_id, SupportTicket.closed_at.is_(None),
        SupportTicket.last_message_at > silent_since()).order_by(SupportTicket.id.desc()).limit(1))


def ticket_holders(shop: Shop) -> set[int]:
    """Who may have an open ticket: those who had one when the shop started, and whoever opened one or was
    answered in one since. Kept in memory so that everyone else's messages (each search) cost no query for
    tickets; for those in it, the database decides."""
    return shop.memo["ticket_holders"]


def load_ticket_holders(shop: Shop) -> None:
    """Read who has a ticket not closed yet, when the shop starts."""
    with shop.Session() as session:
        shop.memo["ticket_holders"] = set(session.scalars(
            select(SupportTicket.customer_id).where(SupportTicket.closed_at.is_(None))))


def tickets_this_hour(session: Session, customer_id: int) -> int:
    """How many tickets the customer opened in the last hour (the limit counts tickets, not messages)."""
    return session.scalar(select(func.count(SupportTicket.id)).where(
        SupportTicket.customer_id == customer_id, SupportTicket.opened_at > utcnow() - timedelta(hours=1)))


def customer_of(session: Session, ticket: SupportTicket) -> tuple[str, str]:
    """The ticket's customer as the admins read them ('Alice (@alice)'), and their language."""
    user = session.scalar(select(User).where(User.telegram_id == ticket.customer_id))
    if user is None:
        return str(ticket.customer_id), language_for_code(None)
    return describe_user(user), language_for_code(user.language_code)


def gift_of(session: Session, purchase: Purchase) -> tuple[str, str | None] | None:
    """(giver, recipient) when the purchase was a gift, either way; recipient None while unclaimed."""
    if purchase.gift is not None:  # bought for someone else
        claimed = purchase.gift.claimed_purchase
        return describe_user(purchase.user), describe_user(claimed.user) if claimed else None
    received = session.scalar(select(Gift).where(Gift.claimed_purchase_id == purchase.id))
    if received is not None:
        return describe_user(received.purchase.user), describe_user(purchase.user)
    return None


def purchase_line(session: Session, purchase: Purchase):
    """'#12 Netflix — 150 ⭐ (charge id)', then whether it was a gift and whether it was refunded, in the
    admin's language (plain text: the notice escapes it)."""
    line = f"#{purchase.id} {purchase.product.name} — {format_price(purchase.price, purchase.currency)} " \
           f"({purchase.payment_id or '-'})"
    gift = gift_of(session, purchase)
    refund = "support_refunded" if purchase.refunded_at else "support_refund_due" if purchase.refund_due else None

    def in_language(lang: str) -> str:
        notes = [label(lang, "support_gift", giver=gift[0], recipient=gift[1] or label(lang, "support_unclaimed"))
                 ] if gift else []
        return " · ".join([line, *notes, *([label(lang, refund)] if refund else [])])
    return in_language


def latest_purchases(session: Session, telegram_id: int):
    """The customer's three latest purchases, a line each, in the admin's language."""
    purchases = session.scalars(select(Purchase).join(User, Purchase.user_id == User.id)
                                .where(User.telegram_id == telegram_id).order_by(Purchase.id.desc()).limit(3)).all()
    lines = [purchase_line(session, purchase) for purchase in purchases]
    return lambda lang: "\n".join(line(lang) for line in lines) or "—"


def remember(shop: Shop, ticket_id: int, sent: dict[int, list[int]]) -> None:
    """Note which messages in the admins' chats belong to the ticket: replying to one answers it."""
    with shop.Session() as session:
        session.add_all(TicketMessage(chat_id=chat_id, message_id=message_id, ticket_id=ticket_id)
                        for chat_id, message_ids in sent.items() for message_id in message_ids)
        session.commit()


def tell_closed(shop: Shop, ticket_id: int, customer_id: int, customer_lang: str, customer_key: str,
                admin_key: str | None, **values) -> None:
    """Tell the customer, and the admins (``admin_key``, unless they never heard of it), that a ticket is over."""
    send(shop, customer_id, text(customer_lang, customer_key, ticket=ticket_id), menu_keyboard(customer_lang))
    if admin_key is not None:
        message_admins(shop, admin_key, ticket=ticket_id, **values)


# ---------------------------------------------------------------------------
# The customer: /paysupport, their messages, ✖️ Close
# ---------------------------------------------------------------------------

@customer.command("paysupport")
def on_paysupport(shop: Shop, message: types.Message, session: Session, lang: str) -> Screen:
    """/paysupport: open a ticket (or point to the open one); from now on the customer's messages go to it."""
    end_dialog(session, message)  # what they write next is for the seller
    ticket = open_ticket(session, message.from_user.id)
    if ticket is not None:
        return Screen(text(lang, "support_open", ticket=ticket.id), close_keyboard(lang, ticket.id))
    if tickets_this_hour(session, message.from_user.id) >= TICKETS_PER_HOUR:
        return menu_screen(lang, "support_later")
    save_user(session, message.from_user)  # the admins' answers reach them in their language
    ticket = SupportTicket(customer_id=message.from_user.id)
    session.add(ticket)
    ticket_holders(shop).add(ticket.customer_id)
    session.commit()
    return Screen(text(lang, "paysupport", ticket=ticket.id), close_keyboard(lang, ticket.id))


def in_a_ticket(shop: Shop, session: Session, message: types.Message) -> bool:
    """Whether the sender has an open ticket: then their plain messages are for the seller."""
    return message.from_user.id in ticket_holders(shop) and open_ticket(session, message.from_user.id) is not None


def over_flood_limit(shop: Shop, ticket_id: int) -> int:
    """How far this minute's messages in the ticket are over the limit (0: this one may pass). Kept in memory,
    as lanes.py keeps its own: after a restart a flood starts counting again, which is harmless."""
    now, recent = time.monotonic(), shop.memo.setdefault("ticket_flood", {}).setdefault(ticket_id, deque())
    while recent and now - recent[0] > 60:
        recent.popleft()
    recent.append(now)
    return max(0, len(recent) - FLOOD_MESSAGES)


@customer.conversation(in_a_ticket)
def on_ticket_message(shop: Shop, message: types.Message, session: Session, lang: str):
    """Anything the customer sends in their open ticket goes to the admins under it."""
    ticket = open_ticket(session, message.from_user.id)
    if ticket is None:  # closed a moment ago: the message is the shop's again
        return shop.other_message(shop, message, session, lang)
    over = over_flood_limit(shop, ticket.id)
    if over:
        return Toast(text(lang, "support_flood")) if over == 1 else None  # said once, then quiet
    first = ticket.messages == 0  # the admins hear of the ticket now, with the customer's purchases
    purchases = latest_purchases(session, message.from_user.id) if first else None
    ticket.messages += 1
    ticket.last_message_at = utcnow()
    session.commit()
    return After(pass_on_to_seller, message, ticket.id, purchases, lang)


def pass_on_to_seller(shop: Shop, message: types.Message, ticket_id: int, purchases, lang: str) -> None:
    """The customer's message, copied to the admins under the ticket's header; the customer hears "Sent to
    the seller" with their first message, and "could not reach" whenever no admin got one."""
    who, customer_id = describe_user(message.from_user), message.from_user.id
    if purchases is None:
        sent = message_admins(shop, "admin_ticket_message", ticket_keyboard(ticket_id), copy_of=message,
                              ticket=ticket_id, who=who, id=customer_id)
    else:
        sent = message_admins(shop, "admin_support_message", ticket_keyboard(ticket_id), copy_of=message,
                              ticket=ticket_id, who=who, id=customer_id, purchases=purchases)
    remember(shop, ticket_id, sent)
    if not sent:  # an honest "try again later"; the first message that arrives will carry the purchases
        logger.warning("A message of user %s in support ticket %s reached no admin", customer_id, ticket_id)
        with shop.Session() as session:
            session.execute(update(SupportTicket).where(SupportTicket.id == ticket_id)
                            .values(messages=SupportTicket.messages - 1))
            session.commit()
        send(shop, message.chat.id, text(lang, "support_unreachable"), menu_keyboard(lang))
    elif purchases is not None:
        send(shop, message.chat.id, text(lang, "support_sent", ticket=ticket_id), close_keyboard(lang, ticket_id))


@customer.tap(CLOSE)
def tap_close_ticket(shop: Shop, call: types.CallbackQuery, session: Session, lang: str, ticket_id: int):
    """✖️ Close the ticket: the customer's messages are the shop's again (a search...)."""
    ticket = session.get(SupportTicket, ticket_id)
    if ticket is None or ticket.customer_id != call.from_user.id:  # forged, or someone else's
        return menu_screen(lang, "support_no_ticket")
    if ticket.closed_at is not None:
        return menu_screen(lang, "support_closed", ticket=ticket_id)
    ticket.closed_at, ticket.closed_by = utcnow(), call.from_user.id
    session.commit()
    screen = menu_screen(lang, "support_closed", ticket=ticket_id)
    if not ticket.messages:  # the admins never heard of it
        return screen
    return screen, After(message_admins, "admin_ticket_cancelled", ticket=ticket_id,
                         who=describe_user(call.from_user))


# ---------------------------------------------------------------------------
# The seller: an answer (a reply, or 💬 Reply), ✅ Resolved
# ---------------------------------------------------------------------------

def replied_ticket_id(session: Session, message: types.Message) -> int | None:
    """The ticket of the message an admin replied to in their chat, if it is one of a ticket's."""
    replied = message.reply_to_message
    if replied is None:
        return None
    return session.scalar(select(TicketMessage.ticket_id).where(TicketMessage.chat_id == message.chat.id,
                                                                TicketMessage.message_id == replied.message_id))


def replies_to_a_ticket(shop: Shop, session: Session, message: types.Message) -> bool:
    """Whether an admin replied to one of a ticket's messages in their chat."""
    return shop.is_admin(message.from_user.id) and replied_ticket_id(session, message) is not None


@seller.conversation(replies_to_a_ticket)
def on_reply_to_ticket(shop: Shop, message: types.Message, session: Session, lang: str):
    """An admin's reply to a message of a ticket: an answer to its customer."""
    return answer_ticket(shop, session, message, lang, replied_ticket_id(session, message))


@seller.tap(REPLY)
def tap_reply(shop: Shop, call: types.CallbackQuery, session: Session, lang: str, ticket_id: int) -> Screen:
    """💬 Reply under a ticket's message: the admin's next message goes to its customer."""
    ticket = session.get(SupportTicket, ticket_id)
    if ticket is None:
        return Toast(text(lang, "admin_ticket_unknown"))
    end_dialog(session, call)
    screen = ask(session, call, "ticket_answer", "admin_ask_reply", {"ticket": ticket_id}, ticket_id=ticket_id)
    screen.new_message = True  # below the customer's message, which stays
    return screen


@seller.answer("ticket_answer")
def answer_reply(shop: Shop, message: types.Message, session: Session, lang: str, dialog: dict):
    """The admin's answer after 💬 Reply."""
    end_dialog(session, message)
    return answer_ticket(shop, session, message, lang, dialog["ticket_id"])


def answer_ticket(shop: Shop, session: Session, message: types.Message, lang: str, ticket_id: int):
    """Pass an admin's answer on to the ticket's customer; a ticket that had closed opens again."""
    ticket = session.get(SupportTicket, ticket_id)
    if ticket is None:
        return Screen(text(lang, "admin_ticket_unknown"))
    current = open_ticket(session, ticket.customer_id)
    if current is not None and current.id != ticket.id:  # one open ticket per customer: theirs goes there
        return Screen(text(lang, "admin_ticket_newer", ticket=ticket.id, newer=current.id))
    reopened = current is None
    ticket_holders(shop).add(ticket.customer_id)
    ticket.closed_at = ticket.closed_by = None
    ticket.last_message_at = utcnow()
    who, customer_lang = customer_of(session, ticket)
    session.commit()
    return After(copy_to_customer, message, ticket.id, ticket.customer_id, customer_lang, reopened)


def copy_to_customer(shop: Shop, message: types.Message, ticket_id: int, customer_id: int, customer_lang: str,
                     reopened: bool) -> None:
    """The admin's ``message``, copied to the customer under a line saying it is the seller's; the other
    admins get it too, with who answered; the admin, whether it was delivered."""
    delivered = send(shop, customer_id, text(customer_lang, "seller_writes", ticket=ticket_id)) and call_api(
        shop, customer_id, shop.bot.copy_message, customer_id, message.chat.id, message.message_id)
    admin_id, lang = message.from_user.id, language_of(message.from_user)
    sent = {admin_id: [message.message_id]}  # their own answer: replying to it answers the ticket too
    if delivered:
        sent |= message_admins(shop, "admin_ticket_answered", ticket_keyboard(ticket_id), copy_of=message,
                               skip=(admin_id,), ticket=ticket_id, admin=describe_user(message.from_user))
    key = "admin_reply_blocked" if not delivered else "admin_reply_reopened" if reopened else "admin_reply_sent"
    note = send(shop, message.chat.id, text(lang, key, ticket=ticket_id), ticket_keyboard(ticket_id)(lang))
    if note is not None:
        sent[admin_id].append(note.message_id)
    remember(shop, ticket_id, sent)


@seller.tap(RESOLVE)
def tap_resolve(shop: Shop, call: types.CallbackQuery, session: Session, lang: str, ticket_id: int):
    """✅ Resolved: the ticket is over; the customer and every admin are told who resolved it."""
    ticket = session.get(SupportTicket, ticket_id)
    if ticket is None:
        return Toast(text(lang, "admin_ticket_unknown"))
    if ticket.closed_at is not None:
        return Toast(text(lang, "admin_ticket_closed", ticket=ticket_id))
    ticket.closed_at, ticket.closed_by = utcnow(), call.from_user.id
    who, customer_lang = customer_of(session, ticket)
    session.commit()
    return Toast(text(lang, "admin_resolved", ticket=ticket_id)), After(
        tell_closed, ticket_id, ticket.customer_id, customer_lang, "support_resolved", "admin_ticket_resolved",
        who=who, admin=describe_user(call.from_user))


# ---------------------------------------------------------------------------
# A day without a word closes a ticket
# ---------------------------------------------------------------------------

def close_silent_tickets(shop: Shop) -> int:
    """Close the tickets without a message either way for a day; tell their customers, and the admins.
    Run at start (catching up after a restart) and about once a minute."""
    with shop.Session() as session:
        silent = session.scalars(select(SupportTicket).where(SupportTicket.closed_at.is_(None),
                                                             SupportTicket.last_message_at <= silent_since())).all()
        closing = []
        for ticket in silent:
            ticket.closed_at = utcnow()
            closing.append((ticket.id, ticket.customer_id, ticket.messages > 0, *customer_of(session, ticket)))
        session.commit()
    if closing:
        logger.info("%s support tickets closed after a day without messages", len(closing))
    for ticket_id, customer_id, admins_know, who, customer_lang in closing:
        tell_closed(shop, ticket_id, customer_id, customer_lang, "support_silent",
                    "admin_ticket_silent" if admins_know else None, who=who)
    return len(closing)


def register(bot: TeleBot, shop: Shop) -> None:
    """Wire /paysupport, tickets and the admins' answers into the bot (an admin's reply is looked at first), and
    close silent tickets every minute."""
    load_ticket_holders(shop)
    shop.jobs_at_start.append(lambda shop: shop.start_repeating(close_silent_tickets, CHECK_EVERY))
    add_handlers(shop, seller)
    add_handlers(shop, customer)
