"""Promo codes: the codes, the uses held at pre-checkout, and what a purchase paid with one.

Revision 0011, after 0010.

- ``promo_codes``: each code (in capitals, unique), its discount, what it
  applies to, its limits; codes made together by 🎟 Generate codes share a
  ``batch``.
- ``promo_holds``: a use set aside from pre-checkout until the payment lands.
- ``purchases.promo_code_id`` and ``purchases.list_price``: the code a sale
  used and the product's price before it; one partial index counts a code's
  live uses, another sums a month's discounts for 📊 Sales. Existing
  purchases had no code: both stay NULL.
- ``users.promo_code_id``: the code a customer chose last.
"""
import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

LIVE_WITH_CODE = "promo_code_id IS NOT NULL AND refunded_at IS NULL"


def upgrade() -> None:
    op.create_table(
        "promo_codes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("percent", sa.Integer(), nullable=True),
        sa.Column("amount", sa.Integer(), nullable=True),
        sa.Column("currency", sa.String(length=8), nullable=False),
        sa.Column("category_id", sa.Integer(), nullable=True),
        sa.Column("product_id", sa.Integer(), nullable=True),
        sa.Column("max_uses", sa.Integer(), nullable=True),
        sa.Column("expires_at", sa.DateTime(), nullable=True),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("batch", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["category_id"], ["categories.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["product_id"], ["products.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("code"),
    )
    op.create_index("ix_promo_codes_batch", "promo_codes", ["batch"])
    op.create_table(
        "promo_holds",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("promo_code_id", sa.Integer(), nullable=False),
        sa.Column("telegram_id", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["promo_code_id"], ["promo_codes.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("promo_code_id", "telegram_id"),
    )
    with op.batch_alter_table("purchases") as batch:
        batch.add_column(sa.Column("promo_code_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("list_price", sa.Integer(), nullable=True))
        batch.create_foreign_key("fk_purchases_promo_code_id_promo_codes", "promo_codes", ["promo_code_id"], ["id"],
                                 ondelete="RESTRICT")
    op.create_index("ix_purchases_promo_live", "purchases", ["promo_code_id", "user_id"],
                    sqlite_where=sa.text(LIVE_WITH_CODE), postgresql_where=sa.text(LIVE_WITH_CODE))
    op.create_index("ix_purchases_promo_sales", "purchases",
                    ["created_at", "currency", "list_price", "price", "promo_code_id", "refunded_at"],
                    sqlite_where=sa.text(LIVE_WITH_CODE), postgresql_where=sa.text(LIVE_WITH_CODE))
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("promo_code_id", sa.Integer(), nullable=True))
        batch.create_foreign_key("fk_users_promo_code_id_promo_codes", "promo_codes", ["promo_code_id"], ["id"],
                                 ondelete="SET NULL")


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_constraint("fk_users_promo_code_id_promo_codes", type_="foreignkey")
        batch.drop_column("promo_code_id")
    op.drop_index("ix_purchases_promo_sales", "purchases")
    op.drop_index("ix_purchases_promo_live", "purchases")
    with op.batch_alter_table("purchases") as batch:
        batch.drop_constraint("fk_purchases_promo_code_id_promo_codes", type_="foreignkey")
        batch.drop_column("list_price")
        batch.drop_column("promo_code_id")
    op.drop_table("promo_holds")
    op.drop_index("ix_promo_codes_batch", "promo_codes")
    op.drop_table("promo_codes")
