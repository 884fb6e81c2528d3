"""Stars subscriptions: a product may sell monthly access to a channel or group.

Revision 0009, after 0008. A subscription product names its chat
(products.chat_id, chat_title); each customer's subscription to it is a row of
the new subscriptions table. Existing products have no chat and stay as they
are; no row is changed.
"""
import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("products") as batch:
        batch.add_column(sa.Column("chat_id", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("chat_title", sa.String(length=255), nullable=False, server_default=""))
    op.create_table(
        "subscriptions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("first_charge_id", sa.String(length=255), nullable=False),
        sa.Column("price", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("cancelled_at", sa.DateTime(), nullable=True),
        sa.Column("invite_link", sa.String(length=255), nullable=True),
        sa.Column("joined_at", sa.DateTime(), nullable=True),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["product_id"], ["products.id"], ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("user_id", "product_id", name="uq_subscriptions_user_product"),
    )
    op.create_index("ix_subscriptions_product", "subscriptions", ["product_id", "expires_at"])
    # The expiry check reads only the subscriptions whose access has not ended.
    op.create_index("ix_subscriptions_live", "subscriptions", ["expires_at"],
                    sqlite_where=sa.text("ended_at IS NULL"), postgresql_where=sa.text("ended_at IS NULL"))


def downgrade() -> None:
    op.drop_table("subscriptions")
    with op.batch_alter_table("products") as batch:
        batch.drop_column("chat_title")
        batch.drop_column("chat_id")
