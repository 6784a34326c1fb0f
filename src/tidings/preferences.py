"""A user's preferences: types and categories switched off, and do-not-disturb.

They act when read, never when stored: a disabled type or category hides that user's
notifications of it from lists, counts and pushes while it stays disabled, and shows
them again once re-enabled. That is what keeps a broadcast one record. Notifications
whose template is ``critical`` ignore them. Do-not-disturb does not hide anything:
frames carry ``"silent": true`` until it ends, and clients show no toast.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tidings.models import isoformat, utc_from_ms

Switches = dict[str, bool]
"""``{"<type or category>": enabled}`` as the user set them."""


@dataclass(frozen=True, slots=True)
class Preferences:
    types: Switches = field(default_factory=dict)
    categories: Switches = field(default_factory=dict)
    do_not_disturb_until: int | None = None
    """Unix milliseconds; None: not set."""

    @property
    def muted_types(self) -> list[str]:
        return sorted(name for name, enabled in self.types.items() if not enabled)

    @property
    def muted_categories(self) -> list[str]:
        return sorted(name for name, enabled in self.categories.items() if not enabled)

    @property
    def hides_anything(self) -> bool:
        return not all(self.types.values()) or not all(self.categories.values())

    def mutes(self, type_: str, category: str | None) -> bool:
        """Whether a (non-critical) notification of this type and category is hidden."""
        if self.types.get(type_) is False:
            return True
        return category is not None and self.categories.get(category) is False

    def silent(self, now_ms: float) -> bool:
        until = self.do_not_disturb_until
        return until is not None and until > now_ms

    def matters(self, now_ms: float) -> bool:
        """Whether a connection must hold these (anything hidden, or DND ahead)."""
        return self.hides_anything or self.silent(now_ms)

    def merged(self, patch: Preferences, *, dnd_given: bool) -> Preferences:
        """PATCH: switches merge by name; ``do_not_disturb_until`` replaces if given."""
        return Preferences(
            types=self.types | patch.types,
            categories=self.categories | patch.categories,
            do_not_disturb_until=(
                patch.do_not_disturb_until if dnd_given else self.do_not_disturb_until
            ),
        )

    def to_public(self) -> dict[str, Any]:
        until = self.do_not_disturb_until
        return {
            "types": {name: {"enabled": on} for name, on in sorted(self.types.items())},
            "categories": {name: {"enabled": on} for name, on in sorted(self.categories.items())},
            "do_not_disturb_until": isoformat(utc_from_ms(until)) if until is not None else None,
        }


NONE = Preferences()


def from_public(value: dict[str, Any]) -> Preferences:
    """The inverse of :meth:`Preferences.to_public` (frames between processes)."""
    until = value.get("do_not_disturb_until")
    return Preferences(
        types={name: bool(v.get("enabled")) for name, v in value.get("types", {}).items()},
        categories={
            name: bool(v.get("enabled")) for name, v in value.get("categories", {}).items()
        },
        do_not_disturb_until=(
            int(datetime.fromisoformat(until).timestamp() * 1000) if until else None
        ),
    )
