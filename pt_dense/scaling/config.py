"""The settings of a scaling grid (no torch here: ``pt-dense --help`` reads their defaults)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class GridConfig:
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
