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
    """Peak resident memory of this process so far, in MiB (Linux reports KiB).

    Returns:
        The peak in MiB (``ru_maxrss`` / 1024; on macOS, which reports bytes, this is KiB).
    """
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def markdown_table(rows: list[dict], columns: list[str] | None = None, digits: int = 4) -> str:
    """A markdown table of ``rows``; floats with ``digits`` decimals.

    Args:
        rows: One dict per table row; a key a row lacks gives an empty cell.
        columns: The columns, in order (default: the keys of the first row, so ``rows`` must not be empty).
        digits: Decimals of float cells; other values are shown with ``str``.

    Returns:
        The table, one line per row after the header and its rule.

    Example:
        ::

            markdown_table([{"name": "dense", "nDCG@10": 0.6456}])
            # | name | nDCG@10 |
            # |---|---|
            # | dense | 0.6456 |
    """
    columns = columns or list(rows[0])

    def cell(value: object) -> str:
        return f"{value:.{digits}f}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c, "")) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def print_table(rows: list[dict], columns: list[str] | None = None, digits: int = 3) -> None:
    """Print :func:`markdown_table` of ``rows`` to stdout and flush it (so it shows before a long step's output).

    Args:
        rows: One dict per table row.
        columns: The columns, in order (default: the keys of the first row).
        digits: Decimals of float cells.
    """
    print(markdown_table(rows, columns, digits))
    sys.stdout.flush()


def write_json(path: str | Path | None, payload: dict) -> None:
    """Write ``payload`` as JSON, atomically (nothing half-written if interrupted).

    Numpy scalars are written as numbers and any other value JSON cannot hold as its ``str``.

    Args:
        path: The file (its folder is created); None or empty writes nothing, for an optional ``--json`` option.
        payload: What to write.
    """
    if not path:
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, default=_jsonable))


def bench_payload(rows: list[dict], config: dict, **headline) -> dict:
    """``{<headline figures>, "rows": [...], "config": {...}}``: the convention of bench/ and examples/.

    Args:
        rows: The measurements, one dict each.
        config: The settings and machine they were measured under.
        **headline: The figures a reader looks at first, put at the top.

    Returns:
        The payload, for :func:`write_json`.
    """
    return {**headline, "rows": rows, "config": config}


def results_markdown(table: pd.DataFrame) -> str:
    """A results table as markdown with four decimals (``name`` shown as ``system``).

    Args:
        table: A results table (``name`` and one column per measure).

    Returns:
        The markdown table.
    """
    return markdown_table(table.rename(columns={"name": "system"}).to_dict("records"))


def results_json(table: pd.DataFrame, config: dict) -> dict:
    """A results table as a JSON payload: ``{"systems": {name: {measure: value}}, "rows": [...], "config": {...}}``.

    Args:
        table: A results table (``name`` and one column per measure).
        config: The settings the results were measured under.

    Returns:
        The payload, for :func:`write_json`.
    """
    rows = table.to_dict("records")
    systems = {row["name"]: {m: float(v) for m, v in row.items() if m != "name"} for row in rows}
    return {"systems": systems, "rows": rows, "config": config}


def results_chart(table: pd.DataFrame, path: str | Path, title: str = "") -> Path:
    """A grouped bar chart of a results table (one group per measure, one bar per system) saved as PNG.

    The y axis runs from 0 to 1.15: the measures are taken to lie in [0, 1].

    Args:
        table: A results table (``name`` and one column per measure).
        path: The PNG file.
        title: The chart's title.

    Returns:
        The file written.
    """
    measures = [c for c in table.columns if c != "name"]
    series = {row["name"]: [float(row[m]) for m in measures] for row in table.to_dict("records")}
    return grouped_bars(series, measures, path, title=title, ylim=(0, 1.15))


def grouped_bars(series: dict[str, list[float]], groups: list[str], path: str | Path, *, title: str = "",
                 ylabel: str = "score", ylim: tuple[float, float] | None = None) -> Path:
    """A PNG bar chart: one group of bars per entry of ``groups``, one bar (labelled with its value) per series.

    Args:
        series: Legend label -> one value per group.
        groups: The groups' labels on the x axis.
        path: The PNG file.
        title: The chart's title.
        ylabel: The y axis's label.
        ylim: The y axis's range (default: 0 to 12% above the highest value, room for the labels).

    Returns:
        The file written.
    """
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
    """Lay out, write as PNG (creating the folder) and close a matplotlib figure.

    Args:
        fig: A matplotlib figure; it is closed, so as not to pile up in pyplot's memory.
        path: The PNG file (written at 120 dpi).

    Returns:
        ``path`` as a Path.
    """
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
