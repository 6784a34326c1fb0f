"""Prometheus metrics at ``/metrics``: counters and histograms, and live gauges.

Counters and histograms live in :mod:`tidings.telemetry`. With ``--workers N`` they are
read from every process's files (prometheus-client's multiprocess mode); the hub's
gauges below describe the process that answered the scrape.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from fastapi import FastAPI, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from tidings import telemetry
from tidings.app import App


class HubCollector(Collector):
    """Reads live figures from the hub when scraped, so the hot path counts nothing extra."""

    def __init__(self, app: App) -> None:
        self.app = app

    def collect(self) -> Iterator[GaugeMetricFamily]:
        for name, value in self.app.stats().items():
            if isinstance(value, int | float):
                yield GaugeMetricFamily(f"tidings_{name}", f"hub: {name}", value=value)
        yield GaugeMetricFamily(
            "tidings_broker_ready", "broker connected", value=self.app.broker.ready
        )


class Forward(Collector):
    """Another registry's metrics (the process-wide one of :mod:`tidings.telemetry`)."""

    def __init__(self, source: CollectorRegistry) -> None:
        self.source = source

    def collect(self) -> Iterable[Metric]:
        return self.source.collect()


def register(app: FastAPI) -> None:
    tidings: App = app.state.tidings
    registry = CollectorRegistry()
    registry.register(HubCollector(tidings))
    if telemetry.MULTIPROCESS:
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(Forward(telemetry.REGISTRY))

    @app.get("/metrics", include_in_schema=False)
    async def metrics(_: Request) -> Response:
        tidings.cluster.export_metrics()  # this process's running totals, up to now
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
