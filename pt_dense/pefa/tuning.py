"""Choosing PEFA's lam (and, for XL, k) on validation queries, without changing the PEFA being tuned.

Each cell of the grid is scored by running the very stage PEFA serves (:func:`pt_dense.pefa.stages.retriever`) over
the validation queries, so tuning sees what serving returns: the same candidates, the same scores, and no deleted
document.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import ir_measures
import pandas as pd

from pt_dense.pefa.core import PefaCore
from pt_dense.pefa.stages import retriever
from pt_dense.report import save_figure


def tune(pefa: PefaCore, valid_topics: pd.DataFrame, valid_qrels: pd.DataFrame, *,
         lams: Sequence[float] = (0.1, 0.3, 0.5, 0.7, 0.9), ks: Sequence[int] = (16, 32, 64), measure: str = "R@100",
         depth: int = 1000, plot: str | Path | None = None, kind: str = "flat", params: dict | None = None) -> dict:
    """Score every (lam, k) of the grid (k for XL only) on validation data by ``measure`` at ``depth``.

    Args:
        pefa: The PEFA to tune (unchanged).
        valid_topics: ``qid, query`` of validation queries (not training queries).
        valid_qrels: Their qrels.
        lams: The values of lam to try.
        ks: The values of k to try (PEFA-XL; PEFA-XS keeps its own).
        measure: An ir_measures measure, e.g. ``"R@100"`` or ``"nDCG@10"``.
        depth: Documents retrieved a query.
        plot: Save the grid as a PNG here.
        kind: The retriever kind PEFA-XS is served with (each cell searches a folded index of this kind).
        params: That kind's settings.

    Returns:
        ``{"best": row, "grid": rows, "pefa": a new PEFA with the best settings}``.

    Raises:
        InputError: A validation query is a training query, or a bad setting in the grid.
    """
    pefa.check_leak(valid_topics)
    metric = ir_measures.parse_measure(measure)
    queries = pefa.encoder_stage(valid_topics[["qid", "query"]])
    qrels = valid_qrels.rename(columns={"qid": "query_id", "docno": "doc_id", "label": "relevance"})
    qrels = qrels.astype({"query_id": str, "doc_id": str, "relevance": int})
    grid = []
    ks = ks if pefa.kind == "xl" else (pefa.k,)
    for lam in lams:
        for k in ks:
            run = grid_run(pefa.with_settings(lam=lam, k=k), queries, depth, kind=kind, params=params)
            grid.append({"lam": lam, "k": k, measure: ir_measures.calc_aggregate([metric], qrels, run)[metric]})
    best = max(grid, key=lambda row: row[measure])
    if plot:
        _plot_grid(grid, measure, Path(plot), pefa.kind)
    return {"best": best, "grid": grid, "pefa": pefa.with_settings(lam=best["lam"], k=best["k"])}


def grid_run(pefa: PefaCore, queries: pd.DataFrame, depth: int, *, kind: str = "flat",
             params: dict | None = None) -> pd.DataFrame:
    """The run of one grid cell: the served first stage of ``pefa`` over the encoded validation queries.

    Args:
        pefa: The PEFA of the cell.
        queries: ``qid, query, query_vec`` of the validation queries.
        depth: Documents a query.
        kind: The retriever kind (PEFA-XS).
        params: Its settings.

    Returns:
        An ir_measures run: ``query_id, doc_id, score``.
    """
    extra = {"kind": kind, **(params or {})} if pefa.kind == "xs" else {}
    res = retriever(pefa, depth, **extra)(queries)
    return res.rename(columns={"qid": "query_id", "docno": "doc_id"})[["query_id", "doc_id", "score"]].astype(
        {"query_id": str, "doc_id": str})


def _plot_grid(grid: list[dict], measure: str, path: Path, kind: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frame = pd.DataFrame(grid)
    fig, ax = plt.subplots(figsize=(6, 4))
    for k, group in frame.groupby("k"):
        ax.plot(group["lam"], group[measure], marker="o", label=f"k={k}" if kind == "xl" else "PEFA-XS")
    ax.set_xlabel("lambda (weight of the encoder score)")
    ax.set_ylabel(f"{measure} (validation)")
    ax.set_title(f"PEFA-{kind.upper()} tuning")
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(fig, path)
