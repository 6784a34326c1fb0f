"""Server frames and the broker envelope: pure functions, bytes out.

A frame is encoded once per publish. The broker carries it inside an envelope whose
first line says what it is, so a process can route and de-duplicate without parsing
the JSON: ``b"n <id>\\n<frame>"`` for a notification, ``b"e\\n<frame>"`` for any other
event (read state, topic messages, control).
"""

from __future__ import annotations

from typing import Any

import orjson

from tidings.models import Notification


def encode(frame: dict[str, Any]) -> bytes:
    return orjson.dumps(frame)


def notification(item: Notification) -> bytes:
    return encode({"type": "notification", "notification": item.to_public()})


def welcome(*, user: str, connection: str, heartbeat: float, unread: int) -> bytes:
    return encode(
        {
            "type": "welcome",
            "user": user,
            "connection": connection,
            "heartbeat": heartbeat,
            "unread": unread,
        }
    )


def read(ids: list[str]) -> bytes:
    return encode({"type": "read", "ids": ids})


def read_all(through: str | None) -> bytes:
    return encode({"type": "read_all", "through": through})


def deleted(ids: list[str]) -> bytes:
    return encode({"type": "deleted", "ids": ids})


def unread(count: int) -> bytes:
    return encode({"type": "unread", "count": count})


def message(topic: str, data: Any) -> bytes:
    return encode({"type": "message", "topic": topic, "data": data})


def error(code: str, message: str, ref: Any = None) -> bytes:
    return encode({"type": "error", "code": code, "message": message, "ref": ref})


PING = encode({"type": "ping"})
PONG = encode({"type": "pong"})


def envelope(frame: bytes, notification_id: str | None = None) -> bytes:
    head = b"n " + notification_id.encode() if notification_id else b"e"
    return head + b"\n" + frame


def open_envelope(payload: bytes) -> tuple[str | None, bytes]:
    """Split an envelope into (notification id or None, frame bytes)."""
    head, _, frame = payload.partition(b"\n")
    if head.startswith(b"n "):
        return head[2:].decode(), frame
    return None, frame
