"""Benchmark shopbot against bare telebot, on a small, a huge and a long-lived shop.

    python -m bench.bench_shopbot            # about three minutes (five on PostgreSQL)
    python -m bench.bench_shopbot --quick    # fewer sessions and purchases, for a smoke run
    python -m bench.bench_shopbot --database postgresql+psycopg://user:password@localhost/shop

(from the project's root, so that the shop's modules are found).

It builds three shops, in temp SQLite files (or, with --database, each in a
fresh schema on that PostgreSQL server, dropped at the end), with bulk inserts:

- 100 products, 100 purchases;
- 100,000 products in 100 categories, 100,000 purchases;
- a long-lived shop: one category of 100,000 products and 1,000,000 purchases
  over two years, 1,000 of them by one customer.

It drives the real bot with updates as Telegram sends them (outgoing API calls
captured, no network) through a customer session:

    /start → Catalog → a category → Next page → a product → Buy → pre-checkout
    → successful payment → My purchases

and prints one table: updates per second, p50/p95 handling time per update
(single-threaded, and with 4 worker threads as telebot runs them), the same
for a bare telebot bot that only answers and edits; then the taps whose cost
could grow with the shop: a search, a category of 100 or 100,000 products and
its page 50, My purchases of a customer with 10 or 1,000 purchases, and 📊 Sales
over 1,000,000 purchases. Then the ratios, the SQL statements per update, the
time from `python shopbot.py` to its first getUpdates and its peak memory. A
local HTTP server with Telegram-like latency shows what the shop adds over a
real connection.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import telebot
from sqlalchemy import create_engine, event, insert, text
from sqlalchemy.pool import NullPool
from telebot import apihelper, types

import checkout
import shopbot
from models import Category, Product, Purchase, User
from shopkit import Config, callback, open_database, utcnow
from shopkit import bot as shopkit_bot
from shopkit.config import use_api_server
from storefront import categories_on_sale

TOKEN = "1234567:BENCH"
ADMIN = 1
PRODUCTS_PER_CATEGORY = 1000
FIRST_BUYER = 10_000_000  # the seeded customers' Telegram ids start here
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the project's root, where shopbot.py is
TELEGRAM_LATENCY = 0.025  # seconds per Bot API call; real round trips to Telegram are 30-150 ms


# ---------------------------------------------------------------------------
# Shops of a given size, seeded with bulk inserts
# ---------------------------------------------------------------------------

class Shops:
    """Where the shops live: temp SQLite files, or fresh schemas on a PostgreSQL server (dropped by drop())."""

    def __init__(self, server_url: str | None):
        self.server_url, self.schemas = server_url, []
        self.folder = tempfile.mkdtemp(prefix="shopbot-bench-")

    def new(self, name: str) -> str:
        """The database URL of a new, empty shop."""
        if self.server_url is None:
            return f"sqlite:///{os.path.join(self.folder, name)}.db"
        schema = f"bench_{name}_{uuid.uuid4().hex[:8]}"
        self.execute(f'CREATE SCHEMA "{schema}"')
        self.schemas.append(schema)
        return self.server_url + ("&" if "?" in self.server_url else "?") + f"options=-csearch_path%3D{schema}"

    def execute(self, statement: str) -> None:
        server = create_engine(self.server_url, poolclass=NullPool)
        with server.begin() as connection:
            connection.execute(text(statement))
        server.dispose()

    def drop(self) -> None:
        for schema in reversed(self.schemas):  # the first holds pg_trgm, which the others' indexes use
            self.execute(f'DROP SCHEMA "{schema}" CASCADE')
        shutil.rmtree(self.folder, ignore_errors=True)


def insert_in_chunks(session, model, rows) -> None:
    """Bulk-insert rows from a generator, 20,000 at a time, so a million of them never sit in memory at once."""
    rows = iter(rows)
    while chunk := list(itertools.islice(rows, 20_000)):
        session.execute(insert(model), chunk)


def seed_shop(url: str, products: int, purchases: int, per_category: int = PRODUCTS_PER_CATEGORY,
              loyal: int = 0) -> float:
    """Fill a new shop: purchases one minute apart, going back in time, by buyers of 10 purchases each
    who all started the bot before the first of them, plus ``loyal`` purchases by one more customer
    (the last user). Returns the seconds it took."""
    started = time.perf_counter()
    factory = open_database(url)
    categories = max(1, products // per_category)
    buyers = max(1, purchases // 10)
    users = buyers + (1 if loyal else 0)
    now = utcnow()
    with factory() as session:
        session.execute(insert(Category), [{"name": f"Category {c}", "position": c} for c in range(categories)])
        insert_in_chunks(session, Product, (
            {"category_id": 1 + n % categories, "name": f"Product {n}", "price": 10 + n % 500,
             "description": f"Description of product {n}", "hidden_content": f"SECRET-{n}",
             "is_active": True, "created_at": now} for n in range(products)))
        session.execute(insert(User), [{"telegram_id": FIRST_BUYER + n, "username": f"buyer{n}", "first_name": "B",
                                        "language_code": "en",
                                        "created_at": now - timedelta(minutes=purchases + n)}  # before buying
                                       for n in range(users)])
        insert_in_chunks(session, Purchase, (
            {"user_id": users if n < loyal else 1 + n % buyers, "product_id": 1 + n % products, "price": 10,
             "currency": "XTR", "payment_type": "stars", "payment_id": f"seed-{n}",
             "created_at": now - timedelta(minutes=n), "delivered_at": now - timedelta(minutes=n)}
            for n in range(purchases)))
        session.commit()
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text("ANALYZE"))  # as autovacuum soon would: the planner needs the tables' sizes
            session.commit()
    factory.kw["bind"].dispose()
    return time.perf_counter() - started


# ---------------------------------------------------------------------------
# Updates as Telegram sends them, and a Bot API that answers instantly
# ---------------------------------------------------------------------------

class InstantApi:
    """CUSTOM_REQUEST_SENDER: answers every call at once, like a Telegram with no latency."""

    class Response:
        status_code = 200

        def __init__(self, payload):
            self.payload = payload
            self.text = json.dumps(payload)

        def json(self):
            return self.payload

    def __call__(self, method, url, params=None, files=None, **_):
        return self.Response({"ok": True, "result": telegram_result(url.rsplit("/", 1)[1], params or {})})


def telegram_result(method: str, params: dict):
    """What the Bot API returns for the calls the bots make."""
    if method in ("sendMessage", "editMessageText", "sendInvoice"):
        chat = int(params.get("chat_id", 1))
        return {"message_id": 7, "date": 1, "chat": {"id": chat, "type": "private"}, "text": "ok"}
    if method == "getMe":
        return {"id": 1234567, "is_bot": True, "first_name": "Bench", "username": "bench_bot"}
    return True


def customer(user_id: int) -> dict:
    return {"id": user_id, "is_bot": False, "first_name": "Customer", "language_code": "en"}


def tap_on(user_id: int, data: str) -> dict:
    """A tap on a button of the bot's screen, as Telegram sends it."""
    screen = {"message_id": 7, "date": 1, "chat": {"id": user_id, "type": "private"}, "text": "screen",
              "from": {"id": 1234567, "is_bot": True, "first_name": "Bench"}}
    return {"callback_query": {"id": f"{user_id}-{data}", "from": customer(user_id), "chat_instance": "c",
                               "data": data, "message": screen}}


def updates_of(raw: list[dict]) -> list[types.Update]:
    return [types.Update.de_json({"update_id": n, **u}) for n, u in enumerate(raw, 1)]


class Session:
    """One customer's journey, as updates."""

    def __init__(self, user_id: int, category_id: int, product_id: int):
        user, chat = customer(user_id), {"id": user_id, "type": "private"}
        counter = iter(range(1, 100))

        def message(**content):
            return {"message_id": next(counter), "date": 1, "from": user, "chat": chat, **content}

        def tap(data):
            return tap_on(user_id, data)

        payload = checkout.invoice_payload(product_id, user_id)
        raw = [
            {"message": message(text="/start", entities=[{"type": "bot_command", "offset": 0, "length": 6}])},
            tap(callback("catalog")), tap(callback("category", category_id, 0)),
            tap(callback("category", category_id, 1)), tap(callback("product", product_id, 1)),
            tap(callback("buy", product_id)),
            {"pre_checkout_query": {"id": f"pc{user_id}", "from": user, "currency": "XTR", "total_amount": 0,
                                    "invoice_payload": payload}},
            {"message": message(successful_payment={
                "currency": "XTR", "total_amount": 0, "invoice_payload": payload,
                "telegram_payment_charge_id": f"bench-{user_id}", "provider_payment_charge_id": "p"})},
            tap(callback("purchases", 0)),
        ]
        self.names = ["/start", "catalog", "category", "next page", "product", "buy", "pre-checkout",
                      "payment", "my purchases"]
        self.raw = raw
        self.updates = updates_of(raw)

    def set_price(self, price: int):
        self.raw[6]["pre_checkout_query"]["total_amount"] = price
        self.raw[7]["message"]["successful_payment"]["total_amount"] = price
        self.updates = updates_of(self.raw)


def bare_bot() -> telebot.TeleBot:
    """The least a bot can do for the same updates: answer, edit, reply."""
    bot = telebot.TeleBot(TOKEN, threaded=False)

    @bot.callback_query_handler(func=lambda call: True)
    def on_tap(call):
        bot.answer_callback_query(call.id)
        bot.edit_message_text("screen", call.message.chat.id, call.message.message_id)

    @bot.message_handler(content_types=["text", "successful_payment"])
    def on_message(message):
        bot.send_message(message.chat.id, "hello")

    @bot.pre_checkout_query_handler(func=lambda query: True)
    def on_checkout(query):
        bot.answer_pre_checkout_query(query.id, ok=True)

    return bot


# ---------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------

class StatementCounter:
    """Counts the SQL statements the shop sends, per update kind."""

    def __init__(self, engine):
        self.current = 0
        event.listen(engine, "before_cursor_execute", self.count)

    def count(self, *args):
        self.current += 1


def shop_bot(url: str, threaded: bool = False) -> tuple[telebot.TeleBot, StatementCounter]:
    config = Config(token=TOKEN, admin_ids=frozenset({ADMIN}), database_url=url)
    bot = shopbot.create_bot(config, threaded=threaded)
    return bot, StatementCounter(bot.shop.Session.kw["bind"])


def journeys(count: int, first_user: int, catalog_products: int) -> list[Session]:
    categories = max(1, catalog_products // PRODUCTS_PER_CATEGORY)
    sessions = []
    for n in range(count):
        category = 1 + n % categories
        product = category + categories * (8 + n % 8)  # a product on the second page of that category
        sessions.append(Session(first_user + n, category, min(product, catalog_products)))
    return sessions


def run_sessions(bot, sessions: list[Session], counter=None, per_step=None) -> tuple[list[float], dict]:
    """Feed every update to the bot; return per-update times and max statements per step."""
    times, statements = [], {}
    for journey in sessions:
        for name, update in zip(journey.names, journey.updates, strict=True):
            if counter:
                counter.current = 0
            started = time.perf_counter()
            bot.process_new_updates([update])
            times.append(time.perf_counter() - started)
            if per_step is not None:
                per_step.setdefault(name, []).append(times[-1])
            if counter:
                statements[name] = max(statements.get(name, 0), counter.current)
    return times, statements


def run_threaded(bot, sessions: list[Session], workers: int = shopkit_bot.WORKER_THREADS) -> tuple[list[float], float]:
    """The same sessions on ``workers`` threads at once, as telebot's worker pool runs handlers."""
    times, lock = [], threading.Lock()
    chunks = [sessions[n::workers] for n in range(workers)]

    def work(chunk):
        mine, _ = run_sessions(bot, chunk)
        with lock:
            times.extend(mine)

    threads = [threading.Thread(target=work, args=(chunk,)) for chunk in chunks]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return times, time.perf_counter() - started


def searches(count: int) -> list[dict]:
    """A customer's searches, as plain-text messages: two words, the second a number (some of them
    shorter than three characters, which the text index cannot find)."""
    chat = {"id": 777, "type": "private"}
    return [{"message": {"message_id": n + 1, "date": 1, "from": customer(777), "chat": chat,
                         "text": f"product {n * 37}"}} for n in range(count)]


def time_updates(bot, raw: list[dict]) -> list[float]:
    """Seconds the bot took for each update, fed one at a time."""
    times = []
    for update in updates_of(raw):
        started = time.perf_counter()
        bot.process_new_updates([update])
        times.append(time.perf_counter() - started)
    return times


def summary(times: list[float], wall: float | None = None) -> dict:
    ordered = sorted(times)
    return {"rate": len(times) / (wall or sum(times)), "p50": statistics.median(ordered) * 1000,
            "p95": ordered[int(len(ordered) * 0.95) - 1] * 1000}


def prepare(sessions: list[Session], url: str):
    """Give each journey a real price, so pre-checkout says yes."""
    factory = open_database(url)
    with factory() as session:
        for journey in sessions:
            product_id = checkout.parse_invoice_payload(journey.updates[6].pre_checkout_query.invoice_payload)[0]
            journey.set_price(session.get(Product, product_id).price)
    factory.kw["bind"].dispose()


class SlowTelegram:
    """A local Bot API over real HTTP that takes TELEGRAM_LATENCY per call, and serves queued updates."""

    def __init__(self, latency: float):
        self.latency, self.updates, self.first_poll = latency, [], None
        bench = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def setup(self):
                super().setup()
                # Without it, Nagle's algorithm and delayed ACKs add ~40 ms to every call.
                self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                method = urlsplit(self.path).path.rsplit("/", 1)[1]
                params = {k: v[-1] for k, v in parse_qs(urlsplit(self.path).query).items()}
                params.update({k: v[-1] for k, v in parse_qs(body).items()})
                if method == "getUpdates":
                    bench.first_poll = bench.first_poll or time.perf_counter()
                    offset = int(params.get("offset") or 0)
                    result = [u for u in bench.updates if u["update_id"] >= offset][:100]
                    if not result:
                        time.sleep(0.05)
                else:
                    time.sleep(bench.latency)
                    result = telegram_result(method, params)
                data = json.dumps({"ok": True, "result": result}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.handle_error = lambda request, address: None  # the stopped bot resets its connections
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


def over_http(bot, sessions: list[Session], server: SlowTelegram) -> list[float]:
    apihelper.CUSTOM_REQUEST_SENDER = None
    use_api_server(server.url)
    try:
        return run_sessions(bot, sessions)[0]
    finally:
        apihelper.API_URL = apihelper.FILE_URL = None


def start_to_first_poll_and_memory(url: str, raw: list[dict]) -> tuple[float, float]:
    """Run `python shopbot.py` on the big catalog: seconds to its first getUpdates, then peak RSS (MB)
    after it has served the updates."""
    server = SlowTelegram(latency=0)
    server.updates = [{"update_id": n, **u} for n, u in enumerate(raw, 1)]
    env = {**os.environ, "BOT_TOKEN": TOKEN, "TELEGRAM_API_URL": server.url, "DATABASE_URL": url}
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, os.path.join(ROOT, "shopbot.py")],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while server.first_poll is None and time.perf_counter() - started < 10:
            time.sleep(0.005)
        first_poll = (server.first_poll or time.perf_counter()) - started
        time.sleep(3)  # let it serve the queued updates
        with open(f"/proc/{process.pid}/status") as status:
            peak_kb = next(int(line.split()[1]) for line in status if line.startswith("VmHWM"))
    finally:
        process.terminate()
        process.wait(timeout=10)
        server.httpd.shutdown()
    return first_poll, peak_kb / 1024


# ---------------------------------------------------------------------------
# Running it all
# ---------------------------------------------------------------------------

def measure_sessions(results: dict, name: str, url: str, products: int, count: int) -> None:
    """Customer sessions on one shop, single-threaded (per step too) and on 4 threads; then searches."""
    bot, counter = shop_bot(url)
    warmup = journeys(10, 1, products)
    prepare(warmup, url)
    run_sessions(bot, warmup)
    sessions = journeys(count, 1000, products)
    prepare(sessions, url)
    step_times = {}
    times, results["steps"][name] = run_sessions(bot, sessions, counter, step_times)
    results["rows"][f"shop, {name}"] = summary(times)
    results["step_p50"][name] = {step: statistics.median(t) * 1000 for step, t in step_times.items()}
    threaded_sessions = journeys(count, 100_000, products)
    prepare(threaded_sessions, url)
    results["rows"][f"shop, {name}, 4 threads"] = summary(*run_threaded(bot, threaded_sessions))
    bot.shop.Session.kw["bind"].dispose()


def time_alternately(first: tuple, second: tuple, repeat: int = 40) -> tuple[dict, dict]:
    """Two (bot, updates) fed in turn, one update each, after two to warm up: a busy machine slows both alike."""
    times = ([], [])
    for n in range(repeat + 2):
        for (bot, raw), mine in zip((first, second), times, strict=True):
            took = time_updates(bot, [raw[n % len(raw)]])[0]
            if n >= 2:
                mine.append(took)
    return summary(times[0]), summary(times[1])


def measure_growth(results: dict, urls: tuple[str, str, str], loyal_customer: int) -> None:
    """The taps whose cost could grow with the shop, each timed alternately with its small counterpart:
    a search, a category and its page 50, My purchases; then 📊 Sales over every purchase."""
    small, big, long_lived = bots = [shop_bot(url)[0] for url in urls]
    category, page_50 = [tap_on(2, callback("category", 1, 0))], [tap_on(2, callback("category", 1, 49))]
    pairs = [(("search, 100 products", small, searches(40)), ("search, 100,000 products", big, searches(40))),
             (("category, 100 products in it", small, category),
              ("category, 100,000 products in it", long_lived, category)),
             (("page 1 of that category", long_lived, category), ("page 50 of that category", long_lived, page_50)),
             (("My purchases, 10 purchases", long_lived, [tap_on(FIRST_BUYER, callback("purchases", 0))]),
              ("My purchases, 1,000 purchases", long_lived, [tap_on(loyal_customer, callback("purchases", 0))]))]
    for (first, *first_run), (second, *second_run) in pairs:
        results["taps"][first], results["taps"][second] = time_alternately(first_run, second_run)
    sales = [tap_on(ADMIN, callback("sales"))]
    time_updates(long_lived, sales)
    results["taps"][f"📊 Sales, {results['purchases']:,} purchases"] = summary(time_updates(long_lived, sales * 10))
    with long_lived.shop.Session() as session:
        started = time.perf_counter()
        categories_on_sale(session)
        results["catalog_counts_ms"] = (time.perf_counter() - started) * 1000
    for bot in bots:
        bot.shop.Session.kw["bind"].dispose()


def measure_http(results: dict, url: str, count: int) -> None:
    """The shop and bare telebot over a real HTTP connection with Telegram-like latency."""
    bare, slow = bare_bot(), SlowTelegram(TELEGRAM_LATENCY)
    shop_http_bot, _ = shop_bot(url)
    http_sessions = journeys(count, 300_000, 100_000)
    prepare(http_sessions, url)
    results["rows"]["shop over HTTP (25 ms/call)"] = summary(over_http(shop_http_bot, http_sessions, slow))
    results["rows"]["bare over HTTP (25 ms/call)"] = summary(over_http(bare, journeys(count, 300_000, 100), slow))
    shop_http_bot.shop.Session.kw["bind"].dispose()
    apihelper.CUSTOM_REQUEST_SENDER = InstantApi()


class RecordingApi(InstantApi):
    """InstantApi that takes ``latency`` seconds a call and notes when each pre-checkout was answered."""

    def __init__(self, latency: float):
        self.latency, self.answered = latency, {}

    def __call__(self, method, url, params=None, files=None, **kwargs):
        time.sleep(self.latency)
        if url.endswith("/answerPreCheckoutQuery"):
            self.answered[(params or {}).get("pre_checkout_query_id")] = time.perf_counter()
        return super().__call__(method, url, params, files, **kwargs)


def measure_flood(results: dict, url: str, taps: int) -> None:
    """One customer taps ``taps`` times at once; how long until another customer's pre-checkout is answered.

    The shop as it runs for real (its lanes and worker threads), each Bot API call taking a millisecond.
    """
    api = apihelper.CUSTOM_REQUEST_SENDER = RecordingApi(0.001)
    bot, _ = shop_bot(url, threaded=True)
    flood = updates_of([tap_on(900_000, callback("catalog")) for _ in range(taps)])
    bot.process_new_updates(flood)
    started = time.perf_counter()
    bot.process_new_updates([types.Update.de_json({"update_id": 10**6, "pre_checkout_query": {
        "id": "after-the-flood", "from": customer(900_001), "currency": "XTR", "total_amount": 10,
        "invoice_payload": checkout.invoice_payload(1, 900_001)}})])
    while "after-the-flood" not in api.answered and time.perf_counter() - started < 30:
        time.sleep(0.001)
    results["flood_answer"] = api.answered.get("after-the-flood", float("inf")) - started
    bot.lanes.stop(timeout=60)
    bot.shop.Session.kw["bind"].dispose()
    apihelper.CUSTOM_REQUEST_SENDER = InstantApi()


def measure(shops: Shops, quick: bool) -> dict:
    count, purchases = (40, 100_000) if quick else (200, 1_000_000)
    small, big, long_lived = shops.new("small"), shops.new("big"), shops.new("long_lived")
    results = {"rows": {}, "taps": {}, "steps": {}, "step_p50": {}, "purchases": purchases, "seeding": [
        ("100 products", seed_shop(small, 100, 100)),
        ("100,000 products + 100,000 purchases", seed_shop(big, 100_000, 100_000)),
        (f"one category of 100,000 products + {purchases:,} purchases",
         seed_shop(long_lived, 100_000, purchases, per_category=100_000, loyal=1000))]}
    apihelper.CUSTOM_REQUEST_SENDER = InstantApi()
    measure_sessions(results, "100 products", small, 100, count)
    measure_sessions(results, "100,000 products", big, 100_000, count)
    measure_growth(results, (small, big, long_lived), FIRST_BUYER + purchases // 10)
    bare = bare_bot()
    run_sessions(bare, journeys(10, 1000, 100))
    results["rows"]["bare telebot"] = summary(run_sessions(bare, journeys(count, 1000, 100))[0])
    results["rows"]["bare telebot, 4 threads"] = summary(*run_threaded(bare, journeys(count, 100_000, 100)))
    measure_http(results, big, 5 if quick else 15)
    measure_flood(results, small, 2000)
    served = [u for journey in journeys(50, 400_000, 100_000) for u in journey.raw] + searches(20)
    results["first_poll"], results["peak_mb"] = start_to_first_poll_and_memory(big, served)
    return results


# ---------------------------------------------------------------------------
# The tables
# ---------------------------------------------------------------------------

def print_rows(rows: dict) -> None:
    print(f"{'run':<38} {'updates/s':>10} {'p50 ms':>8} {'p95 ms':>8}")
    for name, row in rows.items():
        print(f"{name:<38} {row['rate']:>10.0f} {row['p50']:>8.2f} {row['p95']:>8.2f}")
    print()


# (what, the slower row, the quicker row, the target)
RATIOS = [
    ("p50 ratio, 100,000 vs 100 products", "shop, 100,000 products", "shop, 100 products", "target ≤ 1.30"),
    ("p50 ratio, shop vs bare, API captured", "shop, 100 products", "bare telebot",
     "CPU only: the shop does real work"),
    ("p50 ratio, shop vs bare, over HTTP", "shop over HTTP (25 ms/call)", "bare over HTTP (25 ms/call)",
     "target < 1.30"),
    ("search, 100,000 vs 100 products", "search, 100,000 products", "search, 100 products", "target ≤ 2.00"),
    ("category, 100,000 vs 100 products in it", "category, 100,000 products in it", "category, 100 products in it",
     "target ≤ 1.30"),
    ("page 50 vs page 1 of that category", "page 50 of that category", "page 1 of that category", "target ≤ 1.30"),
    ("My purchases, 1,000 vs 10 purchases", "My purchases, 1,000 purchases", "My purchases, 10 purchases",
     "target ≤ 1.30"),
]


def print_ratios(results: dict) -> None:
    rows = {**results["rows"], **results["taps"]}
    for what, slower, quicker, note in RATIOS:
        print(f"{what + ':':<50} {rows[slower]['p50'] / rows[quicker]['p50']:>8.2f}  ({note})")
    sales = f"📊 Sales, {results['purchases']:,} purchases"
    for what, value, note in [
            (sales + ", p50", f"{rows[sales]['p50']:.1f} ms", "target < 50 ms"),
            ("catalog counts, 100,000 products", f"{results['catalog_counts_ms']:.1f} ms", "cached 30 s"),
            ("pre-checkout answered behind 2,000 taps", f"{results['flood_answer']:.2f} s", "target < 2 s"),
            ("start to first getUpdates", f"{results['first_poll']:.2f} s", "target < 1 s"),
            ("peak RSS of shopbot.py, 100,000 products", f"{results['peak_mb']:.0f} MB", "target < 80 MB")]:
        print(f"{what + ':':<50} {value:>8}  ({note})")


def report(results: dict) -> None:
    print("\nSeeding: " + "; ".join(f"{name} in {seconds:.1f} s" for name, seconds in results["seeding"]) + "\n")
    print_rows(results["rows"])
    print_rows(results["taps"])
    print_ratios(results)
    print("\nPer step, 100 / 100,000 products:   SQL statements (most seen)   p50 ms")
    steps, p50 = results["steps"], results["step_p50"]
    for step in steps["100 products"]:
        print(f"  {step:<14} {steps['100 products'][step]:>17} / {steps['100,000 products'][step]:<3}"
              f" {p50['100 products'][step]:>12.2f} / {p50['100,000 products'][step]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer sessions and purchases")
    parser.add_argument("--database", metavar="URL", help="a PostgreSQL server to run on instead of SQLite files "
                        "(each shop in a schema of its own, dropped at the end)")
    args = parser.parse_args()
    shops = Shops(args.database)
    try:
        report(measure(shops, args.quick))
    finally:
        shops.drop()


if __name__ == "__main__":
    main()
