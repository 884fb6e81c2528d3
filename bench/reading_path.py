"""The reading path: how much of the code a beginner must read to follow the shop.

A newcomer who knows Python and telebot's README should find the shop, not its
machinery. This script measures that, in two ways, and fails when a limit is
exceeded (issue 25):

1. Static: shopbot.py's docstring lists the files in reading order. A reader
   opens them in that order; we count the non-blank lines they pass before the
   line that answers /start. Limit: 1,500 lines.

2. Dynamic: a customer's journey (/start, 🛍 Catalog, a category, a product,
   Buy, pay, delivery) runs in this process against a temporary SQLite shop and
   a fake Telegram, and we note which shop chapters' code runs. A chapter is a
   top-level *.py file of the repository other than shopbot.py; code in a
   folder (shopkit/) is machinery, and a reader may trust it unread. A
   chapter counts as opened once one of its functions runs (so texts.py,
   which holds only data, never counts).
   - The whole journey may open at most 6 chapters.
   - From the pre-checkout query to the delivered content, only checkout.py
     and purchases.py may open, not counting models.py and texts.py: every
     chapter uses the data and the words, so a reader knows them already.
   A "jump" is a call from one chapter straight into another: each is a place
   where the reader must leave the file they are reading. Printed for
   information, with no limit.

Run it from anywhere: python bench/reading_path.py (exit 1 when over a limit).
"""
from __future__ import annotations

import ast
import functools
import importlib
import itertools
import json
import re
import sys
import tempfile
from pathlib import Path

from sqlalchemy import create_engine
from sqlalchemy.orm import Session
from telebot import apihelper, types

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the shop's modules live at the top of the repository

import shopbot  # noqa: E402  (imported once ROOT is on the path)
from models import Category, Product  # noqa: E402

LINES_LIMIT = 1500
JOURNEY_LIMIT = 6
PAYMENT_CHAPTERS = {"checkout.py", "purchases.py"}
EVERYWHERE = {"models.py", "texts.py"}  # used by every chapter; not counted from payment to delivery
START = re.compile(r"""commands\s*=\s*\[?\s*["']start["']|def (on_start|start|cmd_start|on_start_command)\b""")
SECRET = "READING-PATH-KEY-1"  # the product's hidden content: its arrival is the delivery


def reading_order() -> list[str]:
    """The .py files shopbot.py's docstring lists, in order (a folder such as shopkit/ is not read)."""
    doc = ast.get_docstring(ast.parse((ROOT / "shopbot.py").read_text(encoding="utf-8"))) or ""
    order = []
    for line in doc.splitlines():
        found = re.match(r"\s{2,}([\w/]+\.py)\b", line)
        if found and (ROOT / found.group(1)).exists() and found.group(1) not in order:
            order.append(found.group(1))
    return order


def lines_before_start() -> tuple[int, str]:
    """Non-blank lines a reader passes, in the reading order, before the line that answers /start; its file."""
    passed = 0
    for name in reading_order():
        for line in (ROOT / name).read_text(encoding="utf-8").splitlines():
            if START.search(line):
                return passed, name
            passed += bool(line.strip())
    raise LookupError(f"no /start handler along the reading order ({passed} lines read)")


@functools.cache
def chapter_of(filename: str) -> str | None:
    """The chapter a piece of code belongs to, or None for machinery, libraries and shopbot.py."""
    path = Path(filename).resolve()
    if path.parent == ROOT and path.suffix == ".py" and path.name != "shopbot.py":
        return path.name
    return None


class Tracer:
    """Records every call into a chapter as (calling chapter or None, called chapter)."""

    def __init__(self):
        self.calls: list[tuple[str | None, str]] = []

    def __call__(self, frame, event, _arg):
        if event == "call" and (callee := chapter_of(frame.f_code.co_filename)):
            caller = frame.f_back and chapter_of(frame.f_back.f_code.co_filename)
            self.calls.append((caller, callee))

    def start(self):
        sys.setprofile(self)

    def stop(self):
        sys.setprofile(None)


class FakeTelegram:
    """Just enough of the Bot API: answers every call, keeps the buttons, stops the tracer at delivery."""

    def __init__(self, tracer: Tracer):
        self.tracer, self.ids = tracer, itertools.count(1)
        self.messages: list[dict] = []  # what the customer was sent, oldest first (edits as new entries)
        self.invoices: list[dict] = []
        self.pre_checkout_answers: list[dict] = []
        self.delivered = False

    def __call__(self, _http_method, url, params=None, **_):
        method, params = url.rsplit("/", 1)[1], dict(params or {})
        if SECRET in str(params.get("text")) + str(params.get("caption")):
            self.tracer.stop()  # the customer holds the product: the journey ends here
            self.delivered = True
        if method == "sendInvoice":
            self.invoices.append(params)
        if method == "answerPreCheckoutQuery":
            self.pre_checkout_answers.append(params)
        result = self.message(params) if method.startswith(("send", "edit", "copy")) else True
        return FakeResponse({"ok": True, "result": result})

    def message(self, params: dict) -> dict:
        message = {"message_id": int(params.get("message_id") or next(self.ids)), "date": 1,
                   "chat": {"id": int(params.get("chat_id") or CUSTOMER["id"]), "type": "private"},
                   "text": params.get("text") or ""}
        if params.get("reply_markup"):
            message["reply_markup"] = json.loads(params["reply_markup"])
        self.messages.append(message)
        return message

    def button(self, label: str) -> tuple[dict, str]:
        """The newest message with a button whose label contains ``label``, and that button's data."""
        for message in reversed(self.messages):
            for row in message.get("reply_markup", {}).get("inline_keyboard", []):
                for button in row:
                    if label.lower() in button["text"].lower() and "callback_data" in button:
                        return message, button["callback_data"]
        raise LookupError(f"the customer sees no button {label!r}")


class FakeResponse:
    """What telebot reads from a requests Response."""

    def __init__(self, payload: dict):
        self.status_code, self.payload, self.text = 200, payload, json.dumps(payload)

    def json(self):
        return self.payload


CUSTOMER = {"id": 1001, "is_bot": False, "first_name": "Alice", "language_code": "en"}


def journey(bot, telegram: FakeTelegram) -> int:
    """Walk the customer from /start to delivery; return how many calls were traced before paying."""
    update_ids = itertools.count(1)
    chat = {"id": CUSTOMER["id"], "type": "private"}

    def feed(kind: str, payload: dict) -> None:
        bot.process_new_updates([types.Update.de_json({"update_id": next(update_ids), kind: payload})])

    def send(**content) -> None:
        feed("message", {"message_id": next(update_ids), "date": 1, "from": CUSTOMER, "chat": chat, **content})

    def tap(label: str) -> None:
        message, data = telegram.button(label)
        feed("callback_query", {"id": str(next(update_ids)), "from": CUSTOMER, "chat_instance": "1",
                                "data": data, "message": message})

    send(text="/start", entities=[{"type": "bot_command", "offset": 0, "length": 6}])
    for label in ("Catalog", "Reading", "Path guide", "Buy"):
        tap(label)
    before_paying = len(telegram.tracer.calls)
    invoice = telegram.invoices[-1]
    amount = json.loads(invoice["prices"])[0]["amount"]
    payment = {"currency": invoice["currency"], "total_amount": amount, "invoice_payload": invoice["payload"]}
    feed("pre_checkout_query", {"id": "pc1", "from": CUSTOMER, **payment})
    if telegram.pre_checkout_answers[-1].get("ok") not in (True, "True", "true"):
        raise LookupError(f"the shop refused the payment: {telegram.pre_checkout_answers[-1]}")
    send(successful_payment={**payment, "telegram_payment_charge_id": "charge-1",
                             "provider_payment_charge_id": "provider-1"})
    if not telegram.delivered:
        raise LookupError("the customer paid but never received the product")
    return before_paying


def traced_journey() -> tuple[list, list]:
    """Run the journey in a fresh shop; the calls of the whole journey, and those from pre-checkout on."""
    load_config = getattr(shopbot, "load_config", None) or importlib.import_module("shopkit").load_config
    sender = apihelper.CUSTOM_REQUEST_SENDER
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/shop.db"
        telegram = FakeTelegram(Tracer())
        apihelper.CUSTOM_REQUEST_SENDER = telegram
        try:
            bot = shopbot.create_bot(load_config({"BOT_TOKEN": "123:READING-PATH", "DATABASE_URL": url}),
                                     threaded=False)
            engine = create_engine(url)
            with Session(engine) as session:
                category = Category(name="Reading")
                session.add(category)
                session.flush()
                session.add(Product(name="Path guide", price=5, hidden_content=SECRET, category_id=category.id,
                                    description="A guide"))
                session.commit()
            engine.dispose()
            telegram.tracer.start()
            before_paying = journey(bot, telegram)
        finally:
            telegram.tracer.stop()
            apihelper.CUSTOM_REQUEST_SENDER = sender
    return telegram.tracer.calls, telegram.tracer.calls[before_paying:]


def opened(calls) -> list[str]:
    return sorted({callee for _caller, callee in calls})


def jumps(calls) -> int:
    return sum(1 for caller, callee in calls if caller and caller != callee)


def measure() -> dict:
    """Every number the script prints, by name."""
    whole, paying = traced_journey()
    lines, start_file = lines_before_start()
    return {"lines": lines, "start_file": start_file, "journey": opened(whole), "journey_jumps": jumps(whole),
            "payment": [name for name in opened(paying) if name not in EVERYWHERE], "payment_jumps": jumps(paying)}


def over_limits(numbers: dict) -> list[str]:
    """The limits the numbers exceed, in words (empty when the path is short enough)."""
    over = []
    if numbers["lines"] > LINES_LIMIT:
        over.append(f"{numbers['lines']} lines before the /start handler (limit {LINES_LIMIT})")
    if len(numbers["journey"]) > JOURNEY_LIMIT:
        over.append(f"the journey opens {len(numbers['journey'])} chapters (limit {JOURNEY_LIMIT})")
    if not set(numbers["payment"]) <= PAYMENT_CHAPTERS:
        over.append(f"pre-checkout to delivery opens {', '.join(numbers['payment'])}, not only checkout and purchases")
    return over


def main() -> int:
    numbers = measure()
    print(f"{'lines before the /start handler':<46}{numbers['lines']:>6}   limit {LINES_LIMIT}"
          f"   (found in {numbers['start_file']})")
    print(f"{'chapters opened, /start to delivery':<46}{len(numbers['journey']):>6}   limit {JOURNEY_LIMIT}")
    print(f"{'  jumps between them':<46}{numbers['journey_jumps']:>6}")
    print(f"{'chapters opened, pre-checkout to delivery':<46}{len(numbers['payment']):>6}   only checkout, purchases")
    print(f"{'  jumps between them':<46}{numbers['payment_jumps']:>6}")
    print(f"\n/start to delivery: {', '.join(numbers['journey'])}")
    print(f"pre-checkout to delivery (without models.py, texts.py): {', '.join(numbers['payment'])}")
    for problem in over_limits(numbers):
        print(f"OVER: {problem}")
    return 1 if over_limits(numbers) else 0


if __name__ == "__main__":
    sys.exit(main())
