"""PEFA's array and text helpers, below its core: the label matrix, sparse look-ups, the dense product of a few
queries, the checks of lam and k, and the removal of training queries that overlap a held-out set."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from pt_dense.errors import InputError

KINDS = ("xl", "xs")
BLAS_MIN_QUERIES = 20  # FAISS's own threshold for switching to BLAS


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
    texts = set().union(*(set(t["query"].map(normal_text)) for t in held_out))
    keep = ~train_topics["qid"].astype(str).isin(qids) & ~train_topics["query"].map(normal_text).isin(texts)
    return train_topics[keep].reset_index(drop=True)


def label_matrix(qids: pd.Series, qrels: pd.DataFrame, docno_lookup, n_docs: int) -> sp.csr_matrix:
    """Binary (training queries x index rows) relevance; judgements of documents the index lacks (or deleted ones,
    which ``docno_lookup`` does not find) are dropped.

    Args:
        qids: The training queries' qids, in the order of their vectors.
        qrels: ``qid, docno, label``.
        docno_lookup: docno -> row (``get_indexer``; -1 for absent or deleted documents).
        n_docs: The index's rows.

    Returns:
        A CSR matrix of ones.
    """
    positives = qrels[qrels["label"] > 0].astype({"qid": str, "docno": str})
    query_rows = pd.Index(qids).get_indexer(positives["qid"])
    doc_rows = docno_lookup.get_indexer(positives["docno"])
    keep = (query_rows >= 0) & (doc_rows >= 0)
    matrix = sp.csr_matrix((np.ones(int(keep.sum()), np.float32), (query_rows[keep], doc_rows[keep])),
                           shape=(len(qids), n_docs))
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


def dot_all(queries: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """queries @ vectors.T; a few queries go through einsum's single-threaded loop, as FAISS does for small batches,
    because a multi-threaded BLAS call on one row costs more in thread hand-offs than in arithmetic.

    Args:
        queries: Query vectors, one a row.
        vectors: Document vectors, one a row.

    Returns:
        The ``(len(queries), len(vectors))`` inner products.
    """
    if len(queries) < BLAS_MIN_QUERIES:
        return np.einsum("qd,nd->qn", queries, vectors)
    return queries @ vectors.T


def check_settings(kind: str, lam: float, k: int) -> None:
    """Refuse a kind other than ``"xl"``/``"xs"``, a lam outside [0, 1] or a k below 1.

    Args:
        kind: The PEFA kind.
        lam: The weight of the dense score.
        k: Nearest training queries that vote.

    Raises:
        InputError: One of them is out of range.
    """
    if kind not in KINDS:
        raise InputError(f"kind must be one of {KINDS}, not {kind!r}")
    if not 0.0 <= lam <= 1.0:
        raise InputError(f"lam must be in [0, 1], not {lam}")
    if k < 1:
        raise InputError(f"k must be at least 1, not {k}")


def normal_text(text: object) -> str:
    """A query text lower-cased with its whitespace collapsed (how training and held-out queries are compared).

    Args:
        text: A query text.

    Returns:
        The normalised text.
    """
    return " ".join(str(text).lower().split())
