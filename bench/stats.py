"""Percentiles and compact distribution curves."""

from __future__ import annotations

import statistics
from collections.abc import Sequence

CURVE_POINTS = [*range(0, 100), 99.5, 99.9, 99.99, 100]


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of already sorted values (p in 0..100)."""
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, round(p / 100 * (len(sorted_values) - 1))))
    return float(sorted_values[k])


def summary(values: Sequence[float]) -> dict[str, float]:
    """p50/p90/p99/max (and count) of ``values``."""
    s = sorted(values)
    return {
        "count": len(s),
        "p50": percentile(s, 50),
        "p90": percentile(s, 90),
        "p99": percentile(s, 99),
        "max": s[-1] if s else float("nan"),
    }


def curve(values: Sequence[float]) -> list[list[float]]:
    """[[percentile, value], ...] at :data:`CURVE_POINTS`, for charts."""
    s = sorted(values)
    if not s:
        return []
    return [[p, round(percentile(s, p), 4)] for p in CURVE_POINTS]


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")
