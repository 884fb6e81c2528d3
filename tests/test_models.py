"""The data model: the spec's usage as written, constraints, and the demo catalog."""
from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, select
from sqlalchemy.exc import IntegrityError

import models
from models import Category, Product, Purchase, User
from shopkit import Base

HERE = Path(__file__).resolve().parent.parent  # the project's root


def test_spec_usage_works_as_written(session):
    session.add(Category(name="Keys"))
    user = User(telegram_id=123456789, username='username')
    product = Product(name='Товар 1', description='Описание товара 1', price=100, category_id=1)
    session.add_all([user, product])
    session.commit()

    products = session.query(Product).filter(Product.name == 'Товар 1').all()

    assert repr(products) == "[<Product 1 'Товар 1' 100>]"
    assert repr(user) == "<User 1 123456789 @username>"
    assert product.is_active and product.hidden_content == "" and product.description_file_id is None


def test_every_model_has_a_readable_repr(session):
    category = Category(name="Keys")
    user = User(telegram_id=5, username=None)
    product = Product(name="Key", price=5, category=category)
    purchase = Purchase(user=user, product=product, price=5, payment_id="ch-1")
    session.add(purchase)
    session.commit()
    assert repr(category) == "<Category 1 'Keys'>"
    assert repr(purchase) == "<Purchase 1 user=1 product=1 5 XTR>"


def test_telegram_ids_beyond_32_bits_are_stored(session):
    session.add(User(telegram_id=2**40 + 7))
    session.commit()
    assert session.scalar(select(User.telegram_id)) == 2**40 + 7


def test_telegram_id_is_unique(session):
    session.add_all([User(telegram_id=1), User(telegram_id=1)])
    with pytest.raises(IntegrityError):
        session.commit()


def test_payment_id_is_unique_but_free_purchases_have_none(session):
    product = Product(name="Key", category=Category(name="Keys"))
    user = User(telegram_id=1)
    session.add_all([Purchase(user=user, product=product, payment_type="free"),
                     Purchase(user=user, product=product, payment_type="free")])
    session.commit()  # two NULL payment ids are fine
    session.add_all([Purchase(user=user, product=product, payment_id="charge-1"),
                     Purchase(user=user, product=product, payment_id="charge-1")])
    with pytest.raises(IntegrityError):
        session.commit()


def test_a_sold_product_and_a_full_category_cannot_be_deleted(session):
    category = Category(name="Keys")
    product = Product(name="Key", category=category)
    session.add(Purchase(user=User(telegram_id=1), product=product))
    session.commit()
    session.delete(product)
    with pytest.raises(IntegrityError):
        session.commit()
    session.rollback()
    with pytest.raises(IntegrityError):  # bypassing the ORM: the database itself refuses
        session.execute(Category.__table__.delete())


def test_demo_database_matches_the_models():
    # Read-only: a missing table must fail this test, not be created in the shipped file.
    engine = create_engine(f"sqlite:///file:{HERE / 'shop.db.example'}?mode=ro&uri=true")
    try:
        inspector = inspect(engine)
        for table in Base.metadata.sorted_tables:
            columns = {c["name"] for c in inspector.get_columns(table.name)}
            assert columns == set(table.columns.keys()), table.name
        with sqlite3.connect(HERE / "shop.db.example") as db:
            assert db.execute("SELECT count(*) FROM categories").fetchone() == (3,)
            assert db.execute("SELECT count(*) FROM products").fetchone() == (8,)
            assert db.execute("SELECT count(*) FROM products WHERE price = 0").fetchone() == (1,)
            assert db.execute("SELECT count(*) FROM products WHERE hidden_content = ''").fetchone() == (0,)
    finally:
        engine.dispose()


def test_demo_database_is_what_the_code_builds(tmp_path):
    subprocess.run([sys.executable, str(HERE / "demo.py"), str(tmp_path / "demo.db")], check=True,
                   capture_output=True)
    query = "SELECT c.name, p.name, p.price, p.description, p.hidden_content FROM products p " \
            "JOIN categories c ON c.id = p.category_id ORDER BY p.id"
    with sqlite3.connect(tmp_path / "demo.db") as built, sqlite3.connect(HERE / "shop.db.example") as shipped:
        assert built.execute(query).fetchall() == shipped.execute(query).fetchall()


def test_spec_style_stock_item_is_complete_as_written(session):
    session.add(Product(name="Key", category=Category(name="Keys")))
    session.add(models.StockItem(product_id=1, content='KEY-1'))
    session.commit()
    assert repr(session.scalar(select(models.StockItem))) == "<StockItem 1 product=1 unsold>"


def test_database_errors_do_not_print_the_hidden_content(session):
    session.add(Product(name="X", category_id=999, hidden_content="TOP-SECRET-KEY"))  # no such category
    with pytest.raises(IntegrityError) as error:
        session.commit()
    assert "TOP-SECRET-KEY" not in str(error.value)
