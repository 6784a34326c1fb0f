"""Server frames: pure functions, bytes out.

A frame is encoded once per fan-out. The broker carries event frames (read state,
topic messages) as they are; notifications reach other processes through the store's
log (:mod:`tidings.feed`), not the broker.
"""

from __future__ import annotations

from typing import Any

import orjson

from tidings.models import Notification, match_locale


def encode(frame: dict[str, Any]) -> bytes:
    return orjson.dumps(frame)


def notification(item: Notification, locale: str | None = None, *, silent: bool = False) -> bytes:
    """The frame of a notification in the reader's ``locale``; ``silent`` during do-not-disturb."""
    frame: dict[str, Any] = {"type": "notification", "notification": item.to_public(locale)}
    if silent:
        frame["silent"] = True
    return encode(frame)


class NotificationFrames:
    """One notification's frames per variant (locale, silent), each encoded once, lazily.

    A fan-out encodes per distinct variant its readers need, not per connection: readers
    whose locale falls back to the same variant share the same bytes.
    """

    __slots__ = ("_by_locale", "_by_variant", "item")

    def __init__(self, item: Notification, default: bytes) -> None:
        self.item = item
        self._by_variant: dict[tuple[str | None, bool], bytes] = {(None, False): default}
        self._by_locale: dict[str | None, str | None] = {None: None}

    def frame(self, locale: str | None, silent: bool = False) -> bytes:
        variant = self._by_locale.get(locale, _UNKNOWN)
        if variant is _UNKNOWN:
            variant = self._by_locale[locale] = match_locale(self.item.locales, locale)
        key = (variant, silent)
        found = self._by_variant.get(key)
        if found is None:
            found = self._by_variant[key] = notification(self.item, variant, silent=silent)
        return found


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


PREFERENCES_PREFIX = b'{"type":"preferences"'
"""How the hub tells a preferences frame (it updates the connections) from the others."""


def preferences(value: dict[str, Any]) -> bytes:
    """The user's preferences changed (``Preferences.to_public()``)."""
    return encode({"type": "preferences", "preferences": value})


def message(topic: str, data: Any) -> bytes:
    return encode({"type": "message", "topic": topic, "data": data})


def error(code: str, message: str, ref: Any = None) -> bytes:
    return encode({"type": "error", "code": code, "message": message, "ref": ref})


PING = encode({"type": "ping"})
PONG = encode({"type": "pong"})

_UNKNOWN: Any = object()
