"""Optional py-spy sampling of server processes during each phase (``--profile``).

Samples only the thread holding the GIL (``--gil``): for a one-loop asyncio server that
is where its CPU goes. Writes collapsed stacks per target and phase, and a summary: the
functions with the most inclusive samples, and the leaf functions (self time).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

_LINE = re.compile(r":\d+\)$")


def py_spy() -> str | None:
    here = Path(sys.executable).parent / "py-spy"
    return str(here) if here.exists() else shutil.which("py-spy")


def summarize(collapsed: str, top: int = 25) -> dict[str, Any]:
    """Inclusive and self sample shares per function from py-spy's collapsed output."""
    inclusive: Counter[str] = Counter()
    leaf: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_LINE.sub(")", f) for f in stack.split(";")
                  if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        total += count
        for f in set(frames):
            inclusive[f] += count
        leaf[frames[-1]] += count
    share = lambda c: round(100 * c / total, 1) if total else 0.0  # noqa: E731
    return {
        "samples": total,
        "inclusive_pct": [[f, share(c)] for f, c in inclusive.most_common(top)],
        "self_pct": [[f, share(c)] for f, c in leaf.most_common(top)],
    }


class Profiler:
    """Records one py-spy per server process while a phase runs."""

    def __init__(self, outdir: Path | None) -> None:
        self.outdir = outdir
        self.exe = py_spy() if outdir is not None else None
        self.summaries: dict[str, dict[str, Any]] = {}

    @contextlib.asynccontextmanager
    async def phase(self, target: str, phase: str, pids: list[int]) -> AsyncIterator[None]:
        if self.exe is None or self.outdir is None or not pids:
            yield
            return
        self.outdir.mkdir(parents=True, exist_ok=True)
        procs, files = [], []
        for i, pid in enumerate(pids):
            path = self.outdir / f"{target}-{phase}-{i}.collapsed"
            files.append(path)
            procs.append(await asyncio.create_subprocess_exec(
                self.exe, "record", "--pid", str(pid), "--rate", "200", "--nonblocking", "--gil",
                "--format", "raw", "--output", str(path),
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
            ))
        await asyncio.sleep(0.5)  # let py-spy attach
        try:
            yield
        finally:
            for proc in procs:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGINT)
            for proc in procs:
                try:
                    await asyncio.wait_for(proc.wait(), 20)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()
            text = "\n".join(f.read_text() for f in files if f.exists())
            summary = summarize(text)
            self.summaries[f"{target}/{phase}"] = summary
            lines = [f"{pct:5.1f}%  {fn}" for fn, pct in summary["inclusive_pct"]]
            (self.outdir / f"{target}-{phase}.top.txt").write_text(
                f"{summary['samples']} samples\n\ninclusive:\n" + "\n".join(lines)
                + "\n\nself:\n" + "\n".join(f"{p:5.1f}%  {f}" for f, p in summary["self_pct"])
                + "\n")
