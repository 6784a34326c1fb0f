"""Topic state of one connection, and the budget that keeps fast topics from flooding it.

Only connections that use topics get a :class:`TopicState` (``Connection.rooms``, made
on first use): watermarks of replayed topics, the rooms it is present in, and its
budget.

The budget, per connection: up to ``rate * window`` topic messages go out as they come
in each window of ``window`` seconds (100 ms). Beyond that, messages wait; once per
window the waiting ones go out together as one frame,
``{"type": "batch", "messages": [<message frames>], "skipped": N}``, keeping the newest
``batch`` of them and counting the older ones as skipped. A browser following a topic
of 5,000 messages a second thus gets about ``rate`` plus ten times ``batch`` messages a
second, always the latest, in a few dozen frames. Notifications and other frames are
not budgeted.

Busy topics are batched before this, in the hub: messages of one topic that arrive
while it rests after a fan-out (as long again as the fan-out took, at most 5 ms), or
while a fan-out in slices is still under way, are gathered and fanned out together
(``Hub._dispatch_topic``), which counts as their number of messages in the budget. A
connection that subscribed with ``batch: true`` gets them as one ``batch`` frame
(``skipped`` 0, one write); any other gets each as its own ``message`` frame, so a
client of contract v1 sees only ``batch`` frames when it is past its budget.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from tidings.topics import MessageId

WINDOW = 0.1


class TopicState:
    __slots__ = ("batches", "marks", "presence", "sent", "skipped", "strikes", "waiting", "window")

    def __init__(self) -> None:
        self.batches = False
        """The client asked for ``batch`` frames (subscribe ``batch: true``)."""
        self.marks: dict[str, MessageId] = {}
        """Per topic, the newest id replayed: live copies at or below it are dropped."""
        self.presence: set[str] | None = None
        """Topics whose room this connection is counted in."""
        self.window = -1
        self.sent = 0
        self.waiting: deque[bytes] | None = None
        self.skipped = 0
        self.strikes = 0
        """Refused publishes in a row (too fast): past the burst, the connection closes."""

    def seen(self, topic: str, message_id: MessageId) -> bool:
        mark = self.marks.get(topic)
        return mark is not None and message_id <= mark


class Budget:
    """Decides, per connection and message, now or in the next batch (module docstring)."""

    def __init__(
        self,
        *,
        rate: float,
        batch: int,
        window: float = WINDOW,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_window = max(1, int(rate * window))
        self.batch = batch
        self.window = window
        self._clock = clock

    def tick(self) -> int:
        """The current window's number (one call per fan-out, not per connection)."""
        return int(self._clock() / self.window)

    def admit(self, state: TopicState, messages: list[bytes], tick: int) -> bool:
        """True: send the frame of ``messages`` now (one frame, one or a batch). False:
        they wait for :meth:`take` (they are kept)."""
        if state.window != tick:
            state.window = tick
            state.sent = 0
        if state.waiting is None and state.sent < self.per_window:
            state.sent += len(messages)
            return True
        waiting = state.waiting
        if waiting is None:
            waiting = state.waiting = deque(maxlen=self.batch)
        overflow = len(waiting) + len(messages) - self.batch
        if overflow > 0:
            state.skipped += overflow
        waiting.extend(messages)
        return False

    def take(self, state: TopicState) -> bytes | None:
        """The batch frame of what waits (None if nothing does), and start afresh."""
        waiting, skipped = state.waiting, state.skipped
        state.waiting, state.skipped = None, 0
        if not waiting:
            return None
        state.sent += len(waiting)
        return batch_frame(list(waiting), skipped)


def batch_frame(messages: list[bytes], skipped: int = 0) -> bytes:
    """``{"type":"batch","messages":[...],"skipped":N}`` from encoded message frames."""
    return (
        b'{"type":"batch","messages":['
        + b",".join(messages)
        + b'],"skipped":'
        + str(skipped).encode()
        + b"}"
    )
