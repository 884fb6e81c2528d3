"""An id is never given twice, and a /grant waits for someone who has not opened the bot yet.

Revision 0017, after 0016. Two changes:

1. On SQLite, a table whose primary key is a plain INTEGER PRIMARY KEY gives
   a new row the highest id there is plus one: delete the newest product and
   the next one added gets its id, so an old ``?start=p_4`` link, or a button
   in an old message, opens another product. AUTOINCREMENT never hands out an
   id again (SQLite remembers the highest in ``sqlite_sequence``). Categories,
   products and promo codes, whose ids are in links and buttons and which
   the seller may delete (a promo code goes with its product), are rebuilt
   with it, every row kept. Purchases and subscriptions are never deleted, so
   their ids are never reused. PostgreSQL's sequences never reuse an id:
   nothing changes there.

   Rebuilding ``products`` drops the three triggers that keep its search index
   (revision 0007) in step: they are made again here, as they were.

2. ``pending_grants``: a product the seller granted (/grant) to someone who
   has never opened the bot. Telegram lets no bot write first, so it waits
   here, and becomes their purchase at their first /start (sales.py).
"""
import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

NEVER_REUSED = ["categories", "products", "promo_codes"]
SEARCH_TRIGGERS = [  # revision 0007's, written out again: a revision does what it did the day it was written
    "CREATE TRIGGER IF NOT EXISTS products_search_insert AFTER INSERT ON products BEGIN "
    "INSERT INTO products_search (rowid, name, description) VALUES (new.id, new.name, new.description); END",
    "CREATE TRIGGER IF NOT EXISTS products_search_delete AFTER DELETE ON products BEGIN "
    "INSERT INTO products_search (products_search, rowid, name, description) "
    "VALUES ('delete', old.id, old.name, old.description); END",
    "CREATE TRIGGER IF NOT EXISTS products_search_update AFTER UPDATE OF name, description ON products BEGIN "
    "INSERT INTO products_search (products_search, rowid, name, description) "
    "VALUES ('delete', old.id, old.name, old.description); "
    "INSERT INTO products_search (rowid, name, description) VALUES (new.id, new.name, new.description); END",
]


def rebuild(autoincrement: bool) -> None:
    """Copy each table into one made with (or without) AUTOINCREMENT: SQLite cannot ALTER it."""
    if op.get_bind().dialect.name != "sqlite":
        return
    for table in NEVER_REUSED:
        with op.batch_alter_table(table, recreate="always",
                                  table_kwargs={"sqlite_autoincrement": autoincrement}):
            pass
    for statement in SEARCH_TRIGGERS:
        op.execute(statement)


def upgrade() -> None:
    rebuild(autoincrement=True)
    op.create_table(
        "pending_grants",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("telegram_id", sa.BigInteger(), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("admin_id", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["product_id"], ["products.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_pending_grants_telegram_id", "pending_grants", ["telegram_id"])


def downgrade() -> None:
    op.drop_index("ix_pending_grants_telegram_id", table_name="pending_grants")
    op.drop_table("pending_grants")
    rebuild(autoincrement=False)
