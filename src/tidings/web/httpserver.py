"""uvicorn's HTTP/1.1 protocol, answering unparsable requests with our JSON error body.

A request uvicorn cannot parse (a control character in a header, a malformed
``Content-Length``) never reaches the ASGI app: uvicorn answers it 400 itself, in plain
text. :class:`HttpProtocol` writes that 400 as ``{"error": {"code", "message"}}`` like
every other error. It overrides one method of uvicorn's httptools protocol,
``send_400_response``; ``tests/test_api_input.py`` fails if uvicorn renames it.
``tidings serve`` runs it (``http=PROTOCOL``).
"""

from __future__ import annotations

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

PROTOCOL = "tidings.web.httpserver:HttpProtocol"
"""What ``uvicorn.run(http=...)`` takes to use this protocol."""


class HttpProtocol(HttpToolsProtocol):
    def send_400_response(self, msg: str) -> None:
        body = orjson.dumps({"error": {"code": "bad_request", "message": msg}})
        head = [b"HTTP/1.1 400 Bad Request\r\n"]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head += [
            b"content-type: application/json\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n\r\n",
        ]
        self.transport.write(b"".join(head) + body)
        self.transport.close()
