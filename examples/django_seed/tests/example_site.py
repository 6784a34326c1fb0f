"""Helpers of the example's tests: a real tidings server and the project running as its
own process (``runserver``), configured as ``./run`` configures them; people signing in."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(HERE.parents[1] / "tests"))

from realtime_helpers import API_KEY, SECRET, ServerProcess, free_port, port_open  # noqa: E402


@contextlib.contextmanager
def running_site(workdir: Path) -> Iterator[str]:
    """The tidings server and the example project, configured as ``./run`` does."""
    port = free_port()
    server = ServerProcess(workdir, TIDINGS_ALLOWED_ORIGINS=f"http://127.0.0.1:{port}").start()
    try:  # whatever fails below, the tidings server stops with it
        yield from _django_site(workdir, port, server.http)
    finally:
        server.stop()


def _django_site(workdir: Path, port: int, tidings_url: str) -> Iterator[str]:
    env = {
        **os.environ,
        "TIDINGS_URL": tidings_url,
        "TIDINGS_API_KEY": API_KEY,
        "TIDINGS_JWT_SECRET": SECRET,
        "EXAMPLE_DATABASE": str(workdir / "example.sqlite3"),
        "PYTHONUNBUFFERED": "1",
    }

    def manage(*args: str) -> None:
        subprocess.run([sys.executable, "manage.py", *args], cwd=HERE, env=env, check=True,
                       capture_output=True, timeout=60)  # fmt: skip

    manage("migrate", "--verbosity", "0")
    manage("seed_demo")
    manage("tidings_templates")
    log = (workdir / "django.log").open("wb")
    django = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
        cwd=HERE, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while not port_open(port):
            assert django.poll() is None and time.monotonic() < deadline, "Django did not start"
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        django.terminate()
        django.wait(10)
        log.close()


def sign_in(site: str, username: str) -> httpx.Client:
    http = httpx.Client(base_url=site, timeout=10)
    http.get("/login/")
    response = http.post(
        "/login/",
        data={"username": username, "password": "demo",
              "csrfmiddlewaretoken": http.cookies["csrftoken"]},
    )  # fmt: skip
    assert response.status_code == 302, response.text
    return http


def post(http: httpx.Client, path: str, **data: str) -> httpx.Response:
    response = http.post(path, data={**data, "csrfmiddlewaretoken": http.cookies["csrftoken"]})
    assert response.status_code == 302, response.text
    return response


def inbox(http: httpx.Client) -> list[dict]:
    """The signed-in user's notifications, from tidings, with the project's token."""
    grant = http.get("/tidings/token/").json()
    page = httpx.get(
        f"{grant['url']}/api/v1/me/notifications",
        headers={"Authorization": f"Bearer {grant['token']}"},
    ).json()
    return page["items"]
