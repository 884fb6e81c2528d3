"""A refund remembers who made it: the shop, the shop automatically, or Telegram.

Revision 0015, after 0014. ``purchases.refunded_by`` is written before the
shop asks Telegram for a refund, so that the refunded_payment message Telegram
sends back for the shop's own refund (which may arrive before Telegram's
answer) is recognised, and the buyer is told once, by whoever closes the
purchase, who refunded it (purchases.close_refund).

Refunds made before are left with NULL: who made them was not recorded.
"""
import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("purchases") as batch:
        batch.add_column(sa.Column("refunded_by", sa.String(8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("purchases") as batch:
        batch.drop_column("refunded_by")
