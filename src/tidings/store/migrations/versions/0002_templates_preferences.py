"""Event templates, per-user preferences, and what notifications keep of them.

``templates`` holds one row per event type: its version (raised on every change) and
its definition as JSON (title, body, url, level, category, critical, actions, locales).
``preferences`` holds one row per user who set any. ``notifications`` gains the
``category``, ``actions`` and ``critical`` of its template, the rendered ``locales``
variants (JSON ``{locale: {title, body, url}}``) and the ``template_version`` it was
rendered from (null for notifications not created from an event).

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "templates",
        sa.Column("type", sa.String(100), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("definition", sa.Text, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "preferences",
        sa.Column("user_id", sa.String(255), primary_key=True),
        sa.Column("types", sa.Text, nullable=False),
        sa.Column("categories", sa.Text, nullable=False),
        sa.Column("do_not_disturb_until", sa.BigInteger),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )
    # Plain ADD COLUMN (no table copy, on SQLite either): nullable or with a default.
    op.add_column("notifications", sa.Column("category", sa.String(100)))
    op.add_column("notifications", sa.Column("actions", sa.Text))
    op.add_column(
        "notifications",
        sa.Column("critical", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.add_column("notifications", sa.Column("locales", sa.Text))
    op.add_column("notifications", sa.Column("template_version", sa.Integer))


def downgrade() -> None:
    with op.batch_alter_table("notifications") as batch:
        batch.drop_column("template_version")
        batch.drop_column("locales")
        batch.drop_column("critical")
        batch.drop_column("actions")
        batch.drop_column("category")
    op.drop_table("preferences")
    op.drop_table("templates")
