"""A product's stock items are unique: the database refuses the same key twice.

Revision 0005, after 0004. Until now one paste sent twice, or two admins
uploading the same list, stored every key twice, and later buyers received
keys that earlier buyers already had. Each item now carries a digest (SHA-256
of its text, or of its file), unique per product.

Duplicates already stored are settled without losing a sale: an unsold copy
of a key is removed (it would be sold again); copies that were all sold are
kept, as the record of those sales, with their digests told apart.
"""
import hashlib

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

items = sa.table("stock_items", sa.column("id", sa.Integer), sa.column("product_id", sa.Integer),
                 sa.column("content", sa.Text), sa.column("file_id", sa.String),
                 sa.column("purchase_id", sa.Integer), sa.column("digest", sa.String))


def digest(content: str, file_id: str | None) -> str:
    """The same as models.item_digest, frozen here: a migration must not change when the models do."""
    return hashlib.sha256((f"file:{file_id}" if file_id else content).encode()).hexdigest()


def fill_digests(connection) -> None:
    """Give every item its digest; settle duplicates as the docstring says."""
    seen: dict[tuple[int, str], bool] = {}  # (product, digest) -> kept copy was sold
    rows = connection.execute(sa.select(items.c.id, items.c.product_id, items.c.content, items.c.file_id,
                                        items.c.purchase_id).order_by(items.c.purchase_id.is_(None), items.c.id))
    for item_id, product_id, content, file_id, purchase_id in rows.all():
        key = (product_id, digest(content or "", file_id))
        if key not in seen:
            seen[key] = purchase_id is not None
            value = key[1]
        elif purchase_id is None:  # an unsold copy of a key kept already: it would be sold twice
            connection.execute(items.delete().where(items.c.id == item_id))
            continue
        else:  # sold twice before this release: keep the record, tell the digests apart
            value = f"{key[1][:50]}:dup{item_id}"
        connection.execute(items.update().where(items.c.id == item_id).values(digest=value))


def upgrade() -> None:
    with op.batch_alter_table("stock_items") as batch:
        batch.add_column(sa.Column("digest", sa.String(64), nullable=True))
    fill_digests(op.get_bind())
    with op.batch_alter_table("stock_items") as batch:
        batch.alter_column("digest", existing_type=sa.String(64), nullable=False)
        batch.create_unique_constraint("uq_stock_items_product_digest", ["product_id", "digest"])


def downgrade() -> None:
    with op.batch_alter_table("stock_items") as batch:
        batch.drop_constraint("uq_stock_items_product_digest", type_="unique")
        batch.drop_column("digest")
