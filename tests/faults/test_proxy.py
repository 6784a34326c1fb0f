"""The partition proxy itself: it forwards, cuts (reset or blackhole) and heals."""

from __future__ import annotations

import asyncio

import pytest

from faults.proxy import TcpProxy


@pytest.fixture
async def echo() -> asyncio.Server:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(1024):
            writer.write(data)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    yield server
    server.close()


async def roundtrip(port: int, payload: bytes = b"hello", within: float = 1) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(payload)
        await writer.drain()
        async with asyncio.timeout(within):
            return await reader.readexactly(len(payload))
    finally:
        writer.transport.abort()


async def test_forwards_cuts_and_heals(echo: asyncio.Server) -> None:
    proxy = await TcpProxy(echo.sockets[0].getsockname()[1]).start()
    try:
        assert await roundtrip(proxy.port) == b"hello"
        proxy.cut("reset")
        with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
            await roundtrip(proxy.port)
        proxy.heal()
        assert await roundtrip(proxy.port) == b"hello"
    finally:
        await proxy.close()


async def test_a_blackhole_holds_bytes_until_healed(echo: asyncio.Server) -> None:
    proxy = await TcpProxy(echo.sockets[0].getsockname()[1]).start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(b"one")
        assert await asyncio.wait_for(reader.readexactly(3), 1) == b"one"
        proxy.cut("blackhole")
        writer.write(b"two")
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reader.readexactly(3), 0.3)
        proxy.heal()
        assert await asyncio.wait_for(reader.readexactly(3), 1) == b"two"
        writer.transport.abort()
    finally:
        await proxy.close()
