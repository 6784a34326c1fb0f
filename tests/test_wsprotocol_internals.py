"""What web/wsprotocol.py, web/wsdirect.py, web/wsserver.py, web/httpserver.py and
web/sseserver.py rely on in uvicorn.

They subclass and reach into ``WebSocketsSansIOProtocol``, which is not public API; the
version range in pyproject.toml is the one checked here. A uvicorn release that renames
or removes any of these fails this test rather than silently switching the bounded
write buffer or the direct write path off.
"""

from __future__ import annotations

import inspect
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from tidings.web.wsprotocol import BoundedWebSocketProtocol

OVERRIDDEN = [
    "pause_writing",
    "resume_writing",
    "receive",
    "handle_ping",
    "handle_pong",
    "send",
    "handle_close",
    "run_asgi",
    "connection_lost",
]
ATTRIBUTES = [
    "conn",
    "transport",
    "queue",
    "read_paused",
    "close_sent",
    "handshake_complete",
    "disconnected",
    "writable",
]


def test_every_overridden_method_exists_in_the_base_with_the_same_shape() -> None:
    for name in OVERRIDDEN:
        base = getattr(WebSocketsSansIOProtocol, name, None)
        assert base is not None, f"uvicorn no longer has WebSocketsSansIOProtocol.{name}"
        ours = getattr(BoundedWebSocketProtocol, name)
        assert inspect.iscoroutinefunction(base) == inspect.iscoroutinefunction(ours), name
        assert len(inspect.signature(base).parameters) == len(inspect.signature(ours).parameters)


def test_the_instance_attributes_we_read_are_set_by_the_base() -> None:
    source = inspect.getsource(WebSocketsSansIOProtocol)
    for name in ATTRIBUTES:
        assert f"self.{name}" in source, f"uvicorn no longer sets self.{name}"


def test_uvicorn_hands_an_upgrade_to_our_protocol_class_as_wsserver_expects() -> None:
    """web/wsserver.py is built by uvicorn's HTTP protocol on every upgrade: with these
    keywords, given the transport, then the whole request in one ``data_received``."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    from uvicorn.server import Server

    from tidings.web.wsserver import DirectWebSocketProtocol

    upgrade = inspect.getsource(HttpToolsProtocol.handle_websocket_upgrade)
    for needed in (
        "config=self.config",
        "server_state=self.server_state",
        "app_state=self.app_state",
        "protocol.connection_made(self.transport)",
        "protocol.data_received(",
        "self.transport.set_protocol(protocol)",
    ):
        assert needed in upgrade, f"uvicorn's upgrade no longer does {needed}"
    ours = inspect.signature(DirectWebSocketProtocol.__init__).parameters
    assert {"config", "server_state", "app_state"} <= set(ours)
    # A graceful shutdown asks every connection in server_state.connections to shut down.
    shutdown = inspect.getsource(Server.shutdown)
    assert "server_state.connections" in shutdown and "connection.shutdown()" in shutdown


HTTP_CALLBACKS = ["on_message_begin", "on_headers_complete", "on_body", "on_message_complete"]
HTTP_ATTRIBUTES = [
    "url",
    "headers",
    "parser",
    "cycle",
    "root_path",
    "access_log",
    "access_logger",
    "client",
    "connections",
    "server_state",
    "transport",
    "app",
]


def test_the_http_protocol_parts_the_direct_sse_transport_uses_are_there() -> None:
    """web/httpserver.py overrides the parser's callbacks and web/sseserver.py reads the
    request off uvicorn's HTTP protocol, then writes the head uvicorn would."""
    from uvicorn.protocols.http import httptools_impl
    from uvicorn.protocols.utils import get_client_addr, get_path_with_query_string

    from tidings.web.httpserver import HttpProtocol

    for name in HTTP_CALLBACKS:
        base = getattr(httptools_impl.HttpToolsProtocol, name)
        ours = getattr(HttpProtocol, name)
        assert len(inspect.signature(base).parameters) == len(inspect.signature(ours).parameters)
    source = inspect.getsource(httptools_impl.HttpToolsProtocol)
    for name in HTTP_ATTRIBUTES:
        assert f"self.{name} = " in source or f"self.{name}: " in source, name
    assert "response_complete" in inspect.getsource(httptools_impl.RequestResponseCycle)
    assert httptools_impl.STATUS_LINE[200] == b"HTTP/1.1 200 OK\r\n"
    scope: Any = {"client": ("1.2.3.4", 5), "path": "/a b", "query_string": b"x=1"}
    assert get_client_addr(scope) == "1.2.3.4:5"
    assert get_path_with_query_string(scope) == "/a%20b?x=1"
