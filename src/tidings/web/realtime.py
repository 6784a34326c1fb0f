"""Mount the realtime transports: WebSocket at ``/ws``, SSE at ``/api/v1/me/stream``."""

from __future__ import annotations

from fastapi import FastAPI

from tidings.web import sse, ws


def register(app: FastAPI) -> None:
    app.add_api_websocket_route("/ws", ws.websocket_endpoint)
    app.add_api_route("/api/v1/me/stream", sse.stream_endpoint, methods=["GET"], tags=["inbox"])
