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
    does) on ``data``'s ``split``, counting judgements labelled ``min_label`` or more as positives.

    Args:
        data: A collection, or a name or folder for :func:`pt_dense.datasets.load`.
        encoder: A model name, hub id or saved folder.
        layers: Keep only the first this many layers (None: all).
        split: The split to measure on.
        min_label: The lowest label that counts as a positive.
        negatives: Random negatives per query.
        temperature: The softmax temperature scores are read at.
        query_max_length: Query tokens, capped at the model's positions.
        doc_max_length: Document tokens, capped at the model's positions.
        seed: Seeds the negatives.

    Returns:
        L, the mean over queries (lower is better).

    Raises:
        UnknownModelError: ``encoder`` names no model.
        InputError: ``layers`` is out of range, or the collection cannot give ``negatives`` negatives (see
            :func:`~pt_dense.scaling.contrastive_loglik`).
    """
    collection = datasets.load(data) if isinstance(data, (str, Path)) else data
    model = study_encoder(encoder, query_max_length, doc_max_length)
    model = truncated_encoder(model, layers) if layers else model
    qrels = collection.qrels(split)
    return contrastive_loglik(model, collection.topics(split), qrels[qrels["label"] >= min_label], collection,
                              negatives=negatives, seed=seed, temperature=temperature)


def fit_grid(grid: str | Path, kind: str = "ND", *, holdout: str | None = "largest", at: int | None = None,
             out: str | Path | None = None) -> tuple[ScalingLaw, Path, Path]:
    """Fit the ``kind`` law to a grid folder's cells and write it as JSON and as a PNG plot.

    Args:
        grid: The grid folder.
        kind: ``"N"``, ``"D"`` or ``"ND"`` (see :func:`~pt_dense.scaling.fit_law`).
        holdout: Which cells to hold out of the fit, as :func:`~pt_dense.scaling.fit_law` takes it.
        at: Fit only some cells: for an N-law those with D = ``at``, otherwise those with ``at`` layers.
        out: The JSON file (default ``<grid>/law-<kind>.json``); the PNG goes beside it.

    Returns:
        The law, the JSON file and the PNG file.

    Raises:
        InputError: The folder has no finished cells, or the law cannot be fitted to them.
    """
    cells = load_cells(grid)
    if at is not None:
        key = "D" if kind == "N" else "layers"
        cells = [c for c in cells if c[key] == at]
    law = fit_law(cells, kind, holdout=holdout)
    path = Path(out or Path(grid) / f"law-{kind}.json")
    law.save(path)
    return law, path, law.plot(path.with_suffix(".png"))
