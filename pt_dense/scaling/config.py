"""The settings of a scaling grid (no torch here: ``pt-dense --help`` reads their defaults)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class GridConfig:
    """The settings of a scaling grid (:func:`~pt_dense.scaling.run_grid`, ``pt-dense scaling run``).

    Every setting but ``layers`` and ``annotations`` is recorded in the grid folder's ``grid.json``: a grid resumes
    only under the same settings, and grows by new model sizes or annotation counts.

    Args:
        data: The collection: a name or folder that :func:`pt_dense.datasets.load` takes.
        model: The encoder (short name, hub id or folder) whose first layers make each model size.
        layers: The layer counts k, one model size each.
        annotations: The annotation counts D: the first D of the training split's shuffled (query, positive) pairs.
        train_split: The split whose judged pairs are the annotations.
        test_split: The split L is measured on.
        min_label: Judgements labelled at least this are positives (training, dev and test alike).
        steps: Training steps per cell: the most with ``patience``, exactly this many without.
        patience: > 0: each cell trains until this many dev validations in a row bring no lower L, and keeps its
            best weights; 0: no dev split, exactly ``steps`` steps.
        valid_every: Steps between dev validations.
        dev_split: The split early stopping is scored on; None holds ``dev_queries`` training queries out of the
            annotations instead. Either way only the dev queries none of whose positives is a training positive
            count.
        dev_queries: Training queries held out as the dev split when ``dev_split`` is None.
        dev_pool: The documents the dev negatives are drawn from: a fixed sample of this many, plus the dev positives.
        batch_size: Training pairs per step (in-batch negatives).
        lr: The learning rate.
        temperature: The softmax temperature of training and of L.
        query_max_length: Query tokens, capped at the model's positions.
        doc_max_length: Document tokens, capped at the model's positions.
        negatives: Random negatives per test query in L (for the dev L, at most the dev pool's size).
        seed: Seeds the pairs' order, the dev queries, the negatives and training.
    """

    data: str
    model: str = "minilm"
    layers: list[int] = field(default_factory=lambda: [1, 2, 3, 6])
    annotations: list[int] = field(default_factory=lambda: [50, 100, 200, 400, 700])
    train_split: str = "train"
    test_split: str = "test"
    min_label: int = 1  # judgements labelled at least this are positives (training, dev and test alike)
    # patience > 0: each cell trains to convergence, up to `steps`, stopped early on the dev split's L (scored every
    # `valid_every` steps over its positives and a fixed sample of `dev_pool` documents; only dev queries whose
    # positives no training pair has) and ends with its best weights; patience = 0: exactly `steps` steps each.
    steps: int = 300
    patience: int = 3
    valid_every: int = 10
    dev_split: str | None = None  # None: hold `dev_queries` training queries out of the annotations
    dev_queries: int = 150
    dev_pool: int = 500
    batch_size: int = 32
    lr: float = 1e-4
    temperature: float = 0.05
    query_max_length: int = 32
    doc_max_length: int = 128
    negatives: int = 256
    seed: int = 0
