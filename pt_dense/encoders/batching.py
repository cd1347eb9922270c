"""How every encoder batches: sort by token length, pad each batch to its own longest text, restore the order."""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar

import numpy as np

from pt_dense.errors import InputError

#: encode calls with at least this many texts show a progress bar (unless ``progress=False``)
PROGRESS_MIN_TEXTS = 2000
SIDE_NAMES = {"query": "queries", "doc": "documents"}
#: where encode calls report the texts they finish while a caller (an indexer) shows the progress bar itself
_PROGRESS_SINK: ContextVar[Callable[[int], None] | None] = ContextVar("pt_dense_progress_sink", default=None)


@contextmanager
def report_progress_to(sink: Callable[[int], None]) -> Iterator[None]:
    """While active, every encode call of this context reports each finished model batch (``sink(texts)``) instead
    of showing a bar of its own: an indexer fed by a document encoder advances as the documents are encoded, not
    when a whole stage batch of them arrives."""
    token = _PROGRESS_SINK.set(sink)
    try:
        yield
    finally:
        _PROGRESS_SINK.reset(token)


def check_batch_size(value, name: str = "batch_size") -> int:
    """``value`` as a batch size (a whole number of at least 1), or :class:`InputError` naming the range."""
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
        raise InputError(f"{name} must be a whole number of at least 1, not {value!r}")
    return int(value)


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
    """Run ``run`` (token-id batch -> vectors) over length-sorted batches; rows come back in input order.

    The batches are formed from the length-sorted texts (each padded only to its own longest) but run in a fixed
    shuffled order, so the work per batch does not drift from the longest texts to the shortest and the progress
    bar's rate, and its ETA, hold from the first batches on."""
    batch_size = check_batch_size(batch_size)
    sink = _PROGRESS_SINK.get()
    show = progress if progress is not None else len(ids) >= PROGRESS_MIN_TEXTS and sink is None
    if 0 < len(ids) <= batch_size and not show and sink is None:  # one batch (e.g. one query): nothing to arrange
        return np.asarray(run(ids), dtype=np.float32).reshape(len(ids), dim)
    from tqdm.auto import tqdm

    out = np.empty((len(ids), dim), dtype=np.float32)
    order = np.argsort([-len(x) for x in ids], kind="stable")
    starts = np.random.default_rng(0).permutation(np.arange(0, len(ids), batch_size))
    with tqdm(total=len(ids), desc=desc, unit="text", smoothing=0.05, disable=not show) as bar:
        for start in starts:
            rows = order[start : start + batch_size]
            out[rows] = run([ids[i] for i in rows])
            bar.update(len(rows))
            if sink is not None:
                sink(len(rows))
    return out
