"""Helpers for the browser tests: a real ``tidings serve`` process and a real Chromium.

Chromium comes from the system (``/usr/bin/chromium``), never from Playwright's download;
the ``chromium`` fixture installs the Debian package when it is missing. Each test gets
its own server (fresh SQLite file, free port) and a page that loads ``tidings.js`` and
``<tidings-bell>`` from that server's ``/static``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import jwt

ROOT = Path(__file__).resolve().parents[2]
CLIENT_DIR = ROOT / "clients" / "js"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SECRET = "browser-test-secret-that-is-long-enough-for-hs256"
API_KEY = "browser-test-api-key"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# Fast reconnects so a test does not wait out production backoff.
FAST = {"backoff": {"base": 200, "cap": 1500}, "connectTimeout": 4000}


# -- Chromium ---------------------------------------------------------------------------


def ensure_chromium() -> str:
    """Return the system Chromium, installing the Debian package if it is missing."""
    if os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    apt = shutil.which("apt-get")
    if apt is None:
        raise RuntimeError(f"{CHROMIUM} is missing and apt-get is not available")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [apt, "install", "-y", "--no-install-recommends", "chromium"]
    if subprocess.run(install, env=env, capture_output=True).returncode != 0:
        subprocess.run([apt, "update"], env=env, capture_output=True, check=True)
        subprocess.run(install, env=env, capture_output=True, check=True)
    if not os.access(CHROMIUM, os.X_OK):
        raise RuntimeError(f"installed chromium but {CHROMIUM} is still missing")
    return CHROMIUM


# -- the server -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """``tidings serve`` as a subprocess that tests can kill and start again."""

    def __init__(
        self,
        workdir: Path,
        *,
        port: int | None = None,
        db: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.workdir = workdir
        self.extra_env = env or {}
        self.port = port or free_port()
        self.db = db or workdir / "t.db"
        self.process: subprocess.Popen[bytes] | None = None
        self.log = workdir / f"server-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> Server:
        env = {
            **os.environ,
            "TIDINGS_DATABASE_URL": f"sqlite+aiosqlite:///{self.db}",
            "TIDINGS_JWT_SECRET": SECRET,
            "TIDINGS_API_KEYS": API_KEY,
            "TIDINGS_DEV": "true",
            "TIDINGS_ALLOWED_ORIGINS": "*",
            "TIDINGS_HEARTBEAT": "5",
            **self.extra_env,
        }
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [str(ROOT / ".venv" / "bin" / "tidings"), "serve", "--port", str(self.port)],
                cwd=self.workdir,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server did not start: {self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL: no close frames, no goodbyes; clients see the connection vanish."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def publish(self, topic: str, data: Any) -> None:
        """Publish an ephemeral topic message through the backend API."""
        response = httpx.post(
            f"{self.url}/api/v1/topics/{topic}/messages",
            json={"data": data},
            headers={"Authorization": f"Bearer {API_KEY}"},
            timeout=10,
        )
        assert response.status_code in (200, 202), response.text

    def pause(self) -> None:
        """SIGSTOP: sockets stay open but nothing answers (a half-open connection)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def notify(
        self, *, to: dict[str, Any] | None = None, user: str = "alice", **fields: Any
    ) -> dict[str, Any]:
        """Create a notification through the backend API (API key)."""
        body: dict[str, Any] = {"to": to or {"users": [user]}, "type": "test", "level": "info"}
        body.update(fields)
        response = httpx.post(
            f"{self.url}/api/v1/notifications",
            json=body,
            headers={"Authorization": f"Bearer {API_KEY}"},
            timeout=10,
        )
        assert response.status_code in (200, 201, 202), response.text
        data: dict[str, Any] = response.json()
        return data


def token(
    user: str, roles: list[str] | None = None, ttl: int = 3600, topics: list[str] | None = None
) -> str:
    claims: dict[str, Any] = {"sub": user, "roles": roles or [], "exp": int(time.time()) + ttl}
    if topics:
        claims["topics"] = topics
    return jwt.encode(claims, SECRET, algorithm="HS256")


def notification_id(created: dict[str, Any]) -> str:
    """The id from a create response, whatever its exact shape."""
    for key in ("id", "notification_id"):
        if isinstance(created.get(key), str):
            return str(created[key])
    inner = created.get("notification")
    if isinstance(inner, dict) and isinstance(inner.get("id"), str):
        return str(inner["id"])
    raise AssertionError(f"no id in {created}")


# -- pages ------------------------------------------------------------------------------

HARNESS_STYLE = """body { margin: 0; padding: 24px 24px 24px 420px; font-family: system-ui; }
.bar { display: flex; gap: 12px; justify-content: flex-end; }"""

HARNESS_MODULE = """
import { Tidings } from '/static/tidings.js';
import '/static/tidings-bell.js';
const cfg = JSON.parse(document.getElementById('cfg').textContent);
window.__events = { notification: [], status: [], unread: [] };
window.__events.tokens = 0;
if (cfg.devTokenTtls) {
  // getToken from the dev endpoint, with the given lifetimes in turn (the last repeats).
  cfg.options.getToken = async () => {
    const ttl = cfg.devTokenTtls[Math.min(window.__events.tokens, cfg.devTokenTtls.length - 1)];
    window.__events.tokens += 1;
    const response = await fetch('/api/v1/dev/token', {
      method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ user: cfg.user, ttl }),
    });
    return (await response.json()).token;
  };
}
const client = new Tidings({ token: cfg.options.getToken ? undefined : cfg.token, ...cfg.options });
client.on('notification', (n) => window.__events.notification.push(n.id));
client.on('status', (s) => window.__events.status.push(s));
client.on('unread', (c) => window.__events.unread.push(c));
window.__events.closes = [];
client.on('disconnect', (d) => window.__events.closes.push(d.code));
for (const bell of document.querySelectorAll('tidings-bell')) bell.client = client;
window.client = client;
"""

BUILD_PAGE = """([style, body, module]) => {
  document.head.innerHTML = '<meta charset="utf-8"><title>tidings harness</title>';
  const css = document.createElement('style');
  css.textContent = style;
  document.head.append(css);
  document.body.innerHTML = body;
  const script = document.createElement('script');
  script.type = 'module';
  script.textContent = module;
  document.body.append(script);
}"""


def serve_client_files(page: Any, server: Server, origin: str | None = None) -> None:
    """Serve /static/tidings*.js from the server, or from clients/js if it cannot.

    ``test_static_client_files_are_served`` checks the server itself serves them; here a
    server-side static problem must not hide whether the client works.
    """

    def handle(route: Any) -> None:
        name = route.request.url.rsplit("/", 1)[-1].split("?")[0]
        try:
            response = route.fetch()
            if response.status == 200:
                route.fulfill(response=response)
                return
        except Exception:  # the server may be down on purpose
            pass
        path = CLIENT_DIR / name
        if path.is_file():
            route.fulfill(path=str(path), content_type="text/javascript")
        else:
            route.abort()

    page.route(f"{origin or server.url}/static/tidings*.js", handle)


def open_harness(
    context: Any,
    server: Server,
    *,
    user: str = "alice",
    roles: list[str] | None = None,
    bells: str = '<tidings-bell id="bell"></tidings-bell>',
    options: dict[str, Any] | None = None,
    wait_status: str | None = "open",
    origin: str | None = None,
    dev_token_ttls: list[int] | None = None,
    topics: list[str] | None = None,
) -> Any:
    """A page with one client (``window.client``) and the bell.

    The page is on the server's origin unless ``origin`` names another (then the client
    is pointed at the server with its ``url`` option: a cross-origin embedding).
    """
    page = context.new_page()
    if origin:
        options = {"url": server.url, **(options or {})}
    cfg: dict[str, Any] = {
        "token": token(user, roles, topics=topics),
        "user": user,
        "devTokenTtls": dev_token_ttls,
        "options": {**FAST, **(options or {})},
    }
    body = (
        f'<div class="bar">{bells}</div>'
        f'<script id="cfg" type="application/json">{json.dumps(cfg)}</script>'
    )
    serve_client_files(page, server, origin)
    # Build the page inside a real document from the server. A document fulfilled by a
    # Playwright route has no IP address space, so Chromium's local-network-access checks
    # refuse its WebSocket to 127.0.0.1; and document.write (set_content) leaves custom
    # elements un-upgraded. DOM calls on a served page have neither problem.
    page.goto(f"{origin or server.url}/healthz")
    page.evaluate(BUILD_PAGE, [HARNESS_STYLE, body, HARNESS_MODULE])
    if wait_status:
        wait_status_is(page, wait_status)
        if wait_status != "closed":
            page.wait_for_function("window.client.loaded")
    return page


def wait_status_is(page: Any, status: str, timeout: float = 20_000) -> None:
    script = f"window.client && window.client.status === {json.dumps(status)}"
    page.wait_for_function(script, timeout=timeout)
