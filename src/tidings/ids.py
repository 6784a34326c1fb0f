"""Notification ids: strings that sort in creation order.

An id is a 63-bit integer ``(unix_ms << 16) | sequence`` rendered as 16 lowercase hex
digits, so string order, integer order and creation order agree. The store assigns ids
inside its write transaction (see ``store.sql``), which makes commit order and id order
the same across processes: resuming "after id X" can never skip a later commit.
"""

from __future__ import annotations

import re
import time

SEQUENCE_BITS = 16
PATTERN = r"^[0-7][0-9a-f]{15}$"
"""An id as text: 16 lowercase hex digits of at most 63 bits (the store keeps a signed
BIGINT), so ``ffffffffffffffff`` is not an id. The OpenAPI document states this pattern."""
_ID = re.compile(PATTERN)


def encode(value: int) -> str:
    return f"{value:016x}"


def decode(text: str) -> int:
    """Parse an id; raise ``ValueError`` for anything that is not one (63 bits at most)."""
    if not _ID.fullmatch(text):
        raise ValueError(f"not a notification id: {text[:40]!r}")
    return int(text, 16)


def try_decode(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return decode(text)
    except ValueError:
        return None


def floor_for_ms(unix_ms: int) -> int:
    """Smallest id that can be minted at ``unix_ms``."""
    return unix_ms << SEQUENCE_BITS


def ms_of(value: int) -> int:
    return value >> SEQUENCE_BITS


def next_ids(last: int, count: int, *, now_ms: int | None = None) -> list[int]:
    """``count`` increasing ids, all above ``last`` and not below the current time."""
    start = max(floor_for_ms(now_ms if now_ms is not None else time_ms()), last + 1)
    return list(range(start, start + count))


def time_ms() -> int:
    return time.time_ns() // 1_000_000
