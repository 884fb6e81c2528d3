"""A subscription payment remembers its Telegram subscription.

Revision 0010, after 0009. ``purchases.subscription_charge_id`` names the
Telegram subscription a 📅 payment belongs to by the charge id of its first
payment: a renewal's is its subscription's, while a second subscription paid by
mistake has its own. A refund of that second payment then leaves the live
subscription alone (subscriptions.end_by_refund).

The payments recorded before are taken as the customer's subscription's first
payment and renewals, as the shop took them until now; other purchases keep
NULL.
"""
import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("purchases") as batch:
        batch.add_column(sa.Column("subscription_charge_id", sa.String(length=255), nullable=True))
    op.execute(
        "UPDATE purchases SET subscription_charge_id = (SELECT s.first_charge_id FROM subscriptions s"
        " WHERE s.user_id = purchases.user_id AND s.product_id = purchases.product_id)"
        " WHERE payment_id IS NOT NULL")


def downgrade() -> None:
    with op.batch_alter_table("purchases") as batch:
        batch.drop_column("subscription_charge_id")
