"""Tables. Times are unix milliseconds (BIGINT); ids are the integers of :mod:`tidings.ids`.

One ``notifications`` row per notification whatever its audience. ``targets`` says who
sees it: one row per audience key (``u:<user>``, ``r:<role>`` or ``*``), so a broadcast
to a million users is one notification and one target. Per-user state lives apart:
``receipts`` holds the rows a user read, hid, marked unread again, archived or snoozed
one by one, and ``inbox_state`` a ``read_through`` watermark that makes "mark all read"
a single write. A notification's ``revision`` is its position in the delivery log (see
:mod:`tidings.feed`): its id, then a new id at each change or retraction. ``templates``
holds each event type's template (definition as JSON) and ``preferences`` each user's
switched-off types and categories and do-not-disturb. ``webhook_deliveries`` is the
outgoing webhook queue: one row per event and receiver URL until it is delivered (then
deleted) or given up (kept, ``status = 'failed'``, for operators).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    false,
    text,
)

metadata = MetaData()


def _where_set(column: str) -> dict[str, Any]:
    """A partial index's predicate: only rows where ``column`` is set."""
    where = text(f'"{column}" IS NOT NULL')
    return {"sqlite_where": where, "postgresql_where": where}


notifications = Table(
    "notifications",
    metadata,
    # INTEGER PRIMARY KEY on SQLite: the rowid itself, no separate index (0005).
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False
    ),
    Column("type", String(100), nullable=False),
    Column("level", String(16), nullable=False),
    Column("title", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("data", Text, nullable=False),
    Column("url", Text),
    Column("actor", Text),
    Column("audience", Text, nullable=False),
    Column("expires_at", BigInteger),
    Column("api_key", String(64)),
    Column("idempotency_key", String(255)),
    Column("request_hash", String(64)),
    # From the event's template (0002): category, actions (JSON), critical, the rendered
    # variants per locale (JSON) and the template version (null: not created from an event).
    Column("category", String(100)),
    Column("actions", Text),
    Column("critical", Boolean, nullable=False, server_default=false()),
    Column("locales", Text),
    Column("template_version", Integer),
    # Changes after sending (0003): the position in the delivery log (the id, then a new
    # id minted at each change), when it was retracted or last changed, its replace key.
    Column("revision", BigInteger),
    Column("retracted_at", BigInteger),
    Column("updated_at", BigInteger),
    Column("key", String(255)),
    # Partial (0005): most rows have none of these, and an index entry is a page written.
    Index(
        "uq_notifications_idempotency",
        "api_key",
        "idempotency_key",
        unique=True,
        **_where_set("idempotency_key"),
    ),
    Index("ix_notifications_expires_at", "expires_at", **_where_set("expires_at")),
    Index("ix_notifications_revision", "revision", unique=True),
    Index("ix_notifications_key", "key", **_where_set("key")),
)

targets = Table(
    "targets",
    metadata,
    Column("audience", String(300), nullable=False),
    Column("notification_id", BigInteger, nullable=False),
    Column("expires_at", BigInteger),
    PrimaryKeyConstraint("audience", "notification_id", name="pk_targets"),
    Index("ix_targets_notification_id", "notification_id"),
    sqlite_with_rowid=False,  # the primary key is the table (0005)
)

receipts = Table(
    "receipts",
    metadata,
    Column("user_id", String(255), nullable=False),
    Column("notification_id", BigInteger, nullable=False),
    Column("read_at", BigInteger),
    Column("deleted_at", BigInteger),
    # 0003: marked unread again (beats read_through), archived, hidden until.
    Column("unread_at", BigInteger),
    Column("archived_at", BigInteger),
    Column("snoozed_until", BigInteger),
    PrimaryKeyConstraint("user_id", "notification_id", name="pk_receipts"),
    Index("ix_receipts_notification_id", "notification_id"),
    Index("ix_receipts_snoozed_until", "snoozed_until"),
)

inbox_state = Table(
    "inbox_state",
    metadata,
    Column("user_id", String(255), primary_key=True),
    Column("read_through", BigInteger, nullable=False),
    Column("read_through_at", BigInteger, nullable=False),
)

templates = Table(
    "templates",
    metadata,
    Column("type", String(100), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("definition", Text, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

preferences = Table(
    "preferences",
    metadata,
    Column("user_id", String(255), primary_key=True),
    Column("types", Text, nullable=False),
    Column("categories", Text, nullable=False),
    Column("do_not_disturb_until", BigInteger),
    Column("updated_at", BigInteger, nullable=False),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    # INTEGER PRIMARY KEY on SQLite (its rowid, so it counts up); BIGSERIAL elsewhere.
    Column(
        "id",
        BigInteger().with_variant(Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    Column("event_id", String(40), nullable=False),
    Column("url", Text, nullable=False),
    Column("type", String(64), nullable=False),
    Column("body", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("due_at", BigInteger, nullable=False),
    Column("locked_until", BigInteger, nullable=False, server_default="0"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("status", String(16), nullable=False, server_default="pending"),
    Column("last_error", Text),
    Index("ix_webhook_deliveries_due", "status", "due_at"),
)
