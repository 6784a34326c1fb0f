"""Persistence: notifications, audiences and per-user read state."""

from tidings.store.sql import CreateOutcome, PendingCreate, SqlStore

__all__ = ["CreateOutcome", "PendingCreate", "SqlStore"]
