"""The figures each scenario measured, printed as one table at the end of the session."""

from __future__ import annotations

import json
import os
from typing import Any

ROWS: list[dict[str, Any]] = []


def record(row: dict[str, Any]) -> None:
    ROWS.append(row)
    path = os.environ.get("TIDINGS_FAULT_REPORT")
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps(row) + "\n")


def table(rows: list[dict[str, Any]]) -> str:
    """Rows of one kind share columns; each kind gets its own block."""
    blocks: list[str] = []
    kinds: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        kinds.setdefault(tuple(row), []).append(row)
    for columns, group in kinds.items():
        cells = [[str(row.get(c, "")) for c in columns] for row in group]
        widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
        lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
        blocks.append("\n".join(line.rstrip() for line in lines))
    return "\n\n".join(blocks)
