"""One rule for keeping secrets out of output: the banner, the CLI and the server's logs.

:func:`redact` hides the password of every URL's ``user:password@`` part and the value
of every query parameter whose name says it is a secret (``token``, ``access_token``,
``api_key``, ``key``, ``password``, ``secret`` ...), wherever they appear in a text:
a database URL in the start-up banner, or uvicorn's
``127.0.0.1:5000 - "WebSocket /ws?token=eyJ..." [accepted]``.

:class:`RedactSecrets` applies it to log records; :func:`redact_server_logs` installs
it on the loggers uvicorn writes request lines to (``uvicorn.access`` for HTTP,
``uvicorn.error`` for WebSocket handshakes, as of uvicorn 0.54).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

MASK = "***"
SERVER_LOGGERS = ("uvicorn.access", "uvicorn.error")

_USERINFO_PASSWORD = re.compile(r"(?P<head>://[^:/?#@\s]*:)(?P<secret>[^/\s]*)(?P<tail>@)")
"""``scheme://user:password@host``: the password runs to the last ``@`` before the path."""
_SECRET_PARAMETER = re.compile(
    r"(?P<head>[?&;][^=&#\s]*(?:token|key|password|passwd|pwd|secret)[^=&#\s]*=)"
    r"(?P<secret>[^&#\s\"']*)",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """``text`` with URL passwords and secret query values replaced by ``***``."""
    if "@" in text:
        text = _USERINFO_PASSWORD.sub(_mask, text)
    if "=" in text:
        text = _SECRET_PARAMETER.sub(_mask, text)
    return text


def _mask(match: re.Match[str]) -> str:
    if not match.group("secret"):
        return match.group(0)
    return match.group("head") + MASK + (match.groupdict().get("tail") or "")


class RedactSecrets(logging.Filter):
    """Redacts a record's message and its string arguments (formatters still get a tuple)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_redact_value(value) for value in record.args)
        elif isinstance(record.args, Mapping):
            record.args = {name: _redact_value(value) for name, value in record.args.items()}
        return True


def _redact_value(value: Any) -> Any:
    return redact(value) if isinstance(value, str) else value


def redact_server_logs(names: tuple[str, ...] = SERVER_LOGGERS) -> None:
    """Install :class:`RedactSecrets` on uvicorn's request loggers, once per logger."""
    for name in names:
        logger = logging.getLogger(name)
        if not any(isinstance(existing, RedactSecrets) for existing in logger.filters):
            logger.addFilter(RedactSecrets())
