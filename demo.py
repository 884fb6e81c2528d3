"""The demo catalog: the categories, products and keys in shop.db.example.

Rebuild the file after a schema change (a test checks it matches the code)::

    python demo.py shop.db.example
"""
from __future__ import annotations

import os
import sqlite3
import sys

from models import STOCKED, UNLIMITED, Category, Product, StockItem
from shopkit import open_database

DEMO_CATALOG = {
    "🔑 Software keys": [
        ("Windows 11 Pro", 450, "A genuine retail key for Windows 11 Pro, activates online in a minute. "
         "Works for new installs and upgrades from Home.", "Your key: W11P-7XKQ2-9HV4M-T3C8R-BD6YJ\n"
         "Activate: Settings → System → Activation → Change product key."),
        ("Office 2021 для дома", 390, "Ключ Microsoft Office 2021 для дома и учёбы: Word, Excel, PowerPoint. "
         "Бессрочная лицензия на один компьютер.", "Ваш ключ: O21HS-4MNB8-QW2ZX-77KLP-3RT9V\n"
         "Установка: setup.office.com → войдите в аккаунт Microsoft → введите ключ."),
        ("Antivirus 1 year", 250, "One year of protection for up to 3 devices (Windows, macOS, Android). "
         "Every buyer gets a licence code of their own.",
         "Download the installer from the vendor's site and enter your code when asked."),
    ],
    "🎬 Streaming": [
        ("Netflix 1 month", 150, "A gift code for one month of Netflix Standard. Redeem at netflix.com/redeem.",
         "Gift code: NFX-2Q7R-K9PL-M3TD"),
        ("Spotify Premium на 3 месяца", 300, "Код подписки Spotify Premium на три месяца. Активируйте на "
         "spotify.com/redeem — подходит для новых и текущих аккаунтов.", "Код: SPT3-XR8N-4LQW-P2KD"),
    ],
    "📚 Guides": [
        ("Telegram Stars for sellers", 0, "A free 12-page guide: how Telegram Stars work, fees, withdrawals "
         "and refunds. Yours with one tap.", "Read the guide: https://telegra.ph/stars-for-sellers-demo"),
        ("Python за выходные", 120, "Пошаговый курс по Python для начинающих: 10 уроков с задачами и ответами.",
         "Ссылка на курс: https://example.com/python-weekend\nПароль: weekend2026"),
        ("Notion templates pack", 90, "25 ready Notion templates: habit tracker, budget, reading list, "
         "weekly planner and more.", "Duplicate the pack: https://example.com/notion-pack-demo"),
    ],
}


# A stocked product: each buyer receives one of these codes.
DEMO_STOCK = {"Antivirus 1 year": [f"AV1Y-3DEV-{n:04d}-Z71M" for n in range(1001, 1011)]}


def add_demo_catalog(session) -> None:
    """Fill an empty database with three categories and eight products, one of them stocked."""
    for position, (category_name, products) in enumerate(DEMO_CATALOG.items()):
        category = Category(name=category_name, position=position)
        session.add(category)
        for name, price, description, hidden in products:
            product = Product(category=category, name=name, price=price, description=description,
                              hidden_content=hidden, kind=STOCKED if name in DEMO_STOCK else UNLIMITED)
            product.stock_items = [StockItem(content=code) for code in DEMO_STOCK.get(name, [])]
            session.add(product)
    session.commit()


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else "shop.db.example"
    if os.path.exists(target):
        os.remove(target)
    with open_database(f"sqlite:///{target}")() as demo_session:  # the schema comes from the migrations
        add_demo_catalog(demo_session)
    demo_session.get_bind().dispose()
    with sqlite3.connect(target) as raw:  # one self-contained file: fold the write-ahead log back in
        raw.execute("PRAGMA journal_mode = DELETE")
    print(f"Wrote the demo catalog to {target}")
