"""The Django integration with real Django (in-memory SQLite) and a real tidings server."""

from __future__ import annotations

import jwt
import pytest
from django.contrib.auth.models import Group, User
from django.db import transaction
from django.test import AsyncClient, Client, override_settings
from django_app.models import Task
from tidings_client import InvalidRequest, Tidings
from tidings_client.django import (
    anotify_on_commit,
    event_on_commit,
    event_on_save,
    notify_on_commit,
    notify_on_save,
)

pytestmark = pytest.mark.usefixtures("django_db", "server")


@pytest.fixture
def tidings(server, credentials):
    with Tidings(server.http, **credentials) as client:
        yield client


def titles(tidings, user):
    return [item["title"] for item in tidings.list(user)["items"]]


def test_sent_after_the_transaction_commits(tidings, user):
    with transaction.atomic():
        notify_on_commit(to={"users": [user]}, title="committed")
        assert titles(tidings, user) == []  # not before the commit
    assert titles(tidings, user) == ["committed"]


def test_never_sent_on_rollback(tidings, user):
    with pytest.raises(RuntimeError), transaction.atomic():
        notify_on_commit(to={"users": [user]}, title="rolled back")
        raise RuntimeError
    assert titles(tidings, user) == []


def test_nested_atomic_sends_what_its_savepoints_kept(tidings, user):
    with transaction.atomic():
        notify_on_commit(to={"users": [user]}, title="outer")
        try:
            with transaction.atomic():
                notify_on_commit(to={"users": [user]}, title="inner, rolled back")
                raise RuntimeError
        except RuntimeError:
            pass
        with transaction.atomic():
            notify_on_commit(to={"users": [user]}, title="inner, kept")
    assert titles(tidings, user) == ["inner, kept", "outer"]


def test_bad_input_raises_at_the_call_not_after_the_commit():
    with pytest.raises(InvalidRequest), transaction.atomic():
        notify_on_commit(to={}, title="nobody")


async def test_from_async_code(tidings, user):
    await anotify_on_commit(to={"users": [user]}, title="from async")
    assert titles(tidings, user) == ["from async"]


def test_notify_on_save(tidings, user):
    assignee = User.objects.create(username=user)
    receiver = notify_on_save(
        Task,
        to=lambda task, created: {"users": [task.assignee.username]} if task.assignee else {},
        title=lambda task, created: f"{task.name} {'assigned' if created else 'changed'}",
        type="task.assigned",
        data=lambda task, created: {"task": task.pk},
    )
    try:
        Task.objects.create(name="nobody's")
        with transaction.atomic():
            task = Task.objects.create(name="Write docs", assignee=assignee)
        task.name = "Write more docs"
        task.save()
        with pytest.raises(RuntimeError), transaction.atomic():
            task.save()
            raise RuntimeError
    finally:
        from django.db.models.signals import post_save

        post_save.disconnect(receiver, sender=Task)
    items = tidings.list(user)["items"]
    assert [i["title"] for i in items] == ["Write more docs changed", "Write docs assigned"]
    assert items[0]["data"] == {"task": task.pk} and items[0]["type"] == "task.assigned"


def test_events_render_the_types_template_after_the_commit(tidings, user):
    kind = "task.done-" + user
    tidings.put_template(kind, title="{{ task }} is done")
    assignee = User.objects.create(username=user)
    receiver = event_on_save(
        Task,
        type=kind,
        to=lambda task, created: {"users": [task.assignee.username]},
        data=lambda task, created: {"task": task.name},
        on="update",
    )
    try:
        task = Task.objects.create(name="Docs", assignee=assignee)  # a creation: nothing
        with transaction.atomic():
            task.save()
            event_on_commit(type=kind, to={"users": [user]}, data={"task": "Tests"})
    finally:
        from django.db.models.signals import post_save

        post_save.disconnect(receiver, sender=Task)
    assert sorted(titles(tidings, user)) == ["Docs is done", "Tests is done"]


@pytest.fixture
def signed_in(user):
    account = User.objects.create_user(username=user, password="pw")
    account.groups.add(Group.objects.create(name="staff-" + user))
    client = Client()
    client.force_login(account)
    return client


def test_token_view_gives_the_user_and_their_groups(signed_in, user, credentials, server):
    body = signed_in.get("/tidings/token/").json()
    claims = jwt.decode(body["token"], credentials["jwt_secret"], algorithms=["HS256"])
    assert claims["sub"] == user and claims["roles"] == ["staff-" + user]
    assert body["url"] == server.http


def test_token_view_refuses_anonymous_users():
    response = Client().get("/tidings/token/")
    assert response.status_code == 401 and response.json()["error"]["code"] == "unauthenticated"


async def test_async_token_view(signed_in, user, credentials):
    client = AsyncClient()
    client.cookies = signed_in.cookies
    body = (await client.get("/async-token/")).json()
    claims = jwt.decode(body["token"], credentials["jwt_secret"], algorithms=["HS256"])
    assert claims["sub"] == user and claims["roles"] == ["staff-" + user]
    assert (await AsyncClient().get("/async-token/")).status_code == 401


def test_bell_tag_fetches_tokens_from_the_view(signed_in, server):
    html = signed_in.get("/bell/").content.decode()
    assert f'import {{ Tidings }} from "{server.http}/static/tidings.js"' in html
    assert f'"{server.http}/static/tidings-bell.js"' in html
    assert '<tidings-bell id="tidings-bell-' in html and 'limit="5"' in html
    assert '"/tidings/token/"' in html


def test_bell_tag_without_the_view_renders_a_token(signed_in, server, user, credentials):
    with override_settings(ROOT_URLCONF="django_app.urls_bell_only"):
        html = signed_in.get("/bell/").content.decode()
    assert f'src="{server.http}/static/tidings-bell.js"' in html
    token = html.split('token="')[1].split('"')[0]
    assert jwt.decode(token, credentials["jwt_secret"], algorithms=["HS256"])["sub"] == user


def test_bell_tag_renders_nothing_for_anonymous_users():
    assert "tidings-bell" not in Client().get("/bell/").content.decode()
