"""Regenerate the README's performance block from the kept results: ``python -m bench.readme``.

Replaces the ```text block under "Latest run" in README.md with the table and PASS/FAIL
lines of ``bench/results/latest.json`` and, when present, the total memory of the latest
``python -m bench.fifty`` (``bench/results/fifty.json``), with its verdicts when it ran on
its own rather than as the end of a full ``python -m bench``. The chart
(``bench/results/latest.png``) is written by the run itself.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from bench import report

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def block() -> str:
    latest = json.loads((RESULTS / "latest.json").read_text())
    items = [(c["check"], c["passed"], c["detail"]) for c in latest["checks"]]
    lines = [report.table(latest["results"]).split("\n\n")[0], "", report.verdict_lines(items)]
    fifty = RESULTS / "fifty.json"
    if fifty.exists():
        run = json.loads(fifty.read_text())
        memory = run.get("connect", {}).get("server_rss")
        lines.append("")
        if memory:
            lines.append(
                f"python -m bench.fifty: total server memory at "
                f"{run['connect']['open']:,} connections: {memory / 2**20:,.0f} MiB "
                f"({run['connect']['server_processes']} processes)"
            )
        if not any(c["check"].startswith("[50k]") for c in latest["checks"]):  # a run of its own
            word = {True: "PASS", False: "FAIL"}
            lines += [
                f"{word[c['passed']]}  [50k] {c['check']}: {c['detail']}" for c in run["checks"]
            ]
    return "\n".join(lines)


def main() -> int:
    readme = ROOT / "README.md"
    text = readme.read_text()
    pattern = re.compile(r"(Latest run[^\n]*\n(?:[^\n]*\n)*?```text\n)(.*?)(\n```)", re.S)
    if not pattern.search(text):
        print("README.md: no ```text block under 'Latest run'", file=sys.stderr)
        return 1
    readme.write_text(pattern.sub(lambda m: m.group(1) + block() + m.group(3), text, count=1))
    print("README.md performance block regenerated from bench/results")
    return 0


if __name__ == "__main__":
    sys.exit(main())
