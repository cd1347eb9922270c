"""Helpers shared by the bench/ and examples/ scripts: tables, JSON output, peak memory."""

from __future__ import annotations

import json
import resource
import sys
from pathlib import Path


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def print_table(rows: list[dict], columns: list[str] | None = None) -> None:
    """A markdown table of ``rows`` (floats with 3 decimals)."""
    columns = columns or list(rows[0])
    cell = lambda v: f"{v:.3f}" if isinstance(v, float) else str(v)  # noqa: E731
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(cell(row.get(c, "")) for c in columns) + " |")
    sys.stdout.flush()


def write_json(path: str | None, rows: list[dict], config: dict, **headline) -> None:
    """``{"rows": [...], "config": {...}, <headline figures>}`` as the bench convention asks."""
    if not path:
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps({**headline, "rows": rows, "config": config}, indent=2))
