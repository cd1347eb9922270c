"""The ``pt-dense scaling`` steps besides the grid itself: L of one encoder, and the law fitted to a grid."""

from __future__ import annotations

from pathlib import Path

from pt_dense import datasets
from pt_dense.scaling.grid import load_cells, study_encoder, truncated_encoder
from pt_dense.scaling.laws import ScalingLaw, fit_law
from pt_dense.scaling.measure import DEFAULT_NEGATIVES, DEFAULT_TEMPERATURE, contrastive_loglik


def measure_encoder(data, encoder: str = "minilm", *, layers: int | None = None, split: str = "test",
                    min_label: int = 1, negatives: int = DEFAULT_NEGATIVES, temperature: float = DEFAULT_TEMPERATURE,
                    query_max_length: int = 32, doc_max_length: int = 128, seed: int = 0) -> float:
    """The contrastive entropy L of ``encoder`` (a name or saved folder; cut to its first ``layers`` as the grid
    does) on ``data``'s ``split``, counting judgements labelled ``min_label`` or more as positives."""
    collection = datasets.load(data) if isinstance(data, (str, Path)) else data
    model = study_encoder(encoder, query_max_length, doc_max_length)
    model = truncated_encoder(model, layers) if layers else model
    qrels = collection.qrels(split)
    return contrastive_loglik(model, collection.topics(split), qrels[qrels["label"] >= min_label], collection,
                              negatives=negatives, seed=seed, temperature=temperature)


def fit_grid(grid: str | Path, kind: str = "ND", *, holdout: str | None = "largest", at: int | None = None,
             out: str | Path | None = None) -> tuple[ScalingLaw, Path, Path]:
    """Fit the ``kind`` law to a grid folder's cells (for an N-law only the cells with D = ``at``, for a D-law those
    with ``at`` layers); writes the law's JSON (default ``GRID/law-KIND.json``) and PNG; returns (law, json, png)."""
    cells = load_cells(grid)
    if at is not None:
        key = "D" if kind == "N" else "layers"
        cells = [c for c in cells if c[key] == at]
    law = fit_law(cells, kind, holdout=holdout)
    path = Path(out or Path(grid) / f"law-{kind}.json")
    law.save(path)
    return law, path, law.plot(path.with_suffix(".png"))
