"""Rows and what they mean: the store's records, and conversion to and from the models.

A notification row's ``revision`` is its position in the delivery log (see
:mod:`tidings.feed`): its id when created, a new id minted under the write lock at each
change or retraction. :class:`LogEntry` and :class:`CreateOutcome` say which it was.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from tidings import ids
from tidings.models import NewNotification, Notification, utc_from_ms

Change = Literal["updated", "retracted"]
"""What a log position after a notification's id says about it (None: it is new)."""


@dataclass(frozen=True, slots=True)
class PendingCreate:
    new: NewNotification
    api_key: str | None = None
    idempotency_key: str | None = None
    request_hash: str | None = None


@dataclass(frozen=True, slots=True)
class CreateOutcome:
    """A notification as written to the log: created, or changed at ``position``."""

    notification: Notification
    audience_keys: list[str]
    created: bool
    position: int | None = None
    """Its position in the log; None: its id (a new notification)."""
    change: Change | None = None
    """None for a new notification; ``updated`` (PATCH, replaced by key) or ``retracted``."""

    @property
    def log_position(self) -> int:
        return self.position if self.position is not None else ids.decode(self.notification.id)


@dataclass(frozen=True, slots=True)
class StoredBatch:
    """A committed batch and the newest position committed before it (read under the write
    lock).

    Nothing can be committed between ``previous`` and the batch's first position, so a
    process whose feed has fanned out everything up to ``previous`` may fan the batch out
    from memory without reading it back.
    """

    previous: int
    outcomes: list[CreateOutcome]


@dataclass(frozen=True, slots=True)
class LogEntry:
    """A committed notification as the feed reads it: the item, its audience keys, its
    position in the log and whether that position is a change."""

    notification: Notification
    audience_keys: list[str]
    position: int = 0
    change: Change | None = None


@dataclass(frozen=True, slots=True)
class Replayed:
    """One item of a resume replay, in log order: new to the client (``change`` None),
    changed since it saw it (``updated``), or taken back (``retracted``)."""

    notification: Notification
    position: int
    change: Change | None


def log_entry(row: Any) -> LogEntry:
    """A ``notifications`` row as a log entry."""
    position = row["revision"] if row["revision"] is not None else row["id"]
    change: Change | None = None
    if row["retracted_at"] is not None:
        change = "retracted"
    elif position != row["id"]:
        change = "updated"
    return LogEntry(from_row(row), orjson.loads(row["audience"])["keys"], position, change)


def prepare(
    pending: PendingCreate, value: int
) -> tuple[dict[str, Any], list[dict[str, Any]], CreateOutcome]:
    """The ``notifications`` row, its ``targets`` rows and the outcome of a new notification."""
    item = pending.new
    keys = item.audience.keys()
    expires = ms(item.expires_at)
    row = notification_row(value, pending, expires)
    target_rows = [
        {"audience": key, "notification_id": value, "expires_at": expires} for key in keys
    ]
    return row, target_rows, CreateOutcome(from_new(value, item), keys, created=True)


def prepare_all(
    batch: Sequence[PendingCreate], new_ids: list[int]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[CreateOutcome]]:
    rows, target_rows, outcomes = [], [], []
    for value, pending in zip(new_ids, batch, strict=True):
        row, targets_of, outcome = prepare(pending, value)
        rows.append(row)
        target_rows += targets_of
        outcomes.append(outcome)
    return rows, target_rows, outcomes


def audience_text(item: NewNotification) -> str:
    audience = {
        "users": list(item.audience.users),
        "roles": list(item.audience.roles),
        "all": item.audience.all,
        "keys": item.audience.keys(),
    }
    return orjson.dumps(audience).decode()


def content_values(item: NewNotification) -> dict[str, Any]:
    """The columns a replacing create writes (everything but id, audience and keys)."""
    return {
        "type": item.type,
        "level": item.level,
        "title": item.title,
        "body": item.body,
        "data": orjson.dumps(item.data).decode(),
        "url": item.url,
        "actor": item.actor,
        "expires_at": ms(item.expires_at),
        "category": item.category,
        "actions": json_or_none(item.actions),
        "critical": item.critical,
        "locales": json_or_none(item.locales),
        "template_version": item.template_version,
    }


def notification_row(value: int, pending: PendingCreate, expires: int | None) -> dict[str, Any]:
    item = pending.new
    return {
        "id": value,
        **content_values(item),
        "expires_at": expires,
        "audience": audience_text(item),
        "api_key": pending.api_key if pending.idempotency_key else None,
        "idempotency_key": pending.idempotency_key,
        "request_hash": pending.request_hash if pending.idempotency_key else None,
        "revision": value,
        "retracted_at": None,
        "updated_at": None,
        "key": item.key,
    }


def json_or_none(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def from_new(value: int, item: NewNotification, updated_ms: int | None = None) -> Notification:
    return Notification(
        id=ids.encode(value),
        type=item.type,
        level=item.level,
        title=item.title,
        body=item.body,
        data=item.data,
        url=item.url,
        actor=item.actor,
        created_at=utc_from_ms(ids.ms_of(value)),
        expires_at=item.expires_at,
        category=item.category,
        actions=item.actions,
        critical=item.critical,
        locales=item.locales,
        updated_at=utc_from_ms(updated_ms) if updated_ms is not None else None,
    )


def from_row(row: Any, read_at: int | None = None, **personal: Any) -> Notification:
    """A row as a notification; ``read_at`` and ``personal`` (archived_at, snoozed_until
    as datetimes) are the reader's own."""
    updated = row.get("updated_at") if hasattr(row, "get") else None
    return Notification(
        id=ids.encode(row["id"]),
        type=row["type"],
        level=row["level"],
        title=row["title"],
        body=row["body"],
        data=orjson.loads(row["data"]),
        url=row["url"],
        actor=row["actor"],
        created_at=utc_from_ms(ids.ms_of(row["id"])),
        expires_at=utc_from_ms(row["expires_at"]) if row["expires_at"] is not None else None,
        read_at=utc_from_ms(read_at) if read_at is not None else None,
        category=row["category"],
        actions=orjson.loads(row["actions"]) if row["actions"] is not None else None,
        critical=bool(row["critical"]),
        locales=orjson.loads(row["locales"]) if row["locales"] is not None else None,
        updated_at=utc_from_ms(updated) if updated is not None else None,
        **personal,
    )


def ms(moment: Any) -> int | None:
    return None if moment is None else int(moment.timestamp() * 1000)
