"""Reporting for the CLI, bench/ and examples/: markdown tables, JSON output, charts, peak memory.

A *results table* is a frame with a ``name`` column (the system) and one column per measure, as
:func:`pt_dense.evaluation.evaluate` returns it."""

from __future__ import annotations

import json
import resource
import sys
from pathlib import Path

import pandas as pd

from pt_dense.io.atomic import atomic_file


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def markdown_table(rows: list[dict], columns: list[str] | None = None, digits: int = 4) -> str:
    """A markdown table of ``rows``; floats with ``digits`` decimals."""
    columns = columns or list(rows[0])

    def cell(value: object) -> str:
        return f"{value:.{digits}f}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c, "")) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def print_table(rows: list[dict], columns: list[str] | None = None, digits: int = 3) -> None:
    print(markdown_table(rows, columns, digits))
    sys.stdout.flush()


def write_json(path: str | Path | None, payload: dict) -> None:
    """Write ``payload`` as JSON, atomically (nothing half-written if interrupted)."""
    if not path:
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, default=_jsonable))


def bench_payload(rows: list[dict], config: dict, **headline) -> dict:
    """``{<headline figures>, "rows": [...], "config": {...}}``: the convention of bench/ and examples/."""
    return {**headline, "rows": rows, "config": config}


def results_markdown(table: pd.DataFrame) -> str:
    """A results table as markdown with four decimals (``name`` shown as ``system``)."""
    return markdown_table(table.rename(columns={"name": "system"}).to_dict("records"))


def results_json(table: pd.DataFrame, config: dict) -> dict:
    """``{"systems": {name: {measure: value}}, "rows": [...], "config": {...}}``."""
    rows = table.to_dict("records")
    systems = {row["name"]: {m: float(v) for m, v in row.items() if m != "name"} for row in rows}
    return {"systems": systems, "rows": rows, "config": config}


def results_chart(table: pd.DataFrame, path: str | Path, title: str = "") -> Path:
    """A grouped bar chart of a results table (one group per measure, one bar per system) saved as PNG."""
    measures = [c for c in table.columns if c != "name"]
    series = {row["name"]: [float(row[m]) for m in measures] for row in table.to_dict("records")}
    return grouped_bars(series, measures, path, title=title, ylim=(0, 1.15))


def grouped_bars(series: dict[str, list[float]], groups: list[str], path: str | Path, *, title: str = "",
                 ylabel: str = "score", ylim: tuple[float, float] | None = None) -> Path:
    """A PNG bar chart: one group of bars per entry of ``groups``, one bar (labelled with its value) per series."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 + 0.35 * len(series) * len(groups)), 4.8))
    for i, (name, values) in enumerate(series.items()):
        bars = ax.bar(np.arange(len(groups)) + (i - (len(series) - 1) / 2) * width, values, width, label=name)
        ax.bar_label(bars, fmt="%.3f", fontsize=6, rotation=90, padding=2)
    ax.set_xticks(np.arange(len(groups)), groups)
    top = max((v for values in series.values() for v in values), default=1.0)
    ax.set_ylim(*(ylim or (0, top * 1.12)))  # room for the value labels
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=7, ncol=min(len(series), 4), loc="upper center", bbox_to_anchor=(0.5, -0.08), frameon=False)
    ax.grid(axis="y", alpha=0.3)
    return save_figure(fig, path)


def save_figure(fig, path: str | Path) -> Path:
    """Lay out, write as PNG (creating the folder) and close a matplotlib figure."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _jsonable(value: object) -> object:
    if hasattr(value, "item"):
        return value.item()
    return str(value)
