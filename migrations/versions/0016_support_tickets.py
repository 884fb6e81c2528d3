"""Support tickets: /paysupport opens a conversation that lasts until it is resolved.

Revision 0016, after 0015. Two new tables: ``support_tickets`` (one per
/paysupport: whose, when opened, its last message either way, when and by whom
closed; AUTOINCREMENT on SQLite, so that a number the admins saw is never
given again) and ``ticket_messages`` (which message in an admin's chat belongs
to which ticket, so that replying to it answers the ticket).

The counters of the old one-message support (settings "support:<id>") are
removed, tickets are counted instead; so are its dialogs (a question or an
answer begun before the upgrade: no handler takes them now).
"""
import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "support_tickets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("opened_at", sa.DateTime(), nullable=False),
        sa.Column("last_message_at", sa.DateTime(), nullable=False),
        sa.Column("messages", sa.Integer(), nullable=False),
        sa.Column("closed_at", sa.DateTime(), nullable=True),
        sa.Column("closed_by", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_support_tickets_customer", "support_tickets", ["customer_id", "opened_at"])
    op.create_index("ix_support_tickets_open", "support_tickets", ["last_message_at"],
                    sqlite_where=sa.text("closed_at IS NULL"), postgresql_where=sa.text("closed_at IS NULL"))
    op.create_table(
        "ticket_messages",
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("message_id", sa.BigInteger(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["ticket_id"], ["support_tickets.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("chat_id", "message_id"),
    )
    op.create_index("ix_ticket_messages_ticket_id", "ticket_messages", ["ticket_id"])
    op.execute("DELETE FROM settings WHERE key LIKE 'support:%'")
    op.execute("DELETE FROM dialogs WHERE state IN ('support_message', 'reply_to_customer')")


def downgrade() -> None:
    op.drop_index("ix_ticket_messages_ticket_id", table_name="ticket_messages")
    op.drop_table("ticket_messages")
    op.drop_index("ix_support_tickets_open", table_name="support_tickets")
    op.drop_index("ix_support_tickets_customer", table_name="support_tickets")
    op.drop_table("support_tickets")
