"""Everything the shop says, in English (texts_en.py) and Russian (texts_ru.py): edit your shop's words there.

Each text is an HTML template for Telegram's ``parse_mode="HTML"``. Values
filled into ``{placeholders}`` are escaped by ``text()`` (shopkit/screens.py),
so a product called ``<b>Tom & Jerry</b>`` shows exactly as the seller typed
it. Button labels are plain text (Telegram shows them as they are). Each key
is written literally where it is used, so grep finds every text's users.

A user whose Telegram language starts with ``ru`` reads Russian, everyone else
English. To add a language, add a dictionary with the same keys (a file of its
own, like texts_ru.py), put it in TEXTS below, and teach ``language_for_code``
in shopkit/screens.py its code. shopbot.py hands TEXTS and COMMANDS to shopkit.
"""

from texts_en import EN
from texts_ru import RU

SHOP_NAME = "Digital Shop"

# The commands shown in Telegram's menu, registered at start-up (setMyCommands).
COMMANDS = {
    "en": [("start", "Main menu"), ("catalog", "Catalog"), ("purchases", "My purchases"),
           ("help", "How it works"), ("paysupport", "Help with a payment"), ("terms", "Terms of sale")],
    "ru": [("start", "Главное меню"), ("catalog", "Каталог"), ("purchases", "Мои покупки"),
           ("help", "Как это работает"), ("paysupport", "Помощь с оплатой"), ("terms", "Условия продажи")],
}

TEXTS = {"en": EN, "ru": RU}
