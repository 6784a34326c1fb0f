"""One error root, a shallow tree, and the named WebSocket close codes.

Every error a client can cause is a :class:`TidingsError` with an HTTP status and a
stable ``code``; the web layer turns it into ``{"error": {"code", "message"}}``.
Foreign exceptions (SQLAlchemy, Redis, PyJWT) are translated where they are raised.
"""

from __future__ import annotations

from enum import IntEnum


class CloseCode(IntEnum):
    """WebSocket close codes, part of the public contract."""

    NORMAL = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    INVALID_DATA = 1007
    """A text message that is not UTF-8 (RFC 6455, section 8.1)."""
    MESSAGE_TOO_BIG = 1009
    SERVICE_RESTART = 1012
    UNAUTHENTICATED = 4001
    FORBIDDEN = 4003
    RATE_LIMITED = 4008
    TOO_MANY_CONNECTIONS = 4009
    SLOW_CONSUMER = 4010
    INVALID_AFTER = 4400
    """The resume point is not a notification id: reconnect without ``after``."""


class TidingsError(Exception):
    """Root of every error tidings raises on purpose."""

    status: int = 400
    code: str = "bad_request"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class BadRequest(TidingsError):
    status, code = 400, "bad_request"


class ValidationFailed(TidingsError):
    status, code = 422, "invalid"


class Unauthenticated(TidingsError):
    status, code = 401, "unauthenticated"


class Forbidden(TidingsError):
    status, code = 403, "forbidden"


class NotFound(TidingsError):
    status, code = 404, "not_found"


class Conflict(TidingsError):
    status, code = 409, "conflict"


class TooLarge(TidingsError):
    status, code = 413, "too_large"


class RateLimited(TidingsError):
    """Over a limit; ``retry_after`` (seconds), when known, becomes ``Retry-After``."""

    status, code = 429, "rate_limited"

    def __init__(
        self, message: str, *, code: str | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class Unavailable(TidingsError):
    """A dependency (database, broker) is unreachable; the client may retry."""

    status, code = 503, "unavailable"
