"""The delivery promise as a pure check: values in, a report out.

Every acknowledged notification reaches every stream of each of its recipients exactly
once and in increasing id order (ids sort in creation order), counting what is replayed
on reconnect; and every acknowledged create is in its recipients' inboxes. A stream may
also receive notifications that were committed but never acknowledged (the process died
before the 201 went out): those are counted, not faulted, but must still come once and
in order.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Stream:
    """Everything one client received, over all its connections, in arrival order."""

    name: str
    user: str
    after: str
    """The client started after this id: every acknowledged id above it is owed."""
    received: Sequence[str]


@dataclass(frozen=True)
class StreamReport:
    name: str
    owed: int
    received: int
    missing: tuple[str, ...] = ()
    duplicated: tuple[str, ...] = ()
    """Ids that arrived more than once (each listed once per extra arrival)."""
    out_of_order: tuple[str, ...] = ()
    """Ids that arrived after a larger id had already arrived."""
    misdelivered: tuple[str, ...] = ()
    """Acknowledged ids that were not addressed to this stream's user."""
    unacknowledged: int = 0


@dataclass(frozen=True)
class InboxReport:
    user: str
    owed: int
    listed: int
    missing: tuple[str, ...] = ()
    duplicated: tuple[str, ...] = ()
    unsorted: int = 0
    """Places where the list is not strictly newest first."""


@dataclass(frozen=True)
class Report:
    streams: tuple[StreamReport, ...] = ()
    inboxes: tuple[InboxReport, ...] = ()
    acknowledged: int = 0

    @property
    def lost(self) -> int:
        return sum(len(s.missing) for s in self.streams)

    @property
    def duplicated(self) -> int:
        return sum(len(s.duplicated) for s in self.streams)

    @property
    def out_of_order(self) -> int:
        return sum(len(s.out_of_order) for s in self.streams)

    @property
    def misdelivered(self) -> int:
        return sum(len(s.misdelivered) for s in self.streams)

    @property
    def store_missing(self) -> int:
        return sum(len(i.missing) + len(i.duplicated) + i.unsorted for i in self.inboxes)

    @property
    def deliveries(self) -> int:
        return sum(s.received for s in self.streams)

    @property
    def ok(self) -> bool:
        return not (
            self.lost
            or self.duplicated
            or self.out_of_order
            or self.misdelivered
            or self.store_missing
        )

    def figures(self) -> dict[str, int]:
        return {
            "acked": self.acknowledged,
            "deliveries": self.deliveries,
            "lost": self.lost,
            "dup": self.duplicated,
            "disorder": self.out_of_order,
            "misdelivered": self.misdelivered,
            "store_missing": self.store_missing,
        }

    def describe(self, examples: int = 5) -> str:
        """A readable account of what went wrong (empty when nothing did)."""
        lines = []
        for s in self.streams:
            for label, values in (
                ("missing", s.missing),
                ("duplicated", s.duplicated),
                ("out of order", s.out_of_order),
                ("misdelivered", s.misdelivered),
            ):
                if values:
                    shown = ", ".join(values[:examples])
                    lines.append(f"stream {s.name}: {len(values)} {label} (owed {s.owed}): {shown}")
        for i in self.inboxes:
            if i.missing or i.duplicated or i.unsorted:
                lines.append(
                    f"inbox {i.user}: {len(i.missing)} missing, {len(i.duplicated)} listed "
                    f"twice, {i.unsorted} out of order (owed {i.owed}): "
                    + ", ".join(i.missing[:examples])
                )
        return "\n".join(lines)


@dataclass
class _Seen:
    counts: Counter[str] = field(default_factory=Counter)
    duplicated: list[str] = field(default_factory=list)
    out_of_order: list[str] = field(default_factory=list)


def _walk(received: Sequence[str]) -> _Seen:
    seen = _Seen()
    newest = ""
    for id_ in received:
        seen.counts[id_] += 1
        if seen.counts[id_] > 1:
            seen.duplicated.append(id_)
            continue
        if id_ < newest:
            seen.out_of_order.append(id_)
        else:
            newest = id_
    return seen


def owed_to(acknowledged: Mapping[str, frozenset[str]], user: str, after: str = "") -> list[str]:
    """The acknowledged ids addressed to ``user`` above ``after``, in id order."""
    return sorted(id_ for id_, users in acknowledged.items() if user in users and id_ > after)


def check_stream(acknowledged: Mapping[str, frozenset[str]], stream: Stream) -> StreamReport:
    owed = owed_to(acknowledged, stream.user, stream.after)
    seen = _walk(stream.received)
    misdelivered = tuple(
        id_ for id_ in seen.counts if id_ in acknowledged and stream.user not in acknowledged[id_]
    )
    return StreamReport(
        name=stream.name,
        owed=len(owed),
        received=len(stream.received),
        missing=tuple(id_ for id_ in owed if id_ not in seen.counts),
        duplicated=tuple(seen.duplicated),
        out_of_order=tuple(seen.out_of_order),
        misdelivered=misdelivered,
        unacknowledged=sum(1 for id_ in seen.counts if id_ not in acknowledged),
    )


def check_inbox(
    acknowledged: Mapping[str, frozenset[str]], user: str, listed: Sequence[str]
) -> InboxReport:
    """``listed`` is the whole inbox as the API pages it: newest first."""
    owed = owed_to(acknowledged, user)
    counts = Counter(listed)
    return InboxReport(
        user=user,
        owed=len(owed),
        listed=len(listed),
        missing=tuple(id_ for id_ in owed if id_ not in counts),
        duplicated=tuple(id_ for id_, n in counts.items() if n > 1),
        unsorted=sum(1 for a, b in itertools.pairwise(listed) if not a > b),
    )


def check(
    acknowledged: Mapping[str, frozenset[str]],
    streams: Sequence[Stream],
    inboxes: Mapping[str, Sequence[str]],
) -> Report:
    """``acknowledged``: id -> the users it was addressed to; ``inboxes``: user -> listing."""
    return Report(
        streams=tuple(check_stream(acknowledged, s) for s in streams),
        inboxes=tuple(check_inbox(acknowledged, u, ids) for u, ids in sorted(inboxes.items())),
        acknowledged=len(acknowledged),
    )
