"""A response's head leaves with its body, in one write, and never waits past a turn."""

from __future__ import annotations

import asyncio
import inspect
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from realtime_helpers import API_KEY as SERVER_API_KEY
from realtime_helpers import ServerProcess

from tidings.web.httpserver import HeadWithBody


class RecordingTransport:
    """Records what reaches the socket."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


def _wrapped() -> tuple[RecordingTransport, HeadWithBody]:
    transport = RecordingTransport()
    return transport, HeadWithBody(transport, asyncio.get_running_loop())  # type: ignore[arg-type]


async def test_head_and_body_sent_in_one_turn_are_one_write() -> None:
    transport, response = _wrapped()
    response.write(b"HTTP/1.1 201 Created\r\n\r\n")
    response.write(b'{"id": "1"}')
    assert transport.writes == [b'HTTP/1.1 201 Created\r\n\r\n{"id": "1"}']
    response.write(b"more")  # a streamed body's later chunks go straight out
    await asyncio.sleep(0)
    assert transport.writes[1:] == [b"more"]


async def test_a_head_without_a_body_leaves_at_the_end_of_the_turn() -> None:
    transport, response = _wrapped()
    response.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
    assert transport.writes == []
    await asyncio.sleep(0)
    assert transport.writes == [b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"]
    response.write(b"5\r\nhello\r\n")
    assert transport.writes[1:] == [b"5\r\nhello\r\n"]


async def test_closing_sends_the_held_head_first() -> None:
    transport, response = _wrapped()
    response.write(b"HTTP/1.1 204 No Content\r\n\r\n")
    response.close()
    assert transport.writes == [b"HTTP/1.1 204 No Content\r\n\r\n"] and transport.closed


def test_uvicorns_cycle_still_writes_through_its_transport_attribute() -> None:
    from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

    source = inspect.getsource(RequestResponseCycle)
    assert "self.transport = transport" in source
    used = {m for m in ("write", "close", "is_closing") if f"self.transport.{m}(" in source}
    assert used == {"write", "close", "is_closing"}
    assert {"write", "close", "is_closing"} <= set(dir(HeadWithBody))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = ServerProcess(Path(tmp_path_factory.mktemp("head"))).start()
    yield process
    process.stop()


def _read_responses(sock: socket.socket, count: int) -> list[tuple[int, Any]]:
    """``count`` responses with Content-Length bodies, parsed off one connection."""
    buffer, answers = b"", []
    while len(answers) < count:
        while b"\r\n\r\n" not in buffer:
            buffer += sock.recv(65536)
        head, _, buffer = buffer.partition(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        )
        while len(buffer) < length:
            buffer += sock.recv(65536)
        body, buffer = buffer[:length], buffer[length:]
        answers.append((int(head.split(b" ")[1]), httpx.Response(200, content=body).json()))
    return answers


def test_pipelined_requests_on_one_connection_get_whole_answers_in_order(
    server: ServerProcess,
) -> None:
    body = b'{"to": {"users": ["ada"]}, "type": "t", "title": "hi"}'
    create = (
        b"POST /api/v1/notifications HTTP/1.1\r\nHost: x\r\n"
        + f"Authorization: Bearer {SERVER_API_KEY}\r\n".encode()
        + b"Content-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    missing = b"GET /api/v1/nothing-here HTTP/1.1\r\nHost: x\r\n\r\n"
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(create + missing + create)
        answers = _read_responses(sock, 3)
    assert [status for status, _ in answers] == [201, 404, 201]
    assert answers[0][1]["title"] == "hi" and answers[1][1]["error"]["code"] == "not_found"
    assert answers[0][1]["id"] < answers[2][1]["id"]
