"""Benchmark shopbot against bare telebot, on a small and a huge catalog.

    python bench_shopbot.py            # about a minute
    python bench_shopbot.py --quick    # fewer sessions, for a smoke run

It builds two shops in temp SQLite files (100 products; 100,000 products with
100,000 purchases), then drives the real bot with updates as Telegram sends
them (outgoing API calls captured, no network) through a customer session:

    /start → Catalog → a category → Next page → a product → Buy → pre-checkout
    → successful payment → My purchases

and prints one table: updates per second, p50/p95 handling time per update
(single-threaded, and with 4 worker threads as telebot runs them), the same
for a bare telebot bot that only answers and edits, the ratios, the SQL
statements per update, the time from `python shopbot.py` to its first
getUpdates and its peak memory. A local HTTP server with Telegram-like latency
shows what the shop adds over a real connection.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import telebot
from sqlalchemy import event, insert
from telebot import apihelper, types

import checkout
import shopbot
from database import open_database
from models import Category, Product, Purchase, User, utcnow
from screens import callback

TOKEN = "1234567:BENCH"
PRODUCTS_PER_CATEGORY = 1000
TELEGRAM_LATENCY = 0.025  # seconds per Bot API call; real round trips to Telegram are 30-150 ms


# ---------------------------------------------------------------------------
# A shop of a given size, seeded with bulk inserts
# ---------------------------------------------------------------------------

def seed_shop(path: str, products: int, purchases: int) -> float:
    """Fill a new database; returns the seconds it took."""
    started = time.perf_counter()
    factory = open_database(f"sqlite:///{path}")
    categories = max(1, products // PRODUCTS_PER_CATEGORY)
    with factory() as session:
        session.execute(insert(Category), [{"name": f"Category {c}", "position": c} for c in range(categories)])
        rows = [{"category_id": 1 + n % categories, "name": f"Product {n}", "price": 10 + n % 500,
                 "description": f"Description of product {n}", "hidden_content": f"SECRET-{n}",
                 "is_active": True, "created_at": utcnow()} for n in range(products)]
        for start in range(0, len(rows), 20_000):
            session.execute(insert(Product), rows[start:start + 20_000])
        buyers = max(1, purchases // 10)
        session.execute(insert(User), [{"telegram_id": 10_000_000 + n, "username": f"buyer{n}", "first_name": "B",
                                        "language_code": "en", "created_at": utcnow()} for n in range(buyers)])
        sales = [{"user_id": 1 + n % buyers, "product_id": 1 + n % products, "price": 10, "currency": "XTR",
                  "payment_type": "stars", "payment_id": f"seed-{n}", "created_at": utcnow()}
                 for n in range(purchases)]
        for start in range(0, len(sales), 20_000):
            session.execute(insert(Purchase), sales[start:start + 20_000])
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


class Session:
    """One customer's journey, as updates."""

    def __init__(self, user_id: int, category_id: int, product_id: int):
        user = {"id": user_id, "is_bot": False, "first_name": "Customer", "language_code": "en"}
        chat = {"id": user_id, "type": "private"}
        screen = {"message_id": 7, "date": 1, "chat": chat, "text": "screen", "from": {
            "id": 1234567, "is_bot": True, "first_name": "Bench"}}
        counter = iter(range(1, 100))

        def message(**content):
            return {"message_id": next(counter), "date": 1, "from": user, "chat": chat, **content}

        def tap(data):
            return {"callback_query": {"id": f"{user_id}-{data}", "from": user, "chat_instance": "c",
                                       "data": data, "message": screen}}

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
        self.updates = [types.Update.de_json({"update_id": n, **u}) for n, u in enumerate(raw, 1)]

    def set_price(self, price: int):
        self.raw[6]["pre_checkout_query"]["total_amount"] = price
        self.raw[7]["message"]["successful_payment"]["total_amount"] = price
        self.updates = [types.Update.de_json({"update_id": n, **u}) for n, u in enumerate(self.raw, 1)]


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


def shop_bot(database: str) -> tuple[telebot.TeleBot, StatementCounter]:
    config = shopbot.Config(token=TOKEN, admin_ids=frozenset({1}), database_url=f"sqlite:///{database}")
    bot = shopbot.create_bot(config, threaded=False)
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


def run_threaded(bot, sessions: list[Session], workers: int = shopbot.WORKER_THREADS) -> tuple[list[float], float]:
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


def time_searches(bot, count: int) -> float:
    """p50 milliseconds of a customer's search, which no B-tree index can serve."""
    user = {"id": 777, "is_bot": False, "first_name": "Searcher"}
    times = []
    for n in range(count):
        update = types.Update.de_json({"update_id": n + 1, "message": {
            "message_id": n + 1, "date": 1, "from": user, "chat": {"id": 777, "type": "private"},
            "text": f"product {n * 37}"}})
        started = time.perf_counter()
        bot.process_new_updates([update])
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def summary(times: list[float], wall: float | None = None) -> dict:
    ordered = sorted(times)
    return {"rate": len(times) / (wall or sum(times)), "p50": statistics.median(ordered) * 1000,
            "p95": ordered[int(len(ordered) * 0.95) - 1] * 1000}


def prepare(sessions: list[Session], database: str):
    """Give each journey a real price, so pre-checkout says yes."""
    factory = open_database(f"sqlite:///{database}")
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
    shopbot.use_api_server(server.url)
    try:
        return run_sessions(bot, sessions)[0]
    finally:
        apihelper.API_URL = apihelper.FILE_URL = None


def start_to_first_poll_and_memory(database: str, sessions: list[Session]) -> tuple[float, float]:
    """Run `python shopbot.py` on the big catalog: seconds to its first getUpdates, then peak RSS (MB)
    after it has served the sessions."""
    server = SlowTelegram(latency=0)
    server.updates = [{"update_id": n, **u} for n, u in enumerate((u for j in sessions for u in j.raw), 1)]
    env = {**os.environ, "BOT_TOKEN": TOKEN, "TELEGRAM_API_URL": server.url, "DATABASE_URL": f"sqlite:///{database}"}
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                             "shopbot.py")],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while server.first_poll is None and time.perf_counter() - started < 10:
            time.sleep(0.005)
        first_poll = (server.first_poll or time.perf_counter()) - started
        time.sleep(3)  # let it serve the queued sessions
        with open(f"/proc/{process.pid}/status") as status:
            peak_kb = next(int(line.split()[1]) for line in status if line.startswith("VmHWM"))
    finally:
        process.terminate()
        process.wait(timeout=10)
        server.httpd.shutdown()
    return first_poll, peak_kb / 1024


# ---------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer sessions")
    args = parser.parse_args()
    count = 40 if args.quick else 200
    folder = tempfile.mkdtemp(prefix="shopbot-bench-")
    small, big = os.path.join(folder, "small.db"), os.path.join(folder, "big.db")
    seed_small = seed_shop(small, 100, 100)
    seed_big = seed_shop(big, 100_000, 100_000)
    apihelper.CUSTOM_REQUEST_SENDER = InstantApi()

    rows, steps, step_p50, searches = {}, {}, {}, {}
    for name, database, products in (("100 products", small, 100), ("100,000 products", big, 100_000)):
        bot, counter = shop_bot(database)
        warmup = journeys(10, 1, products)
        prepare(warmup, database)
        run_sessions(bot, warmup)
        sessions = journeys(count, 1000, products)
        prepare(sessions, database)
        step_times = {}
        times, statements = run_sessions(bot, sessions, counter, step_times)
        rows[f"shop, {name}"] = summary(times)
        steps[name] = statements
        step_p50[name] = {step: statistics.median(t) * 1000 for step, t in step_times.items()}
        searches[name] = time_searches(bot, 20)
        threaded_sessions = journeys(count, 100_000, products)
        prepare(threaded_sessions, database)
        times, wall = run_threaded(bot, threaded_sessions)
        rows[f"shop, {name}, 4 threads"] = summary(times, wall)
        bot.shop.Session.kw["bind"].dispose()

    bare = bare_bot()
    bare_sessions = journeys(count, 1000, 100)
    run_sessions(bare, bare_sessions[:10])
    rows["bare telebot"] = summary(run_sessions(bare, bare_sessions)[0])
    rows["bare telebot, 4 threads"] = summary(*run_threaded(bare, journeys(count, 100_000, 100)))

    slow = SlowTelegram(TELEGRAM_LATENCY)
    http_count = 5 if args.quick else 15
    shop_http_bot, _ = shop_bot(big)
    http_sessions = journeys(http_count, 300_000, 100_000)
    prepare(http_sessions, big)
    rows["shop over HTTP (25 ms/call)"] = summary(over_http(shop_http_bot, http_sessions, slow))
    rows["bare over HTTP (25 ms/call)"] = summary(over_http(bare, journeys(http_count, 300_000, 100), slow))
    shop_http_bot.shop.Session.kw["bind"].dispose()
    apihelper.CUSTOM_REQUEST_SENDER = InstantApi()

    first_poll, peak_mb = start_to_first_poll_and_memory(big, journeys(50, 400_000, 100_000))

    print(f"\nSeeding: 100 products in {seed_small:.2f} s; 100,000 products + 100,000 purchases in {seed_big:.1f} s\n")
    print(f"{'run':<34} {'updates/s':>10} {'p50 ms':>8} {'p95 ms':>8}")
    for name, row in rows.items():
        print(f"{name:<34} {row['rate']:>10.0f} {row['p50']:>8.2f} {row['p95']:>8.2f}")
    big_vs_small = rows["shop, 100,000 products"]["p50"] / rows["shop, 100 products"]["p50"]
    shop_vs_bare = rows["shop, 100 products"]["p50"] / rows["bare telebot"]["p50"]
    http_ratio = rows["shop over HTTP (25 ms/call)"]["p50"] / rows["bare over HTTP (25 ms/call)"]["p50"]
    print()
    print(f"p50 ratio, 100,000 vs 100 products:        {big_vs_small:.2f}  (target ≤ 1.30)")
    print(f"p50 ratio, shop vs bare, API captured:     {shop_vs_bare:.2f}  (CPU only: the shop does real work)")
    print(f"p50 ratio, shop vs bare, over HTTP:        {http_ratio:.2f}  (target < 1.30)")
    print(f"start to first getUpdates:                 {first_poll:.2f} s  (target < 1 s)")
    print(f"peak RSS of shopbot.py, 100,000 products:  {peak_mb:.0f} MB  (target < 80 MB)")
    print(f"search (a plain-text message), p50:        {searches['100 products']:.1f} / "
          f"{searches['100,000 products']:.1f} ms for 100 / 100,000 products (a substring match reads every name)")
    print("\nPer step, 100 / 100,000 products:   SQL statements (most seen)   p50 ms")
    for step in steps["100 products"]:
        print(f"  {step:<14} {steps['100 products'][step]:>17} / {steps['100,000 products'][step]:<3}"
              f" {step_p50['100 products'][step]:>12.2f} / {step_p50['100,000 products'][step]:.2f}")


if __name__ == "__main__":
    main()
