"""Prometheus counters and histograms: the one home of every metric tidings records.

Hot paths record in bulk or through labelled children bound in advance: a delivery
costs one integer increment on its connection (summed by the stats publisher, see
:mod:`tidings.cluster`), and each notification fan-out observes the latency histogram
once. ``tidings serve --workers N`` sets ``PROMETHEUS_MULTIPROC_DIR`` before any worker
imports this module, so every process writes its figures there and ``/metrics`` sums
them (prometheus-client's multiprocess mode).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from tidings import ids

MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
"""Whether this process writes its metrics to the shared directory (``--workers N``)."""

REGISTRY = CollectorRegistry(auto_describe=True)
MAX_TYPES = 200
"""Distinct notification types counted by name; later ones count as ``other``."""

CREATED = Counter(
    "tidings_notifications_created",
    "notifications stored, by type and level (idempotent replays not counted)",
    ["type", "level"],
    registry=REGISTRY,
)
DELIVERED = Counter(
    "tidings_notifications_delivered",
    "notifications handed to a client connection (live and replayed), by transport",
    ["transport"],
    registry=REGISTRY,
)
LATENCY_BOUNDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
LATENCY = Histogram(
    "tidings_delivery_latency_seconds",
    "create (the id's timestamp) to socket write, observed once per notification fan-out",
    buckets=LATENCY_BOUNDS,
    registry=REGISTRY,
)
REPLAYED = Counter(
    "tidings_replayed_notifications", "notifications replayed on resume", registry=REGISTRY
)
RESYNCS = Counter(
    "tidings_resync_frames", "resync frames sent (more missed than can be replayed)",
    registry=REGISTRY,
)  # fmt: skip
SLOW_CONSUMERS = Counter(
    "tidings_slow_consumer_closes", "connections closed as slow consumers (4010)",
    registry=REGISTRY,
)  # fmt: skip
BROKER_RECONNECTS = Counter(
    "tidings_broker_reconnects", "times the broker connection came back", registry=REGISTRY
)
BROKER_OUTAGE = Counter(
    "tidings_broker_outage_seconds", "seconds the broker was unreachable", registry=REGISTRY
)
RATE_LIMITED = Counter(
    "tidings_creates_rate_limited", "creates refused by TIDINGS_CREATE_RATE", registry=REGISTRY
)
HTTP_REQUESTS = Counter(
    "tidings_http_requests",
    "HTTP requests answered, by method, route template and status",
    ["method", "route", "status"],
    registry=REGISTRY,
)
OPEN_CONNECTIONS = Gauge(
    "tidings_open_connections",
    "live client connections, by transport (summed over processes)",
    ["transport"],
    multiprocess_mode="livesum",
    registry=REGISTRY,
)

WEBHOOK_DELIVERIES = Counter(
    "tidings_webhook_deliveries",
    "webhook delivery attempts by outcome: sent (2xx), retried (5xx, 408, 429, timeout, "
    "connection error; tried again later), failed (given up)",
    ["outcome"],
    registry=REGISTRY,
)
WEBHOOK_QUEUE = Gauge(
    "tidings_webhook_queue_depth",
    "webhook deliveries waiting in the database queue (pending or being sent)",
    multiprocess_mode="max",
    registry=REGISTRY,
)
WEBHOOK_DROPPED = Counter(
    "tidings_webhook_events_dropped",
    "webhook deliveries dropped before reaching the queue (in-memory buffer full while "
    "the database was unreachable)",
    registry=REGISTRY,
)
_webhooks = {
    outcome: WEBHOOK_DELIVERIES.labels(outcome) for outcome in ("sent", "retried", "failed")
}

_created: dict[tuple[str, str], Counter] = {}
_http: dict[tuple[str, str, int], Counter] = {}


def count_created(kinds: Iterable[tuple[str, str]]) -> None:
    """Count stored notifications by (type, level); children are bound once per pair."""
    for kind in kinds:
        child = _created.get(kind)
        if child is None:
            child = _created_child(*kind)
        child.inc()


def _created_child(kind: str, level: str) -> Counter:
    name = kind if len({k for k, _ in _created}) < MAX_TYPES else "other"
    child = CREATED.labels(name, level)
    _created[(kind, level)] = child
    return child


def count_webhook(outcome: str) -> None:
    """Count one webhook delivery attempt: ``sent``, ``retried`` or ``failed``."""
    _webhooks[outcome].inc()


def count_request(method: str, route: str, status: int) -> None:
    child = _http.get((method, route, status))
    if child is None:
        child = _http[(method, route, status)] = HTTP_REQUESTS.labels(method, route, str(status))
    child.inc()


def observe_fanout(notification_id: str) -> None:
    """Latency from the notification's creation (in its id) to now, its socket writes."""
    created_ms = ids.ms_of(int(notification_id, 16))
    LATENCY.observe(max(0.0, time.time() - created_ms / 1000))


def process_total(counter: Counter) -> float:
    """This process's total of a counter over all its labels."""
    return sum(
        sample.value
        for family in counter.collect()
        for sample in family.samples
        if sample.name.endswith("_total")
    )


def latency_counts() -> list[int]:
    """This process's cumulative latency histogram, one count per :data:`LATENCY_BOUNDS`."""
    counts = {
        float(sample.labels["le"]): int(sample.value)
        for family in LATENCY.collect()
        for sample in family.samples
        if sample.name.endswith("_bucket")
    }
    return [counts.get(float(bound), 0) for bound in LATENCY_BOUNDS]


def mark_process_dead() -> None:
    """In multiprocess mode, forget this process's live gauges (it is stopping)."""
    if MULTIPROCESS:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(os.getpid())
