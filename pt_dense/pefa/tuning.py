"""Choosing PEFA's lam (and, for XL, k) on validation queries, without changing the PEFA being tuned."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import faiss
import ir_measures
import pandas as pd

from pt_dense.index.retriever import results_frame
from pt_dense.io.validation import stack_vectors
from pt_dense.pefa.stages import PefaRetriever
from pt_dense.report import save_figure

if TYPE_CHECKING:
    from pt_dense.pefa.core import PEFA


def tune(pefa: PEFA, valid_topics: pd.DataFrame, valid_qrels: pd.DataFrame, *,
         lams: Sequence[float] = (0.1, 0.3, 0.5, 0.7, 0.9), ks: Sequence[int] = (16, 32, 64), measure: str = "R@100",
         depth: int = 1000, plot: str | Path | None = None) -> dict:
    """Score every (lam, k) of the grid (k for XL only) on validation data by ``measure`` at ``depth``;
    returns ``{"best": row, "grid": rows, "pefa": a new PEFA with the best settings}`` (``pefa`` is unchanged).
    ``plot`` saves the grid as a PNG."""
    pefa.check_leak(valid_topics)
    metric = ir_measures.parse_measure(measure)
    queries = pefa.encoder_stage(valid_topics[["qid", "query"]])
    qrels = valid_qrels.rename(columns={"qid": "query_id", "docno": "doc_id", "label": "relevance"})
    qrels = qrels.astype({"query_id": str, "doc_id": str, "relevance": int})
    grid = []
    ks = ks if pefa.kind == "xl" else (pefa.k,)
    for lam in lams:
        for k in ks:
            run = _grid_run(pefa.with_settings(lam=lam, k=k), queries, depth)
            grid.append({"lam": lam, "k": k, measure: ir_measures.calc_aggregate([metric], qrels, run)[metric]})
    best = max(grid, key=lambda row: row[measure])
    if plot:
        _plot_grid(grid, measure, Path(plot), pefa.kind)
    return {"best": best, "grid": grid, "pefa": pefa.with_settings(lam=best["lam"], k=best["k"])}


def _grid_run(pefa: PEFA, queries: pd.DataFrame, depth: int) -> pd.DataFrame:
    """The run of one grid cell over the validation queries (XS searches its folded vectors in memory)."""
    if pefa.kind == "xl":
        res = PefaRetriever(pefa, depth)(queries)
    else:
        vectors = stack_vectors(queries["query_vec"], pefa.index.dim, "query_vec")
        scores, rows = faiss.knn(vectors, pefa.folded_vectors(), depth, metric=faiss.METRIC_INNER_PRODUCT)
        res = results_frame(queries, scores, rows, pefa.index.docno_column)
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
