"""A text index for search, filled with the products the shop already has.

Revision 0007, after 0006. A search looks for every word anywhere in a
product's name or description (``LIKE '%word%'``), which no ordinary index can
serve: without this one, every search read the whole catalog. Both databases
get an index of trigrams (every run of three characters), which finds any
substring of three characters or more:

- SQLite: an FTS5 table with the trigram tokenizer (SQLite 3.34 or newer),
  ``products_search``, that keeps no copy of the texts (``content='products'``)
  and is kept in step with ``products`` by three triggers. A later migration
  that rebuilds ``products`` in batch mode drops these triggers with the old
  table: it must create them again.
- PostgreSQL: the ``pg_trgm`` extension and a GIN index, ``products_search``,
  on ``name || ' ' || description``; PostgreSQL keeps it in step by itself.
  Creating the extension needs the CREATE privilege on the database (pg_trgm
  is a trusted extension), or an administrator who has created it before.

Written out here rather than imported from models.py (whose ``create_search_index``
makes the same for ``Base.metadata.create_all``), because a revision must always
do what it did the day it was written. Neither is a model: database.py and
migrations/env.py leave every name starting with ``products_search`` out of the
comparison with the models.
"""
import sqlite3

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# IF NOT EXISTS: a database made by Base.metadata.create_all() has the index already (models.py makes it
# too), and a revision may meet such a database when its tables are recognised as an earlier revision's.
SQLITE_UPGRADE = [
    "CREATE VIRTUAL TABLE IF NOT EXISTS products_search USING fts5(name, description, content='products', "
    "content_rowid='id', tokenize='trigram')",
    "CREATE TRIGGER IF NOT EXISTS products_search_insert AFTER INSERT ON products BEGIN "
    "INSERT INTO products_search (rowid, name, description) VALUES (new.id, new.name, new.description); END",
    "CREATE TRIGGER IF NOT EXISTS products_search_delete AFTER DELETE ON products BEGIN "
    "INSERT INTO products_search (products_search, rowid, name, description) "
    "VALUES ('delete', old.id, old.name, old.description); END",
    "CREATE TRIGGER IF NOT EXISTS products_search_update AFTER UPDATE OF name, description ON products BEGIN "
    "INSERT INTO products_search (products_search, rowid, name, description) "
    "VALUES ('delete', old.id, old.name, old.description); "
    "INSERT INTO products_search (rowid, name, description) VALUES (new.id, new.name, new.description); END",
    "INSERT INTO products_search (products_search) VALUES ('rebuild')",  # index the products there are
]
SQLITE_DOWNGRADE = ["DROP TRIGGER products_search_insert", "DROP TRIGGER products_search_delete",
                    "DROP TRIGGER products_search_update", "DROP TABLE products_search"]


def trigram_operators(bind) -> str:
    """pg_trgm's operator class, named with the schema the extension lives in (not always on the search path)."""
    bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
    schema = bind.execute(sa.text("SELECT extnamespace::regnamespace::text FROM pg_extension "
                                  "WHERE extname = 'pg_trgm'")).scalar()
    return f"{schema}.gin_trgm_ops"


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        if sqlite3.sqlite_version_info < (3, 34):
            raise RuntimeError(f"search needs SQLite 3.34 or newer, and this Python has {sqlite3.sqlite_version}")
        for statement in SQLITE_UPGRADE:
            op.execute(statement)
    else:
        # fastupdate off: a search would otherwise read every entry in the index's pending list (up to
        # 4 MB) until a vacuum merges it; products change rarely, so inserting straight into the index is fine.
        op.execute(f"CREATE INDEX IF NOT EXISTS products_search ON products USING gin "
                   f"((name || ' ' || description) {trigram_operators(bind)}) WITH (fastupdate = off)")


def downgrade() -> None:
    # On PostgreSQL the extension stays: something else in the database may use it.
    for statement in SQLITE_DOWNGRADE if op.get_bind().dialect.name == "sqlite" else ["DROP INDEX products_search"]:
        op.execute(statement)
