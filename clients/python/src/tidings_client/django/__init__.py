"""Django integration: add ``"tidings_client.django"`` to ``INSTALLED_APPS`` and set::

    TIDINGS = {"URL": "http://localhost:8000", "API_KEY": "...", "JWT_SECRET": "..."}

Then ``notify_on_commit(...)`` (``await anotify_on_commit(...)`` in async views),
``notify_on_save(Model, ...)`` (``event_on_commit``/``event_on_save`` for templated
event types), the token view in ``tidings_client.django.urls`` and
``{% load tidings %}{% tidings_bell %}`` in templates.
"""

from tidings_client.django.conf import get_async_client, get_client
from tidings_client.django.notify import (
    aevent_on_commit,
    anotify_on_commit,
    event_on_commit,
    notify_on_commit,
)
from tidings_client.django.signals import event_on_save, notify_on_save

__all__ = [
    "aevent_on_commit",
    "anotify_on_commit",
    "event_on_commit",
    "event_on_save",
    "get_async_client",
    "get_client",
    "notify_on_commit",
    "notify_on_save",
]
