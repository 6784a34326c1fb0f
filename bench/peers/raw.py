"""The practical ceiling: a minimal uvloop server speaking just enough HTTP and WebSocket.

Accepts the same JWT-authenticated ``/ws`` connections and the same
``POST /api/v1/notifications`` as tidings, keeps no storage, encodes each notification
frame once and writes it straight to every recipient's transport.

Topics, for :mod:`bench.topics`: the ``subscribe`` and ``publish`` frames of the
protocol (no permissions, filters, budget or replay). A published message gets an id
and a time, is kept in a bounded history, and goes to the topic's subscribers with
the least work a fan-out can do: messages are gathered until the end of the event
loop's iteration (``--linger-ms 0``: what arrived together, e.g. during the previous
fan-out, goes together) or until ``linger`` after the topic's previous fan-out, and
go out as one frame (a ``batch`` frame for several), encoded once and written to each
subscriber. A message after a quiet spell thus goes out at once.

Run: ``python -m bench.peers.raw --port 8100 [--linger-ms 5]`` with
``TIDINGS_JWT_SECRET`` and ``TIDINGS_API_KEYS`` in the environment.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import time
from collections import deque
from urllib.parse import parse_qs, urlsplit

import jwt
import orjson

from bench import wsframes

try:
    import uvloop
except ImportError:  # pragma: no cover
    uvloop = None  # type: ignore[assignment]


HISTORY = 1000
"""Messages kept per topic (tidings' default ``TIDINGS_TOPIC_HISTORY``)."""


class Topic:
    """Subscribers, history and the messages gathered for the next fan-out."""

    __slots__ = ("gathered", "history", "last", "subscribers")

    def __init__(self) -> None:
        self.subscribers: set[Conn] = set()
        self.history: deque[bytes] = deque(maxlen=HISTORY)
        self.gathered: list[bytes] | None = None
        self.last = 0.0


class Hub:
    """Connections by user, plus everyone; topics by name."""

    def __init__(self, secret: str, api_keys: set[str], linger: float = 0.0) -> None:
        self.linger = linger
        self.topics: dict[str, Topic] = {}
        self.seq = 0
        self.secret = secret
        self.api_keys = {f"Bearer {k}".encode() for k in api_keys}
        self.users: dict[str, set[Conn]] = {}
        self.everyone: set[Conn] = set()
        self.ids = itertools.count(1)

    def add(self, conn: Conn) -> None:
        self.users.setdefault(conn.user, set()).add(conn)
        self.everyone.add(conn)

    def remove(self, conn: Conn) -> None:
        self.everyone.discard(conn)
        for topic in self.topics.values():
            topic.subscribers.discard(conn)
        group = self.users.get(conn.user)
        if group is not None:
            group.discard(conn)
            if not group:
                del self.users[conn.user]

    def publish(self, body: bytes) -> bytes:
        """Fan a create request out; return the 201 response body."""
        req = orjson.loads(body)
        ident = f"{next(self.ids):016x}"
        note = {
            "id": ident,
            "type": req.get("type", ""),
            "level": req.get("level", "info"),
            "title": req.get("title", ""),
            "body": req.get("body", ""),
            "data": req.get("data", {}),
            "url": req.get("url"),
            "actor": req.get("actor"),
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "read_at": None,
        }
        frame = wsframes.server_frame(orjson.dumps({"type": "notification", "notification": note}))
        to = req.get("to", {})
        if to.get("all"):
            targets: set[Conn] | list[Conn] = self.everyone
        else:
            targets = [c for u in to.get("users", ()) for c in self.users.get(u, ())]
        for conn in targets:
            conn.transport.write(frame)
        return orjson.dumps(note)

    def subscribe(self, conn: Conn, name: str) -> None:
        topic = self.topics.get(name)
        if topic is None:
            topic = self.topics[name] = Topic()
        topic.subscribers.add(conn)

    def publish_topic(self, name: str, user: str, data: object) -> None:
        """Stamp, keep and fan out one message (see the module docstring)."""
        topic = self.topics.get(name)
        if topic is None:
            topic = self.topics[name] = Topic()
        ms = int(time.time() * 1000)
        self.seq += 1
        message = (
            b'{"type":"message","topic":'
            + orjson.dumps(name)
            + b',"id":"'
            + f"{ms}-{self.seq}".encode()
            + b'","ts":'
            + str(ms).encode()
            + b',"user":'
            + orjson.dumps(user)
            + b',"data":'
            + orjson.dumps(data)
            + b"}"
        )
        topic.history.append(message)
        if topic.gathered is not None:
            topic.gathered.append(message)
            return
        topic.gathered = [message]
        wait = topic.last + self.linger - time.monotonic()
        loop = asyncio.get_running_loop()
        if wait > 0:
            loop.call_later(wait, self._fan_gathered, topic)
        else:
            loop.call_soon(self._fan_gathered, topic)

    def _fan_gathered(self, topic: Topic) -> None:
        messages, topic.gathered = topic.gathered or [], None
        topic.last = time.monotonic()
        if len(messages) == 1:
            self._fan(topic, messages[0])
        else:
            batch = b'{"type":"batch","messages":[' + b",".join(messages) + b'],"skipped":0}'
            self._fan(topic, batch)

    @staticmethod
    def _fan(topic: Topic, payload: bytes) -> None:
        frame = wsframes.server_frame(payload)
        for conn in topic.subscribers:
            conn.transport.write(frame)


def response(status: str, body: bytes = b"", ctype: bytes = b"application/json") -> bytes:
    return (
        f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n".encode()
        + b"Content-Type: "
        + ctype
        + b"\r\n\r\n"
        + body
    )


class Conn(asyncio.Protocol):
    """An HTTP keep-alive connection that may upgrade to WebSocket."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.buf = bytearray()
        self.ws = False
        self.user = ""
        self.transport: asyncio.Transport = None  # type: ignore[assignment]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        if self.ws:
            self.hub.remove(self)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.ws:
            self._frames()
        else:
            self._http()

    def _frames(self) -> None:
        frames, used = wsframes.parse(self.buf)
        del self.buf[:used]
        for op, _payload in frames:
            if op == wsframes.OP_TEXT:
                with contextlib.suppress(orjson.JSONDecodeError):
                    req = orjson.loads(_payload)
                    if isinstance(req, dict):
                        self._request(req)
            elif op == wsframes.OP_CLOSE:
                self.transport.write(wsframes.server_frame(b"\x03\xe8", wsframes.OP_CLOSE))
                self.transport.close()
            elif op == wsframes.OP_PING:
                self.transport.write(wsframes.server_frame(_payload, wsframes.OP_PONG))

    def _request(self, req: dict[str, object]) -> None:
        kind = req.get("type")
        if kind == "subscribe":
            self.hub.subscribe(self, str(req["topic"]))
        elif kind == "publish":
            self.hub.publish_topic(str(req["topic"]), self.user, req.get("data"))
        else:
            return
        ack = {"type": "ack", "ref": req["ref"]} if "ref" in req else {"type": "ack"}
        self.transport.write(wsframes.server_frame(orjson.dumps(ack)))

    def _http(self) -> None:
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buf[:end])
            lines = head.split(b"\r\n")
            method, target, _ = lines[0].split(b" ", 2)
            headers = {}
            for line in lines[1:]:
                k, _, v = line.partition(b":")
                headers[k.strip().lower()] = v.strip()
            length = int(headers.get(b"content-length", b"0"))
            if len(self.buf) < end + 4 + length:
                return
            body = bytes(self.buf[end + 4 : end + 4 + length])
            del self.buf[: end + 4 + length]
            if self._route(method, target.decode(), headers, body):
                return

    def _route(self, method: bytes, target: str, headers: dict[bytes, bytes], body: bytes) -> bool:
        """Answer one request; True when the connection became a WebSocket."""
        url = urlsplit(target)
        if method == b"GET" and url.path == "/readyz":
            self.transport.write(response("200 OK", b'{"status":"ok"}'))
        elif method == b"POST" and url.path == "/api/v1/notifications":
            if headers.get(b"authorization") not in self.hub.api_keys:
                self.transport.write(response("401 Unauthorized", b'{"error":{"code":"auth"}}'))
            else:
                self.transport.write(response("201 Created", self.hub.publish(body)))
        elif method == b"GET" and url.path == "/ws" and b"sec-websocket-key" in headers:
            token = parse_qs(url.query).get("token", [""])[0]
            try:
                claims = jwt.decode(token, self.hub.secret, algorithms=["HS256"])
                self.user = str(claims["sub"])
            except (jwt.PyJWTError, KeyError):
                self.transport.write(response("403 Forbidden"))
                self.transport.close()
                return True
            accept = wsframes.accept_key(headers[b"sec-websocket-key"])
            self.transport.write(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Accept: "
                + accept
                + b"\r\n\r\n"
                + wsframes.server_frame(orjson.dumps({"type": "welcome", "user": self.user}))
            )
            self.ws = True
            self.hub.add(self)
            if self.buf:
                self._frames()
            return True
        else:
            self.transport.write(response("404 Not Found", b'{"error":{"code":"not_found"}}'))
        return False


async def serve(host: str, port: int, linger: float = 0.0) -> None:
    hub = Hub(
        os.environ.get("TIDINGS_JWT_SECRET", "secret"),
        {k for k in os.environ.get("TIDINGS_API_KEYS", "key").split(",") if k},
        linger,
    )
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Conn(hub), host, port, backlog=4096)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--linger-ms", type=float, default=0.0, help="topic gathering")
    args = parser.parse_args()
    if uvloop is not None:
        uvloop.install()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.host, args.port, args.linger_ms / 1000))


if __name__ == "__main__":
    main()
