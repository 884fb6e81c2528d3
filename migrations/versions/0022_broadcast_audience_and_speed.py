"""A broadcast remembers whom it is for and how fast it goes.

Revision 0022. ``broadcasts.audience`` and ``product_id``: everyone, the buyers,
one product's buyers or one subscription's subscribers, so that a broadcast a
restart interrupted resumes to the same people. ``fast``: ⚡ a paid broadcast
(allow_paid_broadcast, up to 1,000 messages a second); ``claimed_until`` and
``unsure``: its place is saved a batch at a time, and after a kill the batch in
flight is skipped and counted rather than sent twice.

Broadcasts made before were to everyone, at standard speed: the defaults.
"""
import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("broadcasts") as batch:
        batch.add_column(sa.Column("audience", sa.String(16), nullable=False, server_default="all"))
        batch.add_column(sa.Column("product_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("fast", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("claimed_until", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("unsure", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("broadcasts") as batch:
        for column in ("unsure", "claimed_until", "fast", "product_id", "audience"):
            batch.drop_column(column)
