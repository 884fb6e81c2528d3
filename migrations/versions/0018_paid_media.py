"""📸 Paid media products, and 🔒 protected content.

Revision 0018, after 0017. A product may now be ``paid_media``: photos and
videos sent blurred with sendPaidMedia and unlocked in place once Telegram has
taken the Stars (paid_media.py). ``products.media`` holds them, ``caption``
their caption; ``products.protected`` sends a product's content with
protect_content. ``purchases.paid_media_payload`` names a paid-media
purchase, unique, so that it is recorded once however often Telegram tells it.
"""
import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMNs, not a batch: SQLite would copy the table for the false() default, and a copy of products
    # loses the search index's triggers (the search_index migration).
    op.add_column("products", sa.Column("media", sa.JSON(), nullable=True))
    op.add_column("products", sa.Column("caption", sa.Text(), nullable=False, server_default=""))
    op.add_column("products", sa.Column("protected", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.add_column("purchases", sa.Column("paid_media_payload", sa.String(128), nullable=True))
    op.create_index("ux_purchases_paid_media", "purchases", ["paid_media_payload"], unique=True)


def downgrade() -> None:
    op.drop_index("ux_purchases_paid_media", table_name="purchases")
    with op.batch_alter_table("purchases") as batch:
        batch.drop_column("paid_media_payload")
    with op.batch_alter_table("products") as batch:
        batch.drop_column("protected")
        batch.drop_column("caption")
        batch.drop_column("media")
