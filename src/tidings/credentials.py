"""First-run secrets: a JWT secret and an API key, kept in a file only the owner can read."""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from tidings.settings import Settings


@dataclass(frozen=True, slots=True)
class Bootstrapped:
    settings: Settings
    generated_secret: bool
    generated_api_key: bool

    @property
    def generated_any(self) -> bool:
        return self.generated_secret or self.generated_api_key


def ensure_secrets(settings: Settings) -> Bootstrapped:
    """Fill in a JWT secret and an API key that were not configured, from the secrets file.

    The file is created (mode 0600) on first run and reused afterwards, so restarts and
    worker processes share the same credentials.
    """
    needs_secret = not settings.jwt_secret and not settings.jwt_public_key
    needs_key = not settings.api_keys
    if not (needs_secret or needs_key):
        return Bootstrapped(settings, False, False)
    stored = _load_or_create(Path(settings.secrets_file))
    updates: dict[str, object] = {}
    if needs_secret:
        updates["jwt_secret"] = stored["jwt_secret"]
    if needs_key:
        updates["api_keys"] = [stored["api_key"]]
    dev = settings.dev if settings.dev is not None else True
    updates["dev"] = dev
    return Bootstrapped(settings.model_copy(update=updates), needs_secret, needs_key)


def _load_or_create(path: Path) -> dict[str, str]:
    if path.exists():
        return json.loads(path.read_text())
    path.parent.mkdir(parents=True, exist_ok=True)
    values = {
        "jwt_secret": secrets.token_urlsafe(32),
        "api_key": "tk_" + secrets.token_urlsafe(24),
    }
    # Create with 0600 from the start: never world-readable, not even for a moment.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process won the race: use its values
        return json.loads(path.read_text())
    with os.fdopen(fd, "w") as handle:
        json.dump(values, handle, indent=2)
    return values
