"""One timer for many connections: heartbeats, token expiry and close deadlines.

A timer handle per connection, or a sleeping task per connection, costs memory and an
event-loop entry for every idle client. The wheel keeps one ``call_at`` for the whole
process and files each client under the tick (:data:`RESOLUTION` seconds) it wants to
be looked at; moving a client to another tick is a dict delete and a dict insert.

A client is anything with a ``wheel_slot`` attribute (the tick it is filed under, or
None) and an ``on_timer()`` method. ``on_timer`` decides what is due and files the
client again (:meth:`TimerWheel.schedule`) if it wants another look; a client never
filed again is forgotten, and :meth:`TimerWheel.cancel` forgets it at once.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import math
from typing import Protocol

RESOLUTION = 0.05
"""Seconds per tick: how late a deadline may fire."""

log = logging.getLogger("tidings.realtime")


class Timed(Protocol):
    wheel_slot: int | None

    def on_timer(self) -> None: ...


class TimerWheel:
    """Deadlines for many clients on one event-loop timer."""

    def __init__(self, loop: asyncio.AbstractEventLoop, resolution: float = RESOLUTION) -> None:
        self._loop = loop
        self._resolution = resolution
        self._slots: dict[int, dict[Timed, None]] = {}
        self._ticks: list[int] = []  # heap of ticks with a slot (may hold stale ones)
        self._armed: int | None = None
        self._handle: asyncio.TimerHandle | None = None

    def __len__(self) -> int:
        return sum(len(slot) for slot in self._slots.values())

    def schedule(self, client: Timed, delay: float) -> None:
        """Look at ``client`` again in about ``delay`` seconds (replacing its old deadline)."""
        now = self._loop.time()
        tick = max(
            math.ceil((now + delay) / self._resolution), math.floor(now / self._resolution) + 1
        )
        if client.wheel_slot == tick:
            return
        self.cancel(client)
        slot = self._slots.get(tick)
        if slot is None:
            slot = self._slots[tick] = {}
            heapq.heappush(self._ticks, tick)
        slot[client] = None
        client.wheel_slot = tick
        if self._armed is None or tick < self._armed:
            self._arm(tick)

    def cancel(self, client: Timed) -> None:
        tick = client.wheel_slot
        if tick is None:
            return
        client.wheel_slot = None
        slot = self._slots.get(tick)
        if slot is not None:
            slot.pop(client, None)
            if not slot:
                del self._slots[tick]

    def _arm(self, tick: int) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._armed = tick
        self._handle = self._loop.call_at(tick * self._resolution, self._fire)

    def _fire(self) -> None:
        self._handle = self._armed = None
        now_tick = math.floor(self._loop.time() / self._resolution)
        while self._ticks and self._ticks[0] <= now_tick:
            tick = heapq.heappop(self._ticks)
            slot = self._slots.pop(tick, None)
            for client in slot or ():
                client.wheel_slot = None
                try:
                    client.on_timer()
                except Exception:  # one client's failure must not stop everyone's timers
                    log.exception("timer of %r failed", client)
        while self._ticks and self._ticks[0] not in self._slots:
            heapq.heappop(self._ticks)  # emptied by cancel()
        # Clients filed again from on_timer may have armed a later tick than one already
        # waiting in the heap: the earliest tick decides.
        if self._ticks and (self._armed is None or self._ticks[0] < self._armed):
            self._arm(self._ticks[0])


_wheels: dict[asyncio.AbstractEventLoop, TimerWheel] = {}


def shared_wheel() -> TimerWheel:
    """The running loop's wheel, shared by every transport of the process."""
    loop = asyncio.get_running_loop()
    wheel = _wheels.get(loop)
    if wheel is None:
        _wheels.clear()  # a previous loop's (tests run several): its clients are gone
        wheel = _wheels[loop] = TimerWheel(loop)
    return wheel
