"""Subscriptions that hear Telegram, and Telegram's Stars ledger kept for revenue net of its cuts.

Revision 0019, after 0018. ``subscriptions`` learn who cancelled one (the shop,
or the customer in Telegram's settings: only the shop's cancel can be undone by
the bot), when Telegram could not charge a renewal, and which paid date a
"your subscription ends soon" reminder was sent for. ``purchases`` keep the
affiliate's commission Telegram took from each payment; ``star_ledger`` keeps
each transaction the shop has read from Telegram's Stars ledger, for 📊 Sales.

Subscriptions cancelled before are left with ``cancelled_by`` NULL: the shop's
own ❌ Cancel, the only cancel it could hear of then.
"""
import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("subscriptions") as batch:
        batch.add_column(sa.Column("cancelled_by", sa.String(8), nullable=True))
        batch.add_column(sa.Column("renewal_failed_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("reminded_for", sa.DateTime(), nullable=True))
    with op.batch_alter_table("purchases") as batch:
        batch.add_column(sa.Column("commission_nanostars", sa.BigInteger(), nullable=True))
    op.create_table(
        "star_ledger",
        sa.Column("position", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("transaction_id", sa.String(255), nullable=False),
        sa.Column("date", sa.DateTime(), nullable=False),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("partner", sa.String(40), nullable=False),
        sa.Column("nanostars", sa.BigInteger(), nullable=False),
        sa.Column("commission_nanostars", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("position"),
    )
    op.create_index("ix_star_ledger_date", "star_ledger", ["date"])


def downgrade() -> None:
    op.drop_index("ix_star_ledger_date", table_name="star_ledger")
    op.drop_table("star_ledger")
    with op.batch_alter_table("purchases") as batch:
        batch.drop_column("commission_nanostars")
    with op.batch_alter_table("subscriptions") as batch:
        batch.drop_column("reminded_for")
        batch.drop_column("renewal_failed_at")
        batch.drop_column("cancelled_by")
