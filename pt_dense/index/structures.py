"""FAISS structures over an index's vectors (HNSW graphs, IVF/PQ/SQ indexes from factory strings): built once,
kept beside the vectors of their generation (or in the cache when the index is read-only) and shared within a
process.

Each structure ``<name>.faiss`` has a sidecar ``<name>.faiss.json`` recording the SHA-256 of the file, its vector
count and dimension, and the identity of the vectors it indexes (their SHA-256 from the generation's meta.json, or
the generation's build id where meta.json records no checksums). A structure is used only when its sidecar names
this generation's vectors: one without a sidecar, or built on other vectors (a file copied from another index, or
shipped in a package), is rebuilt with a warning. A structure whose sidecar matches but whose content does not
(damage, or a file FAISS cannot read) is an IndexFormatError naming the file.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import faiss
import numpy as np
from tqdm.auto import tqdm

from pt_dense.errors import IndexFormatError, InputError
from pt_dense.index.faiss_kinds import EF_MAX, HNSW_M, FactoryKind, check_int, parse_factory
from pt_dense.index.layout import as_float32, vector_files
from pt_dense.io.atomic import atomic_file, fsync, replace_file
from pt_dense.io.cache import cache_dir
from pt_dense.io.checksums import sha256_file, verify

if TYPE_CHECKING:
    from pt_dense.index.dense_index import DenseIndex

ADD_CHUNK = 65536
SIDECAR_FORMAT = "pt_dense.faiss_structure"
FIX = "remove it; it is rebuilt on first use"
_STRUCTURES: dict[tuple, faiss.Index] = {}
_LOCK = threading.Lock()
log = logging.getLogger(__name__)


def structure(index: DenseIndex, name: str, build: Callable[[], faiss.Index]) -> faiss.Index:
    """The structure ``name`` of ``index``'s current vectors: from memory, from its file (checked against its
    sidecar), or ``build()`` and saved with a sidecar."""
    expected = expected_sidecar(index, name)
    key = (str(index.folder.absolute()), name, expected["vectors"], expected["ntotal"])
    with _LOCK:
        if key not in _STRUCTURES:
            _STRUCTURES[key] = open_or_build(index, name, build, expected)
        return _STRUCTURES[key]


def forget_structures() -> None:
    """Drop the structures this process holds (the next search reads or builds them again)."""
    with _LOCK:
        _STRUCTURES.clear()


def vectors_identity(meta: dict) -> str:
    """What identifies a generation's vectors: their SHA-256 as meta.json records it, else its build id."""
    checksum = (meta.get("checksums") or {}).get(vector_files(meta)[0])
    return f"sha256:{checksum}" if checksum else f"build_id:{meta.get('build_id')}"


def expected_sidecar(index: DenseIndex, name: str) -> dict:
    """The sidecar a structure ``name`` of ``index``'s current vectors has (less the file's own SHA-256)."""
    return {"format": SIDECAR_FORMAT, "structure": name, "vectors": vectors_identity(index.meta),
            "ntotal": len(index), "dim": index.dim}


def sidecar_path(file: Path) -> Path:
    """Where the sidecar of structure ``file`` is: ``<name>.faiss.json`` beside it."""
    return file.with_name(file.name + ".json")


def open_or_build(index: DenseIndex, name: str, build: Callable[[], faiss.Index], expected: dict) -> faiss.Index:
    """A structure shipped in the generation folder if its sidecar matches; else the one in the folder this process
    may write (the generation's, or the cache's, see :func:`in_place`), built and saved there if needed."""
    home = index.folder
    if not in_place(index, name):
        shipped = load_checked(home / name, expected, elsewhere=True)
        if shipped is not None:
            return shipped
        home = cache_dir() / "faiss" / str(index.meta.get("build_id"))
        home.mkdir(parents=True, exist_ok=True)
    with build_lock(home / name):  # another process building the same structure: wait for it, then read its file
        found = load_checked(home / name, expected)
        if found is not None:
            return found
        built = build()
        save(built, home / name, expected)
        return built


def load_checked(file: Path, expected: dict, *, elsewhere: bool = False) -> faiss.Index | None:
    """The structure in ``file`` if its sidecar says it indexes the expected vectors; None (a logged warning when
    there is a file) if there is none or it was built on other vectors; an IndexFormatError if the file is not
    what its sidecar says."""
    if not file.exists():
        return None
    sidecar = read_sidecar(sidecar_path(file))
    problem = mismatch(sidecar, expected)
    if problem:
        where = "in the cache" if elsewhere else "in its place"
        log.warning("%s is not used: %s; it is rebuilt %s", file, problem, where)
        return None
    verify(file, sidecar["sha256"], IndexFormatError, FIX)
    try:
        loaded = faiss.read_index(str(file))
    except (RuntimeError, MemoryError) as err:
        raise IndexFormatError(f"{file} is not a structure FAISS can read ({str(err).strip()[-160:]}): {FIX}") from err
    if loaded.ntotal != expected["ntotal"] or loaded.d != expected["dim"]:
        raise IndexFormatError(f"{file} holds {loaded.ntotal:,} vectors of dimension {loaded.d}, but its sidecar says "
                               f"{expected['ntotal']:,} of dimension {expected['dim']}: {FIX}")
    return loaded


def read_sidecar(path: Path) -> dict | None:
    """The sidecar at ``path``; None if it is missing or not a JSON object."""
    try:
        sidecar = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return sidecar if isinstance(sidecar, dict) else None


def mismatch(sidecar: dict | None, expected: dict) -> str | None:
    """Why a structure with ``sidecar`` is not one of the expected vectors (None when it is)."""
    if sidecar is None:
        return "it has no readable sidecar (.json) saying which vectors it indexes"
    for key in ("format", "structure", "vectors", "ntotal", "dim"):
        if sidecar.get(key) != expected[key]:
            return f"its sidecar says {key}={sidecar.get(key)!r}, not {expected[key]!r}"
    if not isinstance(sidecar.get("sha256"), str) or not re.fullmatch(r"[0-9a-f]{64}", sidecar["sha256"]):
        return "its sidecar records no SHA-256 of the file"
    return None


def save(built: faiss.Index, file: Path, expected: dict) -> None:
    """Write ``built`` to ``file`` and its sidecar, each atomically; the old sidecar goes first, so a crash between
    the two leaves a structure without one (rebuilt), never one with a wrong one."""
    sidecar_path(file).unlink(missing_ok=True)
    with atomic_file(file) as tmp:
        faiss.write_index(built, str(tmp))
        fsync(tmp)
        digest = sha256_file(tmp)
    replace_file(sidecar_path(file), json.dumps(expected | {"sha256": digest}, indent=2))


@contextlib.contextmanager
def build_lock(file: Path) -> Iterator[None]:
    """Hold ``.<name>.lock`` beside ``file`` (one builder of a structure at a time, across processes)."""
    fd = os.open(file.with_name(f".{file.name}.lock"), os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def in_place(index: DenseIndex, name: str) -> bool:
    """Whether structure ``name`` may be written in the generation folder: one this process may write, whose
    meta.json does not record the structure's size (generations published before structures had sidecars did, and
    would fail their size check if it were rebuilt there)."""
    recorded = index.meta.get("files") or {}
    return writable(index.folder) and name not in recorded and sidecar_path(Path(name)).name not in recorded


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
    M, ef_construction = check_int("M", M, *HNSW_M), check_int("ef_construction", ef_construction, 1, EF_MAX)

    def build() -> faiss.Index:
        graph = faiss.IndexHNSWFlat(index.dim, M, faiss.METRIC_INNER_PRODUCT)
        graph.hnsw.efConstruction = ef_construction
        return add_in_chunks(graph, index, "HNSW")

    return structure(index, f"hnsw-M{M}-efc{ef_construction}.faiss", build)


def factory_index(index: DenseIndex, kind: FactoryKind | str, train_size: int, seed: int = 0) -> faiss.Index:
    """The structure ``kind`` describes (a FAISS factory string, inner product), trained on a seeded sample of
    ``train_size`` vectors and filled in chunks; every number in it is checked against the vectors first."""
    kind = kind if isinstance(kind, FactoryKind) else parse_factory(kind)
    train_size, seed = check_int("train_size", train_size, 1), check_int("seed", seed, 0)

    def build() -> faiss.Index:
        sample_size = min(train_size, len(index))
        kind.check_dim(index.dim)
        kind.check_training(index.dim, sample_size, len(index), train_size)
        built = new_structure(kind, index.dim)
        try:
            if not built.is_trained:
                rows = np.sort(np.random.default_rng(seed).choice(len(index), sample_size, replace=False))
                built.train(np.ascontiguousarray(as_float32(index.vectors[rows])))
            return add_in_chunks(built, index, kind.factory)
        except RuntimeError as err:  # FAISS refused something the checks above did not foresee
            raise InputError(f"FAISS could not build {kind.factory!r} on {len(index):,} vectors ({sample_size:,} to "
                             f"train on): {str(err).strip()[-200:]}; choose another kind") from err

    slug = re.sub(r"[^A-Za-z0-9]+", "_", kind.factory)
    return structure(index, f"factory-{slug}-t{train_size}-s{seed}.faiss", build)


def new_structure(kind: FactoryKind, dim: int) -> faiss.Index:
    """An empty FAISS structure for a checked ``kind``; refused if FAISS would not search it by inner product."""
    try:
        built = faiss.index_factory(dim, kind.factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as err:
        raise InputError(f"FAISS cannot build {kind.factory!r} for {dim}-d vectors: {str(err).strip()[-200:]}") from err
    if built.metric_type != faiss.METRIC_INNER_PRODUCT:
        raise InputError(f"FAISS builds {kind.factory!r} for L2 distance only; pt_dense searches by inner product")
    skip_polysemous_training(built)
    return built


def skip_polysemous_training(index: faiss.Index) -> None:
    """Turn off FAISS's polysemous training of PQ codes (on by default in factory strings without ``np``): it only
    serves polysemous search, which pt_dense never asks for, and costs 10-40 s on even 300 vectors (and memory
    that grows with 2**(2 * nbits)). It permutes centroid ids only: the same codes, scores and rankings."""
    index = faiss.downcast_index(index)
    for attr in ("index", "base_index"):  # IndexPreTransform, IndexRefine
        inner = getattr(index, attr, None)
        if isinstance(inner, faiss.Index):
            skip_polysemous_training(inner)
    if hasattr(index, "do_polysemous_training"):
        index.do_polysemous_training = False


def search_with(structure_: faiss.Index, queries: np.ndarray, k: int, parameters: str,
                what: str = "the structure") -> tuple[np.ndarray, np.ndarray]:
    """Search a shared structure with this stage's own search parameters (e.g. ``nprobe=32``), set under a lock;
    a search FAISS refuses is an InputError naming ``what``."""
    with _LOCK:
        try:
            if parameters:
                faiss.ParameterSpace().set_index_parameters(structure_, parameters)
            return structure_.search(queries, k)
        except RuntimeError as err:
            raise InputError(f"FAISS could not search {what} with {parameters or 'its defaults'}: "
                             f"{str(err).strip()[-200:]}; choose another kind or parameters") from err
