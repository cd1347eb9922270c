"""PEFA's core: parameter-free adapters for any embedding retriever (Chang et al., WSDM 2024).

With training queries q_i and their relevant documents (labels y(i, d) in {0, 1}):

- **PEFA-XL**: s(q, d) = lam * <q, d> + (1 - lam) * sum over the k training queries nearest to q of w_i * y(i, d),
  with w_i = <q, q_i> (divided by k if ``divide_by_k``). Two indices: the documents and the training queries (FAISS);
  the first stage scores every document exactly, which contains the merge of both candidate lists.
- **PEFA-XS**: one index over folded vectors d~ = lam * d + (1 - lam) * normalize(sum of the training queries
  relevant to d); a plain dense search over d~ (a document without training queries keeps lam * d).

Both work from ``query_vec``, so any encoder stage that produces it plugs in. No backward pass, no new parameters.
This module holds the memory and the scores and knows no stage; :mod:`.stages` builds the PyTerrier stages on it,
:mod:`.tuning` scores those very stages to choose lam and k, and :mod:`.api` holds :class:`~pt_dense.PEFA`, which
puts the three together. Deleted documents are never scored: the labels skip them, XL masks them, and the XS folded
index holds the live documents only.
"""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path

import faiss
import numpy as np
import pandas as pd
import scipy.sparse as sp

from pt_dense.encoders.stages import ENCODER_KEY
from pt_dense.errors import InputError
from pt_dense.index.dense_index import DenseIndex
from pt_dense.index.layout import as_float32
from pt_dense.index.scorer import dot_rows
from pt_dense.io.cache import cache_dir
from pt_dense.io.validation import require_columns, stack_vectors
from pt_dense.pefa.common import check_settings, dot_all, label_matrix, normal_text, sparse_lookup

SCORE_CHUNK = 1 << 16


class PefaCore:
    """The training-query side of PEFA over an existing DenseIndex: its memory (encoded training queries and their
    labels) and its scores, without any stage (see :class:`~pt_dense.PEFA` for the stages and tuning).

    Settings never change in place: ``with_settings`` returns a new object (sharing the encoded training
    queries), so stages already built keep the settings they were built with.
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
        check_settings(kind, lam, k)
        require_columns(train_topics.columns, ["qid", "query"], self)
        require_columns(train_qrels.columns, ["qid", "docno", "label"], self)
        self.index, self.kind, self.lam, self.k, self.divide_by_k = index, kind, lam, k, divide_by_k
        self.encoder_stage = encoder.query_encoder() if hasattr(encoder, "query_encoder") else encoder
        self.fingerprint = getattr(encoder, "fingerprint", None)
        index.check_encoder(self.fingerprint, what="the training queries")

        topics = train_topics.drop_duplicates("qid").reset_index(drop=True)
        self.train_qids = set(topics["qid"].astype(str))
        self.train_texts = {normal_text(t) for t in topics["query"]}
        encoded = self.encoder_stage(topics[["qid", "query"]])
        index.check_vectors(encoded["query_vec"], what="the training queries' vectors")
        self.train_vectors = stack_vectors(encoded["query_vec"], index.dim, "training query_vec")
        self.labels = label_matrix(topics["qid"].astype(str), train_qrels, index.docno_lookup, len(index))
        if self.labels.nnz == 0:
            raise InputError("no training qrel points at a document of the index: check that the qrels and the "
                             "index are of the same collection")
        self.folded_path = Path(folded_path) if folded_path else None
        self._folded: DenseIndex | None = None

    def __repr__(self) -> str:
        return (f"PEFA(kind={self.kind!r}, lam={self.lam}, k={self.k}, train_queries={len(self.train_vectors)}, "
                f"labels={self.labels.nnz})")

    def with_settings(self, *, lam: float | None = None, k: int | None = None) -> PefaCore:
        """A PEFA of this class with other settings over the same index and training queries (nothing is encoded
        again).

        Args:
            lam: The new ``lam`` (None keeps this one's).
            k: The new ``k`` (None keeps this one's).

        Returns:
            The new PEFA; this one is unchanged.
        """
        lam, k = self.lam if lam is None else lam, self.k if k is None else k
        check_settings(self.kind, lam, k)
        other = copy.copy(self)
        other.lam, other.k, other._folded = lam, k, None
        other.folded_path = self.folded_path if lam == self.lam else None
        return other

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
            scores = self.lam * dot_all(queries[part], vectors)
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

    # ------------------------------------------------------------------ leak check
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
                       if isinstance(text, str) and normal_text(text) in self.train_texts}
        if leaked:
            raise InputError(
                f"{len(leaked)} input queries are also PEFA training queries (by qid or text, e.g. "
                f"{sorted(leaked)[:5]}): evaluate on queries the adapter has not seen"
            )
