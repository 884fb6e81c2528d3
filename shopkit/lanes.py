"""Lanes: the order in which updates are handled, so that nobody waits behind someone else.

Part of shopkit, the machinery under the shop (see __init__.py).

telebot would hand every update to one pool of worker threads, first come,
first served. Then one customer tapping a thousand times makes everyone wait,
and a payment can miss Telegram's 10-second limit for pre-checkout behind a
queue of taps. Here updates wait in lanes instead:

- **Payments first.** Pre-checkout queries and successful payments have a
  lane and threads of their own; no tap ever stands in front of them.
- **Everyone in turn.** Each user has a lane of their own, handled one update
  at a time and in order (a seller's long paste, split by Telegram into four
  messages, is read in order), and the worker threads serve the users with
  something waiting in turn, one update each.
- **A flood is trimmed.** A user gets about 5 updates a second (bursts of 10
  are fine); beyond that a tap is only answered, a message dropped, and the
  user gets one polite note. Admins are never trimmed.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable

logger = logging.getLogger("shopbot")

RATE = 5.0  # updates a second a user may send, on average
BURST = 10  # ...and at once


class TokenBucket:
    """Allows ``rate`` events a second on average, ``burst`` at once (the classic token bucket)."""

    def __init__(self, rate: float, burst: int, now: float):
        self.rate, self.burst = rate, burst
        self.tokens, self.updated = float(burst), now

    def take(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class Lanes:
    """Worker threads that serve a priority lane first and then each user's lane in turn."""

    def __init__(self, workers: int = 4, payment_workers: int = 2, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.lock = threading.Lock()
        self.waiting: dict[int, deque[Callable]] = {}  # user id -> their updates, oldest first
        self.ready: queue.Queue[int | None] = queue.Queue()  # users with an update and no worker on them
        self.payments: queue.Queue[Callable | None] = queue.Queue()
        self.buckets: dict[int, TokenBucket] = {}
        self.noted: set[int] = set()  # users told to slow down, until they do
        self.threads = [threading.Thread(target=self.serve_users, name=f"lane-{n}", daemon=True)
                        for n in range(workers)]
        self.threads += [threading.Thread(target=self.serve_payments, name=f"payments-{n}", daemon=True)
                         for n in range(payment_workers)]
        for thread in self.threads:
            thread.start()

    # --- taking updates in ---------------------------------------------------------

    def put_payment(self, work: Callable) -> None:
        self.payments.put(work)

    def put(self, user_id: int, work: Callable) -> None:
        """Queue ``work`` in the user's lane; it runs after their earlier updates."""
        with self.lock:
            lane = self.waiting.setdefault(user_id, deque())
            lane.append(work)
            if len(lane) == 1:  # nobody is serving this user: their turn comes
                self.ready.put(user_id)

    def allow(self, user_id: int) -> tuple[bool, bool]:
        """(may this update be handled, should the user be told to slow down)."""
        with self.lock:
            now = self.clock()
            bucket = self.buckets.setdefault(user_id, TokenBucket(RATE, BURST, now))
            if bucket.take(now):
                self.noted.discard(user_id)
                return True, False
            first = user_id not in self.noted
            self.noted.add(user_id)
            return False, first

    # --- the worker threads ------------------------------------------------------

    def serve_payments(self) -> None:
        while (work := self.payments.get()) is not None:
            run(work)

    def serve_users(self) -> None:
        while (user_id := self.ready.get()) is not None:
            with self.lock:
                work = self.waiting[user_id][0]
            run(work)
            with self.lock:
                lane = self.waiting[user_id]
                lane.popleft()
                if lane:  # more from this user: back in line, behind everyone waiting
                    self.ready.put(user_id)
                else:
                    del self.waiting[user_id]

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the updates in hand (each lane's current one and the queued payments), then stop."""
        for thread in self.threads:
            (self.payments if thread.name.startswith("payments") else self.ready).put(None)
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))


def run(work: Callable) -> None:
    """Run one update's handler; the handlers log their own errors, this catches what slips through."""
    try:
        work()
    except Exception:
        logger.exception("An update's handler failed")
