"""A webhook receiver for trying tidings out: verifies each delivery and prints it.

    TIDINGS_WEBHOOK_SECRET=... python examples/webhook_receiver.py [port]

Standard library only. Answers 204 to a correctly signed delivery, 401 otherwise
(tidings does not retry a 401: see "Webhooks" in the README).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

SECRET = os.environ["TIDINGS_WEBHOOK_SECRET"]


def verify(secret: str, header: str, body: bytes, tolerance: int = 300) -> bool:
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    signed = f"{fields.get('t')}.".encode() + body
    expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    fresh = fields.get("t", "").isdigit() and abs(time.time() - int(fields["t"])) <= tolerance
    return fresh and hmac.compare_digest(expected, fields.get("v1", ""))


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if not verify(SECRET, self.headers.get("Tidings-Signature", ""), body):
            print("refused: bad signature", flush=True)
            self.send_response(401)
        else:
            event = json.loads(body)
            print(event["type"], json.dumps(event["data"]), flush=True)
            self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 9000
    print(f"listening on http://127.0.0.1:{port}/", flush=True)
    HTTPServer(("127.0.0.1", port), Receiver).serve_forever()
