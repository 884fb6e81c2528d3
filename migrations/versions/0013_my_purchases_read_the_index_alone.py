"""My purchases reads a customer's purchases from their index alone, however many they have.

Revision 0013, after 0012. ix_purchases_user_created gains
subscription_charge_id: My purchases leaves out a subscription's payments
(it shows one line per subscription), and the count behind its pager then
needs no look at each purchase's product. No row changes.
"""
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_purchases_user_created", "purchases")
    op.create_index("ix_purchases_user_created", "purchases", ["user_id", "created_at", "subscription_charge_id"])


def downgrade() -> None:
    op.drop_index("ix_purchases_user_created", "purchases")
    op.create_index("ix_purchases_user_created", "purchases", ["user_id", "created_at"])
