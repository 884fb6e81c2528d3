"""Reviews: a buyer's stars and words about a product they own, and the seller's reply.

Revision 0021, after 0020. A new
table only: ``reviews`` holds one row per buyer and product (unique: writing
again replaces it), read by product, shown ones newest first
(ix_reviews_product_shown). A refund deletes the review with it (purchases.py).
"""
import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reviews",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("stars", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("reply", sa.Text(), nullable=False),
        sa.Column("hidden", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("edits", sa.Integer(), nullable=False),
        sa.Column("edits_since", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["product_id"], ["products.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("user_id", "product_id", name="uq_reviews_user_product"),
    )
    op.create_index("ix_reviews_product_shown", "reviews", ["product_id", "hidden", "updated_at"])


def downgrade() -> None:
    op.drop_index("ix_reviews_product_shown", table_name="reviews")
    op.drop_table("reviews")
