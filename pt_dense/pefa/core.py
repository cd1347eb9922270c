"""PEFA: parameter-free adapters for any embedding retriever (Chang et al., WSDM 2024).

With training queries q_i and their relevant documents (labels y(i, d) in {0, 1}):

- **PEFA-XL**: s(q, d) = lam * <q, d> + (1 - lam) * sum over the k training queries nearest to q of w_i * y(i, d),
  with w_i = <q, q_i> (divided by k if ``divide_by_k``). Two indices: the documents and the training queries (FAISS);
  the first stage scores every document exactly, which contains the merge of both candidate lists.
- **PEFA-XS**: one index over folded vectors d~ = lam * d + (1 - lam) * normalize(sum of the training queries
  relevant to d); a plain dense search over d~ (a document without training queries keeps lam * d).

Both work from ``query_vec``, so any encoder stage that produces it plugs in. No backward pass, no new parameters.
This module holds the scores; :mod:`.stages` the PyTerrier stages; :mod:`.tuning` the choice of lam and k.
"""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path

import faiss
import numpy as np
import pandas as pd
import pyterrier as pt
import scipy.sparse as sp

from pt_dense.encoders.stages import ENCODER_KEY
from pt_dense.errors import InputError
from pt_dense.index.dense_index import DenseIndex
from pt_dense.index.layout import as_float32
from pt_dense.index.scorer import dot_rows
from pt_dense.io.cache import cache_dir
from pt_dense.io.validation import require_columns, stack_vectors
from pt_dense.pefa.stages import PefaReranker, PefaRetriever, PefaXsRetriever
from pt_dense.pefa.tuning import tune

KINDS = ("xl", "xs")
SCORE_CHUNK = 1 << 16
BLAS_MIN_QUERIES = 20  # FAISS's own threshold for switching to BLAS


class PEFA:
    """The training-query side of PEFA over an existing DenseIndex; a factory for its re-ranker and retriever.

    Settings never change in place: :meth:`with_settings` and :meth:`tune` return a new PEFA (sharing the encoded
    training queries), so stages already built keep the settings they were built with.
    """

    def __init__(
        self,
        index: DenseIndex,
        encoder,
        train_topics: pd.DataFrame,
        train_qrels: pd.DataFrame,
        *,
        kind: str = "xl",
        lam: float = 0.5,
        k: int = 32,
        divide_by_k: bool = False,
        folded_path: str | Path | None = None,
    ):
        """Encode the training queries and link them to the documents they judge relevant.

        Args:
            index: The dense index of the collection.
            encoder: The encoder (or its query stage) that built ``index``.
            train_topics: ``qid, query`` of the training queries.
            train_qrels: ``qid, docno, label`` of the training queries.
            kind: ``"xl"`` (re-rank or score every document) or ``"xs"`` (search a folded index).
            lam: The weight of the dense score against the kNN label score, in [0, 1].
            k: Nearest training queries that vote.
            divide_by_k: Average the votes instead of summing them.
            folded_path: Where PEFA-XS keeps its folded index (default: the cache).

        Raises:
            InputError: A bad ``kind``, ``lam`` or ``k``, or qrels that point at no document of the index.
            MissingColumnsError: Topics or qrels without their columns.
            EncoderMismatchError: ``encoder`` did not build ``index``.

        Example::

            pefa = ptd.PEFA(index, enc, data.topics("train"), data.qrels("train"))
            pipeline = bm25 >> enc.query_encoder() >> pefa.reranker()
        """
        if kind not in KINDS:
            raise InputError(f"kind must be one of {KINDS}, not {kind!r}")
        _check_lam_k(lam, k)
        require_columns(train_topics.columns, ["qid", "query"], self)
        require_columns(train_qrels.columns, ["qid", "docno", "label"], self)
        self.index, self.kind, self.lam, self.k, self.divide_by_k = index, kind, lam, k, divide_by_k
        self.encoder_stage = encoder.query_encoder() if hasattr(encoder, "query_encoder") else encoder
        self.fingerprint = getattr(encoder, "fingerprint", None)
        index.check_encoder(self.fingerprint, what="the training queries")

        topics = train_topics.drop_duplicates("qid").reset_index(drop=True)
        self.train_qids = set(topics["qid"].astype(str))
        self.train_texts = {_normal(t) for t in topics["query"]}
        encoded = self.encoder_stage(topics[["qid", "query"]])
        index.check_vectors(encoded["query_vec"], what="the training queries' vectors")
        self.train_vectors = stack_vectors(encoded["query_vec"], index.dim, "training query_vec")
        self.labels = _label_matrix(topics["qid"].astype(str), train_qrels, index)
        if self.labels.nnz == 0:
            raise InputError("no training qrel points at a document of the index: check that the qrels and the "
                             "index are of the same collection")
        self.folded_path = Path(folded_path) if folded_path else None
        self._folded: DenseIndex | None = None

    def __repr__(self) -> str:
        return (f"PEFA(kind={self.kind!r}, lam={self.lam}, k={self.k}, train_queries={len(self.train_vectors)}, "
                f"labels={self.labels.nnz})")

    # ------------------------------------------------------------------ stages
    def reranker(self, *, encoder=None) -> pt.Transformer:
        """A stage re-scoring ``qid, query_vec, docno`` candidates from any first stage.

        Candidates the index lacks are dropped.

        Args:
            encoder: Vouches for query vectors that carry no fingerprint, as in ``index.scorer``.

        Returns:
            A :class:`~pt_dense.pefa.stages.PefaReranker`.
        """
        if self.kind == "xs":
            return PefaReranker(self, self.folded_index(), encoder=encoder)
        return PefaReranker(self, self.index, encoder=encoder)

    def retriever(self, k: int = 1000, *, kind: str = "flat", encoder=None, **params) -> pt.Transformer:
        """First stage ``qid, query_vec -> docno, score, rank``. PEFA-XS is a dense search over the folded index, of
        any retriever ``kind`` (with its ``params``); PEFA-XL scores every document exactly (``kind="flat"``).
        Args:
            k: Documents returned a query.
            kind: The retriever kind over the folded index (PEFA-XS); PEFA-XL takes ``"flat"`` only.
            encoder: Vouches for query vectors that carry no fingerprint, as in ``index.retriever``.
            **params: The kind's settings (PEFA-XS).

        Returns:
            A :class:`~pt_dense.pefa.stages.PefaRetriever` (XL) or :class:`~pt_dense.pefa.stages.PefaXsRetriever`.

        Raises:
            InputError: A kind or params given to PEFA-XL.
        """
        if self.kind == "xs":
            folded = self.folded_index().retriever(k=k, kind=kind, encoder=encoder, **params)
            return PefaXsRetriever(self, folded, encoder=encoder)
        if kind != "flat" or params:
            raise InputError(f"PEFA-XL scores every document exactly: kind={kind!r} and {sorted(params)} apply to "
                             "PEFA-XS only (PEFA(..., kind='xs'))")
        return PefaRetriever(self, k, encoder=encoder)

    def with_settings(self, *, lam: float | None = None, k: int | None = None) -> PEFA:
        """A PEFA with other settings over the same index and training queries (nothing is encoded again).

        Args:
            lam: The new ``lam`` (None keeps this one's).
            k: The new ``k`` (None keeps this one's).

        Returns:
            The new PEFA; this one is unchanged.
        """
        lam, k = self.lam if lam is None else lam, self.k if k is None else k
        _check_lam_k(lam, k)
        other = copy.copy(self)
        other.lam, other.k, other._folded = lam, k, None
        other.folded_path = self.folded_path if lam == self.lam else None
        return other

    def tune(self, valid_topics: pd.DataFrame, valid_qrels: pd.DataFrame, **grid) -> dict:
        """Pick lam (and k for XL) on validation data: ``{"best", "grid", "pefa"}``, where ``pefa`` is a new PEFA
        with the best settings (see ``pt_dense.pefa.tuning.tune`` for the grid and the measure).

        Args:
            valid_topics: ``qid, query`` of validation queries (not training queries).
            valid_qrels: Their qrels.
            **grid: The values to try (``lams``, ``ks``).

        Returns:
            ``{"best": settings, "grid": rows, "pefa": the tuned PEFA}``.
        """
        return tune(self, valid_topics, valid_qrels, **grid)

    # ------------------------------------------------------------------ XL scoring
    def knn_scores(self, queries: np.ndarray) -> sp.csr_matrix:
        """The kNN label scores: row q sums w_i * y(i, .) over the k nearest training queries q_i.

        Args:
            queries: Query vectors, one a row.

        Returns:
            A sparse (queries x documents) matrix.
        """
        k = min(self.k, len(self.train_vectors))
        weights, neighbours = faiss.knn(queries, self.train_vectors, k, metric=faiss.METRIC_INNER_PRODUCT)
        if self.divide_by_k:
            weights = weights / k
        rows = np.repeat(np.arange(len(queries)), k)
        valid = neighbours.reshape(-1) >= 0
        mix = sp.csr_matrix((weights.reshape(-1)[valid], (rows[valid], neighbours.reshape(-1)[valid])),
                            shape=(len(queries), len(self.train_vectors)))
        return (mix @ self.labels).tocsr()

    def score_pairs(self, queries: np.ndarray, query_pos: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """XL scores of (query position, document row) pairs (the re-ranker's path).

        Args:
            queries: Query vectors, one a row.
            query_pos: Each pair's row in ``queries``.
            rows: Each pair's document row in the index.

        Returns:
            One float32 score a pair.
        """
        dense = dot_rows(self.index.vectors, queries, query_pos, rows)
        knn = sparse_lookup(self.knn_scores(queries), query_pos, rows)
        return (self.lam * dense + (1 - self.lam) * knn).astype(np.float32)

    def top_k(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact PEFA-XL top-k over every document: lam * <q, d> + (1 - lam) * kNN label score.

        Scoring all documents contains the merge of both candidate lists (the documents' dense top-k and the
        documents of the nearest training queries), so nothing a merge would find is missed; queries go in chunks
        that bound the score matrix to SCORE_CHUNK * 256 floats.

        Args:
            queries: Query vectors, one a row.
            k: Documents a query.

        Returns:
            ``(scores, rows)``, each ``(len(queries), k)``, best first.
        """
        vectors, knn = self.index.vectors, self.knn_scores(queries)
        n_docs, deleted = len(vectors), self.index.deleted
        k = min(k, self.index.live_count)
        scores_out = np.empty((len(queries), k), dtype=np.float32)
        rows_out = np.empty((len(queries), k), dtype=np.int64)
        step = max(1, (SCORE_CHUNK * 256) // n_docs)
        for start in range(0, len(queries), step):
            part = slice(start, start + step)
            scores = self.lam * _dot_all(queries[part], vectors)
            scores[:, deleted] = -np.inf  # deleted documents are never returned
            scores += (1 - self.lam) * knn[part].toarray()
            top = np.argpartition(-scores, k - 1, axis=1)[:, :k] if k < n_docs else np.argsort(-scores, axis=1)
            top_scores = np.take_along_axis(scores, top, axis=1)
            order = np.argsort(-top_scores, axis=1, kind="stable")
            rows_out[part] = np.take_along_axis(top, order, axis=1)
            scores_out[part] = np.take_along_axis(top_scores, order, axis=1)
        return scores_out, rows_out

    # ------------------------------------------------------------------ XS folding
    def folded_vectors(self, lam: float | None = None) -> np.ndarray:
        """The folded document vectors, d~ = lam * d + (1 - lam) * normalize(sum of the training queries relevant to d).

        Args:
            lam: The weight (None: this PEFA's).

        Returns:
            One float32 vector a document row.
        """
        lam = self.lam if lam is None else lam
        sums = np.asarray(self.labels.T @ self.train_vectors, dtype=np.float32)
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        sums = np.divide(sums, norms, out=np.zeros_like(sums), where=norms > 0)
        return (lam * as_float32(self.index.vectors) + (1 - lam) * sums).astype(np.float32)

    def folded_index(self) -> DenseIndex:
        """The PEFA-XS index: a DenseIndex of its own, built once into the cache (or ``folded_path``; never beside the
        user's index), stamped with the encoder it stands for.

        Returns:
            The folded :class:`~pt_dense.DenseIndex`.
        """
        if self._folded is not None:
            return self._folded
        path = self.folded_path or cache_dir() / "pefa-xs" / f"{self.index.meta.get('build_id')}-{self._xs_key()}"
        folded = DenseIndex(path)
        if not folded.built():
            encoder = self.index.meta.get("encoder")
            descriptor = {**encoder, "pefa": {"kind": "xs", "lam": self.lam}} if encoder else None
            live = np.setdiff1d(np.arange(len(self.index)), self.index.deleted)
            docnos, vectors = self.index.docnos[live], self.folded_vectors()[live]
            folded.indexer(progress=False).index(
                {"docno": d, "doc_vec": v, ENCODER_KEY: descriptor} for d, v in zip(docnos, vectors, strict=True))
        self._folded = folded
        return folded

    def _xs_key(self) -> str:
        """Content key of the folded vectors: lam, the training vectors and the labels."""
        digest = hashlib.blake2b(digest_size=8)
        for part in (np.float64(self.lam), self.train_vectors, self.labels.indptr, self.labels.indices):
            digest.update(np.ascontiguousarray(part).tobytes())
        digest.update(str(self.index.meta.get("build_id")).encode())
        return f"lam{self.lam:g}-{digest.hexdigest()}"

    # ------------------------------------------------------------------ leak check and tuning
    def check_leak(self, inp: pd.DataFrame) -> None:
        """Refuse queries that are training queries (same qid, or the same text).

        Args:
            inp: A frame of ``qid, query``.

        Raises:
            InputError: A query of ``inp`` is a training query.
        """
        qids = inp["qid"].astype(str).tolist()
        leaked = {qid for qid in qids if qid in self.train_qids}
        if "query" in inp.columns:
            leaked |= {qid for qid, text in zip(qids, inp["query"], strict=True)
                       if isinstance(text, str) and _normal(text) in self.train_texts}
        if leaked:
            raise InputError(
                f"{len(leaked)} input queries are also PEFA training queries (by qid or text, e.g. "
                f"{sorted(leaked)[:5]}): evaluate on queries the adapter has not seen"
            )

def drop_overlap(train_topics: pd.DataFrame, *held_out: pd.DataFrame) -> pd.DataFrame:
    """``train_topics`` without the queries that also occur (by qid or normalised text) in any ``held_out`` set.

    Use it to build PEFA's memory when a collection repeats query texts across splits: the held-out side stays
    untouched, the training side gives the duplicates up.

    Args:
        train_topics: ``qid, query``: the queries meant for PEFA's memory.
        held_out: One or more ``qid, query`` frames (validation, test...) that the memory must not contain.

    Returns:
        The kept rows of ``train_topics``, in their order. Texts are compared lower-cased with whitespace collapsed.

    Example:
        ::

            memory = drop_overlap(data.topics("train"), data.topics("test"))
    """
    qids = set().union(*(set(t["qid"].astype(str)) for t in held_out))
    texts = set().union(*(set(t["query"].map(_normal)) for t in held_out))
    keep = ~train_topics["qid"].astype(str).isin(qids) & ~train_topics["query"].map(_normal).isin(texts)
    return train_topics[keep].reset_index(drop=True)


def _label_matrix(qids: pd.Series, qrels: pd.DataFrame, index: DenseIndex) -> sp.csr_matrix:
    """Binary (training queries x index documents) relevance; judgements of documents the index lacks are dropped."""
    positives = qrels[qrels["label"] > 0].astype({"qid": str, "docno": str})
    query_rows = pd.Index(qids).get_indexer(positives["qid"])
    doc_rows = index.docno_lookup.get_indexer(positives["docno"])
    keep = (query_rows >= 0) & (doc_rows >= 0)
    matrix = sp.csr_matrix((np.ones(int(keep.sum()), np.float32), (query_rows[keep], doc_rows[keep])),
                           shape=(len(qids), len(index)))
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return matrix


def sparse_lookup(matrix: sp.csr_matrix, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``matrix[rows[i], cols[i]]`` for every i, vectorised (scipy's element-wise fancy indexing is slow).

    PEFA reads its kNN scores of (query, candidate document) pairs this way.

    Args:
        matrix: A sparse matrix (converted to CSR; a CSR matrix gets its indices sorted in place).
        rows: Row numbers.
        cols: Column numbers, one per row number.

    Returns:
        The entries, 0 where the matrix stores none.
    """
    matrix = matrix.tocsr()
    matrix.sort_indices()
    width = np.int64(matrix.shape[1])
    keys = np.repeat(np.arange(matrix.shape[0], dtype=np.int64), np.diff(matrix.indptr)) * width + matrix.indices
    wanted = rows.astype(np.int64) * width + cols
    found = np.minimum(np.searchsorted(keys, wanted), max(len(keys) - 1, 0))
    hit = (keys[found] == wanted) if len(keys) else np.zeros(len(wanted), dtype=bool)
    return np.where(hit, matrix.data[found] if len(keys) else 0.0, 0.0)



def _dot_all(queries: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """queries @ vectors.T; a few queries go through einsum's single-threaded loop, as FAISS does for small batches,
    because a multi-threaded BLAS call on one row costs more in thread hand-offs than in arithmetic."""
    if len(queries) < BLAS_MIN_QUERIES:
        return np.einsum("qd,nd->qn", queries, vectors)
    return queries @ vectors.T


def _check_lam_k(lam: float, k: int) -> None:
    if not 0.0 <= lam <= 1.0:
        raise InputError(f"lam must be in [0, 1], not {lam}")
    if k < 1:
        raise InputError(f"k must be at least 1, not {k}")


def _normal(text: object) -> str:
    return " ".join(str(text).lower().split())


