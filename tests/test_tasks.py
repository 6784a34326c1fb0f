"""Background tasks: started by name, reported alive until they end, stopped together."""

from __future__ import annotations

import asyncio

import pytest

from tidings.tasks import BackgroundTasks


async def test_tasks_report_alive_until_they_end_and_stop_together() -> None:
    tasks = BackgroundTasks()
    assert not tasks
    finished = asyncio.Event()

    async def forever() -> None:
        await asyncio.Event().wait()

    async def brief() -> None:
        finished.set()

    tasks.start(forever(), name="forever")
    tasks.start(brief(), name="brief")
    await finished.wait()
    await asyncio.sleep(0)
    assert tasks and tasks.alive() == {"forever": True, "brief": False}
    await tasks.stop()
    assert not tasks and tasks.alive() == {}


async def test_a_task_that_failed_says_so_when_stopped() -> None:
    tasks = BackgroundTasks()

    async def broken() -> None:
        raise RuntimeError("bug")

    tasks.start(broken(), name="broken")
    await asyncio.sleep(0)
    assert tasks.alive() == {"broken": False}
    with pytest.raises(RuntimeError):
        await tasks.stop()
