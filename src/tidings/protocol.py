"""The realtime protocol, without I/O.

Client frames go in as text and come out as typed requests (:func:`parse`), or as a
:class:`ProtocolError` that carries the frame's ``ref`` so the reply can name it.
The rest is the pure state a connection keeps: rate limiters (per connection and per
user), heartbeat
bookkeeping, topic permissions and topic filters, origin checks and SSE framing.
The WebSocket and SSE endpoints (:mod:`tidings.web.ws`, :mod:`tidings.web.sse`) are
thin pumps around these pieces.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson

from tidings import frames, ids, topics
from tidings.errors import ValidationFailed
from tidings.models import INBOX, LEVELS, InboxFilter

MAX_IDS = 500
"""Most ids one ``mark_read`` may name."""
MAX_LIST_LIMIT = 100
DEFAULT_LIST_LIMIT = 20
MAX_TOPIC_LENGTH = topics.MAX_TOPIC_LENGTH
MAX_SUBSCRIBE_TOPICS = 16
"""Most topics (names or globs) one ``subscribe`` may name."""
MAX_HISTORY = 1000
"""Most messages one ``subscribe`` may ask to have replayed (``history``)."""
MAX_FILTER_FIELDS = 16
MAX_FILTER_VALUES = 64
MAX_REF_LENGTH = 200

Clock = Callable[[], float]
Scalar = str | int | float | bool | None


# -- client requests --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ping:
    ref: Any = None


@dataclass(frozen=True, slots=True)
class Pong:
    ref: Any = None


@dataclass(frozen=True, slots=True)
class MarkRead:
    ids: tuple[str, ...]
    ref: Any = None


@dataclass(frozen=True, slots=True)
class MarkAllRead:
    ref: Any = None


@dataclass(frozen=True, slots=True)
class ListInbox:
    limit: int = DEFAULT_LIST_LIMIT
    before: str | None = None
    ref: Any = None
    only: InboxFilter = INBOX
    """``archived``, ``types``, ``categories``, ``levels`` (each a name or a list; the
    frame's own ``type`` is taken, hence the plurals)."""


@dataclass(frozen=True, slots=True)
class Act:
    """A click on one of a notification's actions (it reaches the backend as a webhook)."""

    id: str
    action: str
    ref: Any = None


@dataclass(frozen=True, slots=True)
class Subscribe:
    """``topic`` or ``topics`` (names or globs), with replay and presence options."""

    topics: tuple[str, ...]
    filter: TopicFilter | None = None
    ref: Any = None
    history: int = 0
    """Replay the last N messages of each topic before live ones."""
    since: str | None = None
    """Replay every retained message after this message id (wins over ``history``)."""
    presence: bool = False
    """Count this connection in the topic's presence and send it presence frames."""
    batch: bool = False
    """Accept several messages in one ``batch`` frame (replays, busy topics): fewer
    writes. Without it every message is its own ``message`` frame, as in contract v1,
    except under the per-connection budget (see :mod:`tidings.coalesce`)."""

    @property
    def topic(self) -> str:
        return self.topics[0]


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    topics: tuple[str, ...]
    ref: Any = None

    @property
    def topic(self) -> str:
        return self.topics[0]


@dataclass(frozen=True, slots=True)
class Publish:
    """A client's message to a topic (allowed by its JWT ``publish`` claim)."""

    topic: str
    data: Any
    ref: Any = None


Request = Ping | Pong | MarkRead | MarkAllRead | ListInbox | Subscribe | Unsubscribe | Publish | Act


class ProtocolError(Exception):
    """A client frame the server cannot act on; answered with an ``error`` frame."""

    def __init__(self, code: str, message: str, ref: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.ref = ref

    def frame(self) -> bytes:
        return frames.error(self.code, self.message, self.ref)


def parse(text: str | bytes) -> Request:
    """Parse one client frame; raise :class:`ProtocolError` for anything malformed."""
    try:
        frame = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise ProtocolError("bad_json", "frame is not valid JSON") from None
    if not isinstance(frame, dict):
        raise ProtocolError("bad_frame", "frame must be a JSON object")
    ref = _ref(frame.get("ref"))
    kind = frame.get("type")
    parser = _PARSERS.get(kind) if isinstance(kind, str) else None
    if parser is None:
        raise ProtocolError("unknown_type", f"unknown frame type: {str(kind)[:40]!r}", ref)
    return parser(frame, ref)


def _ref(value: Any) -> Any:
    # A ref is echoed back verbatim, so keep it small and scalar.
    if value is None or isinstance(value, int | float | bool):
        return value
    if isinstance(value, str) and len(value) <= MAX_REF_LENGTH:
        return value
    raise ProtocolError("bad_ref", "ref must be a short string or a number")


def _parse_mark_read(frame: dict[str, Any], ref: Any) -> MarkRead:
    values = frame.get("ids")
    if not isinstance(values, list) or not values:
        raise ProtocolError("invalid", "mark_read needs a non-empty list `ids`", ref)
    if len(values) > MAX_IDS:
        raise ProtocolError("too_many_ids", f"mark_read accepts at most {MAX_IDS} ids", ref)
    if any(not isinstance(v, str) or ids.try_decode(v) is None for v in values):
        raise ProtocolError("invalid", "`ids` must be notification ids", ref)
    return MarkRead(tuple(dict.fromkeys(values)), ref)


def _parse_list(frame: dict[str, Any], ref: Any) -> ListInbox:
    limit = frame.get("limit", DEFAULT_LIST_LIMIT)
    if limit is None:
        limit = DEFAULT_LIST_LIMIT
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIST_LIMIT:
        raise ProtocolError("invalid", f"`limit` must be an integer 1..{MAX_LIST_LIMIT}", ref)
    before = frame.get("before")
    if before is not None and (not isinstance(before, str) or ids.try_decode(before) is None):
        raise ProtocolError("invalid", "`before` must be a notification id", ref)
    archived = frame.get("archived", False)
    if not isinstance(archived, bool):
        raise ProtocolError("invalid", "`archived` must be true or false", ref)
    try:
        only = InboxFilter(
            archived,
            _names(frame.get("types"), "types"),
            _names(frame.get("categories"), "categories"),
            _levels(frame.get("levels")),
        )
    except ValueError as exc:
        raise ProtocolError("invalid", str(exc), ref) from None
    return ListInbox(limit, before, ref, only)


MAX_LIST_FILTER_VALUES = 20
_NAME = re.compile(r"^[A-Za-z0-9_.:\-]{1,100}$")


def _names(value: Any, field: str) -> tuple[str, ...]:
    """A list filter: one name or a list of names (``type``, ``category``); empty: any."""
    if value is None:
        return ()
    values = value if isinstance(value, list) else [value]
    if len(values) > MAX_LIST_FILTER_VALUES or not all(
        isinstance(v, str) and _NAME.fullmatch(v) for v in values
    ):
        raise ValueError(f"`{field}` must be a name or a list of at most 20 names")
    return tuple(dict.fromkeys(values))


def _levels(value: Any) -> tuple[str, ...]:
    levels = _names(value, "levels")
    if any(level not in LEVELS for level in levels):
        raise ValueError(f"`levels` must be one or more of {', '.join(LEVELS)}")
    return levels


def _parse_act(frame: dict[str, Any], ref: Any) -> Act:
    target, action = frame.get("id"), frame.get("action")
    if not isinstance(target, str) or ids.try_decode(target) is None:
        raise ProtocolError("invalid", "`id` must be a notification id", ref)
    if not isinstance(action, str) or not _NAME.fullmatch(action):
        raise ProtocolError("invalid", "`action` must be an action id", ref)
    return Act(target, action, ref)


def _topics(frame: dict[str, Any], ref: Any) -> tuple[str, ...]:
    """``topic`` or ``topics: [...]``: names or well-formed globs, de-duplicated."""
    if "topics" in frame:
        names = frame["topics"]
        if not isinstance(names, list) or not 0 < len(names) <= MAX_SUBSCRIBE_TOPICS:
            message = f"`topics` must be a list of 1..{MAX_SUBSCRIBE_TOPICS} topics"
            raise ProtocolError("invalid", message, ref)
    else:
        names = [frame.get("topic")]
    try:
        return tuple(dict.fromkeys(check_topic(name, pattern_ok=True) for name in names))
    except ValidationFailed as exc:
        raise ProtocolError(exc.code, f"`topic`: {exc.message}", ref) from None


def _parse_subscribe(frame: dict[str, Any], ref: Any) -> Subscribe:
    names = _topics(frame, ref)
    raw = frame.get("filter")
    try:
        topic_filter = parse_filter(raw) if raw is not None else None
    except ValueError as exc:
        raise ProtocolError("invalid", str(exc), ref) from None
    history = frame.get("history") or 0
    if isinstance(history, bool) or not isinstance(history, int) or not 0 <= history <= MAX_HISTORY:
        raise ProtocolError("invalid", f"`history` must be an integer 0..{MAX_HISTORY}", ref)
    since = frame.get("since")
    if since is not None and topics.parse_id(since) is None:
        raise ProtocolError("invalid_since", "`since` must be a topic message id", ref)
    presence = frame.get("presence", False)
    if not isinstance(presence, bool):
        raise ProtocolError("invalid", "`presence` must be true or false", ref)
    if presence and any(topics.is_pattern(name) for name in names):
        raise ProtocolError("invalid", "presence is kept per topic, not per glob", ref)
    batch = frame.get("batch", False)
    if not isinstance(batch, bool):
        raise ProtocolError("invalid", "`batch` must be true or false", ref)
    return Subscribe(names, topic_filter, ref, history, since, presence, batch)


def _parse_publish(frame: dict[str, Any], ref: Any) -> Publish:
    try:
        topic = check_topic(frame.get("topic"))
    except ValidationFailed as exc:
        raise ProtocolError(exc.code, f"`topic`: {exc.message}", ref) from None
    if "data" not in frame:
        raise ProtocolError("invalid", "publish needs `data`", ref)
    return Publish(topic, frame["data"], ref)


_PARSERS: dict[str, Callable[[dict[str, Any], Any], Request]] = {
    "ping": lambda frame, ref: Ping(ref),
    "pong": lambda frame, ref: Pong(ref),
    "mark_read": _parse_mark_read,
    "mark_all_read": lambda frame, ref: MarkAllRead(ref),
    "list": _parse_list,
    "subscribe": _parse_subscribe,
    "unsubscribe": lambda frame, ref: Unsubscribe(_topics(frame, ref), ref),
    "publish": _parse_publish,
    "action": _parse_act,
}


# -- server replies ---------------------------------------------------------------------


def ack(ref: Any, **fields: Any) -> bytes:
    """Reply to a request that succeeded: ``{"type": "ack", "ref": ..., **fields}``."""
    return frames.encode({"type": "ack", "ref": ref, **fields})


def pong(ref: Any = None) -> bytes:
    return frames.PONG if ref is None else frames.encode({"type": "pong", "ref": ref})


def resync(reason: str) -> bytes:
    """Tell the client to refetch its inbox: it missed more than can be replayed."""
    return frames.encode({"type": "resync", "reason": reason})


def frame_type(frame: bytes) -> str:
    """The ``type`` of an encoded server frame (every builder writes it first)."""
    prefix = b'{"type":"'
    if frame.startswith(prefix):
        end = frame.find(b'"', len(prefix))
        if end > 0:
            return frame[len(prefix) : end].decode()
    value = orjson.loads(frame).get("type")
    return value if isinstance(value, str) else "message"


# -- topics -----------------------------------------------------------------------------
# The rules live in tidings.topics; these names stay importable from here.

TOPIC_PATTERN = topics.TOPIC_PATTERN
TOPIC_FORBIDDEN = topics.TOPIC_FORBIDDEN
valid_topic = topics.valid_topic
check_topic = topics.check_topic
check_subscription = topics.check_subscription


def topic_allowed(topic: str, patterns: Iterable[str]) -> bool:
    """Whether the JWT ``topics`` claim grants ``topic`` (a name or a glob)."""
    return topics.grants(patterns, topic)


@dataclass(frozen=True, slots=True)
class TopicFilter:
    """``{field: value or [values]}``: a message passes when every field matches."""

    fields: tuple[tuple[str, frozenset[Scalar]], ...]

    def matches(self, data: Any) -> bool:
        if not isinstance(data, Mapping):
            return False
        for name, allowed in self.fields:
            value = data.get(name)
            if isinstance(value, list | dict) or value not in allowed:
                return False
        return True


def parse_filter(raw: Any) -> TopicFilter:
    """Validate a client's filter; raise ``ValueError`` saying what is wrong."""
    if not isinstance(raw, dict) or not raw:
        raise ValueError("`filter` must be a non-empty object of field -> value(s)")
    if len(raw) > MAX_FILTER_FIELDS:
        raise ValueError(f"`filter` may name at most {MAX_FILTER_FIELDS} fields")
    fields = []
    for name, value in raw.items():
        values = value if isinstance(value, list) else [value]
        if not values or len(values) > MAX_FILTER_VALUES:
            raise ValueError(f"filter field {name!r} needs 1..{MAX_FILTER_VALUES} values")
        if any(isinstance(v, list | dict) for v in values):
            raise ValueError(f"filter field {name!r} values must be scalars")
        fields.append((name, frozenset(values)))
    return TopicFilter(tuple(sorted(fields, key=lambda item: item[0])))


# -- connection state -------------------------------------------------------------------


class TokenBucket:
    """Inbound rate limiter: ``rate`` frames per second, bursts up to ``burst``."""

    __slots__ = ("_burst", "_clock", "_rate", "_stamp", "_tokens")

    def __init__(self, *, rate: float, burst: int, clock: Clock = time.monotonic) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self._rate = rate
        self._burst = float(burst)
        self._clock = clock
        self._tokens = float(burst)
        self._stamp = clock()

    def allow(self) -> bool:
        """Take one token; False means the client exceeded its rate."""
        self._refill()
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def retry_after(self) -> float:
        """Seconds until a token is there (0 if one is now)."""
        self._refill()
        return max(0.0, (1.0 - self._tokens) / self._rate)

    def full(self) -> bool:
        """Whether the bucket has refilled completely (forgetting it changes nothing)."""
        self._refill()
        return self._tokens >= self._burst

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now


class Budgets:
    """A :class:`TokenBucket` per key (say, a user), made on first use.

    Memory stays proportional to the keys active lately: once there are twice as many
    buckets as after the last sweep, the full ones are dropped (a new bucket starts
    full, so forgetting a full one changes nothing).
    """

    def __init__(self, *, rate: float, burst: int, clock: Clock = time.monotonic) -> None:
        TokenBucket(rate=rate, burst=burst, clock=clock)  # validates the arguments
        self._rate = rate
        self._burst = burst
        self._clock = clock
        self._buckets: dict[str, TokenBucket] = {}
        self._sweep_at = 1024

    def take(self, key: str) -> float:
        """Spend one of ``key``'s tokens: 0.0 if there was one, else seconds to wait."""
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self._sweep_at:
                self._sweep()
            bucket = TokenBucket(rate=self._rate, burst=self._burst, clock=self._clock)
            self._buckets[key] = bucket
        return 0.0 if bucket.allow() else max(bucket.retry_after(), 1e-3)

    def __len__(self) -> int:
        return len(self._buckets)

    def _sweep(self) -> None:
        self._buckets = {k: b for k, b in self._buckets.items() if not b.full()}
        self._sweep_at = max(1024, 2 * len(self._buckets))


class Heartbeat:
    """When to ping, and when a silent client counts as dead (two silent intervals)."""

    __slots__ = ("_clock", "_last_heard", "_last_ping", "interval")

    def __init__(self, *, interval: float, clock: Clock = time.monotonic) -> None:
        self.interval = interval
        self._clock = clock
        self._last_heard = self._last_ping = clock()

    def heard(self) -> None:
        """Any frame from the client proves it is alive."""
        self._last_heard = self._clock()

    def pinged(self) -> None:
        self._last_ping = self._clock()

    def ping_due(self) -> bool:
        return self._clock() - self._last_ping >= self.interval

    def dead(self) -> bool:
        return self._clock() - self._last_heard >= 2 * self.interval

    def next_deadline(self) -> float:
        """Seconds until a ping is due or the client would be dead, whichever is first."""
        now = self._clock()
        ping_at = self._last_ping + self.interval
        dead_at = self._last_heard + 2 * self.interval
        return max(0.0, min(ping_at, dead_at) - now)


def origin_allowed(origin: str | None, host: str | None, allowed: Iterable[str]) -> bool:
    """Browsers send ``Origin``; others do not and are let through (they hold a token).

    ``allowed`` empty means same host only; ``*`` allows any origin.
    """
    if origin is None:
        return True
    allowed = list(allowed)
    if "*" in allowed:
        return True
    if allowed:
        return origin.rstrip("/") in {a.rstrip("/") for a in allowed}
    return host is not None and urlsplit(origin).netloc.lower() == host.lower()


def bearer_token(authorization: str | None, query_token: str | None) -> str | None:
    """The token from ``?token=`` or ``Authorization: Bearer``."""
    if query_token:
        return query_token
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return None


# -- SSE framing ------------------------------------------------------------------------


def sse_event(frame: bytes, *, event_id: str | None = None, event: str | None = None) -> bytes:
    """One Server-Sent Event carrying a JSON frame (which has no newlines)."""
    head = b"id: " + event_id.encode() + b"\n" if event_id else b""
    name = event or frame_type(frame)
    return head + b"event: " + name.encode() + b"\ndata: " + frame + b"\n\n"


def sse_retry(milliseconds: int) -> bytes:
    """A ``retry:`` field; prefix it to an event (alone it would dispatch an empty one)."""
    return b"retry: " + str(milliseconds).encode() + b"\n"


SSE_HEARTBEAT = b": ping\n\n"
