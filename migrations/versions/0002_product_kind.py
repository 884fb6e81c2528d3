"""Every product says what kind it is: unlimited (the same content for all) or stocked (unique items).

Revision 0002, after 0001. Until now a product counted as stocked when it had
stock items, so removing the unsold keys turned it into an unlimited product
whose next buyer paid and got no key. Existing products keep what they were:
stocked when they have any stock item, sold or not.
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("products") as batch:
        batch.add_column(sa.Column("kind", sa.String(16), nullable=False, server_default="unlimited"))
    op.execute("UPDATE products SET kind = 'stocked' "
               "WHERE EXISTS (SELECT 1 FROM stock_items WHERE stock_items.product_id = products.id)")


def downgrade() -> None:
    with op.batch_alter_table("products") as batch:
        batch.drop_column("kind")
