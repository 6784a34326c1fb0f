"""An SQLite store's log is checkpointed off the event loop, and still starts over."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from tidings.models import Audience, NewNotification
from tidings.store import checkpoints
from tidings.store.checkpoints import catch_up, database_file, start_over
from tidings.store.migrate import upgrade
from tidings.store.rows import PendingCreate
from tidings.store.sql import SqlStore

WRITES = 400


def _pending(i: int) -> PendingCreate:
    return PendingCreate(
        NewNotification(Audience(users=(f"u{i}",)), "t", "info", f"n{i}", body="x" * 1500)
    )


def _log_pages(path: Path) -> int:
    """Pages in the log since it last started over (a PASSIVE checkpoint reports them;
    -1 while the store's own checkpoint holds the checkpoint lock: ask again)."""
    db = sqlite3.connect(path)
    try:
        for _ in range(200):
            busy, pages, _ = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            if not busy and pages >= 0:
                return pages
            time.sleep(0.005)
        raise AssertionError("the checkpoint lock stayed taken for a second")
    finally:
        db.close()


@asynccontextmanager
async def _migrated_store(
    path: Path, *, sole_writer: bool = True, checkpointing: bool = True
) -> AsyncIterator[SqlStore]:
    """A migrated store on ``path``, its checkpoints running unless told otherwise."""
    store = SqlStore(
        f"sqlite+aiosqlite:///{path}",
        max_age_ms=10**12,
        max_items=10_000,
        sole_writer=sole_writer,
    )
    await upgrade(store.writer)
    if checkpointing:
        store.start()
    try:
        yield store
    finally:
        await store.close()


def _counted_rounds(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """One entry per step-1 round from now on."""
    rounds: list[int] = []
    copy = checkpoints.catch_up

    def counted(path: str) -> tuple[int, int, int]:
        rounds.append(1)
        return copy(path)

    monkeypatch.setattr(checkpoints, "catch_up", counted)
    return rounds


async def _pause(rounds: list[int]) -> None:
    """Wait until checkpoint rounds stop: the log is settled."""
    for _ in range(25):
        seen = len(rounds)
        await asyncio.sleep(0.2)
        if len(rounds) == seen:
            return
    raise AssertionError("checkpoint rounds went on through a pause")


async def _write(store: SqlStore, n: int) -> None:
    for i in range(n):
        await store.insert([_pending(i)], now_ms=1_700_000_000_000 + i)
        await asyncio.sleep(0.001)  # a steady trickle, as at 1,000 creates/s


async def test_commits_leave_checkpoints_to_the_store(tmp_path: Path) -> None:
    async with _migrated_store(tmp_path / "x.db", checkpointing=False) as store:
        await _write(store, WRITES)
        assert _log_pages(tmp_path / "x.db") > 5 * WRITES  # nobody checkpointed


async def test_the_log_starts_over_under_a_steady_load(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(checkpoints, "INTERVAL", 0.02)
    monkeypatch.setattr(checkpoints, "START_OVER_PAGES", 200)
    for sole_writer in (True, False):  # writer inline on the loop, or on aiosqlite's thread
        path = tmp_path / f"{sole_writer}.db"
        async with _migrated_store(path, sole_writer=sole_writer) as store:
            await _write(store, WRITES)
            assert _log_pages(path) < 2 * 200
            assert len(await store.log_after(0, limit=WRITES + 1)) == WRITES


async def test_the_log_starts_over_once_creates_pause(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(checkpoints, "INTERVAL", 0.02)
    monkeypatch.setattr(checkpoints, "START_OVER_PAGES", 10**9)
    rounds = _counted_rounds(monkeypatch)
    path = tmp_path / "x.db"
    async with _migrated_store(path, sole_writer=True) as store:
        await _write(store, 200)
        await _pause(rounds)  # step 1 copies it all, then stops
        idle_rounds = len(rounds)
        await asyncio.sleep(0.3)
        assert len(rounds) == idle_rounds  # nothing changed: no checkpoint work
        await _write(store, 1)
        assert _log_pages(path) < 20  # started over


def _log_salts(path: Path) -> bytes:
    """The log header's salts: a write that starts the log over changes them."""
    return Path(f"{path}-wal").read_bytes()[16:24]


async def test_a_sole_writer_starts_the_log_over_in_a_pause_so_the_next_create_appends(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setattr(checkpoints, "INTERVAL", 0.02)
    rounds = _counted_rounds(monkeypatch)
    for sole_writer in (True, False):
        path = tmp_path / f"{sole_writer}.db"
        async with _migrated_store(path, sole_writer=sole_writer) as store:
            await _write(store, 100)
            await _pause(rounds)
            salts = _log_salts(path)
            await _write(store, 1)
            if sole_writer:  # started over in the pause, off the loop: the create appended
                assert _log_salts(path) == salts
            else:  # other processes may share the file: the create starts it over itself
                assert _log_salts(path) != salts
            await _pause(rounds)  # and neither keeps writing while nothing happens
            assert len(await store.log_after(0, limit=200)) == 101


async def test_holding_the_writer_for_one_checkpoint_starts_the_log_over(
    tmp_path: Path,
) -> None:
    path = tmp_path / "x.db"
    async with _migrated_store(path, checkpointing=False) as store:
        await _write(store, 50)
        busy, pages, copied = catch_up(str(path))
        assert (busy, copied) == (0, pages) and pages > 50
        await _write(store, 50)
        busy, pages, copied = await start_over(store.writer)
        assert (busy, copied) == (0, pages)
        await _write(store, 1)
        assert _log_pages(path) < 20  # the next write started it over


def test_only_sqlite_files_are_checkpointed() -> None:
    assert database_file("sqlite+aiosqlite:////var/lib/tidings.db") == "/var/lib/tidings.db"
    assert database_file("sqlite+aiosqlite:///:memory:") is None
    assert database_file("sqlite+aiosqlite://") is None
    assert database_file("postgresql+asyncpg://postgres@127.0.0.1/test") is None
