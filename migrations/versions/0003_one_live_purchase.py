"""One live purchase per customer of a product sold once per customer; and a delivered mark.

Revision 0003, after 0002.

- ``purchases.once_per_customer`` is set when the product was sold once per
  customer (unlimited, or free); a unique index over (user, product) for the
  live ones among them makes the database refuse a second live purchase, which
  two payments landing at once could otherwise both record.
- ``purchases.delivered_at`` is set once the content has been sent, so that a
  purchase recorded just before a crash is delivered on the next start.

Existing purchases count as delivered (release 1 delivered at once), and where
a customer already holds two live purchases of the same such product, the
oldest keeps the mark and the others stay as they are, for the seller to
refund: an upgrade never refunds anything by itself.
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

ONE_LIVE = "refunded_at IS NULL AND once_per_customer"
UNDELIVERED = "delivered_at IS NULL"


def upgrade() -> None:
    with op.batch_alter_table("purchases") as batch:
        batch.add_column(sa.Column("once_per_customer", sa.Boolean, nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("delivered_at", sa.DateTime, nullable=True))
    op.execute("UPDATE purchases SET delivered_at = created_at")
    op.execute(
        "UPDATE purchases SET once_per_customer = TRUE WHERE refunded_at IS NULL AND id IN ("
        " SELECT min(p.id) FROM purchases p JOIN products ON products.id = p.product_id"
        " WHERE p.refunded_at IS NULL AND (products.kind = 'unlimited' OR products.price = 0)"
        " GROUP BY p.user_id, p.product_id)")
    op.create_index("ux_purchases_one_live", "purchases", ["user_id", "product_id"], unique=True,
                    sqlite_where=sa.text(ONE_LIVE), postgresql_where=sa.text(ONE_LIVE))
    op.create_index("ix_purchases_undelivered", "purchases", ["id"],
                    sqlite_where=sa.text(UNDELIVERED), postgresql_where=sa.text(UNDELIVERED))


def downgrade() -> None:
    op.drop_index("ix_purchases_undelivered", "purchases")
    op.drop_index("ux_purchases_one_live", "purchases")
    with op.batch_alter_table("purchases") as batch:
        batch.drop_column("delivered_at")
        batch.drop_column("once_per_customer")
