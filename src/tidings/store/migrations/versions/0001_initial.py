"""Initial schema: notifications, targets, receipts, inbox_state.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notifications",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("type", sa.String(100), nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("data", sa.Text, nullable=False),
        sa.Column("url", sa.Text),
        sa.Column("actor", sa.Text),
        sa.Column("audience", sa.Text, nullable=False),
        sa.Column("expires_at", sa.BigInteger),
        sa.Column("api_key", sa.String(64)),
        sa.Column("idempotency_key", sa.String(255)),
        sa.Column("request_hash", sa.String(64)),
        sa.UniqueConstraint("api_key", "idempotency_key", name="uq_notifications_idempotency"),
    )
    op.create_index("ix_notifications_expires_at", "notifications", ["expires_at"])
    op.create_table(
        "targets",
        sa.Column("audience", sa.String(300), nullable=False),
        sa.Column("notification_id", sa.BigInteger, nullable=False),
        sa.Column("expires_at", sa.BigInteger),
        sa.PrimaryKeyConstraint("audience", "notification_id", name="pk_targets"),
    )
    op.create_index("ix_targets_notification_id", "targets", ["notification_id"])
    op.create_table(
        "receipts",
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("notification_id", sa.BigInteger, nullable=False),
        sa.Column("read_at", sa.BigInteger),
        sa.Column("deleted_at", sa.BigInteger),
        sa.PrimaryKeyConstraint("user_id", "notification_id", name="pk_receipts"),
    )
    op.create_index("ix_receipts_notification_id", "receipts", ["notification_id"])
    op.create_table(
        "inbox_state",
        sa.Column("user_id", sa.String(255), primary_key=True),
        sa.Column("read_through", sa.BigInteger, nullable=False),
        sa.Column("read_through_at", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("inbox_state")
    op.drop_table("receipts")
    op.drop_table("targets")
    op.drop_table("notifications")
