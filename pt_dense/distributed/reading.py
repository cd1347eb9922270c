"""Ray Data's view of a corpus: read tasks that cut it into blocks of contiguous positions, one row a block.

Kept apart from the encoding (no torch, no index) so that a read task's worker process starts fast: it imports this
module, the collection's own (:mod:`pt_dense.datasets`) and pyarrow.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from itertools import islice

import numpy as np

from pt_dense.errors import InputError


def read_blocks(data, ranges: list[tuple[int, int, int]]) -> Iterator:
    """The documents of ``ranges`` (``(block, first, stop)`` sorted by position) read in one pass over ``data``'s
    corpus: one pyarrow row per block, ``block, docnos, texts`` (a block is never split across rows, so an actor
    always writes a whole one).

    Raises:
        InputError: the corpus holds fewer documents than the ranges need (it changed since it was counted).
    """
    import pyarrow as pa

    documents, position = iter(data.corpus_iter()), 0
    for block, first, stop in ranges:
        deque(islice(documents, first - position), maxlen=0)
        docs = list(islice(documents, stop - first))
        position = stop
        if len(docs) != stop - first:
            raise InputError(f"the corpus holds fewer documents than when the run began (block {block} ends at "
                             f"{stop}): it changed during the run; run again")
        yield pa.table({"block": [block], "docnos": [[d["docno"] for d in docs]],
                        "texts": [[d["text"] for d in docs]]})


def corpus_blocks(data, ranges: list[tuple[int, int, int]]):
    """A Ray Data datasource over the blocks ``ranges`` of ``data``'s corpus (``data`` travels to the read tasks by
    pickle, so its corpus must be readable at the same path on every node); Ray is imported here."""
    from ray.data.block import BlockMetadata
    from ray.data.datasource import Datasource, ReadTask

    class CorpusBlocks(Datasource):
        def estimate_inmemory_data_size(self) -> int | None:
            return None

        def get_read_tasks(self, parallelism: int, per_task_row_limit=None, data_context=None) -> list:
            groups = [g for g in np.array_split(np.arange(len(ranges)), max(1, parallelism)) if len(g)]
            return [ReadTask(_reader(data, [ranges[i] for i in group]),
                             BlockMetadata(num_rows=len(group), size_bytes=None, input_files=None, exec_stats=None))
                    for group in groups]

    return CorpusBlocks()


def _reader(data, ranges: list[tuple[int, int, int]]):
    return lambda: read_blocks(data, ranges)
