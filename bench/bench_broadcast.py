"""Benchmark a broadcast against Telegram's rate limits, under fakegram.

    python -m bench.bench_broadcast              # standard to 1,000 people (~40 s), ⚡ fast to 10,000 (~15 s)
    python -m bench.bench_broadcast --standard 10000    # the full standard run: about six minutes
    python -m bench.bench_broadcast --kill       # and a fast broadcast killed (SIGKILL) halfway, then resumed

(from the project's root, with ../shared/fakegram beside it).

Each run builds a shop in a temp SQLite file with N people who started the
bot (bulk inserts), starts the real bot (`python shopbot.py`) against
fakegram's strict Telegram, ``FakeTelegram(strict_rate=30)``: above 30
messages a second it answers 429 with retry_after, unless a message carries
allow_paid_broadcast, which may go at up to 1,000 a second and costs 0.1 ⭐
from the bot's balance. The seller then goes 📣 Broadcast → a message → ✅ Send
(or ⚡ Fast broadcast… → ⚡ Send fast) as in the app.

It prints, for each speed, the time from the first copy to the last, and its
ratio to the time the limit allows (N / 30 s, N / 1,000 s): the goal is 1.2×
at most. Also the 429s met, the paid messages and their cost, and anyone
written to twice (never, even across the kill).
"""
from __future__ import annotations

import argparse
import collections
import math
import os
import sys
import tempfile
import time

from sqlalchemy import create_engine, insert

from models import User
from shopkit import open_database

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the project's root, where shopbot.py is
sys.path.insert(0, os.path.join(ROOT, "..", "shared", "fakegram"))
from fakegram import BotProcess, FakeTelegram, Person  # noqa: E402 (found beside the project, not installed)

ADMIN = 1
FIRST_CUSTOMER = 10_000_000  # the seeded customers' Telegram ids start here
LIMITS = {"standard": 30, "fast": 1000}  # messages a second Telegram allows


def seed(url: str, people: int) -> None:
    """A shop whose database knows ``people`` customers who started the bot."""
    open_database(url)
    engine = create_engine(url)
    rows = [{"telegram_id": FIRST_CUSTOMER + n, "first_name": f"C{n}", "username": None, "language_code": "en",
             "is_blocked": False} for n in range(people)]
    with engine.begin() as connection:
        for start in range(0, len(rows), 5000):
            connection.execute(insert(User), rows[start:start + 5000])
    engine.dispose()


def wait_for_report(seller: Person, timeout: float) -> str:
    """The seller's final report, once it arrives."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        last = Person.text_of(seller.last())
        if "Broadcast finished" in last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"no report within {timeout:.0f} s; last: {Person.text_of(seller.last())!r}")


def copies(tg: FakeTelegram) -> list:
    """The broadcast's copies to customers that Telegram accepted, in order."""
    return [c for c in tg.calls if c.method == "copyMessage" and c.chat_id != ADMIN and c.status == 200]


def cpu_seconds(pid: int) -> float:
    """CPU time a process has used so far (user + system), from /proc."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_broadcast(seller: Person, fast: bool) -> None:
    seller.send("/admin")
    seller.tap("Broadcast")
    seller.send("🎉 Sale today!")
    if fast:
        seller.tap("Fast broadcast")
        seller.tap("Send fast")
    else:
        seller.tap("Send")


def run(people: int, fast: bool, kill: bool = False) -> dict:
    """One broadcast to ``people`` customers under fakegram; its figures."""
    folder = tempfile.mkdtemp(prefix="bench-broadcast-")
    url = f"sqlite:///{os.path.join(folder, 'shop.db')}"
    seed(url, people)
    with FakeTelegram(strict_rate=LIMITS["standard"]) as tg:
        if fast:
            tg.credit_stars(math.ceil(people / 10) + 10)
        for n in range(people):
            tg.chat_for({"id": FIRST_CUSTOMER + n, "is_bot": False, "first_name": f"C{n}"})
        env = {"DATABASE_URL": url, "ADMIN_IDS": str(ADMIN), "LOG_LEVEL": "WARNING"}
        bot = BotProcess(ROOT, tg, env, log_path=os.path.join(folder, "bot.log")).start()
        try:
            seller = Person(tg, ADMIN, "Seller")
            seller.send("/start")
            bot_cpu, fakegram_cpu = cpu_seconds(bot.proc.pid), time.process_time()
            start_broadcast(seller, fast)
            if kill:
                while len(copies(tg)) < people // 2:
                    time.sleep(0.01)
                bot.kill()
                killed_at = len(copies(tg))
                bot = BotProcess(ROOT, tg, env, log_path=os.path.join(folder, "bot.log")).start()
            report = wait_for_report(seller, timeout=people / LIMITS["fast" if fast else "standard"] * 3 + 60)
            bot_cpu, fakegram_cpu = cpu_seconds(bot.proc.pid) - bot_cpu, time.process_time() - fakegram_cpu
        finally:
            bot.stop()
        sent = copies(tg)
        per_chat = collections.Counter(c.chat_id for c in sent)
        span = sent[-1].t - sent[0].t
        allowed = people / LIMITS["fast" if fast else "standard"]
        return {"speed": "fast" if fast else "standard", "people": people, "seconds": span, "allowed": allowed,
                "ratio": span / allowed, "reached": len(per_chat), "twice": sum(n > 1 for n in per_chat.values()),
                "flooded": tg.flooded, "paid": tg.paid_sent, "paid_all": all(
                    c.params.get("allow_paid_broadcast") in ("true", "True", True) for c in sent) if fast else None,
                "killed_at": killed_at if kill else None, "report": report.replace("\n", " | "),
                "cpu": (bot_cpu, fakegram_cpu), "load": os.getloadavg()[0]}


def show(result: dict) -> None:
    print(f"{result['speed']:>8} to {result['people']:>6,} people: {result['seconds']:7.1f} s "
          f"(the limit allows {result['allowed']:.1f} s): {result['ratio']:.2f}x; reached {result['reached']:,}, "
          f"twice {result['twice']}, 429s {result['flooded']}, paid messages {result['paid']:,}"
          + (f", every copy paid: {result['paid_all']}" if result["paid_all"] is not None else "")
          + (f"; killed after {result['killed_at']:,} copies, resumed" if result["killed_at"] else ""))
    print(f"{'':>8}   CPU: the bot {result['cpu'][0]:.1f} s, fakegram {result['cpu'][1]:.1f} s; "
          f"the machine's load average {result['load']:.1f}")
    print(f"{'':>8}   report: {result['report']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--standard", type=int, default=1000, help="people for the standard run (0: skip)")
    parser.add_argument("--fast", type=int, default=10000, help="people for the fast run (0: skip)")
    parser.add_argument("--kill", action="store_true", help="also a fast run killed halfway and resumed")
    args = parser.parse_args()
    results = []
    if args.standard:
        results.append(run(args.standard, fast=False))
        show(results[-1])
    if args.fast:
        results.append(run(args.fast, fast=True))
        show(results[-1])
    if args.kill:
        results.append(run(args.fast or 10000, fast=True, kill=True))
        show(results[-1])
    if any(r["ratio"] > 1.2 or r["twice"] for r in results if r["killed_at"] is None):
        sys.exit("over 1.2x the limit, or someone written to twice")


if __name__ == "__main__":
    main()
