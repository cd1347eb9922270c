"""VectorScorer: re-ranks candidates by the dot product of the query vector and the stored document vector."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyterrier as pt

from pt_dense.encoders.stages import fingerprint_for
from pt_dense.errors import InputError
from pt_dense.io.frames import qid_codes, ranked_order, take_rows
from pt_dense.io.validation import require_columns, stack_vectors

if TYPE_CHECKING:
    from pt_dense.index.dense_index import DenseIndex

REQUIRED = ("qid", "query_vec", "docno")
SCORE_CHUNK = 1 << 16


class VectorScorer(pt.Transformer):
    """``qid, query_vec, docno`` -> ``score, rank`` from the index's vectors; no document is encoded again."""

    def __init__(self, index: DenseIndex, missing: str = "error", *, encoder=None):
        """Score from ``index``'s vectors.

        Args:
            index: the index holding the candidates' vectors.
            missing: ``"error"`` refuses candidates the index lacks; ``"drop"`` removes them.
            encoder: takes query vectors that carry no fingerprint as made by this encoder (a pt_dense encoder,
                one of its stages, or a fingerprint), checked against the index now and on every call; None
                refuses them where the index knows its encoder (see ``DenseIndex.check_vectors``).

        Raises:
            InputError: A bad ``missing``; when called, candidates the index lacks under ``missing="error"``.
        """
        if missing not in ("error", "drop"):
            raise InputError(f"missing must be 'error' or 'drop', not {missing!r}")
        self.index = index
        self.missing = missing
        if encoder is not None and index.built():
            index.check_encoder(fingerprint_for(encoder), what="the encoder given to the scorer", strict=True)
        self.encoder = encoder

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
        first_vectors = inp["query_vec"].iloc[first]  # one per query: the vectors scored
        queries = stack_vectors(first_vectors, self.index.dim, "query_vec")
        self.index.check_vectors(first_vectors, encoder=self.encoder)
        scores = self.score_rows(queries, codes, rows)
        order, ranks = ranked_order(qids, scores, codes)
        return take_rows(inp, order, {"score": scores[order], "rank": ranks})

    def score_rows(self, queries: np.ndarray, query_pos: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """The score of each candidate: query ``queries[query_pos[i]]`` against stored row ``rows[i]`` (here their
        dot product; a subclass may score otherwise, e.g. PEFA).

        Args:
            queries: Query vectors, one a row.
            query_pos: Each candidate's row in ``queries``.
            rows: Each candidate's row in the index.

        Returns:
            One float32 score a candidate.
        """
        return dot_rows(self.index.vectors, queries, query_pos, rows)


def dot_rows(vectors: np.ndarray, queries: np.ndarray, query_pos: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``<queries[query_pos[i]], vectors[rows[i]]>`` for every i, in bounded-memory chunks of candidates."""
    scores = np.empty(len(rows), dtype=np.float32)
    for start in range(0, len(rows), SCORE_CHUNK):
        part = slice(start, start + SCORE_CHUNK)
        scores[part] = np.einsum("ij,ij->i", queries[query_pos[part]], vectors[rows[part]])
    return scores
