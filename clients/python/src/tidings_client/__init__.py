"""Python SDK for the tidings notification server.

Usage::

    from tidings_client import Tidings

    tidings = Tidings("http://localhost:8000", api_key="...", jwt_secret="...")
    tidings.notify(to={"users": ["alice"]}, title="Your report is ready")
"""

from tidings_client._core import NO_RETRY, Retry
from tidings_client.client import AsyncTidings, Tidings
from tidings_client.errors import (
    BadRequest,
    Conflict,
    ConnectionFailed,
    Forbidden,
    InvalidRequest,
    NotConfigured,
    NotFound,
    RateLimited,
    ServerError,
    TidingsError,
    TooLarge,
    Unauthenticated,
    ValidationFailed,
)
from tidings_client.types import Audience, Created, Notification, Page

__version__ = "0.2.0"

__all__ = [
    "NO_RETRY",
    "AsyncTidings",
    "Audience",
    "BadRequest",
    "Conflict",
    "ConnectionFailed",
    "Created",
    "Forbidden",
    "InvalidRequest",
    "NotConfigured",
    "NotFound",
    "Notification",
    "Page",
    "RateLimited",
    "Retry",
    "ServerError",
    "Tidings",
    "TidingsError",
    "TooLarge",
    "Unauthenticated",
    "ValidationFailed",
]
