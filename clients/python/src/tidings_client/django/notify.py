"""Notifications sent only once the surrounding database transaction has committed."""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import sync_to_async
from django.db import transaction

from tidings_client import _operations as ops
from tidings_client._transport import run_sync
from tidings_client.django.conf import get_client

log = logging.getLogger("tidings_client.django")


def notify_on_commit(*, using: str | None = None, robust: bool = True, **notification: Any) -> None:
    """Send ``notify(**notification)`` after the current transaction commits.

    Nothing is sent if it rolls back (with a savepoint: if that savepoint rolls back).
    Outside a transaction it is sent at once. The notification is checked and given its
    idempotency key now, so bad input raises here and retries never store twice. With
    ``robust`` (the default) a failure to send after the commit is logged, not raised:
    the commit has happened and the response should not fail for it.
    """
    _on_commit(ops.notify, notification, using=using, robust=robust)


def event_on_commit(*, using: str | None = None, robust: bool = True, **event: Any) -> None:
    """Send ``event(type=..., to=..., data=...)`` after the current transaction commits:
    the server renders the type's template. Same rules as :func:`notify_on_commit`."""
    _on_commit(ops.event, event, using=using, robust=robust)


def _on_commit(build: Any, fields: dict[str, Any], *, using: str | None, robust: bool) -> None:
    client = get_client()
    operation = build(client._config, **fields)

    def send() -> None:
        try:
            run_sync(client._http, operation, client._retry)
        except Exception:
            if not robust:
                raise
            log.exception("tidings: sending %r failed", fields.get("title") or fields.get("type"))

    transaction.on_commit(send, using=using)


anotify_on_commit = sync_to_async(notify_on_commit)
"""``await anotify_on_commit(...)`` from async views: the same, on Django's sync thread."""
aevent_on_commit = sync_to_async(event_on_commit)
