"""The outgoing webhook queue: rows in ``webhook_deliveries`` until sent or given up.

A delivery is claimed with a lease: claiming sets ``locked_until`` (and ``due_at``) to
the end of the lease and counts the attempt, so no other process claims it while it is
being sent, and a process that dies holding it lets it come due again when the lease
runs out. PostgreSQL claims with ``FOR UPDATE SKIP LOCKED``, so processes claiming at
the same moment take different rows instead of waiting on each other; SQLite has one
writer at a time (``BEGIN IMMEDIATE``), which serializes claims by itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from tidings.store.schema import webhook_deliveries as deliveries
from tidings.store.sql import SqlStore, _translated

PENDING = "pending"
FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Claimed:
    """A delivery this process holds the lease of."""

    id: int
    event_id: str
    type: str
    url: str
    body: bytes
    created_at: int
    attempts: int
    """Attempts so far, this one included."""


@dataclass(frozen=True, slots=True)
class Retry:
    id: int
    attempts: int
    """The claim's attempt count: the row is only changed while it is still that claim."""
    due_at: int
    error: str


@dataclass(frozen=True, slots=True)
class GiveUp:
    id: int
    attempts: int
    error: str


class WebhookQueue:
    """The queue on the store's writer engine (SQLite or PostgreSQL)."""

    def __init__(self, store: SqlStore) -> None:
        self.store = store

    async def put(self, rows: Sequence[dict[str, Any]]) -> None:
        """Queue deliveries (``event_id``, ``url``, ``type``, ``body``, ``created_at``,
        ``due_at``) in one transaction."""
        async with _translated(), self.store.writer.begin() as conn:
            await conn.execute(deliveries.insert(), list(rows))

    async def claim(self, *, now_ms: int, limit: int, lease_ms: int) -> list[Claimed]:
        """Lease up to ``limit`` due deliveries, oldest due first, and count the attempt."""
        return await self.settle_and_claim(now_ms=now_ms, limit=limit, lease_ms=lease_ms)

    async def settle(
        self, *, delivered: Sequence[int], retries: Sequence[Retry], given_up: Sequence[GiveUp]
    ) -> None:
        """Record what became of claimed deliveries, in one transaction: delivered rows
        go, retries come due again later, given-up rows stay as ``failed``."""
        await self.settle_and_claim(
            delivered=delivered, retries=retries, given_up=given_up, now_ms=0, limit=0
        )

    async def settle_and_claim(
        self,
        *,
        delivered: Sequence[int] = (),
        retries: Sequence[Retry] = (),
        given_up: Sequence[GiveUp] = (),
        now_ms: int,
        limit: int,
        lease_ms: int = 0,
    ) -> list[Claimed]:
        """:meth:`settle`, then :meth:`claim` up to ``limit``, in one transaction (the
        worker's one write per cycle)."""
        if not (delivered or retries or given_up or limit > 0):
            return []
        async with _translated(), self.store.writer.begin() as conn:
            await self._settle(conn, delivered, retries, given_up)
            if limit <= 0:
                return []
            claim = _CLAIM_POSTGRES if self.store.is_postgres else _CLAIM_SQLITE
            params = {"b_now": now_ms, "b_limit": limit, "b_lease_end": now_ms + lease_ms}
            rows = (await conn.execute(claim, params)).all()
        return [
            Claimed(r.id, r.event_id, r.type, r.url, r.body.encode(), r.created_at, r.attempts)
            for r in sorted(rows, key=lambda r: r.id)
        ]

    @staticmethod
    async def _settle(
        conn: AsyncConnection,
        delivered: Sequence[int],
        retries: Sequence[Retry],
        given_up: Sequence[GiveUp],
    ) -> None:
        if delivered:
            await conn.execute(delete(deliveries).where(deliveries.c.id.in_(delivered)))
        if retries:
            await conn.execute(
                _by_id().values(
                    due_at=bindparam("b_due"), locked_until=0, last_error=bindparam("b_error")
                ),
                [
                    {"b_id": r.id, "b_attempts": r.attempts, "b_due": r.due_at, "b_error": r.error}
                    for r in retries
                ],
            )
        if given_up:
            await conn.execute(
                _by_id().values(status=FAILED, locked_until=0, last_error=bindparam("b_error")),
                [{"b_id": g.id, "b_attempts": g.attempts, "b_error": g.error} for g in given_up],
            )

    async def release(self, claimed: Sequence[int], *, now_ms: int) -> None:
        """Give leases back unsent (shutting down): due now, the attempt not counted."""
        if not claimed:
            return
        async with _translated(), self.store.writer.begin() as conn:
            await conn.execute(
                update(deliveries)
                .where(deliveries.c.id.in_(claimed))
                .values(locked_until=0, due_at=now_ms, attempts=deliveries.c.attempts - 1)
            )

    async def counts(self) -> dict[str, int]:
        """Deliveries in the queue by status (``pending`` includes those being sent)."""
        query = select(deliveries.c.status, func.count()).group_by(deliveries.c.status)
        async with _translated(), self.store.reader.connect() as conn:
            found = {status: count for status, count in await conn.execute(query)}
        return {PENDING: found.get(PENDING, 0), FAILED: found.get(FAILED, 0)}

    async def failed(self, *, limit: int = 100) -> list[dict[str, Any]]:
        """Given-up deliveries, newest first: what an operator looks at."""
        query = (
            select(deliveries)
            .where(deliveries.c.status == FAILED)
            .order_by(deliveries.c.id.desc())
            .limit(limit)
        )
        async with _translated(), self.store.reader.connect() as conn:
            return [dict(row) for row in (await conn.execute(query)).mappings()]

    async def forget_failed(self, *, before_ms: int) -> int:
        """Delete given-up deliveries created before ``before_ms`` (the sweep)."""
        query = delete(deliveries).where(
            deliveries.c.status == FAILED, deliveries.c.created_at < before_ms
        )
        async with _translated(), self.store.writer.begin() as conn:
            return (await conn.execute(query)).rowcount or 0


def _claim(*, skip_locked: bool) -> Any:
    """Lease the due deliveries: built once, run with ``b_now``, ``b_limit`` and
    ``b_lease_end``."""
    due = (
        select(deliveries.c.id)
        .where(
            deliveries.c.status == PENDING,
            deliveries.c.due_at <= bindparam("b_now"),
            deliveries.c.locked_until <= bindparam("b_now"),
        )
        .order_by(deliveries.c.due_at)
        .limit(bindparam("b_limit"))
    )
    if skip_locked:
        due = due.with_for_update(skip_locked=True)
    lease_end: Any = bindparam("b_lease_end")
    return (
        update(deliveries)
        .where(deliveries.c.id.in_(due.scalar_subquery()))
        .values(locked_until=lease_end, due_at=lease_end, attempts=deliveries.c.attempts + 1)
        .returning(
            deliveries.c.id,
            deliveries.c.event_id,
            deliveries.c.type,
            deliveries.c.url,
            deliveries.c.body,
            deliveries.c.created_at,
            deliveries.c.attempts,
        )
    )


_CLAIM_POSTGRES = _claim(skip_locked=True)
_CLAIM_SQLITE = _claim(skip_locked=False)


def _by_id() -> Any:
    """The row of one claim: if its lease ran out and another process claimed it again
    (the attempt count moved on), the outcome of the old claim no longer applies."""
    return update(deliveries).where(
        deliveries.c.id == bindparam("b_id"), deliveries.c.attempts == bindparam("b_attempts")
    )
