"""Broker implementations, chosen by URL scheme."""

from __future__ import annotations

from urllib.parse import urlsplit

from tidings.broker.base import Broker, MessageHandler, ReconnectHandler

__all__ = ["Broker", "MessageHandler", "ReconnectHandler", "create_broker"]


def create_broker(url: str) -> Broker:
    """``memory://`` for one process; ``redis://`` or ``rediss://`` for many."""
    scheme = urlsplit(url).scheme.lower()
    if scheme == "memory":
        from tidings.broker.memory import MemoryBroker

        return MemoryBroker()
    if scheme in ("redis", "rediss"):
        from tidings.broker.redis import RedisBroker

        return RedisBroker(url)
    raise ValueError(f"unsupported broker URL scheme {scheme!r}: use memory:// or redis://")
