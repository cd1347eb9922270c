"""PEFA's PyTerrier stages: the re-ranker (the index's vector scorer with PEFA's scores), the XL first stage (exact
scoring of every document) and the XS first stage (a dense search of the folded index), and the two functions that
build them from a PEFA core (:func:`reranker`, :func:`retriever`): what :class:`~pt_dense.PEFA` serves and what
:mod:`.tuning` scores are made here, the same way."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyterrier as pt

from pt_dense.encoders.stages import fingerprint_for
from pt_dense.errors import InputError
from pt_dense.index.dense_index import DenseIndex
from pt_dense.index.retriever import results_frame
from pt_dense.index.scorer import VectorScorer
from pt_dense.io.validation import require_columns, stack_vectors
from pt_dense.pefa.core import PefaCore


def reranker(pefa: PefaCore, *, encoder=None) -> PefaReranker:
    """The stage re-scoring ``qid, query_vec, docno`` candidates of any first stage by ``pefa``'s scores
    (candidates the index lacks, deleted ones included, are dropped).

    Args:
        pefa: The PEFA core.
        encoder: Vouches for query vectors that carry no fingerprint, as in ``index.scorer``.

    Returns:
        A :class:`PefaReranker` (over the folded index for PEFA-XS).
    """
    return PefaReranker(pefa, pefa.folded_index() if pefa.kind == "xs" else pefa.index, encoder=encoder)


def retriever(pefa: PefaCore, k: int = 1000, *, kind: str = "flat", encoder=None,
              **params) -> PefaRetriever | PefaXsRetriever:
    """The first stage ``qid, query_vec -> docno, score, rank`` of ``pefa``: PEFA-XS searches its folded index (of
    live documents only) with any retriever ``kind``; PEFA-XL scores every live document exactly.

    Args:
        pefa: The PEFA core.
        k: Documents returned a query.
        kind: The retriever kind over the folded index (PEFA-XS); PEFA-XL takes ``"flat"`` only.
        encoder: Vouches for query vectors that carry no fingerprint, as in ``index.retriever``.
        **params: The kind's settings (PEFA-XS).

    Returns:
        A :class:`PefaRetriever` (XL) or :class:`PefaXsRetriever` (XS).

    Raises:
        InputError: A kind or params given to PEFA-XL.
    """
    if pefa.kind == "xs":
        folded = pefa.folded_index().retriever(k=k, kind=kind, encoder=encoder, **params)
        return PefaXsRetriever(pefa, folded, encoder=encoder)
    if kind != "flat" or params:
        raise InputError(f"PEFA-XL scores every document exactly: kind={kind!r} and {sorted(params)} apply to "
                         "PEFA-XS only (PEFA(..., kind='xs'))")
    return PefaRetriever(pefa, k, encoder=encoder)


class _PefaStage(pt.Transformer):
    required: tuple[str, ...] = ("qid", "query_vec")

    def __init__(self, pefa: PefaCore, *, encoder=None):
        if encoder is not None:
            pefa.index.check_encoder(fingerprint_for(encoder), what="the encoder given to PEFA's stage", strict=True)
        self.pefa = pefa
        self.encoder = encoder  # vouches for query vectors that carry no fingerprint (see DenseIndex.check_vectors)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.pefa!r})"

    def transform_inputs(self) -> list[str]:
        return list(self.required)

    def _prepare(self, inp: pd.DataFrame) -> None:
        require_columns(inp.columns, self.required, self)
        self.pefa.check_leak(inp)
        self.pefa.index.check_vectors(inp["query_vec"], encoder=self.encoder)


class PefaXsRetriever(_PefaStage):
    """PEFA-XS first stage: the leak and encoder checks, then a plain dense search of the folded index.

    Args:
        pefa: The PEFA (core).
        folded_retriever: A retriever over the folded index.
        encoder: Vouches for query vectors that carry no fingerprint.
    """

    def __init__(self, pefa: PefaCore, folded_retriever: pt.Transformer, *, encoder=None):
        super().__init__(pefa, encoder=encoder)
        self.folded_retriever = folded_retriever

    def transform(self, inp: pd.DataFrame) -> pd.DataFrame:
        self._prepare(inp)
        return self.folded_retriever.transform(inp)


class PefaReranker(VectorScorer):
    """``qid, query_vec, docno`` -> PEFA ``score, rank``: the index's vector scorer, scoring by the XL formula (or,
    for XS, a plain vector scorer over the folded index); candidates the index lacks are dropped.

    Made by :meth:`PEFA.reranker() <pt_dense.PEFA.reranker>`.

    Args:
        pefa: The PEFA (core).
        index: The index whose rows it scores (the folded one for XS).
        encoder: Vouches for query vectors that carry no fingerprint.
    """

    def __init__(self, pefa: PefaCore, index: DenseIndex, *, encoder=None):
        super().__init__(index, missing="drop", encoder=encoder)
        self.pefa = pefa

    def __repr__(self) -> str:
        return f"PefaReranker({self.pefa!r})"

    def __eq__(self, other: object) -> bool:
        return type(other) is PefaReranker and (self.pefa, self.index) == (other.pefa, other.index)

    def __hash__(self) -> int:
        return hash((PefaReranker, id(self.pefa), self.index))

    def transform(self, inp: pd.DataFrame) -> pd.DataFrame:
        require_columns(inp.columns, self.transform_inputs(), self)
        self.pefa.check_leak(inp)
        return super().transform(inp)

    def score_rows(self, queries: np.ndarray, query_pos: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """PEFA scores of the candidates (XL's formula; XS's folded dot product).

        Args:
            queries: Query vectors, one a row.
            query_pos: Each candidate's row in ``queries``.
            rows: Each candidate's row in the index.

        Returns:
            One float32 score a candidate.
        """
        if self.pefa.kind == "xs":
            return super().score_rows(queries, query_pos, rows)
        return self.pefa.score_pairs(queries, query_pos, rows)


class PefaRetriever(_PefaStage):
    """PEFA-XL first stage ``qid, query_vec -> docno, score, rank``.

    Exact: see :meth:`PEFA.top_k <pt_dense.PEFA.top_k>`.

    Args:
        pefa: The PEFA (core).
        k: Documents returned a query.
        encoder: Vouches for query vectors that carry no fingerprint.
    """

    def __init__(self, pefa: PefaCore, k: int = 1000, *, encoder=None):
        super().__init__(pefa, encoder=encoder)
        self.k = k

    def transform(self, inp: pd.DataFrame) -> pd.DataFrame:
        self._prepare(inp)
        index = self.pefa.index
        queries = stack_vectors(inp["query_vec"], index.dim, "query_vec")
        if len(inp) == 0:
            k = min(self.k, len(index))
            return results_frame(inp, np.zeros((0, k), np.float32), np.zeros((0, k), int), index.docno_column)
        scores, rows = self.pefa.top_k(queries, self.k)
        return results_frame(inp, scores, rows, index.docno_column)
