"""Upgrades never lose a shop (database.py, migrations/): every test on SQLite and PostgreSQL."""
from __future__ import annotations

import importlib.util
import logging
import shutil
import sqlite3
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

import shopbot
from conftest import Person, ShopUnderTest, make_config
from models import is_modelled
from shopkit import Base, database

HERE = Path(__file__).resolve().parent.parent  # the project's root
HEAD = database.head_revision()


def load_release_1():
    """Revision 0001's frozen copy of release 1's tables."""
    spec = importlib.util.spec_from_file_location("release_1", HERE / "migrations/versions/0001_release_1.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.RELEASE_1


RELEASE_1 = load_release_1()
WHEN = datetime(2026, 10, 1, 12, 0)


def engine_for(url: str):
    return create_engine(url, poolclass=NullPool)


def release_1_database(url: str) -> None:
    """What a seller running release 1 has today: create_all's tables, no alembic_version, real data."""
    engine = engine_for(url)
    RELEASE_1.create_all(engine)
    t = RELEASE_1.tables
    with engine.begin() as db:
        db.execute(t["users"].insert(), [
            dict(telegram_id=1001, username="alice", first_name="Alice", language_code="en", created_at=WHEN,
                 is_blocked=False),
            dict(telegram_id=1002, username=None, first_name="Борис", language_code="ru", created_at=WHEN,
                 is_blocked=True)])
        db.execute(t["categories"].insert(), [dict(name="Keys", position=0)])
        db.execute(t["products"].insert(), [
            dict(category_id=1, name="Guide", description="A guide", price=50, hidden_content="GUIDE-LINK",
                 is_active=True, created_at=WHEN),
            dict(category_id=1, name="Windows key", description="Keys", price=100, hidden_content="Activate.",
                 is_active=True, created_at=WHEN)])
        db.execute(t["purchases"].insert(), [
            dict(user_id=1, product_id=1, price=50, currency="XTR", payment_type="stars", payment_id="ch-1",
                 created_at=WHEN, refunded_at=None),
            dict(user_id=1, product_id=2, price=100, currency="XTR", payment_type="stars", payment_id="ch-2",
                 created_at=WHEN, refunded_at=None),
            dict(user_id=2, product_id=1, price=50, currency="XTR", payment_type="stars", payment_id="ch-3",
                 created_at=WHEN, refunded_at=WHEN),
            # Release 1 let two payments for the same guide both through (issue 15): it happened.
            dict(user_id=1, product_id=1, price=50, currency="XTR", payment_type="stars", payment_id="ch-4",
                 created_at=WHEN, refunded_at=None)])
        db.execute(t["stock_items"].insert(), [
            dict(product_id=2, content="KEY-SOLD", purchase_id=2, created_at=WHEN),
            dict(product_id=2, content="KEY-UNSOLD-1", purchase_id=None, created_at=WHEN),
            dict(product_id=2, content="KEY-UNSOLD-2", purchase_id=None, created_at=WHEN)])
        db.execute(t["waitlist"].insert(), [dict(product_id=2, user_id=2, created_at=WHEN)])
        db.execute(t["settings"].insert(), [dict(key="sale_alerts:1", value="off")])
    engine.dispose()


def release_1_rows(url: str) -> dict:
    """Every row of every release-1 table, in release 1's columns."""
    engine = engine_for(url)
    with engine.connect() as db:
        rows = {name: db.execute(table.select().order_by(*table.primary_key.columns)).all()
                for name, table in RELEASE_1.tables.items()}
    engine.dispose()
    return rows


def stored_revision(url: str) -> str | None:
    engine = engine_for(url)
    with engine.connect() as db:
        revision = database.stored_revision(db)
    engine.dispose()
    return revision


def differences(url: str, metadata) -> list:
    """What differs between the database and ``metadata``, leaving out the search index (no model)."""
    engine = engine_for(url)
    with engine.connect() as db:
        found = compare_metadata(MigrationContext.configure(db, opts={"include_name": is_modelled}), metadata)
    engine.dispose()
    return found


def upgrade_to(url: str, revision: str, migrations: Path = database.MIGRATIONS) -> None:
    engine = database.migration_engine(url)
    with engine.begin() as connection:
        command.upgrade(database.alembic_config(connection, migrations), revision)
    engine.dispose()


def sqlite_path(url: str) -> Path | None:
    parsed = make_url(url)
    return Path(parsed.database) if parsed.get_backend_name() == "sqlite" else None


# ---------------------------------------------------------------------------
# The revisions themselves
# ---------------------------------------------------------------------------

def test_revision_0001_creates_exactly_release_1s_schema(tmp_path):
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    upgrade_to(url, "0001")
    with sqlite3.connect(tmp_path / "shop.db") as db:
        made = [sql for (sql,) in db.execute(
            "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND name != 'alembic_version' "
            "ORDER BY type DESC, name")]
    frozen = (HERE / "migrations/release_1_sqlite.sql").read_text()
    assert [sql + ";" for sql in made] == [part.strip() for part in frozen.split("\n\n")[1:] if part.strip()]


def test_the_revisions_form_one_line_numbered_in_order(tmp_path):
    engine = database.migration_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with engine.begin() as connection:
        revisions = database.known_revisions(database.alembic_config(connection, database.MIGRATIONS))
    engine.dispose()
    numbers = sorted(revisions)
    assert numbers == [f"{n:04d}" for n in range(1, len(numbers) + 1)] and numbers[-1] == HEAD
    assert all(revisions[number].down_revision == (f"{int(number) - 1:04d}" if number != "0001" else None)
               for number in numbers)


def test_migrations_and_models_agree(database_url):
    database.upgrade(database_url)
    assert differences(database_url, Base.metadata) == []
    assert stored_revision(database_url) == HEAD


def test_the_demo_catalog_is_built_by_the_migrations():
    with sqlite3.connect(f"file:{HERE / 'shop.db.example'}?mode=ro", uri=True) as db:
        assert db.execute("SELECT version_num FROM alembic_version").fetchall() == [(HEAD,)]


# ---------------------------------------------------------------------------
# Upgrading a seller's shop
# ---------------------------------------------------------------------------

def test_a_release_1_shop_keeps_every_row_and_still_sells(database_url, api, caplog):
    caplog.set_level(logging.INFO, logger="shopbot")
    release_1_database(database_url)
    before = release_1_rows(database_url)

    bot = shopbot.create_bot(make_config(database_url), threaded=False)  # upgrades on the way
    shop = ShopUnderTest(bot, api)
    try:
        assert release_1_rows(database_url) == before
        assert stored_revision(database_url) == HEAD
        if HEAD != "0001":
            assert f"Database upgraded from revision 0001 to revision {HEAD}" in caplog.text
            if sqlite_path(database_url):
                copy = f"sqlite:///{sqlite_path(database_url)}.before-0001"
                assert release_1_rows(copy) == before
        alice, carol = Person(shop, 1001, "Alice", "alice"), Person(shop, 1003, "Carol")
        alice.sends("/purchases")
        alice.taps("Windows key")
        assert "KEY-SOLD" in alice.last_text() or "KEY-SOLD" in alice.all_texts()
        alice.taps("Guide")
        assert "GUIDE-LINK" in alice.all_texts()
        carol.sends("/start p_2")
        assert "📦 2 in stock" in carol.last_text()
        carol.taps("Buy")
        carol.pays()
        assert "KEY-UNSOLD-1" in carol.all_texts() and "KEY-SOLD" not in carol.all_texts()
        boris = Person(shop, 1002, "Борис", language_code="ru")
        boris.sends("/purchases")
        assert boris.button_labels()[0] == "↩️ Guide (возврат)"
    finally:
        shop.close()


def test_release_1_products_keep_their_kind_and_old_purchases_count_as_delivered(database_url):
    release_1_database(database_url)
    database.upgrade(database_url)
    engine = engine_for(database_url)
    with engine.connect() as db:
        kinds = db.execute(text("SELECT name, kind FROM products ORDER BY id")).all()
        purchases = db.execute(text("SELECT payment_id, once_per_customer, delivered_at = created_at "
                                    "FROM purchases ORDER BY id")).all()
    engine.dispose()
    assert kinds == [("Guide", "unlimited"), ("Windows key", "stocked")]
    # the oldest of the two live guides keeps the one-live mark; both charges stay, for the seller to refund
    assert [(charge, bool(once), bool(delivered)) for charge, once, delivered in purchases] == [
        ("ch-1", True, True), ("ch-2", False, True), ("ch-3", False, True), ("ch-4", False, True)]



def test_subscription_payments_recorded_before_0010_belong_to_the_customers_subscription(database_url):
    release_1_database(database_url)
    upgrade_to(database_url, "0009")
    engine = engine_for(database_url)
    with engine.begin() as db:  # Alice subscribed to a 📅 guide (charge s-1) and renewed it once (s-2)
        db.execute(text("UPDATE products SET kind = 'subscription', chat_id = -100 WHERE id = 1"))
        db.execute(text("INSERT INTO subscriptions (user_id, product_id, chat_id, first_charge_id, price, expires_at,"
                        " created_at) VALUES (1, 1, -100, 's-1', 50, :when, :when)"), {"when": WHEN})
        db.execute(text("UPDATE purchases SET payment_id = 's-' || id WHERE id IN (1, 2, 4)"))
    engine.dispose()
    database.upgrade(database_url)
    engine = engine_for(database_url)
    with engine.connect() as db:
        found = db.execute(text("SELECT payment_id, subscription_charge_id FROM purchases ORDER BY id")).all()
    engine.dispose()
    assert found == [("s-1", "s-1"), ("s-2", None), ("ch-3", None), ("s-4", "s-1")]  # purchase 2: a key

def test_a_database_made_from_the_current_models_is_stamped_with_their_revision(database_url):
    engine = engine_for(database_url)
    Base.metadata.create_all(engine)  # as the spec's usage example does
    engine.dispose()
    database.upgrade(database_url)
    assert stored_revision(database_url) == HEAD


def test_the_upgrade_fills_the_search_index_with_the_products_there_are(database_url, api):
    release_1_database(database_url)
    bot = shopbot.create_bot(make_config(database_url), threaded=False)
    shop = ShopUnderTest(bot, api)
    try:
        carol = Person(shop, 1003, "Carol")
        carol.sends("windows keys")
        assert carol.button_labels()[0] == "Windows key — 100 ⭐"
        shop.add_product("Windows guide", description="Keys and more")  # and the index follows new products
        carol.sends("windows keys")
        assert carol.last_text() == "🔎 «windows keys»: 2 found"
        if sqlite_path(database_url):
            with sqlite3.connect(sqlite_path(database_url)) as db:  # raises if the index and the table disagree
                db.execute("INSERT INTO products_search (products_search) VALUES ('integrity-check')")
    finally:
        bot.shop.Session.kw["bind"].dispose()


def test_a_database_made_from_the_current_models_can_search(database_url, api):
    engine = engine_for(database_url)
    Base.metadata.create_all(engine)  # the search index comes with the products table
    engine.dispose()
    bot = shopbot.create_bot(make_config(database_url), threaded=False)
    shop = ShopUnderTest(bot, api)
    try:
        shop.add_product("Netflix 1 month")
        carol = Person(shop, 1003, "Carol")
        carol.sends("netflix")
        assert carol.last_text() == "🔎 «netflix»: 1 found"
    finally:
        bot.shop.Session.kw["bind"].dispose()


def test_upgrading_twice_changes_nothing(database_url, caplog, tmp_path):
    caplog.set_level(logging.INFO, logger="shopbot")
    release_1_database(database_url)
    database.upgrade(database_url)
    lines, files = caplog.text.count("Database upgraded"), sorted(tmp_path.iterdir())
    database.upgrade(database_url)
    assert caplog.text.count("Database upgraded") == lines and sorted(tmp_path.iterdir()) == files
    assert stored_revision(database_url) == HEAD


def set_revision(url: str, revision: str) -> None:
    engine = engine_for(url)
    with engine.begin() as db:
        db.execute(text("UPDATE alembic_version SET version_num = :revision"), {"revision": revision})
    engine.dispose()


def test_a_database_newer_than_the_code_is_refused_and_left_untouched(database_url):
    database.upgrade(database_url)
    set_revision(database_url, "9999")
    with pytest.raises(database.DatabaseError, match="revision 9999, newer than this code"):
        database.upgrade(database_url)
    assert stored_revision(database_url) == "9999"


def test_a_database_the_shop_does_not_know_is_refused_and_left_untouched(database_url):
    engine = engine_for(database_url)
    with engine.begin() as db:
        db.execute(text("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)"))
    engine.dispose()
    with pytest.raises(database.DatabaseError, match="neither release 1's nor this code's"):
        database.upgrade(database_url)
    assert inspect(engine_for(database_url)).get_table_names() == ["notes"]


def run_shopbot(env: dict, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(HERE / "shopbot.py")], env={"PATH": "/usr/bin:/bin", **env},
                          capture_output=True, text=True, timeout=30, cwd=cwd)


def test_the_bot_refuses_to_start_on_a_newer_database_with_one_line(tmp_path):
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    database.upgrade(url)
    set_revision(url, "9999")
    before = (tmp_path / "shop.db").read_bytes()
    result = run_shopbot({"BOT_TOKEN": "1:x", "DATABASE_URL": url}, tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "newer than this code" in result.stderr
    assert (tmp_path / "shop.db").read_bytes() == before


BROKEN = '''
import sqlalchemy as sa
from alembic import op

revision = "{number}"
down_revision = "{previous}"


def upgrade():
    op.add_column("products", sa.Column("colour", sa.String(16)))
    op.execute("UPDATE products SET colour = 'red'")
    raise RuntimeError("a migration that fails halfway")
'''


def migrations_plus(tmp_path: Path, source: str) -> Path:
    """A copy of the project's migrations with one more revision after the head."""
    folder = tmp_path / "migrations"
    shutil.copytree(database.MIGRATIONS, folder, ignore=shutil.ignore_patterns("__pycache__"))
    number = f"{int(HEAD) + 1:04d}"
    (folder / "versions" / f"{number}_extra.py").write_text(source.format(number=number, previous=HEAD))
    return folder


def test_a_failed_migration_leaves_the_database_as_it_was(database_url, tmp_path):
    release_1_database(database_url)
    database.upgrade(database_url)
    before = release_1_rows(database_url)
    with pytest.raises(database.DatabaseError, match="failed and was rolled back") as failure:
        database.upgrade(database_url, migrations_plus(tmp_path, BROKEN))
    assert stored_revision(database_url) == HEAD and release_1_rows(database_url) == before
    assert "colour" not in {c["name"] for c in inspect(engine_for(database_url)).get_columns("products")}
    if sqlite_path(database_url):  # and the copy from before the attempt is there too
        assert f"shop.db.before-{HEAD}" in str(failure.value)
        assert release_1_rows(f"sqlite:///{sqlite_path(database_url)}.before-{HEAD}") == before


COUNTED = '''
import sqlalchemy as sa
from alembic import op

revision = "{number}"
down_revision = "{previous}"


def upgrade():
    op.create_table("runs", sa.Column("id", sa.Integer, primary_key=True))
    op.execute("INSERT INTO runs (id) VALUES (1)")
'''


def test_two_instances_starting_at_once_run_each_migration_once(database_url, tmp_path):
    release_1_database(database_url)
    migrations = migrations_plus(tmp_path, COUNTED)
    program = (f"import pathlib, models; from shopkit import database; "
               f"database.upgrade({database_url!r}, pathlib.Path({str(migrations)!r}))")
    starts = [subprocess.Popen([sys.executable, "-c", program], cwd=HERE, stderr=subprocess.PIPE, text=True)
              for _ in range(2)]
    errors = [process.communicate(timeout=60)[1] for process in starts]
    assert [process.returncode for process in starts] == [0, 0], errors
    engine = engine_for(database_url)
    with engine.connect() as db:
        assert db.execute(text("SELECT count(*) FROM runs")).scalar() == 1
    engine.dispose()
    assert stored_revision(database_url) == f"{int(HEAD) + 1:04d}"


def test_ids_are_never_given_again_after_the_upgrade_and_every_row_is_kept(database_url, api):
    release_1_database(database_url)  # two products, Guide (1, sold) and Windows key (2)
    bot = shopbot.create_bot(make_config(database_url), threaded=False)  # upgrades to the head
    shop = ShopUnderTest(bot, api)
    try:
        engine = engine_for(database_url)
        with engine.begin() as db:
            assert db.execute(text("SELECT id, name FROM products ORDER BY id")).all() == [
                (1, "Guide"), (2, "Windows key")]
            assert db.execute(text("SELECT count(*) FROM purchases")).scalar() == 4
            db.execute(text("DELETE FROM waitlist"))
            db.execute(text("DELETE FROM stock_items WHERE product_id = 2"))
            db.execute(text("DELETE FROM purchases WHERE product_id = 2"))
            db.execute(text("DELETE FROM products WHERE id = 2"))  # the newest product, deleted
        engine.dispose()
        assert shop.add_product("Another").id == 3  # never 2: an old ?start=p_2 finds nothing
        carol = Person(shop, 1003, "Carol")
        carol.sends("/start p_2")
        assert "removed from the shop" in carol.last_text()
        carol.sends("another")  # the search index was kept in step through the rebuild
        assert carol.button_labels()[0] == "Another — 25 ⭐"
        if sqlite_path(database_url):
            with sqlite3.connect(sqlite_path(database_url)) as db:
                db.execute("INSERT INTO products_search (products_search) VALUES ('integrity-check')")
    finally:
        bot.shop.Session.kw["bind"].dispose()
