"""One error root with a shallow tree: what the server said, or why nothing was said.

Every error carries ``code`` and ``message`` (the contract's ``{"error": {"code",
"message"}}``) and ``status``: the HTTP status, or ``None`` when the request never got
an answer (:class:`ConnectionFailed`) or was refused before sending
(:class:`InvalidRequest`, :class:`NotConfigured`).
"""

from __future__ import annotations


class TidingsError(Exception):
    """Root of every error the SDK raises."""

    status: int | None = None
    code: str = "error"

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status

    def __str__(self) -> str:
        where = f"{self.status} " if self.status is not None else ""
        return f"{where}{self.code}: {self.message}"


class BadRequest(TidingsError):
    status, code = 400, "bad_request"


class Unauthenticated(TidingsError):
    """A wrong API key, or a token the server rejects (wrong secret, expired)."""

    status, code = 401, "unauthenticated"


class Forbidden(TidingsError):
    status, code = 403, "forbidden"


class NotFound(TidingsError):
    status, code = 404, "not_found"


class Conflict(TidingsError):
    """The idempotency key was used before with another request."""

    status, code = 409, "conflict"


class TooLarge(TidingsError):
    status, code = 413, "too_large"


class ValidationFailed(TidingsError):
    status, code = 422, "invalid"


class RateLimited(TidingsError):
    """429 still after the retries; ``retry_after`` is the server's last ``Retry-After``."""

    status, code = 429, "rate_limited"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        retry_after: float | None = None,
    ):
        super().__init__(message, code=code, status=status)
        self.retry_after = retry_after


class ServerError(TidingsError):
    """5xx: the server or a proxy in front of it failed (503: a dependency is down)."""

    status, code = 500, "server_error"


class ConnectionFailed(TidingsError):
    """No answer: the connection failed or timed out on every attempt."""

    code = "connection_failed"


class InvalidRequest(TidingsError):
    """Refused before sending: the server would reject it (empty audience, too long)."""

    code = "invalid"


class NotConfigured(TidingsError):
    """The client lacks what the call needs (``jwt_secret`` for tokens)."""

    code = "not_configured"


BY_STATUS: dict[int, type[TidingsError]] = {
    400: BadRequest,
    401: Unauthenticated,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: TooLarge,
    422: ValidationFailed,
    429: RateLimited,
}


def for_status(status: int) -> type[TidingsError]:
    """The exception class for an HTTP error status."""
    if status in BY_STATUS:
        return BY_STATUS[status]
    return ServerError if status >= 500 else TidingsError
