"""Release 1: the schema the first release of shopbot made with create_all.

Revision 0001, the root of every later one. The tables are written out here,
frozen, rather than imported from models.py: models.py moves on with every
release, and this revision must always create exactly what release 1 did
(migrations/release_1_sqlite.sql is that schema, as SQLite recorded it).

database.py also uses ``RELEASE_1`` to recognise a release-1 database, which
has these tables but no alembic_version table, before stamping it 0001.
"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

RELEASE_1 = sa.MetaData()

sa.Table(
    "users", RELEASE_1,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("telegram_id", sa.BigInteger, nullable=False, unique=True),
    sa.Column("username", sa.String(64)),
    sa.Column("first_name", sa.String(128), nullable=False),
    sa.Column("language_code", sa.String(16), nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False, index=True),
    sa.Column("is_blocked", sa.Boolean, nullable=False),
)
sa.Table(
    "categories", RELEASE_1,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(64), nullable=False, unique=True),
    sa.Column("position", sa.Integer, nullable=False),
)
sa.Table(
    "products", RELEASE_1,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("category_id", sa.Integer, sa.ForeignKey("categories.id", ondelete="RESTRICT"), nullable=False),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("price", sa.Integer, nullable=False),
    sa.Column("description_file_id", sa.String(255)),
    sa.Column("description_file_type", sa.String(16)),
    sa.Column("hidden_content", sa.Text, nullable=False),
    sa.Column("hidden_file_id", sa.String(255)),
    sa.Column("hidden_file_type", sa.String(16)),
    sa.Column("is_active", sa.Boolean, nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Index("ix_products_category_active", "category_id", "is_active", "id"),
)
sa.Table(
    "purchases", RELEASE_1,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="RESTRICT"), nullable=False),
    sa.Column("product_id", sa.Integer, sa.ForeignKey("products.id", ondelete="RESTRICT"), nullable=False),
    sa.Column("price", sa.Integer, nullable=False),
    sa.Column("currency", sa.String(8), nullable=False),
    sa.Column("payment_type", sa.String(16), nullable=False),
    sa.Column("payment_id", sa.String(255), unique=True),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("refunded_at", sa.DateTime),
    sa.Index("ix_purchases_user_created", "user_id", "created_at"),
    sa.Index("ix_purchases_product_user", "product_id", "user_id"),
    sa.Index("ix_purchases_sales", "created_at", "refunded_at", "currency", "price", "product_id"),
    sa.Index("ix_purchases_refunded", "refunded_at"),
)
sa.Table(
    "stock_items", RELEASE_1,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("product_id", sa.Integer, sa.ForeignKey("products.id", ondelete="CASCADE"), nullable=False),
    sa.Column("content", sa.Text, nullable=False),
    sa.Column("file_id", sa.String(255)),
    sa.Column("file_type", sa.String(16)),
    sa.Column("purchase_id", sa.Integer, sa.ForeignKey("purchases.id", ondelete="RESTRICT"), unique=True),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Index("ix_stock_items_product_unsold", "product_id", "purchase_id", "id"),
)
sa.Table(
    "waitlist", RELEASE_1,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("product_id", sa.Integer, sa.ForeignKey("products.id", ondelete="CASCADE"), nullable=False),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.UniqueConstraint("product_id", "user_id"),
)
sa.Table(
    "settings", RELEASE_1,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(255), nullable=False),
)


def upgrade() -> None:
    RELEASE_1.create_all(op.get_bind())


def downgrade() -> None:
    RELEASE_1.drop_all(op.get_bind())
