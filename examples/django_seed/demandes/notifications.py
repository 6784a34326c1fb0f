"""Every notification of the project, in one place: the seed's event types as tidings
templates, and which model changes send which event (after the transaction commits)."""

from __future__ import annotations

from tidings_client import Tidings
from tidings_client.django import event_on_save

from demandes.models import Demande

TEMPLATES = {
    "demande.assigned": {
        "title": "{{ actor }} assigned you “{{ title }}”",
        "body": "{{ description }}",
        "url": "/demandes/{{ id }}/",
        "category": "demandes",
        "locales": {"fr": {"title": "{{ actor }} vous a assigné « {{ title }} »"}},
    },
    "demande.status_changed": {
        "title": "“{{ title }}” is now {{ status }}",
        "url": "/demandes/{{ id }}/",
        "level": "success",
        "category": "demandes",
        "locales": {"fr": {"title": "« {{ title }} » est maintenant {{ status }}"}},
    },
}


def install_templates(client: Tidings) -> None:
    """Create or update the templates on the tidings server (``manage.py tidings_templates``)."""
    for kind, template in TEMPLATES.items():
        client.put_template(kind, **template)


def _data(demande: Demande, created: bool) -> dict[str, object]:
    return {
        "id": demande.pk,
        "title": demande.title,
        "description": demande.description,
        "status": demande.get_status_display(),
    }


def _user(user: object) -> dict[str, list[str]]:
    return {"users": [user.get_username()]} if user is not None else {}  # type: ignore[attr-defined]


def _others(demande: Demande, created: bool) -> dict[str, list[str]]:
    """Whoever filed it and whoever it is assigned to, but not who made the change."""
    editor = getattr(demande, "edited_by", None)
    people = {u for u in (demande.created_by, demande.assignee) if u is not None and u != editor}
    return {"users": sorted(u.get_username() for u in people)} if people else {}


def _name(user: object) -> str:
    return user.get_full_name() or user.get_username()  # type: ignore[attr-defined]


def connect() -> None:
    """Called once from ``DemandesConfig.ready()``."""
    event_on_save(
        Demande,
        type="demande.assigned",
        to=lambda d, created: _user(d.assignee),
        when=lambda d, created: d.assignee_id is not None and (created or d.changed("assignee_id")),
        data=_data,
        actor=lambda d, created: _name(getattr(d, "edited_by", None) or d.created_by),
    )
    event_on_save(
        Demande,
        type="demande.status_changed",
        on="update",
        to=_others,
        when=lambda d, created: d.changed("status"),
        data=_data,
    )
