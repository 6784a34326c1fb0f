"""First-run secrets: a JWT secret and an API key, kept in a file only the owner can read.

Development mode follows from what was generated: it is on only when *both* the JWT
secret and the API key came from this file (a first run on a laptop), or when
``TIDINGS_DEV=true`` says so. Configuring either secret means production, so a half
configured deployment never exposes the demo page or the ``/api/v1/dev/*`` helpers.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from tidings.settings import Settings

log = logging.getLogger("tidings.credentials")

_warned: set[Path] = set()
"""Secrets files already reported as too open in this process (warn once, not per call)."""


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
    worker processes share the same credentials. ``settings.dev`` comes back decided:
    as configured, else on exactly when both secrets were generated.
    """
    needs_secret = not settings.jwt_secret and not settings.jwt_public_key
    needs_key = not settings.api_keys
    updates: dict[str, object] = {"dev": dev_mode(settings.dev, needs_secret, needs_key)}
    if needs_secret or needs_key:
        stored = _load_or_create(Path(settings.secrets_file))
        if needs_secret:
            updates["jwt_secret"] = stored["jwt_secret"]
        if needs_key:
            updates["api_keys"] = [stored["api_key"]]
    return Bootstrapped(settings.model_copy(update=updates), needs_secret, needs_key)


def dev_mode(configured: bool | None, generated_secret: bool, generated_key: bool) -> bool:
    """``TIDINGS_DEV`` when set; otherwise on only if neither secret was configured."""
    if configured is not None:
        return configured
    return generated_secret and generated_key


def _load_or_create(path: Path) -> dict[str, str]:
    if path.exists():
        _warn_if_open(path)
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


def _warn_if_open(path: Path) -> None:
    """Say so when others than the owner may read the secrets (e.g. copied with 0644)."""
    mode = stat.S_IMODE(path.stat().st_mode)
    path = path.resolve()
    if not mode & 0o077 or path in _warned:
        return
    _warned.add(path)
    log.warning(
        "WARNING: secrets file %s has mode %04o: other users can read the JWT secret and "
        "the API key; run `chmod 600 %s` (and rotate the secrets if others may have read them)",
        path,
        mode,
        path,
    )
