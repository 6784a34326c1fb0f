"""Changes after sending, and per-user archive, snooze and unread-again.

``notifications`` gains ``revision``, its position in the delivery log: the id at
creation, and a freshly minted id (under the same write lock as ids) whenever the
backend changes or retracts it, so the feed and resume read changes in log order like
new notifications. ``retracted_at`` marks a notification the backend took back (a
tombstone the feed still reads; its targets are gone), ``updated_at`` its last change,
and ``key`` the key a create with ``"key"`` replaces in place. ``receipts`` gains the
per-user ``unread_at`` (read again as unread, over the ``read_through`` watermark),
``archived_at`` and ``snoozed_until``: per user, so a broadcast stays one row.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN (no table copy on SQLite): nullable; existing rows get revision = id.
    op.add_column("notifications", sa.Column("revision", sa.BigInteger))
    op.add_column("notifications", sa.Column("retracted_at", sa.BigInteger))
    op.add_column("notifications", sa.Column("updated_at", sa.BigInteger))
    op.add_column("notifications", sa.Column("key", sa.String(255)))
    op.execute("UPDATE notifications SET revision = id")
    op.create_index("ix_notifications_revision", "notifications", ["revision"], unique=True)
    op.create_index("ix_notifications_key", "notifications", ["key"])
    op.add_column("receipts", sa.Column("unread_at", sa.BigInteger))
    op.add_column("receipts", sa.Column("archived_at", sa.BigInteger))
    op.add_column("receipts", sa.Column("snoozed_until", sa.BigInteger))
    op.create_index("ix_receipts_snoozed_until", "receipts", ["snoozed_until"])


def downgrade() -> None:
    op.drop_index("ix_receipts_snoozed_until", table_name="receipts")
    with op.batch_alter_table("receipts") as batch:
        batch.drop_column("snoozed_until")
        batch.drop_column("archived_at")
        batch.drop_column("unread_at")
    op.drop_index("ix_notifications_key", table_name="notifications")
    op.drop_index("ix_notifications_revision", table_name="notifications")
    with op.batch_alter_table("notifications") as batch:
        batch.drop_column("key")
        batch.drop_column("updated_at")
        batch.drop_column("retracted_at")
        batch.drop_column("revision")
