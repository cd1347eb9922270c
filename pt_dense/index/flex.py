"""pyterrier_dr's FlexIndex folders read in place as DenseIndex views.

A FlexIndex (pyterrier_dr 0.8) is a folder of::

    pt_meta.json     {"type": "dense_index", "format": "flex", "vec_size": d, "doc_count": n}
    vecs.f4          n x d float32, row-major (the same bytes as our vectors.f32)
    docnos.npids     the docnos in row order (the ``npids`` package's format)
    ...              pyterrier_dr's own caches (FAISS structures, corpus graphs), ignored here

``open_flex(path)`` returns a :class:`FlexIndexView`: a DenseIndex whose vectors are a memory map of ``vecs.f4`` and
whose docnos come from ``docnos.npids``, nothing copied, so every pt_dense stage runs on it (retrievers of any kind,
the vector scorer, PEFA, ``Corrector.fit``, every export). The view never changes the folder's vectors or docnos:

- **Encoder.** A FlexIndex records no encoder, so the view accepts query vectors from any encoder (their dimension is
  still checked), unless pt_dense exported the folder (``ptd.export.flex``): then ``pt_dense.json`` beside the
  vectors carries the encoder's identity and the view checks it like any DenseIndex.
- **Refresh** writes a pt_dense index at the ``path`` you give (``view.refresh(corrector, "out.ptd")``; the vectors
  are hard-linked where the file system allows, so nothing is copied), and returns it; the FlexIndex stays as it was.
  ``view.to_dense_index(path)`` does the same without a corrector.
- **Caches.** Approximate-search structures are cached beside the vectors, as pyterrier_dr caches its own there (in
  pt_dense's cache folder when the folder is read-only).
- **Checks.** Opening checks ``pt_meta.json`` and the size of ``vecs.f4``; the first read of ``meta`` also reads
  every vector once (chunked) to learn whether they are unit length (Lucene exports need it), and the docnos must
  be unique.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from functools import cached_property
from pathlib import Path
from typing import NoReturn

import numpy as np
import pandas as pd
import pyterrier as pt

from pt_dense.errors import IndexExistsError, IndexFormatError, InputError
from pt_dense.index.dense_index import DenseIndex
from pt_dense.index.generations import Generation
from pt_dense.index.indexer import NORM_TOLERANCE
from pt_dense.index.layout import DOCNOS_FILE, FLOAT_BYTES, FORMAT, FORMAT_VERSION, VECTORS_FILE
from pt_dense.index.publish import publish
from pt_dense.io.atomic import link_or_copy

FLEX_META, FLEX_VECTORS, FLEX_DOCNOS = "pt_meta.json", "vecs.f4", "docnos.npids"
#: what pt_dense writes beside a FlexIndex it exports: the encoder's identity, which pyterrier_dr does not record
PT_DENSE_META = "pt_dense.json"
VIEW_FORMAT = "pyterrier_dr.flex"
NORM_CHUNK = 65536
PROBE_BYTES = 1 << 20


def is_flex(path: str | Path) -> bool:
    """Whether ``path`` is a pyterrier_dr FlexIndex folder (by its ``pt_meta.json``).

    Only ``pt_meta.json`` is read (no other file is checked): a quick test of which kind of folder to open.

    Args:
        path: A folder.

    Returns:
        True when its ``pt_meta.json`` names type ``dense_index`` and format ``flex``; False otherwise, also when
        the file is missing or unreadable.
    """
    try:
        meta = json.loads((Path(path) / FLEX_META).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get("type") == "dense_index" and meta.get("format") == "flex"


def read_flex_meta(folder: Path) -> dict:
    """``pt_meta.json`` of a FlexIndex, checked: the format, its counts, and the size of ``vecs.f4``."""
    file = folder / FLEX_META
    if not folder.is_dir():
        raise IndexFormatError(f"no FlexIndex at {folder}: the folder does not exist")
    try:
        meta = json.loads(file.read_text())
    except FileNotFoundError as err:
        raise IndexFormatError(f"{folder} is not a pyterrier_dr FlexIndex (it has no {FLEX_META}); build one with "
                               "pyterrier_dr.FlexIndex(path).index(...), or open a pt_dense index with "
                               "ptd.DenseIndex(path)") from err
    except (ValueError, UnicodeDecodeError) as err:
        raise IndexFormatError(f"{file} is not valid JSON ({err}): the FlexIndex is damaged; rebuild it") from err
    if not isinstance(meta, dict) or (meta.get("type"), meta.get("format")) != ("dense_index", "flex"):
        found = (meta.get("type"), meta.get("format")) if isinstance(meta, dict) else type(meta).__name__
        hint = " (a pt_dense index: open it with ptd.DenseIndex(path))" if found == ("dense_index", "pt_dense") else ""
        raise IndexFormatError(f"{folder} is not a pyterrier_dr FlexIndex: {file} names (type, format) "
                               f"{found}, not ('dense_index', 'flex'){hint}")
    count, dim = meta.get("doc_count"), meta.get("vec_size")
    if not isinstance(count, int) or count < 1 or not isinstance(dim, int) or dim < 1:
        raise IndexFormatError(f"{file} has doc_count={count!r} and vec_size={dim!r}: an empty or unfinished "
                               "FlexIndex; rebuild it")
    for name in (FLEX_VECTORS, FLEX_DOCNOS):
        if not (folder / name).is_file():
            raise IndexFormatError(f"{folder / name} is missing: the FlexIndex is incomplete; rebuild it")
    size = (folder / FLEX_VECTORS).stat().st_size
    if size != count * dim * FLOAT_BYTES:
        raise IndexFormatError(f"{folder / FLEX_VECTORS} holds {size:,} bytes but {FLEX_META} says "
                               f"{count * dim * FLOAT_BYTES:,} ({count} vectors of dimension {dim}): the file was "
                               "truncated or appended to; rebuild the FlexIndex")
    return meta


def vectors_probe(file: Path) -> str:
    """A cheap content check of a vector file: sha256 of its size, first and last MiB."""
    digest = hashlib.sha256(str(file.stat().st_size).encode())
    with open(file, "rb") as f:
        digest.update(f.read(PROBE_BYTES))
        f.seek(max(0, file.stat().st_size - PROBE_BYTES))
        digest.update(f.read(PROBE_BYTES))
    return digest.hexdigest()


class FlexIndexView(DenseIndex):
    """A pyterrier_dr FlexIndex folder read in place as a read-only DenseIndex; made by :func:`open_flex`.

    Every reading stage of a DenseIndex runs on it (retrievers, the vector scorer, PEFA, ``Corrector.fit``, the
    exports); nothing is copied and the folder's vectors and docnos are never changed: :meth:`refresh` and
    :meth:`to_dense_index` write a pt_dense index elsewhere. The view accepts query vectors from any encoder of the
    right dimension, unless pt_dense exported the folder (then its ``pt_dense.json`` names the encoder).

    Args:
        path: The FlexIndex folder.

    Raises:
        IndexFormatError: The folder is not a complete FlexIndex (``pt_meta.json`` missing or of another format, a
            file missing, or ``vecs.f4`` of the wrong size).
    """

    def __init__(self, path: str | Path):
        super().__init__(path)
        read_flex_meta(self.path)  # a folder that is not a FlexIndex is refused at once

    def __repr__(self) -> str:
        return f"open_flex({str(self.path)!r})"

    def built(self) -> bool:
        """Whether the index exists: always, as the view was refused at opening otherwise.

        Returns:
            True.
        """
        return True

    def open_generation(self) -> Generation:
        """The FlexIndex folder itself (it has no generations; pyterrier_dr replaces it whole).

        Returns:
            A generation whose folder is the FlexIndex folder.
        """
        return Generation(self.path)

    @cached_property
    def meta(self) -> dict:
        """The view's metadata in a DenseIndex's terms (dimension, count, normalised, encoder), read once.

        Built from ``pt_meta.json`` (checked again), and ``pt_dense.json`` when it still describes these vectors.
        The first read also reads every vector once, in chunks, to learn whether they are unit length.
        """
        flex = read_flex_meta(self.path)
        count, dim = flex["doc_count"], flex["vec_size"]
        ours = self._exported_meta(count, dim)
        encoder = ours.get("encoder")
        return {
            "format": VIEW_FORMAT,
            "dim": dim,
            "count": count,
            "dtype": "float32",
            "normalized": self._normalized(count, dim),
            "encoder": encoder,
            "accepts": ours.get("accepts") or ([encoder["fingerprint"]] if encoder else []),
            "build_id": self._build_id(),  # no tombstones: pyterrier_dr has no deletions
            "flex": str(self.path.absolute()),
        }

    @cached_property
    def vectors(self) -> np.ndarray:
        """All vectors as a read-only float32 memory map of ``vecs.f4`` (count x dim)."""
        return np.memmap(self.path / FLEX_VECTORS, dtype=np.float32, mode="r", shape=(len(self), self.dim))

    @cached_property
    def docnos(self) -> np.ndarray:
        """The docno of every row, read once from ``docnos.npids``; there must be one per vector, none repeated.

        An unreadable, short or repeating docnos file raises :class:`~pt_dense.IndexFormatError`.
        """
        from npids import Lookup

        file = self.path / FLEX_DOCNOS
        try:
            with Lookup(file) as lookup:
                docnos = np.array([str(d) for d in lookup.fwd.lookup(np.arange(len(lookup)))], dtype=object)
        except Exception as err:  # npids raises assorted errors on a damaged file
            raise IndexFormatError(f"{file} cannot be read ({type(err).__name__}: {err}): the FlexIndex is "
                                   "damaged; rebuild it") from err
        if len(docnos) != len(self):
            raise IndexFormatError(f"{file} holds {len(docnos):,} docnos for {len(self):,} vectors: the docnos no "
                                   "longer match the vectors; rebuild the FlexIndex")
        if not pd.Index(docnos).is_unique:
            dup = pd.Index(docnos)[pd.Index(docnos).duplicated()][:5].tolist()
            raise IndexFormatError(f"{file} repeats docnos (e.g. {dup}): pt_dense needs one vector per docno; "
                                   "rebuild the FlexIndex with each document once")
        return docnos

    @property
    def base_file(self) -> Path:
        """The file of the vectors, ``vecs.f4`` (a refresh corrects from it)."""
        return self.path / FLEX_VECTORS

    # ------------------------------------------------------------------ writes go elsewhere
    def indexer(self, **_) -> NoReturn:
        """Refused: the view is read-only. Index into a pt_dense index, or with pyterrier_dr's own indexer.

        Args:
            **_: Any indexer setting; ignored.

        Raises:
            InputError: Always.
        """
        raise InputError(f"{self!r} is a read-only view of a pyterrier_dr FlexIndex: index into a pt_dense index "
                         "(ptd.DenseIndex(path).indexer()) or with pyterrier_dr's FlexIndex(path).indexer()")

    def _read_only(self, *_, **__) -> NoReturn:
        """Refused: the view is read-only. Make a pt_dense index of it first (:meth:`to_dense_index`) to change it.

        Args:
            *_: Any arguments; ignored.
            **__: Any keyword arguments; ignored.

        Raises:
            InputError: Always.
        """
        raise InputError(f"{self!r} is a read-only view of a pyterrier_dr FlexIndex: make a pt_dense index of it "
                         "first (view.to_dense_index(path)), which adds, updates, deletes and compacts")

    add = update = delete = compact = _read_only

    def refresh(self, corrector, path: str | Path | None = None, *, overwrite: bool = False,
                keep_fresh_sample: bool = True) -> DenseIndex:
        """Write the refreshed index as a pt_dense index at ``path`` (required: the FlexIndex is not changed) and
        return it; it keeps these vectors as its base, so it refreshes again like any DenseIndex.

        Args:
            corrector: A fitted :class:`~pt_dense.Corrector` whose dimension is the index's.
            path: Where the pt_dense index is written; not the FlexIndex folder.
            overwrite: Replace an index already at ``path``.
            keep_fresh_sample: Keep the freshly encoded sample's vectors as they are (not corrected).

        Returns:
            The refreshed pt_dense index at ``path``.

        Raises:
            InputError: No ``path`` (or the FlexIndex's own), or the corrector's dimension is not the index's.
            IndexExistsError: An index exists at ``path`` and ``overwrite`` is False.
        """
        if path is None or Path(path).expanduser().absolute() == self.path.absolute():
            raise InputError(f"{self!r} is a read-only view of a pyterrier_dr FlexIndex: give refresh a path= where "
                             "the refreshed pt_dense index is written")
        if corrector.dim != self.dim:  # before anything is written
            raise InputError(f"the corrector maps {corrector.dim}-d vectors but the index holds {self.dim}-d ones")
        return self.to_dense_index(path, overwrite=overwrite).refresh(corrector, keep_fresh_sample=keep_fresh_sample)

    def to_dense_index(self, path: str | Path, *, overwrite: bool = False) -> DenseIndex:
        """A pt_dense index at ``path`` with these vectors (hard-linked where the file system allows) and docnos.

        The new index takes the view's encoder record (if pt_dense exported the folder) and notes the FlexIndex it
        came from; unlike the view, it can be added to, deleted from and refreshed.

        Args:
            path: Where the pt_dense index is written; not the FlexIndex folder.
            overwrite: Replace an index already at ``path``.

        Returns:
            The new index.

        Raises:
            InputError: ``path`` is the FlexIndex folder, or a docno is empty or holds a line break.
            IndexExistsError: An index exists at ``path`` and ``overwrite`` is False.
            IndexReadOnlyError: This user may not write ``path``.
        """
        target = DenseIndex(path)
        if target.path.absolute() == self.path.absolute():
            raise InputError(f"{path} is the FlexIndex itself: choose another path")
        if target.built() and not overwrite:
            raise IndexExistsError(f"{target.path} already exists; pass overwrite=True to replace it (or choose "
                                   "another path)")
        docnos, meta = self.docnos, self.meta
        bad = [d for d in docnos[:] if not d or "\n" in d or "\r" in d]
        if bad:
            raise InputError(f"{len(bad)} docno(s) of {self.path} are empty or hold line breaks (e.g. {bad[:3]!r}), "
                             "which a pt_dense index cannot store")

        def write(folder: Path) -> dict:
            link_or_copy(self.path / FLEX_VECTORS, folder / VECTORS_FILE)
            (folder / DOCNOS_FILE).write_text("".join(d + "\n" for d in docnos), encoding="utf-8")
            return {"format": FORMAT, "version": FORMAT_VERSION, "dim": meta["dim"], "count": meta["count"],
                    "dtype": "float32", "normalized": meta["normalized"], "encoder": meta["encoder"],
                    "accepts": meta["accepts"], "build_id": uuid.uuid4().hex, "imported_from": {"flex": meta["flex"]}}

        return publish(target, write, overwrite=overwrite)

    def _package_files(self):
        return pt.Artifact._package_files(self)  # the FlexIndex folder as it is: it unpacks as a FlexIndex

    # ------------------------------------------------------------------ helpers
    def _exported_meta(self, count: int, dim: int) -> dict:
        """pt_dense's record beside a FlexIndex it exported, if it still describes these vectors."""
        file = self.path / PT_DENSE_META
        try:
            ours = json.loads(file.read_text())
        except (OSError, ValueError):
            return {}
        if not isinstance(ours, dict) or (ours.get("count"), ours.get("dim")) != (count, dim):
            return {}
        return ours if ours.get("vectors_probe") == vectors_probe(self.path / FLEX_VECTORS) else {}

    def _normalized(self, count: int, dim: int) -> bool:
        vectors = np.memmap(self.path / FLEX_VECTORS, dtype=np.float32, mode="r", shape=(count, dim))
        for start in range(0, count, NORM_CHUNK):
            norms = np.linalg.norm(np.asarray(vectors[start : start + NORM_CHUNK]), axis=1)
            if not np.all(np.abs(norms - 1) < NORM_TOLERANCE):
                return False
        return True

    def _build_id(self) -> str:
        """Names this content for caches (HNSW graphs, PEFA-XS folds): the folder, its meta and files' identity."""
        digest = hashlib.sha256(str(self.path.absolute()).encode())
        digest.update((self.path / FLEX_META).read_bytes())
        for name in (FLEX_VECTORS, FLEX_DOCNOS):
            stat = (self.path / name).stat()
            digest.update(f"{name}:{stat.st_size}:{stat.st_mtime_ns}:{stat.st_ino}".encode())
        return digest.hexdigest()[:32]


def open_flex(index) -> FlexIndexView:
    """A pyterrier_dr FlexIndex (its folder, or the ``pyterrier_dr.FlexIndex`` object) as a read-only DenseIndex.

    Args:
        index: The FlexIndex folder, or a ``pyterrier_dr.FlexIndex`` (its ``index_path`` is used).

    Returns:
        The view, on which every pt_dense stage that reads an index runs.

    Raises:
        InputError: ``index`` is neither a path nor a FlexIndex object.
        IndexFormatError: The folder is not a complete FlexIndex.

    Example:
        ::

            view = ptd.index.open_flex("scifact.flex")
            pipeline = enc.query_encoder() >> view.retriever(k=10)
    """
    path = getattr(index, "index_path", index)
    if not isinstance(path, (str, os.PathLike)):
        raise InputError(f"open_flex takes a FlexIndex folder or a pyterrier_dr.FlexIndex, not {type(index).__name__}")
    return FlexIndexView(path)


__all__ = ["FLEX_DOCNOS", "FLEX_META", "FLEX_VECTORS", "PT_DENSE_META", "FlexIndexView", "is_flex",
           "open_flex", "read_flex_meta", "vectors_probe"]
