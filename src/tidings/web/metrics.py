"""Prometheus metrics at ``/metrics``."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import FastAPI, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

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


def register(app: FastAPI) -> None:
    registry = CollectorRegistry()
    registry.register(HubCollector(app.state.tidings))

    @app.get("/metrics", include_in_schema=False)
    async def metrics(_: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
