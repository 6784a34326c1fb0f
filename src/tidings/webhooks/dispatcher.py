"""Outgoing webhooks: ``emit`` queues an event, durably; a worker per process sends it.

``emit`` is synchronous and does no I/O: it renders the body once and appends one row
per receiver URL to an in-process buffer. A flusher task writes the buffer to the
``webhook_deliveries`` table every :data:`FLUSH_INTERVAL` (or sooner, at
:data:`FLUSH_SIZE` rows) in one transaction; from then on the event survives restarts
and kill -9 (a graceful stop flushes; kill -9 loses what the last ~50 ms emitted).
``notification.created`` does better: its rows (:meth:`Webhooks.rows`) are written in the
create's own transaction, so every acknowledged create has its webhook queued.
A delivery worker claims due rows with a lease (see
:mod:`tidings.store.webhooks`), posts them with httpx, at most ``concurrency`` at once,
each bounded by ``timeout``, and records the outcomes in batches (:mod:`.retry` decides
what a failure means). Nothing a receiver does — fail, hang, refuse connections — can
delay a user's delivery: the request that emitted the event returned long before.

With no URL configured, ``emit`` returns at its first line and no task runs.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import httpx

from tidings import __version__, telemetry
from tidings.errors import TidingsError
from tidings.store.webhooks import Claimed, GiveUp, Retry, WebhookQueue
from tidings.tasks import BackgroundTasks
from tidings.webhooks import signing
from tidings.webhooks.retry import RetryPolicy, Verdict, judge_status

log = logging.getLogger("tidings.webhooks")

FLUSH_INTERVAL = 0.05
"""Seconds emitted events may wait in memory before their transaction."""
FLUSH_SIZE = 500
"""Rows that start a flush at once."""
BUFFER_LIMIT = 100_000
"""Rows held in memory while the database is unreachable; beyond, events are dropped."""
POLL_INTERVAL = 1.0
"""Seconds between looks at the queue when nothing woke the worker (retries coming due)."""
COALESCE = 0.02
"""Seconds the worker lets finished sends gather before recording them together."""
DEPTH_EVERY = 5.0
"""Seconds between updates of the queue-depth gauge."""
FORGET_EVERY = 600.0
"""Seconds between deletions of given-up deliveries older than ``keep_failed_s``."""


@dataclass(frozen=True, slots=True)
class WebhookConfig:
    urls: tuple[str, ...]
    secret: str
    timeout: float = 10.0
    concurrency: int = 16
    max_attempts: int = 12
    max_age_s: float = 86_400.0
    keep_failed_s: float = 30 * 86_400.0
    """How long given-up deliveries stay in the table for operators."""

    @property
    def lease_ms(self) -> int:
        """How long a claim holds a delivery: its send (bounded by ``timeout``), with room
        to record the outcome. A process killed mid-send delays it by at most this."""
        return int((self.timeout * 1.5 + 2) * 1000)


class Webhooks:
    """The durable queue's front (``emit``) and this process's sender."""

    def __init__(
        self,
        queue: WebhookQueue,
        config: WebhookConfig | None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.queue = queue
        self.config = config
        self.enabled = bool(config and config.urls)
        """Whether any URL is configured: callers may skip building event data when not."""
        self.clock = clock
        self._policy = RetryPolicy(
            max_attempts=config.max_attempts if config else 1,
            max_age_ms=int((config.max_age_s if config else 0) * 1000),
        )
        self._buffer: list[dict[str, Any]] = []
        self._prefix = secrets.token_hex(8)
        """Event ids are this process's random prefix and a counter: unique, and cheap."""
        self._issued = 0
        self._second = -1
        self._second_text = ""
        self._buffered = asyncio.Event()
        self._wake = asyncio.Event()
        self._sending: dict[asyncio.Task[None], Claimed] = {}
        self._delivered: list[int] = []
        self._retries: list[Retry] = []
        self._given_up: list[GiveUp] = []
        self._client: httpx.AsyncClient | None = None
        self._tasks = BackgroundTasks()

    # -- the public API ----------------------------------------------------------------

    def emit(self, event_type: str, data: dict[str, Any]) -> None:
        """Queue an event for every configured URL; never blocks, never raises for I/O.

        The event is durable once the flusher has written it (within ~50 ms). ``data``
        must be JSON-serialisable (orjson: dicts, lists, str, numbers, bools, None).
        """
        if not self.enabled:
            return
        rows = self.rows(event_type, [data])
        if len(self._buffer) + len(rows) > BUFFER_LIMIT:
            telemetry.WEBHOOK_DROPPED.inc(len(rows))
            log.error("webhook buffer full (database unreachable?): %s dropped", event_type)
            return
        self._buffer += rows
        self._buffered.set()

    def rows(self, event_type: str, data: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """Queue rows for events of one type, for a caller that writes them in its own
        transaction (creates do: see :meth:`~tidings.store.SqlStore.insert`) and then
        calls :meth:`written`. Empty when no URL is configured."""
        if not self.enabled:
            return []
        assert self.config is not None
        now_ms = int(self.clock() * 1000)
        created_at = self._timestamp(now_ms)
        rows = []
        for item in data:
            self._issued += 1
            event_id = f"evt_{self._prefix}{self._issued:08x}"
            body = signing.body(event_id, event_type, created_at, item).decode()
            rows += [
                {
                    "event_id": event_id,
                    "url": url,
                    "type": event_type,
                    "body": body,
                    "created_at": now_ms,
                    "due_at": now_ms,
                }
                for url in self.config.urls
            ]
        return rows

    def _timestamp(self, now_ms: int) -> str:
        """``created_at`` text; the second's part is formatted once per second."""
        second, ms = divmod(now_ms, 1000)
        if second != self._second:
            self._second = second
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._second_text}.{ms:03d}Z"

    def written(self) -> None:
        """Rows from :meth:`rows` were committed: look at the queue now."""
        self._wake.set()

    # -- life cycle --------------------------------------------------------------------

    async def start(self) -> None:
        if not self.enabled:
            return
        assert self.config is not None
        self._client = httpx.AsyncClient(
            timeout=self.config.timeout,
            limits=httpx.Limits(max_connections=self.config.concurrency),
            headers={"User-Agent": f"tidings/{__version__}", "Content-Type": "application/json"},
        )
        self._tasks.start(self._flush_forever(), name="tidings-webhook-flusher")
        self._tasks.start(self._deliver_forever(), name="tidings-webhook-sender")

    def alive(self) -> dict[str, bool]:
        return self._tasks.alive()

    async def stop(self) -> None:
        """Write what is buffered, give back the leases of unfinished sends."""
        if not self.enabled:
            return
        await self._tasks.stop()
        unfinished = [claimed.id for task, claimed in self._sending.items() if not task.done()]
        for task in self._sending:
            task.cancel()
        await asyncio.gather(*self._sending, return_exceptions=True)
        self._sending.clear()
        try:
            await self.flush()
            await self._settle()
            await self.queue.release(unfinished, now_ms=self._now_ms())
        except TidingsError as exc:
            log.warning("webhooks: could not save state on shutdown (%s)", exc)
        if self._client is not None:
            await self._client.aclose()

    # -- writing the buffer ------------------------------------------------------------

    async def flush(self) -> None:
        """Write the buffered rows in one transaction (put back if the database fails)."""
        rows, self._buffer = self._buffer, []
        if not rows:
            return
        try:
            await self.queue.put(rows)
        except BaseException:
            self._buffer[:0] = rows
            raise
        self._wake.set()

    async def _flush_forever(self) -> None:
        while True:
            await self._buffered.wait()
            if len(self._buffer) < FLUSH_SIZE:
                await asyncio.sleep(FLUSH_INTERVAL)
            self._buffered.clear()
            try:
                await self.flush()
            except TidingsError as exc:
                log.warning(
                    "webhooks: %d events wait for the database (%s)", len(self._buffer), exc
                )
                self._buffered.set()
                await asyncio.sleep(POLL_INTERVAL)

    # -- sending -----------------------------------------------------------------------

    async def _deliver_forever(self) -> None:
        assert self.config is not None
        depth_at = forgot_at = 0.0
        while True:
            self._wake.clear()
            try:
                await self._cycle()
                if time.monotonic() - depth_at > DEPTH_EVERY:
                    depth_at = time.monotonic()
                    telemetry.WEBHOOK_QUEUE.set((await self.queue.counts())["pending"])
                if time.monotonic() - forgot_at > FORGET_EVERY:
                    forgot_at = time.monotonic()
                    keep_ms = int(self.config.keep_failed_s * 1000)
                    await self.queue.forget_failed(before_ms=self._now_ms() - keep_ms)
            except TidingsError as exc:
                log.warning("webhooks: queue unavailable (%s)", exc)
            try:
                async with asyncio.timeout(POLL_INTERVAL):  # not wait_for: see Feed._follow
                    await self._wake.wait()
            except TimeoutError:
                continue
            await asyncio.sleep(COALESCE)

    async def _cycle(self) -> None:
        """Record finished sends and claim as many due deliveries as there are free
        slots, in one transaction; start sending them."""
        assert self.config is not None
        outcomes = self._take_outcomes()
        try:
            claimed = await self.queue.settle_and_claim(
                delivered=outcomes[0],
                retries=outcomes[1],
                given_up=outcomes[2],
                now_ms=self._now_ms(),
                limit=self.config.concurrency - len(self._sending),
                lease_ms=self.config.lease_ms,
            )
        except BaseException:
            self._put_back(*outcomes)
            raise
        for delivery in claimed:
            task = asyncio.create_task(self._send(delivery))
            self._sending[task] = delivery
            task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task[None]) -> None:
        if self._sending.pop(task, None) is not None:
            self._wake.set()

    async def _send(self, claimed: Claimed) -> None:
        assert self.config is not None and self._client is not None
        timestamp = int(self.clock())
        headers = {
            signing.HEADER: signing.signature(self.config.secret, claimed.body, timestamp),
            "Tidings-Event": claimed.type,
        }
        try:
            async with asyncio.timeout(self.config.timeout):
                request = self._client.stream(
                    "POST", claimed.url, content=claimed.body, headers=headers
                )
                async with request as response:  # the body is never read
                    status = response.status_code
            self._record(claimed, judge_status(status), f"HTTP {status}")
        except (TimeoutError, httpx.TimeoutException):
            self._record(claimed, Verdict.RETRY, "timeout")
        except httpx.HTTPError as exc:
            self._record(claimed, Verdict.RETRY, f"{type(exc).__name__}: {exc}"[:300])

    def _record(self, claimed: Claimed, verdict: Verdict, error: str) -> None:
        if verdict is Verdict.DELIVERED:
            telemetry.count_webhook(verdict.value)
            self._delivered.append(claimed.id)
            return
        due = None
        if verdict is Verdict.RETRY:
            due = self._policy.next_due(
                attempts=claimed.attempts, created_at_ms=claimed.created_at, now_ms=self._now_ms()
            )
        if due is not None:
            telemetry.count_webhook(Verdict.RETRY.value)
            self._retries.append(Retry(claimed.id, claimed.attempts, due, error))
            log.warning(
                "webhook %s %s to %s: %s; attempt %d, next in %.1f s",
                claimed.type,
                claimed.event_id,
                claimed.url,
                error,
                claimed.attempts,
                (due - self._now_ms()) / 1000,
            )
            return
        telemetry.count_webhook(Verdict.GIVE_UP.value)
        self._given_up.append(GiveUp(claimed.id, claimed.attempts, error))
        log.error(
            "webhook %s %s to %s given up after %d attempts: %s",
            claimed.type,
            claimed.event_id,
            claimed.url,
            claimed.attempts,
            error,
        )

    async def _settle(self) -> None:
        outcomes = self._take_outcomes()
        try:
            await self.queue.settle(
                delivered=outcomes[0], retries=outcomes[1], given_up=outcomes[2]
            )
        except BaseException:
            self._put_back(*outcomes)
            raise

    def _take_outcomes(self) -> tuple[list[int], list[Retry], list[GiveUp]]:
        taken = self._delivered, self._retries, self._given_up
        self._delivered, self._retries, self._given_up = [], [], []
        return taken

    def _put_back(self, delivered: list[int], retries: list[Retry], given_up: list[GiveUp]) -> None:
        """Outcomes not recorded are kept for the next try; if this process dies first,
        the leases run out and the deliveries are sent again (at least once)."""
        self._delivered[:0] = delivered
        self._retries[:0] = retries
        self._given_up[:0] = given_up

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)
