"""FAISS structures over an index's vectors (HNSW graphs, IVF/PQ/SQ indexes from factory strings): built once,
kept beside the vectors of their generation (or in the cache when the index is read-only) and shared within a
process."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import faiss
import numpy as np
from tqdm.auto import tqdm

from pt_dense.errors import InputError
from pt_dense.index.layout import as_float32
from pt_dense.io.atomic import atomic_file
from pt_dense.io.cache import cache_dir

if TYPE_CHECKING:
    from pt_dense.index.dense_index import DenseIndex

ADD_CHUNK = 65536
_STRUCTURES: dict[tuple, faiss.Index] = {}
_LOCK = threading.Lock()
#: a FAISS index_factory string: comma-separated components such as OPQ64_256, IVF4096, HNSW32, PQ48, SQ8, Flat
FACTORY = re.compile(r"^(?:[A-Z][A-Za-z]*[0-9x_]*(?:[_:][A-Za-z0-9]+)*)(?:,[A-Z][A-Za-z0-9_x:]*)*$")


def structure(index: DenseIndex, name: str, build: Callable[[], faiss.Index]) -> faiss.Index:
    """The structure ``name`` of ``index``'s current vectors: from memory, from its file, or ``build()`` and saved."""
    folder = index.folder if writable(index.folder) else cache_dir() / "faiss" / str(index.meta["build_id"])
    file = folder / name
    key = (str(file.absolute()), index.meta.get("build_id"))
    with _LOCK:
        if key not in _STRUCTURES:
            if file.exists():
                _STRUCTURES[key] = faiss.read_index(str(file))
            else:
                built = build()
                folder.mkdir(parents=True, exist_ok=True)
                with atomic_file(file) as tmp:
                    faiss.write_index(built, str(tmp))
                _STRUCTURES[key] = built
        return _STRUCTURES[key]


def writable(folder: Path) -> bool:
    """Whether this process may add files to ``folder`` (a read-only index keeps its structures in the cache)."""
    return os.access(folder, os.W_OK)


def add_in_chunks(target: faiss.Index, index: DenseIndex, what: str) -> faiss.Index:
    """Add every vector of ``index`` to ``target`` a chunk at a time (a progress bar on large indexes)."""
    for start in tqdm(range(0, len(index), ADD_CHUNK), desc=f"building {what}", unit="chunk",
                      disable=len(index) <= ADD_CHUNK):
        target.add(np.ascontiguousarray(as_float32(index.vectors[start : start + ADD_CHUNK])))
    return target


def hnsw_graph(index: DenseIndex, M: int, ef_construction: int) -> faiss.Index:
    """An HNSW graph (inner product) of the vectors for (M, efConstruction)."""

    def build() -> faiss.Index:
        graph = faiss.IndexHNSWFlat(index.dim, M, faiss.METRIC_INNER_PRODUCT)
        graph.hnsw.efConstruction = ef_construction
        return add_in_chunks(graph, index, "HNSW")

    return structure(index, f"hnsw-M{M}-efc{ef_construction}.faiss", build)


def check_factory(factory: str, dim: int | None = None) -> None:
    """Refuse a string that is not a FAISS index_factory description (checked against ``dim`` when given)."""
    if not FACTORY.match(factory):
        raise InputError(f"{factory!r} is not a FAISS factory string (e.g. 'IVF4096,PQ48', 'HNSW32,SQ8', "
                         "'OPQ64,IVF1024,PQ64')")
    if dim is not None:
        try:
            faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
        except RuntimeError as err:
            raise InputError(f"FAISS cannot build {factory!r} for {dim}-d vectors: {str(err).strip()[-200:]}") from err


def factory_index(index: DenseIndex, factory: str, train_size: int, seed: int = 0) -> faiss.Index:
    """The structure described by ``factory`` (inner product), trained on a seeded sample of ``train_size``
    vectors and filled in chunks."""

    def build() -> faiss.Index:
        check_factory(factory, index.dim)
        built = faiss.index_factory(index.dim, factory, faiss.METRIC_INNER_PRODUCT)
        if not built.is_trained:
            rows = np.sort(np.random.default_rng(seed).choice(len(index), min(train_size, len(index)), replace=False))
            sample = np.ascontiguousarray(as_float32(index.vectors[rows]))
            try:
                built.train(sample)
            except RuntimeError as err:
                raise InputError(f"training {factory!r} on {len(sample):,} vectors failed ({str(err).strip()[-160:]}):"
                                 " an index needs more vectors than its IVF lists and PQ centroids") from err
        return add_in_chunks(built, index, factory)

    slug = re.sub(r"[^A-Za-z0-9]+", "_", factory)
    return structure(index, f"factory-{slug}-t{train_size}-s{seed}.faiss", build)


def search_with(structure_: faiss.Index, queries: np.ndarray, k: int, parameters: str) -> tuple[np.ndarray,
                                                                                                  np.ndarray]:
    """Search a shared structure with this stage's own search parameters (e.g. ``nprobe=32``), set under a lock."""
    with _LOCK:
        if parameters:
            faiss.ParameterSpace().set_index_parameters(structure_, parameters)
        return structure_.search(queries, k)
