"""Speed that does not depend on the catalog's size: statements per tap and query plans, not timings."""
from __future__ import annotations

from pathlib import Path

from sqlalchemy import event as sqlalchemy_event

from conftest import (
    ADMIN_ID,
    Person,
    add_stock,
    buys,
)
from screens import callback

HERE = Path(__file__).parent


BIG_TABLES = ("products", "purchases", "stock_items", "users", "waitlist", "settings")


class StatementLog:
    """Every SQL statement the bot runs, with its parameters."""

    def __init__(self, engine):
        self.engine, self.statements = engine, []
        sqlalchemy_event.listen(engine, "before_cursor_execute", self.record)

    def record(self, connection, cursor, statement, parameters, context, executemany):
        self.statements.append((statement, parameters))

    def full_scans(self) -> list[str]:
        """Plan lines where SQLite would read a whole big table (or a whole index of one)."""
        raw = self.engine.raw_connection()
        try:
            scans = []
            for statement, parameters in self.statements:
                if statement.lstrip().upper().startswith("SELECT"):
                    for row in raw.cursor().execute("EXPLAIN QUERY PLAN " + statement, parameters):
                        if row[3].startswith(tuple(f"SCAN {table}" for table in BIG_TABLES)):
                            scans.append(f"{row[3]}  <-  {' '.join(statement.split())[:120]}")
            return scans
        finally:
            raw.close()


def test_every_customer_tap_takes_at_most_4_statements_and_no_full_scan(sqlite_shop):
    shop = sqlite_shop
    categories = [shop.add_category(f"Shelf {n}", n) for n in range(3)]
    stocked = shop.add_product("Keys pack", price=5, category=categories[0])
    add_stock(shop, stocked, "K1")
    for n in range(60):
        shop.add_product(f"Item {n}", price=5, category=categories[n % 3])
    for n in range(20):  # other people's purchases
        buys(Person(shop, 50 + n, f"P{n}"), stocked if n == 0 else shop.add_product(f"X{n}", price=0))
    alice = Person(shop, 1001, "Alice", "alice")
    alice.sends("/start")
    log = StatementLog(shop.Session.kw["bind"])
    for label in ("Catalog", "Shelf 0", "Next", "Prev", "Keys pack", "🔔", "Back", "Item 3", "Buy"):
        before = len(log.statements)
        alice.taps(label)
        assert len(log.statements) - before <= 4, f"{label}: {log.statements[before:]}"
    alice.pays()
    for label in ("My purchases", "Item 3", "Back"):
        before = len(log.statements)
        alice.taps(label) if label != "My purchases" else alice.sends("/purchases")
        assert len(log.statements) - before <= 4, label
    assert log.full_scans() == []


def test_the_sales_report_reads_index_ranges_only(sqlite_shop):
    shop = sqlite_shop
    seller = Person(shop, ADMIN_ID, "Seller")
    seller.sends("/start")
    product = shop.add_product("Pro", price=5)
    buys(Person(shop, 7, "Buyer"), product)
    log = StatementLog(shop.Session.kw["bind"])
    seller.taps_data(callback("sales"))
    assert "1 sale · 5 ⭐" in seller.last_text()
    assert log.full_scans() == []
