"""An index grows and shrinks without a rebuild: ``add`` appends documents, ``delete`` marks rows deleted
(tombstones), ``compact`` drops the marked rows. Each change is one new generation (see :mod:`.generations`):
readers opened before it keep answering from theirs, a crash leaves the previous one current.

Files a change does not alter are hard links to the previous generation's (generations never change their files);
``add`` copies the vectors once and appends, so its cost is a sequential copy of the index. Rows added to a
refreshed index keep the vectors they were added with (they are their own base vectors): a later refresh to another
encoder corrects them as if the base encoder had made them, so re-encode them for exactness.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from pt_dense.encoders.stages import ENCODER_KEY, fingerprint_for, fingerprint_of
from pt_dense.errors import InputError
from pt_dense.index.indexer import check_docno, stack_records
from pt_dense.index.layout import DELETED_FILE, DOCNOS_FILE, vector_files, write_deleted
from pt_dense.index.publish import publish
from pt_dense.io.atomic import link_or_copy

if TYPE_CHECKING:
    from pt_dense.index.dense_index import DenseIndex


def add(index: DenseIndex, documents, *, replace: bool = False, encoder=None) -> DenseIndex:
    """Append ``documents`` (a frame or records with ``docno`` and ``doc_vec``, e.g. ``enc.doc_encoder()(docs)``).

    A docno the index holds already is an error, unless ``replace`` (then its old row is deleted: an update).
    Vectors must come from an encoder the index stands for, checked by the fingerprint each vector carries (or its
    record names, ENCODER_KEY); ``encoder`` (a pt_dense encoder or its fingerprint, itself checked) vouches for
    those that carry none, which an index that knows its encoder refuses otherwise (``DenseIndex.check_vectors``).
    Everything that depends on the index's content is read under the writer lock (see :func:`.publish.publish`).
    """
    records = documents.to_dict("records") if isinstance(documents, pd.DataFrame) else list(documents)
    if not records:
        raise InputError("no documents to add")
    seen: set[str] = set()
    docnos = [check_docno(r.get("docno"), seen) for r in records]

    def write(folder: Path) -> dict:
        meta, source = index.meta, index.folder
        vectors = stack_records(records, index.dim)
        if encoder is not None:
            index.check_encoder(fingerprint_for(encoder), what="the encoder given to add", strict=True)
        named = [(r.get(ENCODER_KEY) or {}).get("fingerprint") for r in records]  # what a record says made it
        carried = [fingerprint_of(r["doc_vec"]) or name for r, name in zip(records, named, strict=True)]
        index.check_origins(set(carried) - {None}, carried.count(None), what="the added documents' vectors",
                            encoder=encoder)
        for fingerprint in set(named) - {None}:
            index.check_encoder(fingerprint, what="the added documents' vectors")
        present = index.docno_lookup.get_indexer(docnos)
        if (present >= 0).any() and not replace:
            held = [d for d, row in zip(docnos, present, strict=True) if row >= 0]
            raise InputError(f"{len(held)} document(s) are in {index.path} already (e.g. {held[:5]}): use "
                             "index.update(...) to replace them, or delete them first")
        deleted = np.union1d(index.deleted, present[present >= 0])
        for name in vector_files(meta):
            if (source / name).exists():  # the base vectors of a refreshed index grow too
                shutil.copyfile(source / name, folder / name)
                with open(folder / name, "ab") as out:
                    out.write(vectors.astype(index.dtype, copy=False).tobytes())
        shutil.copyfile(source / DOCNOS_FILE, folder / DOCNOS_FILE)
        with open(folder / DOCNOS_FILE, "a", encoding="utf-8") as out:
            out.write("".join(d + "\n" for d in docnos))
        _link_rest(source, folder)
        write_deleted(folder, deleted)
        normalized = meta.get("normalized") and bool(np.all(np.abs(np.linalg.norm(vectors, axis=1) - 1) < 1e-3))
        return _meta(meta, count=meta["count"] + len(records), deleted=deleted, normalized=normalized)

    return publish(index, write, overwrite=True)


def delete(index: DenseIndex, docnos: Iterable[str]) -> DenseIndex:
    """Mark the rows of ``docnos`` deleted (they are never returned again); every docno must be in the index. A
    string is one docno, taken whole."""
    docnos = [docnos] if isinstance(docnos, str) else [str(d) for d in docnos]
    if not docnos:
        raise InputError("no docnos to delete")

    def write(folder: Path) -> dict:
        meta, source = index.meta, index.folder
        rows = index.docno_lookup.get_indexer(docnos)
        if (rows < 0).any():
            absent = [d for d, row in zip(docnos, rows, strict=True) if row < 0]
            raise InputError(f"{len(absent)} docno(s) to delete are not in {index.path} (e.g. {absent[:5]})")
        deleted = np.union1d(index.deleted, rows)
        _link_rest(source, folder, also=(*vector_files(meta), DOCNOS_FILE), structures=True)
        write_deleted(folder, deleted)
        return _meta(meta, count=meta["count"], deleted=deleted)

    return publish(index, write, overwrite=True)


def compact(index: DenseIndex) -> DenseIndex:
    """Rewrite the index without its deleted rows (a new generation; row numbers change)."""

    def write(folder: Path) -> dict:
        meta, source = index.meta, index.folder
        live = np.setdiff1d(np.arange(len(index)), index.deleted)
        for name in vector_files(meta):
            if (source / name).exists():
                stored = np.memmap(source / name, dtype=index.dtype, mode="r", shape=(len(index), index.dim))
                with open(folder / name, "wb") as out:
                    for start in range(0, len(live), 65536):
                        out.write(np.ascontiguousarray(stored[live[start : start + 65536]]).tobytes())
        docnos = index.docnos[live]
        (folder / DOCNOS_FILE).write_text("".join(d + "\n" for d in docnos), encoding="utf-8")
        _link_rest(source, folder)
        return _meta(meta, count=len(live), deleted=np.zeros(0, dtype=np.int64))

    return publish(index, write, overwrite=True)


def _meta(meta: dict, *, count: int, deleted: np.ndarray, normalized: bool | None = None) -> dict:
    changed = {"count": int(count), "deleted": len(deleted), "build_id": uuid.uuid4().hex}
    if normalized is not None:
        changed["normalized"] = bool(normalized)
    return {k: v for k, v in meta.items() if k not in ("files", "checksums")} | changed


def _link_rest(source: Path, folder: Path, also: tuple[str, ...] = (), structures: bool = False) -> None:
    """Hard-link the unchanged files (the corrector of a refresh, ``also``, and with ``structures`` the FAISS
    structures, still valid when only tombstones change) from the previous generation."""
    for path in source.rglob("*"):
        relative = path.relative_to(source)
        if not path.is_file() or path.name.startswith("."):
            continue
        if path.name.endswith((".faiss", ".faiss.json")):  # a structure and its sidecar (see index/structures.py)
            if not structures:
                continue
        elif len(relative.parts) == 1 and relative.name not in also:
            continue  # top-level files are written by the change itself (or dropped, like the tombstones)
        if relative.name == DELETED_FILE:
            continue
        target = folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        link_or_copy(path, target)
