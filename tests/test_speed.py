"""Speed that does not depend on the catalog's size: statements per tap and query plans, not timings."""
from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest
from sqlalchemy import event as sqlalchemy_event
from sqlalchemy import insert

from conftest import (
    ADMIN_ID,
    Person,
    add_stock,
    buys,
)
from models import Product, Purchase
from shopkit import callback

HERE = Path(__file__).resolve().parent.parent  # the project's root


BIG_TABLES = ("products", "purchases", "stock_items", "users", "waitlist", "settings")


class StatementLog:
    """Every SQL statement the bot runs, with its parameters."""

    def __init__(self, engine):
        self.engine, self.statements = engine, []
        sqlalchemy_event.listen(engine, "before_cursor_execute", self.record)

    def record(self, connection, cursor, statement, parameters, context, executemany):
        self.statements.append((statement, parameters))

    def plans(self) -> list[tuple[str, str]]:
        """(plan line, statement) for every SELECT, as EXPLAIN QUERY PLAN tells."""
        raw = self.engine.raw_connection()
        try:
            return [(row[3], " ".join(statement.split())[:120]) for statement, parameters in self.statements
                    if statement.lstrip().upper().startswith("SELECT")
                    for row in raw.cursor().execute("EXPLAIN QUERY PLAN " + statement, parameters)]
        finally:
            raw.close()

    def full_scans(self) -> list[str]:
        """Plan lines where SQLite would read a whole big table (or a whole index of one)."""
        whole_table = re.compile(rf"SCAN ({'|'.join(BIG_TABLES)})\b")  # not products_search, the text index
        return [f"{line}  <-  {statement}" for line, statement in self.plans() if whole_table.match(line)]


class WorkLog:
    """How much work SQLite does, counted in its virtual machine's instructions (by the thousand):
    unlike a timing, the same on any machine."""

    def __init__(self, engine):
        self.thousands = 0
        sqlalchemy_event.listen(engine, "before_cursor_execute", self.watch)

    def watch(self, connection, cursor, *args):
        cursor.connection.set_progress_handler(self.count, 1000)

    def count(self) -> int:
        self.thousands += 1
        return 0  # go on

    def of(self, action) -> int:
        before = self.thousands
        action()
        return self.thousands - before


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
    code = shop.add_promo("SPRING")
    with shop.Session() as session:  # a sale with a promo code, for the report's line on them
        session.add(Purchase(user_id=1, product_id=product.id, price=4, list_price=5, promo_code_id=code.id,
                             currency="XTR", payment_type="stars", payment_id="charge-spring"))
        session.commit()
    log = StatementLog(shop.Session.kw["bind"])
    seller.taps_data(callback("sales"))
    assert "2 sales · 9 ⭐" in seller.last_text() and "Promo codes, 30 days" in seller.last_text()
    assert log.full_scans() == []


def add_products(shop, category, count: int, name: str = "Course") -> None:
    with shop.Session() as session:
        first = session.query(Product).count()
        session.execute(insert(Product), [
            {"category_id": category.id, "name": f"{name} {n}", "description": f"Lesson {n} of the series",
             "price": 5} for n in range(first, first + count)])
        session.commit()


def test_a_search_reads_the_text_index_not_every_product(sqlite_shop):
    shop = sqlite_shop
    add_products(shop, shop.add_category("Courses"), 30)
    alice = Person(shop, 1001, "Alice", "alice")
    log = StatementLog(shop.Session.kw["bind"])
    for query in ("course 12", "LESSON course", "course 1"):  # "1": too short for the index, looked for among its finds
        before = len(log.statements)
        alice.sends(query)
        assert len(log.statements) - before <= 3, log.statements[before:]
    assert alice.button_labels()[:2] == ["Course 1 — 5 ⭐", "Course 10 — 5 ⭐"]
    assert log.full_scans() == []
    assert any(line.startswith("SCAN products_search VIRTUAL TABLE INDEX") for line, _ in log.plans())


@pytest.mark.parametrize("query", ["course 1200", "course", "course 7", "zz", "course zz"])
def test_a_search_costs_the_same_in_a_catalog_twice_the_size(sqlite_shop, query):
    shop = sqlite_shop
    category = shop.add_category("Courses")
    alice = Person(shop, 1001, "Alice", "alice")
    work = WorkLog(shop.Session.kw["bind"])
    add_products(shop, category, 1500)
    alice.sends(query)  # the first time pays for opening the connection
    small = work.of(lambda: alice.sends(query))
    add_products(shop, category, 1500)
    assert work.of(lambda: alice.sends(query)) <= small * 1.25 + 5


def test_a_category_page_costs_the_same_in_a_category_twice_the_size(sqlite_shop):
    shop = sqlite_shop
    category = shop.add_category("Courses")
    alice = Person(shop, 1001, "Alice", "alice")
    work = WorkLog(shop.Session.kw["bind"])
    add_products(shop, category, 1000)
    alice.sends("/catalog")  # the catalog counts every category's products, and keeps the figures 30 s

    def tap_pages():
        alice.taps_data(callback("category", category.id, 0))
        alice.taps_data(callback("category", category.id, 50))

    small = work.of(tap_pages)
    add_products(shop, category, 1000)
    shop.bot.shop.catalog.clear()  # as an admin's action would
    alice.sends("/catalog")
    assert work.of(tap_pages) <= small * 1.25 + 5
    assert "51/250" in alice.button_labels()


def test_searches_of_any_words_share_a_few_statements(sqlite_shop):
    """SQLAlchemy keeps each form of a statement it compiled (~100 KB each): the forms of a search must be
    few, or a shop's memory grows with the variety of what customers type."""
    shop = sqlite_shop
    add_products(shop, shop.add_category("Courses"), 10)
    alice = Person(shop, 1001, "Alice", "alice")
    log = StatementLog(shop.Session.kw["bind"])
    words = ["course", "урок", "1", "я"]  # long and short, ASCII and not
    for count in (1, 2, 3):
        for query in itertools.product(words, repeat=count):
            alice.sends(" ".join(query))
    searches = {statement for statement, _ in log.statements if " LIKE " in statement}
    assert len(searches) <= 9  # one per number of long and of short words
