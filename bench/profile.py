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


def summarize(collapsed: str, top: int = 40) -> dict[str, Any]:
    """Inclusive and self sample shares per function from py-spy's collapsed output."""
    inclusive: Counter[str] = Counter()
    leaf: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [
            _LINE.sub(")", f) for f in stack.split(";") if not f.startswith(("process ", "thread "))
        ]
        if not frames:
            continue
        total += count
        for f in set(frames):
            inclusive[f] += count
        leaf[frames[-1]] += count
    share = lambda c: round(100 * c / total, 1) if total else 0.0  # noqa: E731
    ours = [(f, c) for f, c in inclusive.most_common() if "tidings/" in f][:top]
    return {
        "samples": total,
        "inclusive_pct": [[f, share(c)] for f, c in inclusive.most_common(top)],
        "tidings_pct": [[f, share(c)] for f, c in ours],
        "self_pct": [[f, share(c)] for f, c in leaf.most_common(top)],
    }


def write_summary(path: Path, summary: dict[str, Any]) -> None:
    """The human-readable ``*.top.txt`` next to the collapsed stacks."""

    def block(title: str, key: str) -> str:
        return f"{title}:\n" + "\n".join(f"{p:5.1f}%  {f}" for f, p in summary[key]) + "\n"

    path.write_text(
        f"{summary['samples']} samples of the GIL-holding thread\n\n"
        + block("inclusive (any frame)", "inclusive_pct")
        + "\n"
        + block("inclusive, tidings functions", "tidings_pct")
        + "\n"
        + block("self (leaf frame)", "self_pct")
    )


def main() -> None:
    """``python -m bench.profile DIR``: rewrite the summaries of DIR's collapsed stacks."""
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    groups: dict[str, list[Path]] = {}
    for f in sorted(folder.glob("*.collapsed")):
        groups.setdefault(f.stem.rsplit("-", 1)[0], []).append(f)
    for name, files in groups.items():
        write_summary(
            folder / f"{name}.top.txt", summarize("\n".join(f.read_text() for f in files))
        )
        print(folder / f"{name}.top.txt")


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
            procs.append(
                await asyncio.create_subprocess_exec(
                    self.exe,
                    "record",
                    "--pid",
                    str(pid),
                    "--rate",
                    "200",
                    "--nonblocking",
                    "--gil",
                    "--format",
                    "raw",
                    "--output",
                    str(path),
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.DEVNULL,
                )
            )
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
            write_summary(self.outdir / f"{target}-{phase}.top.txt", summary)


if __name__ == "__main__":
    main()
