"""Server frames written straight to the transport: byte-exact, encoded once, bounded."""

from __future__ import annotations

import pytest
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from tidings.web.wsdirect import RAW_SEND, direct_writer, text_frame


def parse(data: bytes) -> Frame:
    reader = StreamReader()
    reader.feed_data(data)
    parser = Frame.parse(reader.read_exact, mask=False)
    try:
        next(parser)
    except StopIteration as done:
        return done.value
    raise AssertionError("incomplete frame")


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65_535, 65_536, 200_000])
def test_text_frames_parse_back_at_every_length_encoding(size: int) -> None:
    payload = b"x" * size
    frame = parse(text_frame(payload))
    assert frame.opcode == Opcode.TEXT
    assert frame.fin
    assert frame.data == payload


def test_a_frame_is_built_once_per_payload_object() -> None:
    payload = b'{"type":"notification"}'
    assert text_frame(payload) is text_frame(payload)
    assert text_frame(bytes(payload)) == text_frame(payload)


class FakeTransport:
    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.buffered = 0
        self.closing = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def is_closing(self) -> bool:
        return self.closing


class WebSocketsSansIOProtocol:  # the name of uvicorn's protocol class
    def __init__(self) -> None:
        self.transport = FakeTransport()
        self.handshake_complete = True
        self.close_sent = False

    async def send(self, message: object) -> None:
        raise AssertionError("data frames must not go through ASGI send")


def test_the_writer_writes_frames_and_reports_a_client_that_fell_behind() -> None:
    protocol = WebSocketsSansIOProtocol()
    write = direct_writer({RAW_SEND: protocol.send}, limit=1000)
    assert write is not None
    assert write(b"hello")
    assert parse(protocol.transport.written[0]).data == b"hello"
    protocol.transport.buffered = 1001
    assert write(b"more") is False
    assert len(protocol.transport.written) == 1


def test_nothing_is_written_once_the_close_has_started() -> None:
    protocol = WebSocketsSansIOProtocol()
    write = direct_writer({RAW_SEND: protocol.send}, limit=1000)
    assert write is not None
    protocol.close_sent = True
    assert write(b"late")
    assert protocol.transport.written == []


def test_other_servers_fall_back_to_asgi_send() -> None:
    async def send(message: object) -> None: ...

    assert direct_writer({RAW_SEND: send}, limit=1000) is None
    assert direct_writer({}, limit=1000) is None
