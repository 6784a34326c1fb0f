"""What web/wsprotocol.py and web/wsdirect.py rely on in uvicorn's sans-I/O protocol.

They subclass and reach into ``WebSocketsSansIOProtocol``, which is not public API; the
version range in pyproject.toml is the one checked here. A uvicorn release that renames
or removes any of these fails this test rather than silently switching the bounded
write buffer or the direct write path off.
"""

from __future__ import annotations

import inspect

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
