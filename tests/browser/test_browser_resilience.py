"""The client in a real browser when things break: server restarts, blocked transports."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from browser_helpers import Server, free_port, notification_id, open_harness, wait_status_is

SHADOW = "document.querySelector('tidings-bell').shadowRoot"


def events(page: Any) -> list[str]:
    return list(page.evaluate("window.__events.notification"))


def wait_events(page: Any, count: int, timeout: float = 30_000) -> None:
    page.wait_for_function(
        "(n) => window.__events.notification.length >= n", arg=count, timeout=timeout
    )


def listed_ids(page: Any) -> list[str]:
    return list(page.evaluate(f"[...{SHADOW}.querySelectorAll('li')].map((li) => li.dataset.id)"))


def block_transports(context: Any, *, sse: bool = False) -> dict[str, bool]:
    """Refuse WebSockets to /ws (and, with ``sse``, the event stream) while
    ``state["blocked"]``; pass them through once it is False."""
    state = {"blocked": True}

    def websocket(ws: Any) -> None:
        if state["blocked"]:
            ws.close(code=1011, reason="blocked by test")
        else:
            ws.connect_to_server()

    def stream(route: Any) -> None:
        if state["blocked"]:
            route.abort()
        else:
            route.continue_()

    context.route_web_socket(re.compile(r".*/ws(\?.*)?$"), websocket)
    if sse:
        context.route(re.compile(r".*/api/v1/me/stream.*"), stream)
    return state


@pytest.mark.parametrize("how", ["kill", "terminate"])
def test_server_restart_loses_nothing_and_shows_nothing_twice(
    context: Any, server: Server, tmp_path: Path, how: str
) -> None:
    page = open_harness(context, server)
    first = notification_id(server.notify(title="before the outage"))
    wait_events(page, 1)

    if how == "kill":
        server.kill()
    else:
        server.stop()
    page.wait_for_function("window.client.status !== 'open'", timeout=15_000)

    # While the tab's server is down, another process on the same database takes writes.
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    other = Server(other_dir, db=server.db).start()
    try:
        missed = [notification_id(other.notify(title=f"while down {i}")) for i in range(3)]
    finally:
        other.stop()
    page.wait_for_timeout(1500)  # let the client fail a few reconnects
    assert events(page) == [first]

    server.start()
    wait_status_is(page, "open", timeout=30_000)
    wait_events(page, 4)
    after = notification_id(server.notify(title="after the outage"))
    wait_events(page, 5)
    page.wait_for_timeout(500)  # room for any duplicate to show up

    expected = [first, *missed, after]
    assert events(page) == expected, "each exactly once, in order"
    page.locator("tidings-bell .bell").click()
    page.wait_for_function(f"{SHADOW}.querySelectorAll('li').length === 5")
    assert listed_ids(page) == expected[::-1]
    assert page.evaluate("window.client.unreadCount") == 5
    assert page.evaluate("window.__events.status").count("open") >= 2


def test_sse_fallback_when_websocket_is_blocked(context: Any, server: Server) -> None:
    block_transports(context)
    streams: list[str] = []
    context.on("request", lambda r: "/api/v1/me/stream" in r.url and streams.append(r.url))
    page = open_harness(context, server, wait_status="sse")
    assert streams, "an EventSource was opened"

    ids = [notification_id(server.notify(title=f"over SSE {i}")) for i in range(2)]
    wait_events(page, 2)
    assert events(page) == ids
    page.wait_for_function(f"{SHADOW}.querySelector('.badge').textContent === '2'")

    # Marking read goes over REST in this mode and the stream brings the count back.
    page.locator("tidings-bell .bell").click()
    page.locator(f'tidings-bell li[data-id="{ids[0]}"] button.read').click()
    page.wait_for_function("window.client.unreadCount === 1")
    page.wait_for_function("window.__events.unread.at(-1) === 1")
    dot = page.locator("tidings-bell .dot")
    assert dot.get_attribute("data-status") == "sse"


def test_polling_fallback_and_back_up_to_websocket(context: Any, server: Server) -> None:
    state = block_transports(context, sse=True)
    options = {"pollInterval": 500, "upgradeInterval": 1500}
    page = open_harness(context, server, options=options, wait_status="polling")

    ids = [notification_id(server.notify(title=f"polled {i}")) for i in range(3)]
    wait_events(page, 3, timeout=10_000)
    assert events(page) == ids
    assert page.locator("tidings-bell .dot").get_attribute("data-status") == "polling"

    state["blocked"] = False
    wait_status_is(page, "open", timeout=15_000)
    live = notification_id(server.notify(title="live again"))
    wait_events(page, 4)
    page.wait_for_timeout(1000)  # a poll still in flight must not repeat anything
    assert events(page) == [*ids, live]


def test_cross_origin_page_over_websocket(context: Any, server: Server) -> None:
    """An app on another origin embeds the client: the WebSocket needs no CORS."""
    origin = f"http://localhost:{server.port}"  # another origin, same server
    page = open_harness(context, server, origin=origin)
    first = notification_id(server.notify(title="from afar"))
    wait_events(page, 1)
    assert events(page) == [first]


@pytest.mark.parametrize("transport", ["sse", "polling"])
def test_cross_origin_page_over_sse_and_rest(context: Any, server: Server, transport: str) -> None:
    """EventSource and fetch with Authorization are CORS requests: allowed origins only."""
    origin = f"http://localhost:{server.port}"
    options = {"transports": [transport], "pollInterval": 500, "connectTimeout": 3000}
    page = open_harness(context, server, origin=origin, options=options, wait_status=None)
    wait_status_is(page, transport, timeout=8_000)
    first = notification_id(server.notify(title="from afar"))
    wait_events(page, 1, timeout=8_000)
    assert events(page) == [first]


def test_expired_token_is_refreshed_through_get_token(context: Any, server: Server) -> None:
    """The server closes with 4001 when the token expires; getToken supplies a new one."""
    page = open_harness(
        context, server, dev_token_ttls=[3, 3600], options={"tokenRefreshMargin": 0}
    )
    first = notification_id(server.notify(title="with the short token"))
    wait_events(page, 1)
    page.wait_for_function("window.__events.tokens >= 2", timeout=15_000)
    wait_status_is(page, "open", timeout=15_000)
    second = notification_id(server.notify(title="with the fresh token"))
    wait_events(page, 2)
    assert events(page) == [first, second]
    assert page.evaluate("window.__events.closes") == [4001]


@pytest.mark.parametrize("transports", [["websocket"], ["sse"]])
def test_topic_messages_with_filters(context: Any, server: Server, transports: list[str]) -> None:
    status = "open" if transports == ["websocket"] else "sse"
    page = open_harness(
        context,
        server,
        topics=["deploys", "logs:*"],
        options={"transports": transports},
        wait_status=status,
    )
    page.evaluate(
        """() => {
          window.__topic = [];
          window.client.subscribe('deploys', (data) => window.__topic.push(data),
                                  { filter: { env: 'prod' } });
        }"""
    )
    page.wait_for_timeout(500)  # the subscription (or the reopened stream) is in place
    wait_status_is(page, status)
    server.publish("deploys", {"env": "dev", "n": 1})
    server.publish("deploys", {"env": "prod", "n": 2})
    server.publish("other", {"env": "prod", "n": 3})
    page.wait_for_function("window.__topic.length >= 1")
    page.wait_for_timeout(300)
    assert page.evaluate("window.__topic") == [{"env": "prod", "n": 2}]


def test_half_open_connection_is_detected_by_missed_heartbeats(
    context: Any, server: Server
) -> None:
    """The server freezes (SIGSTOP): the socket stays open, but pings stop coming."""
    page = open_harness(context, server)  # the server pings every 5 s
    server.pause()
    try:
        page.wait_for_function("window.__events.closes.includes(4000)", timeout=20_000)
        assert page.evaluate("window.client.status") != "open"
    finally:
        server.resume()
    wait_status_is(page, "open", timeout=20_000)
    first = notification_id(server.notify(title="after the freeze"))
    wait_events(page, 1)
    assert events(page) == [first]


def test_origin_not_allowed_stops_without_hammering(context: Any, tmp_path: Path) -> None:
    port = free_port()
    server = Server(
        tmp_path, port=port, env={"TIDINGS_ALLOWED_ORIGINS": f"http://127.0.0.1:{port}"}
    ).start()
    try:
        sockets: list[str] = []

        def count(ws: Any) -> None:
            sockets.append(ws.url)
            ws.connect_to_server()

        context.route_web_socket(re.compile(r".*/ws(\?.*)?$"), count)
        page = open_harness(
            context, server, origin=f"http://localhost:{port}", wait_status="closed"
        )
        page.wait_for_timeout(2000)
        assert len(sockets) == 1, "4003 is final: no reconnect loop"
        assert page.evaluate("window.__events.status") == ["connecting", "closed"]
        assert page.evaluate("window.client.lastError.code") == "forbidden"
    finally:
        server.stop()
