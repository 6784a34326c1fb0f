"""Persistence: notifications, audiences and per-user read state."""

from tidings.store.sql import CreateOutcome, LogEntry, PendingCreate, SqlStore, StoredBatch

__all__ = ["CreateOutcome", "LogEntry", "PendingCreate", "SqlStore", "StoredBatch"]
