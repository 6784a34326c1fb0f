"""The example project end to end: a real tidings server, the Django project running as
its own process (runserver), people signing in and changing demandes over HTTP, and the
notifications read back through tidings' API with the token the project hands out."""

from __future__ import annotations

import re

import httpx
from example_site import inbox, post, sign_in


def test_changes_to_a_demande_reach_the_people_concerned(site):
    coach, alice = sign_in(site, "coach"), sign_in(site, "alice")
    page = coach.get("/").text
    alice_id = re.search(r'<option value="(\d+)">alice</option>', page).group(1)

    created = post(coach, "/", title="Pitch deck", description="Review slides", assignee=alice_id)
    assert inbox(alice)[0]["title"] == "coach assigned you “Pitch deck”"
    assert inbox(alice)[0]["url"].startswith("/demandes/")

    post(coach, created.headers["location"], status="approved", assignee=alice_id)
    titles = [item["title"] for item in inbox(alice)]
    assert titles == ["“Pitch deck” is now Approved", "coach assigned you “Pitch deck”"]
    assert all("Pitch deck" not in item["title"] for item in inbox(coach))  # the editor is not told


def test_staff_broadcast_reaches_everyone_and_the_group(site):
    coach, bob = sign_in(site, "coach"), sign_in(site, "bob")
    post(coach, "/broadcast/", title="Demo day on Friday", body="", level="info", group="")
    post(coach, "/broadcast/", title="Coaches meet at 9", body="", level="info", group="coaches")
    assert [item["title"] for item in inbox(bob)][:1] == ["Demo day on Friday"]
    assert [item["title"] for item in inbox(coach)][:2] == ["Coaches meet at 9",
                                                           "Demo day on Friday"]  # fmt: skip


def test_pages_show_the_bell(site):
    alice = sign_in(site, "alice")
    page = alice.get("/").text
    assert "<tidings-bell" in page and "/static/tidings-bell.js" in page
    assert "<tidings-bell" not in httpx.get(f"{site}/login/").text


def test_only_staff_may_broadcast(site):
    bob = sign_in(site, "bob")
    form = {"title": "x", "level": "info", "csrfmiddlewaretoken": bob.cookies["csrftoken"]}
    response = bob.post("/broadcast/", data=form)
    assert response.status_code == 302 and "/login/" in response.headers["location"]
    assert all(item["title"] != "x" for item in inbox(bob))
