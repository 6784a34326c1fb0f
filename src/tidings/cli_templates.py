"""``tidings templates push FILE`` and ``tidings templates list``: templates kept in the
application's repository, loaded into a running server through its HTTP API.

A file (TOML, or YAML with PyYAML installed) maps event types to templates, at the top
level or under ``templates``::

    [templates."task.assigned"]
    title = "{{ actor }} assigned you {{ task }}"
    category = "tasks"

    [templates."task.assigned".locales.de]
    title = "{{ actor }} hat dir {{ task }} zugewiesen"
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx


class TemplateFileError(Exception):
    """The file cannot be read as templates; the message says why."""


def load(path: Path) -> dict[str, dict[str, Any]]:
    """Event type -> template body, from a TOML or YAML file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TemplateFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    data = _parse(path, text)
    found = data.get("templates", data) if isinstance(data, dict) else None
    if not isinstance(found, dict) or not found:
        raise TemplateFileError(f"{path}: expected a table of event types to templates")
    for type_, template in found.items():
        if not isinstance(template, dict):
            raise TemplateFileError(f"{path}: {type_!r} must be a table (title, body, ...)")
    return found


def _parse(path: Path, text: str) -> Any:
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise TemplateFileError("YAML files need PyYAML: pip install pyyaml") from None
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise TemplateFileError(f"{path}: not valid YAML: {exc}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TemplateFileError(f"{path}: not valid TOML: {exc}") from None


def push(base: str, api_key: str, path: Path) -> int:
    """PUT every template of the file; print each one's new version. 1 if any failed."""
    try:
        templates = load(path)
    except TemplateFileError as exc:
        print(f"tidings: {exc}", file=sys.stderr)
        return 2
    failed = 0
    with httpx.Client(base_url=base, headers=_auth(api_key), timeout=10) as http:
        for type_, template in templates.items():
            try:
                response = http.put(f"/api/v1/templates/{quote(type_, safe='')}", json=template)
            except httpx.HTTPError as exc:
                print(f"tidings: cannot reach {base}: {exc}", file=sys.stderr)
                return 1
            if response.is_success:
                print(f"{type_}: version {response.json()['version']}")
            else:
                failed += 1
                print(f"{type_}: {_error(response)}", file=sys.stderr)
    return 1 if failed else 0


def show(base: str, api_key: str) -> int:
    """Print the server's templates: type, version, last change, title."""
    try:
        response = httpx.get(f"{base}/api/v1/templates", headers=_auth(api_key), timeout=10)
    except httpx.HTTPError as exc:
        print(f"tidings: cannot reach {base}: {exc}", file=sys.stderr)
        return 1
    if not response.is_success:
        print(f"tidings: {_error(response)}", file=sys.stderr)
        return 1
    for item in response.json()["items"]:
        locales = ",".join(item.get("locales") or {}) or "-"
        print(
            f"{item['type']}\tv{item['version']}\t{item['updated_at']}\t{locales}\t{item['title']}"
        )
    return 0


def _auth(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}


def _error(response: httpx.Response) -> str:
    try:
        error = response.json()["error"]
        return f"{response.status_code} {error['code']}: {error['message']}"
    except (ValueError, KeyError, TypeError):
        return f"HTTP {response.status_code}"
