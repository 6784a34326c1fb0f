"""A TCP proxy in front of a real tidings server that misbehaves on request.

Each new client connection takes the next fault from a queue (none: pass through):

- ``drop``: forward the request, wait until the server has answered (so it has
  processed it), then close the client's connection without a byte of the answer;
- ``bad_gateway``: forward the request, swallow the answer, reply 502 instead;
- ``busy``: do not forward; reply 429 with ``Retry-After: <seconds>``;
- ``unavailable``: do not forward; reply 503.
"""

from __future__ import annotations

import collections
import contextlib
import socket
import threading

FAULTS = ("drop", "bad_gateway", "busy", "unavailable")


class FaultProxy:
    def __init__(self, upstream_port: int, *, retry_after: str = "1") -> None:
        self.upstream = ("127.0.0.1", upstream_port)
        self.retry_after = retry_after
        self.faults: collections.deque[str] = collections.deque()
        self.connections = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._closed = False
        self._thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def inject(self, *faults: str) -> None:
        assert all(f in FAULTS for f in faults), faults
        self.faults.extend(faults)

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closed = True
        self._listener.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            fault = self.faults.popleft() if self.faults else None
            threading.Thread(target=self._serve, args=(client, fault), daemon=True).start()

    def _serve(self, client: socket.socket, fault: str | None) -> None:
        with client:
            client.settimeout(10)
            if fault in ("busy", "unavailable"):
                _read_request(client)
                status = "429 Too Many Requests" if fault == "busy" else "503 Service Unavailable"
                client.sendall(_reply(status, self.retry_after if fault == "busy" else None))
                return
            with socket.create_connection(self.upstream, timeout=10) as upstream:
                if fault is None:
                    _pipe_both(client, upstream)
                    return
                upstream.sendall(_read_request(client))
                upstream.recv(1)  # the server answered: it has processed the request
                if fault == "bad_gateway":
                    client.sendall(_reply("502 Bad Gateway", None))


def _read_request(sock: socket.socket) -> bytes:
    """One whole HTTP/1.1 request (headers and a Content-Length body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def _reply(status: str, retry_after: str | None) -> bytes:
    body = b'{"error": {"code": "proxy", "message": "injected by the fault proxy"}}'
    extra = f"Retry-After: {retry_after}\r\n" if retry_after else ""
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n{extra}"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


def _pipe_both(client: socket.socket, upstream: socket.socket) -> None:
    def pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while chunk := src.recv(65536):
                dst.sendall(chunk)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    other = threading.Thread(target=pump, args=(upstream, client), daemon=True)
    other.start()
    pump(client, upstream)
    other.join(10)
