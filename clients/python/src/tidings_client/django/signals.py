"""Notify when a model is saved: the seed's "automatic notifications on changes"."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from django.db import models
from django.db.models.signals import post_save

from tidings_client.django.notify import event_on_commit, notify_on_commit

On = Literal["create", "update", "both"]


def notify_on_save(
    model: type[models.Model],
    *,
    to: Any,
    title: Any,
    on: On = "both",
    when: Callable[[Any, bool], bool] | None = None,
    **fields: Any,
) -> Callable[..., None]:
    """Notify whenever an instance of ``model`` is saved, after its transaction commits.

    Every value (``to``, ``title``, ``body``, ``url``, ``data``, ``type``, ...) may be a
    constant or a function of the instance and ``created``, e.g.::

        notify_on_save(
            Task,
            to=lambda task, created: {"users": [task.assignee.username]},
            title=lambda task, created: f"{task.name}: {'new' if created else 'changed'}",
            when=lambda task, created: task.assignee_id is not None,
        )

    ``on`` limits it to creations or updates; ``when`` skips saves it returns False for,
    and an audience with nobody in it sends nothing. Returns the receiver (disconnect it
    with ``post_save.disconnect(receiver, sender=model)``).
    """
    return _on_save(model, notify_on_commit, to=to, on=on, when=when, title=title, **fields)


def event_on_save(
    model: type[models.Model],
    *,
    type: Any,
    to: Any,
    on: On = "both",
    when: Callable[[Any, bool], bool] | None = None,
    **fields: Any,
) -> Callable[..., None]:
    """Like :func:`notify_on_save`, sending an event of ``type`` (the server renders its
    template with ``data``): ``event_on_save(Task, type="task.assigned", to=...,
    data=lambda task, created: {"task": task.name})``."""
    return _on_save(model, event_on_commit, to=to, on=on, when=when, type=type, **fields)


def _on_save(
    model: type[models.Model],
    send: Callable[..., None],
    *,
    to: Any,
    on: On,
    when: Callable[[Any, bool], bool] | None,
    **fields: Any,
) -> Callable[..., None]:

    def receiver(sender: Any, instance: Any, created: bool, using: str, **_: Any) -> None:
        if (on == "create" and not created) or (on == "update" and created):
            return
        if when is not None and not when(instance, created):
            return
        values = {name: _value(v, instance, created) for name, v in fields.items()}
        audience = _value(to, instance, created)
        if not audience or not any(audience.get(k) for k in ("users", "roles", "all")):
            return
        send(using=using, to=audience, **values)

    post_save.connect(receiver, sender=model, weak=False)
    return receiver


def _value(value: Any, instance: Any, created: bool) -> Any:
    return value(instance, created) if callable(value) else value
