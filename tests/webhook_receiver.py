"""A real HTTP receiver for webhook tests: a threaded server on loopback that records
every delivery and answers as told (a status, or hanging for a while)."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson

from tidings.webhooks import verify

HANG = -1
"""An answer that keeps the request open (for :attr:`Receiver.hang_seconds`) unanswered."""


@dataclass(frozen=True)
class Delivery:
    headers: dict[str, str]
    raw: bytes
    status: int
    """What the receiver answered (HANG: nothing)."""

    @property
    def body(self) -> dict[str, Any]:
        return orjson.loads(self.raw)

    def signed_with(self, secret: str) -> bool:
        return verify(secret, self.headers["tidings-signature"], self.raw, now=time.time())


class Receiver:
    """``with Receiver() as r:`` — ``r.url``; ``r.answers`` the statuses to give first."""

    def __init__(
        self,
        *answers: int,
        hang_seconds: float = 5.0,
        port: int = 0,
        first_attempts: int | None = None,
    ) -> None:
        self.answers: deque[int] = deque(answers)
        self.first_attempts = first_attempts
        """If set, the answer to each event's first delivery (the later ones get 200)."""
        self._seen: set[str] = set()
        self.default = 200
        self.hang_seconds = hang_seconds
        self.deliveries: list[Delivery] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length)
                if len(raw) < length:  # the sender died mid-request (kill -9)
                    return
                status = receiver._next_answer(raw)
                headers = {k.lower(): v for k, v in self.headers.items()}
                with receiver._lock:
                    receiver.deliveries.append(Delivery(headers, raw, status))
                if status == HANG:
                    time.sleep(receiver.hang_seconds)
                    return
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def _next_answer(self, raw: bytes) -> int:
        with self._lock:
            if self.first_attempts is not None:
                event_id = orjson.loads(raw)["id"]
                first = event_id not in self._seen
                self._seen.add(event_id)
                return self.first_attempts if first else self.default
            return self.answers.popleft() if self.answers else self.default

    def accepted(self, event_type: str | None = None) -> list[dict[str, Any]]:
        """Bodies of deliveries answered 2xx, in arrival order (of one type, if given)."""
        with self._lock:
            found = [d.body for d in self.deliveries if 200 <= d.status < 300]
        return [b for b in found if event_type is None or b["type"] == event_type]

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
