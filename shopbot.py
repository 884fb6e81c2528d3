"""shopbot: sell digital goods in a Telegram chat.

Customers browse categories and products with inline buttons (or search by
typing), pay inside Telegram (Telegram Stars by default, or a card provider)
and at once receive the product's hidden content: a text, key, link or file.
A "stocked" product hands each buyer a unique item (a licence key, a gift
code); a "subscription" sells monthly access to a private channel or group,
billed in Stars every 30 days; "paid media" sells photos and videos that
Telegram shows blurred until paid. The seller fills the catalog, watches sales,
refunds and messages customers from the chat, with /admin.

Run it:

    pip install -r requirements.txt
    BOT_TOKEN=123:ABC ADMIN_IDS=111111111 python shopbot.py
    python shopbot.py --check          check everything a deployment needs, then exit 0 or 1
    python shopbot.py --reprice 0.013  convert the catalog's prices to CURRENCY (1 old unit = 0.013 new)
    python shopbot.py --restore FILE   put a backup copy back, the bot stopped (see Backups in the README)

Environment variables (only BOT_TOKEN is required):

    BOT_TOKEN               the token from @BotFather
    ADMIN_IDS               comma-separated Telegram user ids of the seller(s)
    DATABASE_URL            default sqlite:///shop.db
    TELEGRAM_API_URL        a self-hosted Bot API server, default Telegram's
    PAYMENT_PROVIDER_TOKEN  a card provider's token; empty means Telegram Stars
    CURRENCY                the card provider's currency, e.g. USD (Stars: XTR)
    LOG_LEVEL               DEBUG, INFO (the default), WARNING or ERROR

How to read this code: the shop is the flat files beside this one, each a
chapter that reads alone, top to bottom. In order:

    shopbot.py     this file: make the bot, register the chapters, run
    models.py      the data: users, categories, products, purchases, stock,
                   subscriptions; the queries several chapters share
    menus.py       where everything starts and returns: /start, the
                   customer's menu, the seller's panel, /cancel
    promos.py      promo codes: the price after one, who may use it, and
                   each use held at pre-checkout and counted at payment
    storefront.py  the catalog, product cards, shared links, search, 🔔 Notify me
    subscriptions.py  monthly access to a channel or group: Stars subscriptions,
                   join requests, renewals, expiry, cancel and resume
    purchases.py   what a customer receives: delivery, 📦 My purchases, refunds
    reviews.py     ⭐ buyers rate what they bought; the card shows it, the seller replies
    checkout.py    Buy → invoice → pre-checkout → payment, then delivery
    paid_media.py  📸 photos and videos sold blurred, unlocked in place by Telegram
    ledger.py      no payment lost or doubled: redelivery, and Telegram's
                   Stars ledger as the source of truth
    gifts.py       🎁 buying for someone else, who claims it with a link
    support.py     /paysupport tickets: the customer and the seller in conversation
    channels.py    the seller's side of subscriptions: the chat, its subscribers
    admin.py       the seller's panel: categories and products
    stock.py       unique items (keys, codes): uploads and restock notices
    referrals.py   🤝 Invite friends: a personal link, and a promo code earned
                   when an invited friend's purchase is kept
    sales.py       sales figures, purchases, refunds, grants
    export.py      📄 Export: every purchase as a spreadsheet (.xlsx) and a CSV
    promo_panel.py the seller's 🏷 Promo codes: new codes, 🎟 generated ones
    broadcast.py   one message to your customers, or a part of them; ⚡ fast ones
    backups.py     💾 Backup: a copy of the shop now, or every day
    status.py      /status: is the shop healthy? Running since, disk, backups, errors
    pricing.py     the catalog's currency, and --reprice
    texts.py       every word the shop says, and its command menu:
    texts_en.py    ...in English
    texts_ru.py    ...and in Russian

Under them, shopkit/ is the machinery a beginner may skip, as a Flask app's
reader skips Flask: polling, lanes, routing, sending, configuration, the
database. Its README states the contract every handler keeps.
"""
from __future__ import annotations

import sys

import admin
import backups
import broadcast
import channels
import checkout
import export
import gifts
import ledger
import menus
import paid_media
import pricing
import promo_panel
import promos
import purchases
import referrals
import reviews
import sales
import status
import stock
import storefront
import subscriptions
import support
import texts
from shopkit import Config, make_bot, run, use_texts

use_texts(texts.TEXTS, texts.COMMANDS)  # every word the shop says, in English and Russian

# Every chapter, in the reading order above; each registers its own handlers.
CHAPTERS = [menus, promos, storefront, subscriptions, purchases, reviews, checkout, paid_media, ledger, gifts, support,
            channels, admin, stock, referrals, sales, export, promo_panel, broadcast, backups, status, pricing]


def create_bot(config: Config, session_factory=None, threaded: bool = True):
    """Build the bot with every chapter's handlers registered; nothing talks to Telegram yet."""
    bot = make_bot(config, session_factory, threaded)
    for chapter in CHAPTERS:
        chapter.register(bot, bot.shop)
    return bot


def main(argv: list[str] | None = None) -> int:
    """Check (--check), reprice (--reprice RATE), restore a backup (--restore FILE) or serve until stopped."""
    return run(create_bot, argv, shop_checks=[pricing.check_payments, *status.CHECKS], reprice=pricing.reprice)


if __name__ == "__main__":
    sys.exit(main())
