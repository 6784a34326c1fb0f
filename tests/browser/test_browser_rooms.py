"""Topics as rooms in a real browser: the /demo/logs viewer and two browsers in one room."""

from __future__ import annotations

from typing import Any

import httpx
from browser_helpers import API_KEY, Server, serve_client_files

USERS = "[...document.querySelectorAll('#users li')].map((l) => l.textContent).join()"


def lines(page: Any) -> list[dict[str, str]]:
    return list(
        page.evaluate(
            "[...document.querySelectorAll('#lines div')]"
            ".map((d) => ({...d.dataset, text: d.textContent}))"
        )
    )


def wait_lines(page: Any, condition: str, timeout: float = 15_000) -> None:
    page.wait_for_function(
        "(() => { const rows = [...document.querySelectorAll('#lines div')]"
        f".map((d) => d.dataset); return {condition}; }})()",
        timeout=timeout,
    )


def test_the_log_viewer_opens_on_history_filters_live_and_follows_every_source(
    context: Any, server: Server
) -> None:
    for n in range(30):  # history from before the page opened, on several topics
        source = ("api", "db", "web")[n % 3]
        level = "error" if n % 5 == 0 else "info"
        server.publish(
            f"logs.{source}", {"level": level, "source": source, "env": "prod", "msg": f"old {n}"}
        )
    page = context.new_page()
    serve_client_files(page, server)
    page.goto(f"{server.url}/demo/logs")
    page.wait_for_function("window.tidings?.status === 'open'", timeout=20_000)
    wait_lines(page, "rows.length === 30")
    shown = lines(page)
    assert [row["text"].rsplit(" ", 1)[-1] for row in shown] == [str(n) for n in range(30)]
    assert {row["source"] for row in shown} == {"api", "db", "web"}  # logs.* follows all

    # Only errors: the filter runs on the server and the history is replayed through it.
    for level in ("debug", "info", "warning"):
        page.uncheck(f"#levels input[value={level}]")
    wait_lines(page, "rows.length === 6 && rows.every((r) => r.level === 'error')")
    server.publish(
        "logs.worker", {"level": "info", "source": "worker", "env": "prod", "msg": "skip"}
    )
    server.publish(
        "logs.worker", {"level": "error", "source": "worker", "env": "prod", "msg": "live"}
    )
    wait_lines(page, "rows.length === 7 && rows[6].source === 'worker'")

    # One source, one environment.
    page.check("#levels input[value=info]")
    page.select_option("#source", "db")
    wait_lines(page, "rows.length === 10 && rows.every((r) => r.source === 'db')")
    page.select_option("#env", "staging")
    wait_lines(page, "rows.length === 0")
    server.publish("logs.db", {"level": "info", "source": "db", "env": "staging", "msg": "staged"})
    wait_lines(page, "rows.length === 1 && rows[0].env === 'staging'")

    # The synthetic source floods every topic: the viewer keeps up, coalescing the excess.
    page.select_option("#source", "*")
    page.select_option("#env", "")
    page.click("#flood")
    page.wait_for_function(
        "Number(document.getElementById('skipped').textContent) > 0", timeout=20_000
    )
    assert page.locator("#status").inner_text() == "open"


def test_two_browsers_in_one_room_see_each_other(browser: Any, server: Server) -> None:
    room = "room.project-7"
    pages = []
    contexts = [browser.new_context(), browser.new_context()]
    try:
        for name, ctx in zip(("ann", "bob"), contexts, strict=True):
            page = ctx.new_page()
            serve_client_files(page, server)
            page.goto(f"{server.url}/demo/room?user={name}&room={room}")
            page.wait_for_function("window.tidings?.status === 'open'", timeout=20_000)
            pages.append(page)
        ann, bob = pages
        for page in pages:
            page.wait_for_function(
                f"{USERS} === 'ann,bob'",
                timeout=15_000,
            )
        ann.fill("#text", "hello from ann")
        ann.click("[data-testid=send]")
        bob.fill("#text", "hi ann")
        bob.click("[data-testid=send]")
        for page in pages:
            page.wait_for_function(
                "document.querySelectorAll('#messages div').length === 2", timeout=15_000
            )
            assert page.locator("#messages div").all_inner_texts() == [
                "annhello from ann",
                "bobhi ann",
            ]
        presence = httpx.get(
            f"{server.url}/api/v1/topics/{room}/presence",
            headers={"Authorization": f"Bearer {API_KEY}"},
            timeout=10,
        ).json()
        assert presence == {"users": ["ann", "bob"]}
        contexts[1].close()  # bob leaves
        ann.wait_for_function(
            f"{USERS} === 'ann'",
            timeout=15_000,
        )
    finally:
        for ctx in contexts:
            ctx.close()
