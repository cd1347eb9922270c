"""VectorScorer: re-ranks candidates by the dot product of the query vector and the stored document vector."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyterrier as pt

from pt_dense.errors import InputError
from pt_dense.io.frames import qid_codes, ranked_order, take_rows
from pt_dense.io.validation import require_columns, stack_vectors

if TYPE_CHECKING:
    from pt_dense.index.dense_index import DenseIndex

REQUIRED = ("qid", "query_vec", "docno")
SCORE_CHUNK = 1 << 16


class VectorScorer(pt.Transformer):
    """``qid, query_vec, docno`` -> ``score, rank`` from the index's vectors; no document is encoded again."""

    def __init__(self, index: DenseIndex, missing: str = "error"):
        if missing not in ("error", "drop"):
            raise InputError(f"missing must be 'error' or 'drop', not {missing!r}")
        self.index = index
        self.missing = missing

    def __repr__(self) -> str:
        return f"VectorScorer({self.index!r}, missing={self.missing!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, VectorScorer) and (self.index, self.missing) == (other.index, other.missing)

    def __hash__(self) -> int:
        return hash((VectorScorer, self.index, self.missing))

    def transform_inputs(self) -> list[str]:
        return list(REQUIRED)

    def transform_outputs(self, input_columns: list[str]) -> list[str]:
        require_columns(input_columns, REQUIRED, self)
        return list(input_columns) + [c for c in ("score", "rank") if c not in input_columns]

    def transform(self, inp: pd.DataFrame) -> pd.DataFrame:
        require_columns(inp.columns, REQUIRED, self)
        self.index.check_vectors(inp["query_vec"])
        docnos = inp["docno"]
        rows = self.index.docno_lookup.get_indexer(docnos if isinstance(docnos.dtype, pd.StringDtype)
                                                   else docnos.astype(str))
        if (rows < 0).any():
            absent = inp["docno"][rows < 0].unique()
            if self.missing == "error":
                raise InputError(
                    f"{len(absent)} candidate docno(s) are not in {self.index.path} (e.g. {list(absent[:5])}); "
                    "index the same collection as the first stage, or use index.scorer(missing='drop')"
                )
            inp, rows = inp[rows >= 0], rows[rows >= 0]
        qids = inp["qid"]
        codes, first = qid_codes(qids)
        queries = stack_vectors(inp["query_vec"].iloc[first], self.index.dim, "query_vec")
        scores = self.score_rows(queries, codes, rows)
        order, ranks = ranked_order(qids, scores, codes)
        return take_rows(inp, order, {"score": scores[order], "rank": ranks})

    def score_rows(self, queries: np.ndarray, query_pos: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """The score of each candidate: query ``queries[query_pos[i]]`` against stored row ``rows[i]`` (here their
        dot product; a subclass may score otherwise, e.g. PEFA)."""
        return dot_rows(self.index.vectors, queries, query_pos, rows)


def dot_rows(vectors: np.ndarray, queries: np.ndarray, query_pos: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``<queries[query_pos[i]], vectors[rows[i]]>`` for every i, in bounded-memory chunks of candidates."""
    scores = np.empty(len(rows), dtype=np.float32)
    for start in range(0, len(rows), SCORE_CHUNK):
        part = slice(start, start + SCORE_CHUNK)
        scores[part] = np.einsum("ij,ij->i", queries[query_pos[part]], vectors[rows[part]])
    return scores
