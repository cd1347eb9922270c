"""How every encoder batches: sort by token length, pad each batch to its own longest text, restore the order."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from pt_dense.errors import InputError

#: encode calls with at least this many texts show a progress bar (unless ``progress=False``)
PROGRESS_MIN_TEXTS = 2000
SIDE_NAMES = {"query": "queries", "doc": "documents"}


def check_side(side: str) -> None:
    if side not in SIDE_NAMES:
        raise InputError(f"side must be 'query' or 'doc', not {side!r}")


def pad(ids: Sequence[Sequence[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """(input_ids, attention_mask) int64 matrices, right-padded to the longest sequence."""
    width = max(len(x) for x in ids)
    input_ids = np.full((len(ids), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(ids), width), dtype=np.int64)
    for row, seq in enumerate(ids):
        input_ids[row, : len(seq)] = seq
        mask[row, : len(seq)] = 1
    return input_ids, mask


def encode_sorted(ids: list[list[int]], run: Callable[[list[list[int]]], np.ndarray], dim: int, batch_size: int,
                  *, progress: bool | None, desc: str) -> np.ndarray:
    """Run ``run`` (token-id batch -> vectors) over length-sorted batches; rows come back in input order."""
    if not isinstance(batch_size, int) or batch_size < 1:
        raise InputError(f"batch_size must be a whole number of at least 1, not {batch_size!r}")
    from tqdm.auto import tqdm

    out = np.empty((len(ids), dim), dtype=np.float32)
    order = np.argsort([-len(x) for x in ids], kind="stable")
    show = progress if progress is not None else len(ids) >= PROGRESS_MIN_TEXTS
    with tqdm(total=len(ids), desc=desc, unit="text", smoothing=0.05, disable=not show) as bar:
        for start in range(0, len(ids), batch_size):
            rows = order[start : start + batch_size]
            out[rows] = run([ids[i] for i in rows])
            bar.update(len(rows))
    return out
