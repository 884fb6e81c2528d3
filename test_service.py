"""Running the shop for real: a missing, unreadable or damaged database, and a clean stop."""
from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from database import DatabaseError, close_database, describe_database, open_database
from models import Category, Product, User


def damage_quietly(path: Path) -> None:
    """Break a B-tree page the way a bad disk does, leaving a file that still opens and answers queries."""
    data = bytearray(path.read_bytes())
    for page in range(2, len(data) // 4096):
        broken = bytearray(data)
        broken[page * 4096 + 3: page * 4096 + 5] = b"\x00\x01"  # a wrong count of cells in the page
        path.write_bytes(broken)
        with sqlite3.connect(path) as raw:
            if raw.execute("PRAGMA quick_check").fetchone() != ("ok",):
                raw.execute("SELECT count(*) FROM products").fetchone()  # it still answers
                return
    raise AssertionError("no page to damage")


def test_a_damaged_database_that_still_opens_is_refused_in_one_line(tmp_path):
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    with open_database(url)() as session:
        session.add_all(Product(name=f"P{n}", price=1, hidden_content="x" * 200, description="d" * 300,
                                category=Category(name=f"C{n}")) for n in range(300))
        session.commit()
        session.get_bind().dispose()
    damage_quietly(tmp_path / "shop.db")
    with pytest.raises(DatabaseError, match="damaged") as refused:
        open_database(url)
    assert "\n" not in str(refused.value) and "quick_check" in str(refused.value)


def test_a_missing_folder_a_folder_or_garbage_is_one_line(tmp_path):
    (tmp_path / "garbage.db").write_bytes(os.urandom(5000))
    cases = {"missing/shop.db": "does not exist: create it", ".": "is a folder, not a database file",
             "garbage.db": "damaged or is not a SQLite database"}
    for name, says in cases.items():
        url = f"sqlite:///{tmp_path / name}"
        for attempt in (open_database, describe_database):
            with pytest.raises(DatabaseError, match=says) as refused:
                attempt(url)
            assert "\n" not in str(refused.value)
    assert not (tmp_path / "missing").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file")
def test_an_unreadable_database_is_one_line(tmp_path):
    (tmp_path / "shop.db").write_bytes(b"")
    (tmp_path / "shop.db").chmod(0)
    with pytest.raises(DatabaseError, match="may not read and write"):
        open_database(f"sqlite:///{tmp_path / 'shop.db'}")


def test_closing_the_database_moves_the_write_ahead_log_into_shop_db(tmp_path):
    sessions = open_database(f"sqlite:///{tmp_path / 'shop.db'}")
    with sessions() as session:
        session.add(User(telegram_id=77))
        session.commit()
    (tmp_path / "copied").mkdir()
    shutil.copy(tmp_path / "shop.db", tmp_path / "copied" / "before.db")  # the data is still in shop.db-wal
    close_database(sessions)
    shutil.copy(tmp_path / "shop.db", tmp_path / "copied" / "after.db")
    with sqlite3.connect(tmp_path / "copied" / "before.db") as before, \
            sqlite3.connect(tmp_path / "copied" / "after.db") as after:
        assert before.execute("SELECT count(*) FROM users").fetchone() == (0,)
        assert after.execute("SELECT telegram_id FROM users").fetchall() == [(77,)]
    assert not (tmp_path / "shop.db-wal").exists() or (tmp_path / "shop.db-wal").stat().st_size == 0
