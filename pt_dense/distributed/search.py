"""Sharded search on Ray: an index split into S contiguous shards (each a DenseIndex of its own), each held by a Ray
actor that searches it with any retriever kind (exact, HNSW, any FAISS factory string with its nprobe / ef_search);
a PyTerrier stage fans a batch of query vectors out to every shard and merges their top k.

A shard that cannot answer (its actor died and was not restarted, or it timed out) stops the search with a
:class:`~pt_dense.distributed.ShardLostError` naming the shard: results are never silently partial.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyterrier as pt

from pt_dense.distributed.cluster import ShardLostError, connect, require_ray, user_error
from pt_dense.encoders.stages import ENCODER_KEY, fingerprint_for
from pt_dense.errors import PtDenseError
from pt_dense.index.dense_index import DenseIndex
from pt_dense.index.faiss_kinds import check_int
from pt_dense.index.retriever import make_retriever, query_vector_inputs, ranked_outputs, results_frame
from pt_dense.index.shards import shard_range
from pt_dense.io.validation import require_columns, stack_vectors

#: where an index's search shards go by default: ``<index>.search-shards/<s>-of-<S>``
SHARDS_SUFFIX = ".search-shards"


def index_identity(index: DenseIndex) -> str:
    """A short hash naming the current content of ``index`` (its files' checksums), so shards know their source."""
    recorded = index.meta.get("checksums") or {"generation": index.generation.name, "build": index.meta.get("build_id")}
    return hashlib.sha256(json.dumps(recorded, sort_keys=True).encode()).hexdigest()[:16]


def split_index(index: DenseIndex | str | Path, shards: int, *, folder: str | Path | None = None) -> list[DenseIndex]:
    """Split the live documents of ``index`` into ``shards`` contiguous DenseIndexes (in index order), reusing shards
    already split from the same content.

    Args:
        index: The index (or its folder).
        shards: How many shards, 1 to the index's live documents.
        folder: Where the shards go (default ``<index>.search-shards``); on a cluster, a path every node sees.

    Returns:
        The shards, in order: shard ``s`` holds live documents ``[s*N//S, (s+1)*N//S)``.

    Raises:
        InputError: a shard count out of range.
    """
    index = index if isinstance(index, DenseIndex) else DenseIndex(index)
    live = index.live_count
    shards = check_int("shards", shards, 1, max(1, live))
    root = Path(folder) if folder is not None else index.path.with_name(index.path.name + SHARDS_SUFFIX)
    source, parts = index_identity(index), []
    for shard in range(shards):
        first, stop = shard_range(shard, shards, live)
        part = DenseIndex(root / f"{shard:05d}-of-{shards:05d}")
        expected = {"shard": shard, "shards": shards, "first": first, "corpus_docs": live, "source": source}
        if not (part.built() and part.meta.get("shard") == expected):
            part.indexer(overwrite=True, total=stop - first, progress=False, dtype=index.dtype.name,
                         corpus=index.meta.get("corpus"), shard=expected).index(_live_records(index, first, stop))
        parts.append(part)
    return parts


def _live_records(index: DenseIndex, first: int, stop: int) -> Iterator[dict]:
    """``docno, doc_vec`` records of the live documents at live positions ``[first, stop)``."""
    descriptor, position = index.meta.get("encoder"), 0
    for docnos, vectors in index.chunks():
        low, high = max(first - position, 0), min(stop - position, len(docnos))
        for docno, vector in zip(docnos[low:high], vectors[low:high], strict=True):
            yield {"docno": docno, "doc_vec": vector, ENCODER_KEY: descriptor}
        position += len(docnos)
        if position >= stop:
            return


class ShardServer:
    """The Ray actor holding one shard: opens it, builds (or loads) its search structure once, answers top-k."""

    def __init__(self, folder: str, kind: str, k: int, params: dict):
        self.index = DenseIndex(folder)
        self.retriever = make_retriever(self.index, k, kind, **params)
        self.retriever.search(np.zeros((1, self.index.dim), np.float32), 1)  # build or load the structure now

    def pid(self) -> int:
        """This actor's process id."""
        return os.getpid()

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` (scores, docnos) of each query in this shard; a short list is padded with -inf and None."""
        scores, rows = self.retriever.search(queries, min(k, len(self.index)))
        docnos = np.full(rows.shape, None, dtype=object)
        valid = rows >= 0
        docnos[valid] = self.index.docnos[rows[valid]]
        return np.where(valid, scores, -np.inf).astype(np.float32), docnos


def merge_top_k(answers: list[tuple[np.ndarray, np.ndarray]], k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One top ``k`` per query from every shard's (scores, docnos): (scores, rows, docnos) for
    :func:`~pt_dense.index.retriever.results_frame`, rows indexing the flat ``docnos`` (-1 where a query has fewer
    than ``k`` hits). Equal scores keep shard order, then each shard's own."""
    scores = np.concatenate([a[0] for a in answers], axis=1)
    docnos = np.concatenate([a[1] for a in answers], axis=1)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    top = np.take_along_axis(scores, order, axis=1)
    rows = np.where(np.isfinite(top), order + np.arange(len(scores))[:, None] * scores.shape[1], -1)
    return top, rows, docnos.reshape(-1)


class ShardedRetriever(pt.Transformer):
    """``qid, query_vec`` -> ``docno, score, rank`` (input columns kept), top ``k`` over an index searched in
    ``shards`` shards, each held by a Ray actor. On exact search (``kind="flat"``) it returns the single index's
    docnos and scores.

    Args:
        index: The index (or its folder): a path every node of the cluster sees.
        shards: How many shards (and actors).
        k: Hits per query.
        kind: ``"flat"`` (exact), ``"hnsw"`` or a FAISS factory string; each shard builds its own structure.
        encoder: Vouches for query vectors without a fingerprint, as for ``index.retriever``.
        folder: Where the shards are written (default ``<index>.search-shards``).
        cpus_per_shard: CPUs each actor reserves (None: Ray's default for actors, which holds none while running).
        restarts: Times a dead shard actor is restarted (and its search retried) before the stage fails.
        timeout_s: Seconds to wait for a shard's answer (None: no limit).
        address: The Ray cluster (see :func:`pt_dense.distributed.connect`).
        **params: The kind's search parameters (``nprobe``, ``ef_search``, ``M``, ``train_size``...).

    Raises:
        RayMissingError: Ray is not installed.
        InputError: a bad kind, parameter, k or shard count (checked before any actor starts).
        ShardLostError: a shard could not be started.
    """

    def __init__(self, index: DenseIndex | str | Path, shards: int = 2, k: int = 1000, kind: str = "flat", *,
                 encoder=None, folder: str | Path | None = None, cpus_per_shard: float | None = None,
                 restarts: int = 1, timeout_s: float | None = None, address: str | None = "auto", **params):
        require_ray()
        self.index = index if isinstance(index, DenseIndex) else DenseIndex(index)
        self.k, self.kind, self.params = check_int("k", k, 1), kind, params
        make_retriever(self.index, self.k, kind, **params)  # refuses a bad kind or parameter here, not in an actor
        self.restarts, self.timeout_s = check_int("restarts", restarts, 0), timeout_s
        if encoder is not None:
            self.index.check_encoder(fingerprint_for(encoder), what="the encoder given to the retriever", strict=True)
        self.encoder = encoder
        ray = connect(address)
        self.parts = split_index(self.index, shards, folder=folder)
        options = {"max_restarts": self.restarts, "max_task_retries": self.restarts}
        if cpus_per_shard is not None:
            options["num_cpus"] = cpus_per_shard
        server = ray.remote(ShardServer).options(**options)
        self.actors = [server.remote(str(p.path), kind, self.k, params) for p in self.parts]
        try:
            self._gather([a.pid.remote() for a in self.actors], "starting")
        except PtDenseError:
            self.close()
            raise

    def __repr__(self) -> str:
        return f"ShardedRetriever({self.index!r}, shards={len(self.parts)}, k={self.k}, kind={self.kind!r})"

    transform_inputs = query_vector_inputs
    transform_outputs = ranked_outputs

    def transform(self, inp: pd.DataFrame) -> pd.DataFrame:
        """Search every shard for each query of ``inp`` and keep the best ``k`` hits."""
        require_columns(inp.columns, ["qid", "query_vec"], self)
        queries = stack_vectors(inp["query_vec"], self.index.dim, "query_vec")
        self.index.check_vectors(inp["query_vec"], encoder=self.encoder)
        if not len(inp):
            return results_frame(inp, np.zeros((0, 0), np.float32), np.zeros((0, 0), int), np.array([], object))
        answers = self._gather([a.search.remote(queries, self.k) for a in self.actors], "searching")
        return results_frame(inp, *merge_top_k(answers, self.k))

    def pids(self) -> list[int]:
        """The process id of each shard's actor (to watch them, or to test a lost one)."""
        return self._gather([a.pid.remote() for a in self.actors], "asking")

    def close(self) -> None:
        """Stop the shard actors."""
        ray = require_ray()
        for actor in self.actors:
            ray.kill(actor)
        self.actors = []

    def _gather(self, refs: list, doing: str) -> list:
        """Every shard's answer, in order; a shard that fails is a ShardLostError naming it (never a partial)."""
        ray, answers = require_ray(), []
        for shard, ref in enumerate(refs):
            try:
                answers.append(ray.get(ref, timeout=self.timeout_s))
            except (ray.exceptions.RayError, TimeoutError) as err:
                found = user_error(err)
                if found is not None:
                    raise found from err
                part = self.parts[shard]
                raise ShardLostError(
                    f"shard {shard} of {len(self.parts)} ({part.path}, {len(part)} documents) failed while "
                    f"{doing} ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}): its actor died "
                    f"and was restarted {self.restarts} time(s) at most, or did not answer in time; nothing is "
                    "returned rather than part of the results. Check the cluster (`ray status`) and build the "
                    "stage again") from err
        return answers

