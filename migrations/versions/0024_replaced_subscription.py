"""A subscription remembers the Telegram subscription it replaced, so that nobody pays twice for a month.

Revision 0024. ``subscriptions.replaced_charge_id`` is the first charge of the
customer's previous Telegram subscription to the product, when a new one took
its place (♻️ Renew after a failed renewal, say). Telegram may go on trying to
charge the old one: the shop cancels it, and refunds a renewal of it that still
arrives. NULL for subscriptions made before, and for a customer's first.
"""
import sqlalchemy as sa
from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("subscriptions") as batch:
        batch.add_column(sa.Column("replaced_charge_id", sa.String(255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("subscriptions") as batch:
        batch.drop_column("replaced_charge_id")
