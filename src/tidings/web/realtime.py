"""Mount the realtime transports: WebSocket at ``/ws``, SSE at ``/api/v1/me/stream``."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import StreamingResponse

from tidings.web import sse, ws
from tidings.web.api import END_USER
from tidings.web.errors import documented


def register(app: FastAPI) -> None:
    app.add_api_websocket_route("/ws", ws.websocket_endpoint)
    app.add_api_route(
        sse.PATH,
        sse.stream_endpoint,
        methods=["GET"],
        tags=["inbox"],
        response_class=StreamingResponse,
        responses={
            200: {"content": {"text/event-stream": {}}, "description": "the event stream"},
            **documented(400, 401, 403, 422, 429, 503),
        },
        openapi_extra=END_USER,
    )
