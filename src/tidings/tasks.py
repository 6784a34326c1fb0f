"""Named background tasks that a component starts, reports on (``/readyz``) and stops."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any


class BackgroundTasks:
    """The long-running tasks of one component (writer, feed, publisher...)."""

    def __init__(self) -> None:
        self._tasks: list[asyncio.Task[None]] = []

    def start(self, coro: Coroutine[Any, Any, None], *, name: str) -> None:
        self._tasks.append(asyncio.create_task(coro, name=name))

    def alive(self) -> dict[str, bool]:
        """Whether each task still runs, by name: a task that ended is a dead component."""
        return {task.get_name(): not task.done() for task in self._tasks}

    def __bool__(self) -> bool:
        """True once started (until stopped)."""
        return bool(self._tasks)

    async def stop(self) -> None:
        """Cancel every task and wait for them; a task's own failure is raised here."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
