"""The settings of a scaling grid (no torch here: ``pt-dense --help`` reads their defaults)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class GridConfig:
    data: str
    model: str = "minilm"
    layers: list[int] = field(default_factory=lambda: [1, 2, 3, 4, 6])
    annotations: list[int] = field(default_factory=lambda: [250, 500, 1000, 2000])
    train_split: str = "train"
    test_split: str = "test"
    steps: int = 62  # every cell trains this many steps (small subsets repeat): the same optimisation, less data
    batch_size: int = 32
    lr: float = 1e-4
    temperature: float = 0.05
    query_max_length: int = 32
    doc_max_length: int = 128
    negatives: int = 256
    seed: int = 0
