"""The export names both payment ids, and a customer's cancellation outlives their next subscription.

Revision 0023. ``purchases.provider_payment_id`` keeps the payment provider's
charge id beside Telegram's (the export lists both; a card refund is looked up
by it in the provider's dashboard). ``subscriptions.customer_cancelled_at`` is
when the customer last tapped ❌ Cancel: unlike ``cancelled_at``, which a refund
sets too and a renewal clears, it is the customer's own, and 📊 Sales counts
cancellations by it.

Purchases and cancellations made before are left with NULL: the provider's id
was not kept, and a cancellation could not be told from a refund.
"""
import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("purchases") as batch:
        batch.add_column(sa.Column("provider_payment_id", sa.String(255), nullable=True))
    with op.batch_alter_table("subscriptions") as batch:
        batch.add_column(sa.Column("customer_cancelled_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("subscriptions") as batch:
        batch.drop_column("customer_cancelled_at")
    with op.batch_alter_table("purchases") as batch:
        batch.drop_column("provider_payment_id")
