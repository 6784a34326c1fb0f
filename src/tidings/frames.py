"""Server frames: pure functions, bytes out.

A frame is encoded once per fan-out. The broker carries event frames (read state,
topic messages) as they are; notifications reach other processes through the store's
log (:mod:`tidings.feed`), not the broker.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, final

import orjson

from tidings.models import Notification, isoformat, match_locale


def encode(frame: dict[str, Any]) -> bytes:
    return orjson.dumps(frame)


def notification(
    item: Notification,
    locale: str | None = None,
    *,
    silent: bool = False,
    position: str | None = None,
    woke: bool = False,
) -> bytes:
    """The frame of a notification in the reader's ``locale``; ``silent`` during do-not-disturb.

    ``position``: its place in the log when that is not its id (it was changed before
    this client first saw it); clients resume after the highest position they saw.
    ``woke``: a snoozed notification back in the inbox (its id may be old).
    """
    frame: dict[str, Any] = {"type": "notification", "notification": item.to_public(locale)}
    if silent:
        frame["silent"] = True
    if position is not None and position != item.id:
        frame["position"] = position
    if woke:
        frame["woke"] = True
    return encode(frame)


def updated(item: Notification, locale: str | None = None, *, position: str | None = None) -> bytes:
    """A notification changed. From the log (``position`` set: the backend changed it) it
    carries what every recipient shares, without read state; without ``position`` it is
    this user's own change (read again, archived, snoozed) and carries the whole item."""
    if position is None:
        return encode({"type": "updated", "notification": item.to_public(locale)})
    return encode({"type": "updated", "notification": item.content(locale), "position": position})


def retracted(notification_id: str, position: str) -> bytes:
    """The backend took a notification back: a ``deleted`` frame with its log position."""
    return encode(
        {"type": "deleted", "ids": [notification_id], "retracted": True, "position": position}
    )


@final  # no subclasses: Connection.offer tests ``type(frame) is Change``
@dataclass(frozen=True, slots=True)
class Change:
    """A change from the log for one connection, whose frame depends on what it delivered:
    ``seen`` if it may hold the notification (``updated``, ``deleted``), ``new`` if the
    notification was committed after everything it was given (None: nothing to send)."""

    notification_id: str
    seen: bytes
    new: bytes | None


class ChangeFrames:
    """One change's frames per locale, each encoded once, lazily (see NotificationFrames)."""

    __slots__ = ("_by_locale", "_by_variant", "change", "item", "position")

    def __init__(self, item: Notification, change: str, position: str) -> None:
        self.item = item
        self.change = change
        self.position = position
        self._by_locale: dict[str | None, Change] = {}
        """Per reader's locale: a fan-out matches each distinct locale once, not per reader."""
        self._by_variant: dict[str | None, Change] = {}

    def frame(self, locale: str | None) -> Change:
        found = self._by_locale.get(locale)
        if found is None:
            variant = match_locale(self.item.locales, locale)
            found = self._by_variant.get(variant)
            if found is None:
                found = self._by_variant[variant] = self._encode(variant)
            self._by_locale[locale] = found
        return found

    def _encode(self, variant: str | None) -> Change:
        if self.change == "retracted":
            return Change(self.item.id, retracted(self.item.id, self.position), None)
        return Change(
            self.item.id,
            updated(self.item, variant, position=self.position),
            notification(self.item, variant, position=self.position),
        )


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


def archived(ids: list[str]) -> bytes:
    """The user archived these: they leave the inbox (``?archived=true`` lists them)."""
    return encode({"type": "archived", "ids": ids})


def snoozed(ids: list[str], until: datetime | None) -> bytes:
    """The user snoozed these: hidden until ``until``, then back as a ``notification``."""
    return encode({"type": "snoozed", "ids": ids, "until": isoformat(until) if until else None})


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
