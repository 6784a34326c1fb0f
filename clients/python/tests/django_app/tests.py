"""The Django integration under Django's own test runner (``manage.py test`` style).

Run by ``clients/python/tests/test_django_runner.py`` as ``python -m django test
django_app`` against a real tidings server. ``TransactionTestCase`` so that
``transaction.on_commit`` callbacks run on real commits, as in production.
"""

from __future__ import annotations

import uuid

import jwt
from django.contrib.auth.models import Group, User
from django.db import transaction
from django.template import engines
from django.test import Client, TransactionTestCase
from tidings_client import Tidings
from tidings_client.django import notify_on_commit
from tidings_client.django.conf import tidings_settings


def _client() -> Tidings:
    conf = tidings_settings()
    return Tidings(conf["URL"], api_key=conf["API_KEY"], jwt_secret=conf["JWT_SECRET"])


class NotifyOnCommit(TransactionTestCase):
    def setUp(self) -> None:
        self.user = f"dj-{uuid.uuid4().hex[:10]}"
        self.tidings = _client()

    def tearDown(self) -> None:
        self.tidings.close()

    def titles(self) -> list[str]:
        return [item["title"] for item in self.tidings.list(self.user)["items"]]

    def test_sent_only_after_the_commit(self) -> None:
        with transaction.atomic():
            notify_on_commit(to={"users": [self.user]}, title="committed")
            self.assertEqual(self.titles(), [])
        self.assertEqual(self.titles(), ["committed"])

    def test_never_sent_on_rollback(self) -> None:
        with self.assertRaises(RuntimeError), transaction.atomic():
            notify_on_commit(to={"users": [self.user]}, title="rolled back")
            raise RuntimeError
        self.assertEqual(self.titles(), [])

    def test_nested_atomic_keeps_what_its_savepoints_kept(self) -> None:
        with transaction.atomic():
            notify_on_commit(to={"users": [self.user]}, title="outer")
            try:
                with transaction.atomic():
                    notify_on_commit(to={"users": [self.user]}, title="inner, rolled back")
                    raise RuntimeError
            except RuntimeError:
                pass
        self.assertEqual(self.titles(), ["outer"])


class TokenViewAndBell(TransactionTestCase):
    def setUp(self) -> None:
        self.name = f"dj-{uuid.uuid4().hex[:8]}"
        self.account = User.objects.create_user(self.name, password="pw")
        self.account.groups.add(Group.objects.create(name=f"staff-{self.name}"))
        self.browser = Client()
        self.browser.force_login(self.account)

    def test_the_token_view_gives_the_user_and_their_groups(self) -> None:
        response = self.browser.get("/tidings/token/")
        self.assertEqual(response.status_code, 200)
        secret = tidings_settings()["JWT_SECRET"]
        claims = jwt.decode(response.json()["token"], secret, algorithms=["HS256"])
        self.assertEqual((claims["sub"], claims["roles"]), (self.name, [f"staff-{self.name}"]))

    def test_anonymous_users_get_no_token(self) -> None:
        response = Client().get("/tidings/token/")
        self.assertEqual(response.status_code, 401)
        self.assertEqual(response.json()["error"]["code"], "unauthenticated")

    def test_the_bell_tag_renders_the_element_and_its_scripts(self) -> None:
        page = engines["django"].from_string("{% load tidings %}{% tidings_bell %}")
        request = self.browser.get("/bell/").wsgi_request
        html = page.render({}, request)
        self.assertIn("<tidings-bell", html)
        self.assertIn("/static/tidings", html)
