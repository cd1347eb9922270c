"""FAISS retrievers over a DenseIndex: exact (flat inner product) and approximate (HNSW, or any FAISS factory
string: IVF, PQ, SQ, OPQ...; structures cached on disk, see :mod:`.structures`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import faiss
import numpy as np
import pandas as pd
import pyterrier as pt

from pt_dense.encoders.stages import fingerprint_for
from pt_dense.errors import InputError
from pt_dense.index.faiss_kinds import EF_MAX, HNSW_M, check_int, parse_factory
from pt_dense.index.structures import factory_index, hnsw_graph, search_with
from pt_dense.io.frames import take_rows
from pt_dense.io.validation import require_columns, stack_vectors
from pt_dense.registry import GROUPS, Registry

if TYPE_CHECKING:
    from pt_dense.index.dense_index import DenseIndex

#: vectors searched per exact-search pass; bounds memory for indexes larger than RAM
FLAT_CHUNK_ROWS = 1 << 20
#: query-document scores held at once by an exact search (128 MiB of float32)
SCORE_BLOCK = 1 << 25


def query_vector_inputs(stage: pt.Transformer) -> list[str]:
    """The columns a first-stage retriever of query vectors reads (its ``transform_inputs``)."""
    return ["qid", "query_vec"]


def ranked_outputs(stage: pt.Transformer, input_columns: list[str]) -> list[str]:
    """A retriever's ``transform_outputs``: its input columns (``qid, query_vec`` required) and ``docno, score,
    rank``."""
    require_columns(input_columns, ["qid", "query_vec"], stage)
    return list(input_columns) + [c for c in ("docno", "score", "rank") if c not in input_columns]


class DenseRetriever(pt.Transformer):
    """``qid, query_vec`` -> ``docno, score, rank`` (input columns kept), top ``k`` by inner product.

    Made by :meth:`DenseIndex.retriever() <pt_dense.DenseIndex.retriever>`; other kinds (HNSW, FAISS factory
    strings) are subclasses that change :meth:`search`.

    Args:
        index: The index searched.
        k: Documents returned a query.
        encoder: Vouches for query vectors that carry no fingerprint (see :meth:`vouched_by`).
    """

    kind = "flat"

    def __init__(self, index: DenseIndex, k: int = 1000, *, encoder=None):
        self.index = index
        self.k = check_int("k", k, 1)
        self.vouched_by(encoder)

    def vouched_by(self, encoder) -> DenseRetriever:
        """Take query vectors that carry no fingerprint as made by ``encoder`` (a pt_dense encoder, one of its
        stages, or a fingerprint; None: refuse them where the index knows its encoder), checked against the index
        now and on every call (an encoder trained further changes its fingerprint).

        Args:
            encoder: A pt_dense encoder, one of its stages, or a fingerprint; None refuses unstamped vectors where the
                index knows its encoder.

        Returns:
            This stage.

        Raises:
            EncoderMismatchError: ``encoder`` is not one the index stands for.
        """
        if encoder is not None and self.index.built():
            self.index.check_encoder(fingerprint_for(encoder), what="the encoder given to the retriever", strict=True)
        self.encoder = encoder
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.index!r}, k={self.k})"

    def _config(self) -> tuple:
        return (type(self), self.index, self.k)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DenseRetriever) and self._config() == other._config()

    def __hash__(self) -> int:
        return hash(self._config())

    transform_inputs = query_vector_inputs
    transform_outputs = ranked_outputs

    def transform(self, inp: pd.DataFrame) -> pd.DataFrame:
        require_columns(inp.columns, ["qid", "query_vec"], self)
        queries = stack_vectors(inp["query_vec"], self.index.dim, "query_vec")
        self.index.check_vectors(inp["query_vec"], encoder=self.encoder)
        k, deleted = min(self.k, self.index.live_count), self.index.deleted
        if not len(inp) or k == 0:
            return results_frame(inp, np.zeros((len(inp), 0), np.float32), np.zeros((len(inp), 0), int),
                                 self.index.docno_column)
        scores, rows = self.search(queries, min(k + len(deleted), len(self.index)))
        if len(deleted):  # deleted rows are searched (until compact) but never returned
            scores, rows = without_rows(scores, rows, deleted, k)
        return results_frame(inp, scores, rows, self.index.docno_column)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, rows) per query, exact, in chunks of at most FLAT_CHUNK_ROWS vectors (a quarter of that for
        float16 vectors, which are copied once into FAISS's scanner).

        Args:
            queries: Query vectors, one a row.
            k: Rows a query.

        Returns:
            ``(scores, rows)``, each ``(len(queries), k)``, best first.
        """
        vectors = self.index.vectors
        chunk = FLAT_CHUNK_ROWS if vectors.dtype == np.float32 else FLAT_CHUNK_ROWS // 4
        if len(vectors) <= chunk:
            return exact_knn(queries, vectors, k)
        heap = faiss.ResultHeap(len(queries), k, keep_max=True)
        for start in range(0, len(vectors), chunk):
            scores, rows = exact_knn(queries, vectors[start : start + chunk], k)
            heap.add_result(scores, np.where(rows >= 0, rows + start, -1))
        heap.finalize()
        return heap.D, heap.I


def exact_knn(queries: np.ndarray, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact inner-product top-k over stored vectors: float32 ones by :func:`blas_topk` on the memory map, float16
    ones scanned by FAISS's fp16 scalar quantiser, which decodes as it scans (4x faster than converting them to
    float32 first, and the same scores)."""
    if vectors.dtype == np.float32:
        return blas_topk(queries, vectors, k)
    scanner = faiss.IndexScalarQuantizer(vectors.shape[1], faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT)
    faiss.copy_array_to_vector(np.ascontiguousarray(vectors, dtype=np.float16).view(np.uint8).reshape(-1),
                               scanner.codes)
    scanner.ntotal = len(vectors)
    return scanner.search(queries, k)


def blas_topk(queries: np.ndarray, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact inner-product top-k as FAISS returns it (scores best first, rows; -1 pads when there are fewer than k
    vectors): one matrix product per block of queries (at most SCORE_BLOCK scores held at once), a partial sort of
    each row, then a sort of its k. FAISS's ``knn`` keeps a heap per query instead, which at k = 100-1000 costs more
    than the product itself: this is 2-4x faster on 5,000 to 100,000 vectors (``bench/speed.py``)."""
    count = len(vectors)
    kept = min(k, count)
    scores_out = np.full((len(queries), k), -np.finfo(np.float32).max, dtype=np.float32)
    rows_out = np.full((len(queries), k), -1, dtype=np.int64)
    block = max(1, SCORE_BLOCK // max(count, 1))
    for start in range(0, len(queries), block):
        scores = queries[start : start + block] @ vectors.T
        if kept < count:
            top = np.argpartition(scores, count - kept, axis=1)[:, count - kept :]
        else:
            top = np.broadcast_to(np.arange(count), scores.shape)
        top_scores = np.take_along_axis(scores, top, axis=1)
        order = np.argsort(-top_scores, axis=1, kind="stable")
        scores_out[start : start + block, :kept] = np.take_along_axis(top_scores, order, axis=1)
        rows_out[start : start + block, :kept] = np.take_along_axis(top, order, axis=1)
    return scores_out, rows_out


class HnswRetriever(DenseRetriever):
    """Approximate search with a FAISS HNSW graph (inner product), built once and cached in the index folder.

    Args:
        index: the index searched.
        k: hits per query (at least 1).
        M: neighbours per node, 2 to 256.
        ef_construction: the candidate list while building, 1 to 2**20.
        ef_search: the candidate list while searching, 1 to 2**20 (None: ``max(128, k)``).

    Raises:
        InputError: a parameter that is not a whole number in its range (checked before FAISS sees it: FAISS aborts
            the process on some, such as ``M=0``).
    """

    kind = "hnsw"

    def __init__(self, index: DenseIndex, k: int = 1000, M: int = 32, ef_construction: int = 200,
                 ef_search: int | None = None):
        super().__init__(index, check_int("k", k, 1))
        self.M = check_int("M", M, *HNSW_M)
        self.ef_construction = check_int("ef_construction", ef_construction, 1, EF_MAX)
        self.ef_search = (min(max(128, self.k), EF_MAX) if ef_search is None
                          else check_int("ef_search", ef_search, 1, EF_MAX))

    def _config(self) -> tuple:
        return (*super()._config(), self.M, self.ef_construction, self.ef_search)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Approximate top-k (scores, rows) per query in the HNSW graph (built once, cached in the index folder).

        Args:
            queries: Query vectors, one a row.
            k: Rows a query.

        Returns:
            ``(scores, rows)``, each ``(len(queries), k)``; a row of -1 where fewer than k were found.
        """
        graph = hnsw_graph(self.index, self.M, self.ef_construction)
        return graph.search(queries, k, params=faiss.SearchParametersHNSW(efSearch=self.ef_search))


class FactoryRetriever(DenseRetriever):
    """Search with a FAISS structure named by an index_factory string (``"IVF4096,PQ48"``, ``"HNSW32,SQ8"``,
    ``"OPQ64,IVF1024,PQ64"``; the kinds :mod:`.faiss_kinds` serves): trained on a seeded sample of ``train_size``
    vectors, built in chunks, cached beside the vectors; ``nprobe`` and ``ef_search`` are this stage's own search
    parameters.

    Args:
        index: the index searched.
        k: hits per query (at least 1).
        factory: the FAISS factory string.
        nprobe: IVF lists probed per query, 1 to the list count (IVF kinds only; None: 1).
        ef_search: HNSW candidate list, 1 to 2**20 (HNSW kinds only; None: 16).
        train_size: vectors sampled to train the structure (at least 1).
        seed: the sample's seed (at least 0).

    Raises:
        InputError: a string outside the served grammar, a number that does not fit the index's dimension, or a
            parameter out of range; the training sample's size is checked when the structure is built.
    """

    def __init__(self, index: DenseIndex, k: int = 1000, *, factory: str, nprobe: int | None = None,
                 ef_search: int | None = None, train_size: int = 100_000, seed: int = 0):
        super().__init__(index, check_int("k", k, 1))
        self.plan = parse_factory(factory)
        self.plan.search_parameters(nprobe, ef_search)  # checks them
        self.train_size, self.seed = check_int("train_size", train_size, 1), check_int("seed", seed, 0)
        if index.built():
            self.plan.check_dim(index.dim)
        self.factory, self.nprobe, self.ef_search = factory, nprobe, ef_search

    @property
    def kind(self) -> str:  # type: ignore[override]
        """The FAISS factory string this retriever searches with."""
        return self.factory

    def _config(self) -> tuple:
        return (*super()._config(), self.factory, self.nprobe, self.ef_search, self.train_size, self.seed)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, rows) per query in the FAISS structure (trained and built once, cached beside the vectors).

        Args:
            queries: Query vectors, one a row.
            k: Rows a query.

        Returns:
            ``(scores, rows)``, each ``(len(queries), k)``; a row of -1 where fewer than k were found.
        """
        built = factory_index(self.index, self.plan, self.train_size, self.seed)
        parameters = self.plan.search_parameters(self.nprobe, self.ef_search)
        return search_with(built, queries, k, parameters, repr(self.factory))


def without_rows(scores: np.ndarray, rows: np.ndarray, dropped: np.ndarray, k: int) -> tuple[np.ndarray,
                                                                                              np.ndarray]:
    """The top ``k`` of each query's hits once ``dropped`` rows are removed (order kept; -1 pads a short list)."""
    gone = np.isin(rows, dropped) | (rows < 0)
    order = np.argsort(gone, axis=1, kind="stable")[:, :k]
    rows = np.where(np.take_along_axis(gone, order, axis=1), -1, np.take_along_axis(rows, order, axis=1))
    return np.take_along_axis(scores, order, axis=1), rows


def results_frame(inp: pd.DataFrame, scores: np.ndarray, rows: np.ndarray, docnos) -> pd.DataFrame:
    """Repeat each input row once per hit and add ``docno, score, rank``; FAISS's -1 padding is dropped. ``docnos``
    is an array with ``take`` (numpy, or better ``index.docno_column``)."""
    k = rows.shape[1] if rows.ndim == 2 else 0
    flat_rows, flat_scores = rows.reshape(-1), scores.reshape(-1).astype(np.float32, copy=False)
    positions, ranks = np.repeat(np.arange(len(inp)), k), np.tile(np.arange(k), len(inp))
    if len(flat_rows) and flat_rows.min() < 0:  # only when an index holds fewer than k documents
        valid = flat_rows >= 0
        flat_rows, flat_scores, positions, ranks = flat_rows[valid], flat_scores[valid], positions[valid], ranks[valid]
    return take_rows(inp, positions, {"docno": docnos.take(flat_rows), "score": flat_scores, "rank": ranks})


#: retriever kinds by name: ``index.retriever(kind=...)`` looks here (any other kind is read as a FAISS factory
#: string); a new kind extends the table with :func:`register_retriever_kind` or an entry point in the
#: ``pt_dense.retriever_kinds`` group, and every stage that takes ``kind=`` gets it
RETRIEVER_KINDS: Registry[type[DenseRetriever]] = Registry("retriever kind", GROUPS["retriever kind"])
RETRIEVER_KINDS.register("flat", DenseRetriever)
RETRIEVER_KINDS.register("hnsw", HnswRetriever)


def register_retriever_kind(name: str, retriever: type[DenseRetriever]) -> None:
    """Make ``index.retriever(kind=name)`` build ``retriever(index, k=k, **params)``.

    Every stage that takes ``kind=`` (PEFA-XS, the distributed search...) then knows the new kind too.

    Args:
        name: The kind's name.
        retriever: A :class:`~pt_dense.index.retriever.DenseRetriever` subclass, usually one that overrides
            :meth:`~pt_dense.index.retriever.DenseRetriever.search`; its constructor takes the index, ``k`` and
            the kind's own keyword parameters.

    Example:
        ::

            class MyRetriever(DenseRetriever):
                kind = "mine"

                def search(self, queries, k):
                    ...  # (scores, rows), each (len(queries), k), best first

            register_retriever_kind("mine", MyRetriever)
            index.retriever(kind="mine")

    Raises:
        InputError: ``name`` is registered already.
    """
    RETRIEVER_KINDS.register(name, retriever)


def make_retriever(index: DenseIndex, k: int, kind: str, **params) -> DenseRetriever:
    """The retriever of ``kind`` over ``index`` (see :data:`RETRIEVER_KINDS`; any other kind is read as a FAISS
    factory string).

    Raises:
        InputError: a kind that is neither registered nor a factory string pt_dense serves, a parameter the kind
            does not take, or a value out of its range.
    """
    if not isinstance(kind, str):
        raise InputError(f"kind must be a string: one of {RETRIEVER_KINDS.choices()} or a FAISS factory string "
                         f"(e.g. 'IVF4096,PQ48'), not {kind!r}")
    k = check_int("k", k, 1)
    if kind not in RETRIEVER_KINDS:
        try:
            parse_factory(kind)
        except InputError as err:
            raise InputError(f"unknown retriever kind {kind!r}; choose one of {RETRIEVER_KINDS.choices()} or a FAISS "
                             f"factory string. {err}") from err
    retriever = RETRIEVER_KINDS.get(kind)
    try:
        if retriever is None:
            return FactoryRetriever(index, k=k, factory=kind, **params)
        return retriever(index, k=k, **params)
    except TypeError as err:
        raise InputError(f"retriever kind {kind!r} does not take {sorted(params)}: {err}") from err
