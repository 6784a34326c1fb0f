"""Persistence: notifications, audiences and per-user read state."""

from tidings.store.rows import CreateOutcome, LogEntry, PendingCreate, Replayed, StoredBatch
from tidings.store.sql import SqlStore

__all__ = ["CreateOutcome", "LogEntry", "PendingCreate", "Replayed", "SqlStore", "StoredBatch"]
