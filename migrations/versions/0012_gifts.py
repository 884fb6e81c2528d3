"""Gifts: a purchase bought for someone else, its secret link, and who claimed it.

Revision 0012, after 0011. A new table only: ``gifts.purchase_id`` is the
buyer's paid purchase, ``token`` the secret in the link (unique: found by its
index), ``claimed_purchase_id`` the purchase made for whoever claimed it
(unique: a gift is claimed once).
"""
import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gifts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("purchase_id", sa.Integer(), nullable=False),
        sa.Column("token", sa.String(length=32), nullable=False),
        sa.Column("claimed_purchase_id", sa.Integer(), nullable=True),
        sa.Column("claimed_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["claimed_purchase_id"], ["purchases.id"], ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["purchase_id"], ["purchases.id"], ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("claimed_purchase_id"),
        sa.UniqueConstraint("purchase_id"),
        sa.UniqueConstraint("token"),
    )


def downgrade() -> None:
    op.drop_table("gifts")
