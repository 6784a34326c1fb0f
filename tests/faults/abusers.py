"""Hostile clients, run as their own process so they do not share the measuring loop.

``python -m faults.abusers KIND --ws URL --token T [--tokens T1,T2] --seconds S --count N``
(with ``tests`` on ``PYTHONPATH``) attacks for ``S`` seconds and prints one JSON line of
figures. Kinds:

- ``ping-flood``: WebSocket ping control frames as fast as the socket takes them, never
  reading the pongs (a JSON pong now and then keeps the heartbeat happy).
- ``never-read``: connections that never read a byte while notifications flow to them;
  at the end, whether the server closed each (and with which code) or let it linger.
- ``list-flood``: connections of one user each sending ``list`` (limit 100) at ``--rate``
  per second, within the inbound limit, reading and dropping the replies.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import socket
import time
from collections import Counter
from typing import Any

import websockets
from websockets.client import ClientProtocol
from websockets.uri import parse_uri

RCVBUF = 4096


class RawClient:
    """A WebSocket client over a bare socket: framed by the sans-I/O protocol, buffered
    by nothing, so when it stops reading the server's buffers take the strain."""

    def __init__(self, url: str) -> None:
        self.uri = parse_uri(url)
        self.protocol = ClientProtocol(self.uri, max_size=None)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        self.sock.setblocking(False)
        self.sent = 0

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.sock_connect(self.sock, (self.uri.host, self.uri.port))
        self.protocol.send_request(self.protocol.connect())
        await self.flush()
        async with asyncio.timeout(5):
            while self.protocol.state.name == "CONNECTING":
                data = await loop.sock_recv(self.sock, 4096)
                if not data:
                    raise ConnectionError("closed during the handshake")
                self.protocol.receive_data(data)
        if self.protocol.handshake_exc is not None:
            raise self.protocol.handshake_exc

    async def flush(self) -> None:
        for chunk in self.protocol.data_to_send():
            if chunk:
                await asyncio.get_running_loop().sock_sendall(self.sock, chunk)
                self.sent += len(chunk)

    async def text(self, text: str) -> None:
        self.protocol.send_text(text.encode())
        await self.flush()

    async def ping(self, payload: bytes) -> None:
        self.protocol.send_ping(payload)
        await self.flush()

    async def fate(self, within: float = 8.0) -> str:
        """Read what is left: ``close <code>``, ``reset``, ``eof`` or ``lingering``."""
        loop = asyncio.get_running_loop()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)  # drain fast
        deadline = time.monotonic() + within
        try:
            while time.monotonic() < deadline:
                try:
                    data = await asyncio.wait_for(loop.sock_recv(self.sock, 1 << 16), 1.5)
                except TimeoutError:
                    return "lingering"  # nothing more comes, yet it is not closed
                if not data:
                    return "eof"
                with contextlib.suppress(Exception):
                    self.protocol.receive_data(data)
                if self.protocol.close_rcvd is not None:
                    return f"close {self.protocol.close_rcvd.code}"
            return "still sending"
        except OSError:
            return "reset"
        finally:
            self.sock.close()


async def ping_flood(ws: str, tokens: list[str], seconds: float, count: int) -> dict[str, Any]:
    clients = [RawClient(f"{ws}?token={tokens[n % len(tokens)]}") for n in range(count)]
    for client in clients:
        await client.open()
    ended: Counter[str] = Counter()

    async def flood(client: RawClient) -> None:
        last_pong = 0.0
        try:
            async with asyncio.timeout(seconds):  # a send may block: the server pushes back
                while True:
                    await client.ping(b"p" * 125)
                    if time.monotonic() - last_pong > 0.5:
                        await client.text('{"type":"pong"}')
                        last_pong = time.monotonic()
        except TimeoutError:
            pass
        except OSError as exc:
            ended[type(exc).__name__] += 1

    await asyncio.gather(*(flood(c) for c in clients))
    fates = Counter(await asyncio.gather(*(c.fate(2) for c in clients)))
    return {
        "sent_mib": round(sum(c.sent for c in clients) / 2**20, 1),
        "send_errors": dict(ended),
        "fates": dict(fates),
    }


async def never_read(ws: str, tokens: list[str], seconds: float, count: int) -> dict[str, Any]:
    clients = [RawClient(f"{ws}?token={tokens[n % len(tokens)]}") for n in range(count)]
    for client in clients:
        await client.open()

    async def keep_talking(client: RawClient) -> None:
        with contextlib.suppress(OSError, TimeoutError):
            async with asyncio.timeout(seconds):
                while True:
                    await client.text('{"type":"pong"}')
                    await asyncio.sleep(0.5)

    await asyncio.gather(*(keep_talking(c) for c in clients))
    fates = Counter(await asyncio.gather(*(c.fate() for c in clients)))
    return {"fates": dict(fates)}


async def list_flood(
    ws: str, tokens: list[str], seconds: float, count: int, rate: float
) -> dict[str, Any]:
    answered: Counter[str] = Counter()
    closes: Counter[str] = Counter()

    async def flood(n: int) -> None:
        url = f"{ws}?token={tokens[n % len(tokens)]}"
        try:
            async with websockets.connect(url, max_size=None, open_timeout=10) as conn:

                async def read() -> None:
                    async for raw in conn:
                        kind = json.loads(raw)["type"]
                        answered[kind] += 1
                        if kind == "ping":
                            await conn.send('{"type":"pong"}')

                reader = asyncio.create_task(read())
                began = time.monotonic()
                sent = 0
                while (elapsed := time.monotonic() - began) < seconds:
                    await conn.send(json.dumps({"type": "list", "limit": 100, "ref": sent}))
                    sent += 1
                    await asyncio.sleep(max(0.0, sent / rate - elapsed))
                reader.cancel()
                conn.transport.abort()  # hang up; no need to wait on a busy server
        except websockets.ConnectionClosed as exc:
            closes[str(exc.rcvd.code if exc.rcvd else None)] += 1
        except (OSError, websockets.InvalidStatus) as exc:
            closes[type(exc).__name__] += 1

    await asyncio.wait_for(asyncio.gather(*(flood(n) for n in range(count))), seconds + 20)
    return {"answered": dict(answered), "closed": dict(closes)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=["ping-flood", "never-read", "list-flood"])
    parser.add_argument("--ws", required=True)
    parser.add_argument("--tokens", required=True, help="comma-separated; used in turn")
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--rate", type=float, default=19)
    args = parser.parse_args()
    tokens = args.tokens.split(",")
    if args.kind == "ping-flood":
        result = ping_flood(args.ws, tokens, args.seconds, args.count)
    elif args.kind == "never-read":
        result = never_read(args.ws, tokens, args.seconds, args.count)
    else:
        result = list_flood(args.ws, tokens, args.seconds, args.count, args.rate)
    print(json.dumps(asyncio.run(result)), flush=True)


if __name__ == "__main__":
    main()
