"""When a webhook delivery is tried again, and when it is given up. Pure, clock passed in.

- **2xx**: delivered.
- **5xx, 408, 429, timeouts and connection errors**: retried after 1 s, 2 s, 4 s ...
  doubling up to :data:`MAX_DELAY`, each with ±20 % jitter so a receiver coming back is
  not hit by every process at once; given up after ``max_attempts`` attempts or once the
  event is older than ``max_age``.
- **Any other status** (3xx, 4xx): given up at once. The receiver answered and refused
  these exact bytes; sending them again cannot change its mind. Such a delivery stays in
  the queue as ``failed`` with the status, for an operator to look at.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import Enum

FIRST_DELAY = 1.0
MAX_DELAY = 300.0
JITTER = 0.2
RETRIED_STATUSES = frozenset({408, 429})


class Verdict(Enum):
    DELIVERED = "sent"
    RETRY = "retried"
    GIVE_UP = "failed"


def judge_status(status: int) -> Verdict:
    """What a receiver's answer means for the delivery."""
    if 200 <= status < 300:
        return Verdict.DELIVERED
    if status >= 500 or status in RETRIED_STATUSES:
        return Verdict.RETRY
    return Verdict.GIVE_UP


def delay(attempts: int, rng: random.Random | None = None) -> float:
    """Seconds to wait after the ``attempts``-th failed attempt (1, 2, 4 ... jittered)."""
    base = min(MAX_DELAY, FIRST_DELAY * 2 ** max(0, attempts - 1))
    return base * (1 + JITTER * (2 * (rng or random).random() - 1))


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int
    max_age_ms: int

    def next_due(
        self, *, attempts: int, created_at_ms: int, now_ms: int, rng: random.Random | None = None
    ) -> int | None:
        """When to try a retryable failure again, in unix ms; None to give up."""
        if attempts >= self.max_attempts:
            return None
        due = now_ms + int(delay(attempts, rng) * 1000)
        if due - created_at_ms > self.max_age_ms:
            return None
        return due
