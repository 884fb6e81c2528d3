"""A payment the shop could not honour is marked until its refund lands.

Revision 0014, after 0013. ``purchases.refund_due`` is set on a payment
checkout.py refunds at once (sold out, a second payment, a spent promo code):
for a card, or Stars Telegram would not give back, it stays live until the
seller refunds it, and meanwhile it must deliver nothing and, as a gift, not
be claimed.

Of the payments recorded before, the ones that came with a promo code which
had no use left are known for sure (a list price, but no code): they are
marked, and leave the one live purchase a customer may have of a product
(ux_purchases_one_live). The other reasons leave no trace to find them by; a
stocked gift without its key is refused when claimed anyway (gifts.claim).
"""
import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("purchases") as batch:
        batch.add_column(sa.Column("refund_due", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.execute(sa.text("UPDATE purchases SET refund_due = :yes, once_per_customer = :no"
                       " WHERE list_price IS NOT NULL AND promo_code_id IS NULL AND payment_id IS NOT NULL")
               .bindparams(yes=True, no=False))


def downgrade() -> None:
    with op.batch_alter_table("purchases") as batch:
        batch.drop_column("refund_due")
