"""The referral program: each customer's invite link, and the friends who came through one.

Revision 0020, after 0019. Two new tables only. ``invite_links`` holds each
customer's short random code (unique: found by its index). ``referrals``
holds one row per invited friend (``friend_id`` unique: invited once), their
one-time welcome code, and, once decided, the outcome, the purchase that
decided it and the inviter's reward code. A partial index keeps the reward
job's reading of the undecided ones short.
"""
import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "invite_links",
        sa.Column("user_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("user_id"),
        sa.UniqueConstraint("code"),
    )
    op.create_table(
        "referrals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("inviter_id", sa.Integer(), nullable=False),
        sa.Column("friend_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("welcome_code_id", sa.Integer(), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("purchase_id", sa.Integer(), nullable=True),
        sa.Column("decided_at", sa.DateTime(), nullable=True),
        sa.Column("reward_code_id", sa.Integer(), nullable=True),
        sa.Column("told_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["friend_id"], ["users.id"], ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["inviter_id"], ["users.id"], ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["purchase_id"], ["purchases.id"], ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["reward_code_id"], ["promo_codes.id"], ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["welcome_code_id"], ["promo_codes.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("friend_id"),
        sa.UniqueConstraint("reward_code_id"),
        sa.UniqueConstraint("welcome_code_id"),
    )
    op.create_index("ix_referrals_inviter_id", "referrals", ["inviter_id"])
    op.create_index("ix_referrals_created_at", "referrals", ["created_at"])
    op.create_index("ix_referrals_waiting", "referrals", ["id"], sqlite_where=sa.text("outcome IS NULL"),
                    postgresql_where=sa.text("outcome IS NULL"))


def downgrade() -> None:
    op.drop_table("referrals")
    op.drop_table("invite_links")
