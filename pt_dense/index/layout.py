"""The on-disk layout of a DenseIndex generation folder, and the checks a folder must pass before it is served.

Shared by the index (reading), the indexer (writing) and the refresh (rewriting), so none of them imports another.
Format 2 keeps these files in numbered generation folders (see :mod:`.generations`); format 1 kept them in the index
folder itself, and is still read.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pt_dense.errors import IndexFormatError, InputError
from pt_dense.io.checksums import verify
from pt_dense.io.files import read_json

FORMAT = "pt_dense.dense_index"
FORMAT_VERSION = 2
META_FILE, VECTORS_FILE, DOCNOS_FILE, BASE_FILE = "meta.json", "vectors.f32", "docnos.txt", "base.f32"
DELETED_FILE = "deleted.i64"  # tombstones: the sorted row numbers of deleted documents, int64
ARTIFACT_FILE = "pt_meta.json"
ARTIFACT = {"type": "dense_index", "format": "pt_dense", "package_hint": "pt-dense"}
FLOAT_BYTES = 4
#: how vectors may be stored: dtype name -> file suffix (float16 halves the disk and the pages a search reads; every
#: computation still runs in float32, on chunks converted as they are read)
VECTOR_DTYPES = {"float32": ".f32", "float16": ".f16"}
REBUILD = "rebuild the index (or restore the folder from a copy)"


def read_meta(folder: Path) -> dict:
    """``meta.json`` of a generation folder, checked: valid JSON, our format, a version we read, its fields."""
    file = folder / META_FILE
    meta = read_json(file, IndexFormatError, f"the index is damaged; {REBUILD}")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise IndexFormatError(f"{folder} is not a pt_dense dense index (format={found!r})")
    if meta.get("version", 0) > FORMAT_VERSION:
        raise IndexFormatError(f"{folder} has format version {meta['version']}; this pt_dense reads up to "
                               f"{FORMAT_VERSION}: upgrade pt-dense")
    bad = [k for k in ("dim", "count") if not isinstance(meta.get(k), int) or meta[k] < (1 if k == "dim" else 0)]
    if bad:
        raise IndexFormatError(f"{file} has no valid {' or '.join(bad)} ({ {k: meta.get(k) for k in bad} }): "
                               f"the index is damaged; {REBUILD}")
    return meta


def vector_dtype(meta: dict) -> np.dtype:
    """The dtype a generation stores its vectors in (float32 unless its meta.json says float16)."""
    return np.dtype(meta.get("dtype") or "float32")


def vector_files(meta: dict) -> tuple[str, str]:
    """(vectors file, base vectors file) of a generation: ``vectors.f32``/``base.f32``, or ``.f16`` for float16."""
    suffix = VECTOR_DTYPES[vector_dtype(meta).name]
    return f"vectors{suffix}", f"base{suffix}"


def as_float32(rows: np.ndarray) -> np.ndarray:
    """``rows`` (stored vectors) as float32 for computing: float32 ones as they are, float16 converted by torch,
    whose vectorised conversion runs about 6x faster than numpy's."""
    if rows.dtype == np.float32:
        return np.asarray(rows)
    import torch  # only float16 indexes need it; the index layer otherwise loads without torch

    return torch.from_numpy(np.array(rows, copy=True)).float().numpy()


def check_dtype(dtype: str) -> str:
    """``dtype`` if vectors can be stored in it, else an InputError naming the choices."""
    if dtype not in VECTOR_DTYPES:
        raise InputError(f"vectors cannot be stored as {dtype!r}; choose one of {sorted(VECTOR_DTYPES)}")
    return dtype


def check_files(folder: Path, meta: dict) -> None:
    """Every file's size against ``meta.json``: the vectors (count x dim of the stored dtype), the base vectors of a
    refreshed index, and each file whose size the writer recorded."""
    expected = {name: size for name, size in (meta.get("files") or {}).items()}
    if (meta.get("dtype") or "float32") not in VECTOR_DTYPES:
        raise IndexFormatError(f"{folder / META_FILE} stores vectors as {meta['dtype']!r}, which this pt_dense does "
                               f"not read (it reads {sorted(VECTOR_DTYPES)}): upgrade pt-dense")
    vectors_name, base_name = vector_files(meta)
    expected[vectors_name] = meta["count"] * meta["dim"] * vector_dtype(meta).itemsize
    if (folder / base_name).exists() or "base_encoder" in meta:
        expected[base_name] = expected[vectors_name]
    if meta.get("deleted"):
        expected[DELETED_FILE] = meta["deleted"] * 8
    for name, size in expected.items():
        path = folder / name
        if not path.exists():
            raise IndexFormatError(f"{path} is missing (meta.json lists it): {REBUILD}")
        actual = path.stat().st_size
        if actual != size:
            what = (f"{meta['count']} vectors of dimension {meta['dim']}" if name in (vectors_name, base_name)
                    else "what its writer recorded")
            raise IndexFormatError(f"{path} holds {actual:,} bytes but meta.json says {size:,} ({what}): the file "
                                   f"was truncated or appended to; {REBUILD}")


def verified(folder: Path, meta: dict, name: str, data: bytes | None = None, *, again: bool = False) -> Path:
    """``folder / name``, checked against the SHA-256 its meta.json recorded (once per process unless ``again``;
    ``data``: its bytes, when already read); an IndexFormatError if its content changed since it was published."""
    path = folder / name
    verify(path, (meta.get("checksums") or {}).get(name), IndexFormatError, REBUILD, data, again=again)
    return path


def read_docnos(folder: Path, meta: dict) -> np.ndarray:
    """The docnos of a generation, one a line; exactly ``meta["count"]`` non-empty ones, as published, or an
    IndexFormatError."""
    path, count = folder / DOCNOS_FILE, meta["count"]
    try:
        data = path.read_bytes()
    except FileNotFoundError as err:
        raise IndexFormatError(f"{path} is missing: {REBUILD}") from err
    verified(folder, meta, DOCNOS_FILE, data)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise IndexFormatError(f"{path} is not UTF-8 text ({err}): {REBUILD}") from err
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if len(lines) != count or not all(lines):
        empty = sum(1 for line in lines if not line)
        raise IndexFormatError(f"{path} has {len(lines):,} lines ({empty} empty) for {count:,} vectors: the docnos "
                               f"no longer match the vectors; {REBUILD}")
    return np.array(lines, dtype=object)


def read_deleted(folder: Path, meta: dict) -> np.ndarray:
    """The sorted row numbers of deleted documents (none when the generation has no tombstones), as published."""
    path, count = folder / DELETED_FILE, meta["count"]
    if not path.exists():
        return np.zeros(0, dtype=np.int64)
    data = path.read_bytes()
    verified(folder, meta, DELETED_FILE, data)
    rows = np.frombuffer(data, dtype=np.int64)
    if len(rows) and (rows.min() < 0 or rows.max() >= count or (np.diff(rows) <= 0).any()):
        raise IndexFormatError(f"{path} holds row numbers outside 0..{count - 1} or out of order: {REBUILD}")
    return rows


def write_deleted(folder: Path, rows: np.ndarray) -> None:
    if len(rows):
        np.asarray(rows, dtype=np.int64).tofile(folder / DELETED_FILE)
