"""The webhook wire format: the body, and the ``Tidings-Signature`` header over it.

Pure functions, no I/O. The body is ``{"id", "type", "created_at", "data"}``; the header
is ``t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>" keyed with the secret>``.
Signing the timestamp with the body lets a receiver refuse replays of old deliveries.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import orjson

HEADER = "Tidings-Signature"
TOLERANCE = 300
"""Seconds a receiver should accept between the signature's ``t`` and its own clock."""


def body(event_id: str, event_type: str, created_at: str, data: dict[str, Any]) -> bytes:
    """The exact bytes that are signed and sent (kept in the queue, so retries match)."""
    return orjson.dumps(
        {"id": event_id, "type": event_type, "created_at": created_at, "data": data}
    )


def signature(secret: str, raw_body: bytes, timestamp: int) -> str:
    """The header value for this body at this time (unix seconds)."""
    digest = hmac.new(secret.encode(), b"%d." % timestamp + raw_body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def verify(
    secret: str, header: str, raw_body: bytes, *, now: float, tolerance: int = TOLERANCE
) -> bool:
    """Whether ``header`` signs ``raw_body`` with ``secret`` within ``tolerance`` seconds.

    What a receiver does; tidings uses it in its own tests and documents the same steps.
    """
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(fields["t"])
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance:
        return False
    expected = signature(secret, raw_body, timestamp).partition(",v1=")[2]
    return hmac.compare_digest(expected, fields.get("v1", ""))
