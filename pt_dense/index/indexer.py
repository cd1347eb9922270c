"""DenseIndexer: streams ``docno, doc_vec`` records to disk in chunks, as a new index or a new generation of one."""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyterrier as pt

from pt_dense.encoders.batching import report_progress_to
from pt_dense.encoders.stages import ENCODER_KEY, fingerprint_of
from pt_dense.errors import InputError, MissingColumnsError
from pt_dense.index.layout import DOCNOS_FILE, FORMAT, FORMAT_VERSION, check_dtype, vector_files
from pt_dense.index.publish import publish, refuse_existing
from pt_dense.io.validation import docno_problem, shown

if TYPE_CHECKING:
    from pt_dense.index.dense_index import DenseIndex

NORM_TOLERANCE = 1e-3


class DenseIndexer(pt.Indexer):
    """Writes the vectors of an iterable of records into a DenseIndex folder.

    Vectors go to disk every ``chunk_size`` documents, so corpora larger than memory index fine. A new index is
    written beside its destination and renamed into place; an existing one (``overwrite=True``) gets a new
    generation while its readers go on reading the old one: an interrupted run changes nothing.

    Made by :meth:`DenseIndex.indexer() <pt_dense.DenseIndex.indexer>`, whose arguments it takes.

    Args:
        index: The index to write.
        overwrite: Replace an index already at the path.
        chunk_size: Records written at a time.
        progress: Show a progress bar.
        total: The number of documents, if known.
        corpus: The collection's name, recorded for a corrector.
        shard: What a part of a sharded build records about itself.
        dtype: ``"float32"`` or ``"float16"``.
    """

    def __init__(self, index: DenseIndex, *, overwrite: bool = False, chunk_size: int = 4096, progress: bool = True,
                 total: int | None = None, corpus: str | None = None, shard: dict | None = None,
                 dtype: str = "float32"):
        self.index_ref = index
        self.dtype = check_dtype(dtype)
        self.corpus, self.shard = corpus, shard
        self.total = total
        self.overwrite = overwrite
        self.chunk_size = chunk_size
        self.progress = progress

    def __repr__(self) -> str:
        return f"DenseIndexer({str(self.index_ref.path)!r}, overwrite={self.overwrite})"

    def transform_inputs(self) -> list[str]:
        return ["docno", "doc_vec"]

    def index(self, iter: Iterable[dict], **_) -> DenseIndex:  # noqa: A002 (PyTerrier's name)
        total = len(iter) if hasattr(iter, "__len__") else self.total
        refuse_existing(self.index_ref, self.overwrite)  # before any document is encoded

        def write(folder: Path) -> dict:
            stats = self._write(iter, folder, total)
            return {
                "format": FORMAT,
                "version": FORMAT_VERSION,
                "dim": stats["dim"],
                "count": stats["count"],
                "dtype": self.dtype,
                "normalized": stats["normalized"],
                "encoder": stats["encoder"],
                "accepts": [stats["encoder"]["fingerprint"]] if stats["encoder"] else [],
                "build_id": uuid.uuid4().hex,
                **({"corpus": self.corpus} if self.corpus else {}),
                **({"shard": self.shard} if self.shard else {}),
            }

        return publish(self.index_ref, write, overwrite=self.overwrite)

    def _write(self, records: Iterable[dict], folder: Path, total: int | None) -> dict:
        from tqdm.auto import tqdm

        seen: set[str] = set()
        dim: int | None = None
        encoder: dict | None = None
        normalized = True
        count = 0
        bar = _IndexingBar(tqdm(total=total, desc="indexing", unit="doc", disable=not self.progress, smoothing=0.05))
        vectors_file = folder / vector_files({"dtype": self.dtype})[0]
        with bar.bar, report_progress_to(bar.encoded), open(vectors_file, "wb") as vec_out, \
                open(folder / DOCNOS_FILE, "w", encoding="utf-8") as ids_out:
            for chunk in _chunks(bar.received(records), self.chunk_size):
                if count == 0:
                    missing = [c for c in ("docno", "doc_vec") if c not in chunk[0]]
                    if missing:
                        raise MissingColumnsError(
                            f"the indexer needs records with {missing}; put a document encoder before it: "
                            "enc.doc_encoder() >> index.indexer()"
                        )
                    encoder = chunk[0].get(ENCODER_KEY) or _stamp_record(chunk[0])
                docnos = [check_docno(r.get("docno"), seen) for r in chunk]
                if any(_fingerprint(r) != (encoder or {}).get("fingerprint") for r in chunk):
                    raise InputError("the records come from more than one encoder; index one encoder's vectors")
                vectors = stack_records(chunk, dim)
                dim = vectors.shape[1]
                norms = np.linalg.norm(vectors, axis=1)
                normalized = normalized and bool(np.all(np.abs(norms - 1) < NORM_TOLERANCE))
                vec_out.write(vectors.astype(self.dtype, copy=False).tobytes())
                ids_out.write("".join(d + "\n" for d in docnos))
                count += len(chunk)
            bar.finish(count)
        if count == 0:
            raise InputError("the corpus is empty: there is nothing to index")
        return {"dim": dim, "count": count, "normalized": normalized, "encoder": encoder}


class _IndexingBar:
    """The indexing bar counts a document when it is encoded (a document encoder upstream reports every model batch
    it finishes: PyTerrier hands that stage 1,024 documents at a time, and counting their records as they arrive
    would show nothing, then a jump, per 1,024) or, for vectors computed elsewhere, when its record arrives.

    It never passes its total: encode reports run ahead of the records by at most a stage batch, but any other
    encoding done while the indexer runs reports too, so the encoded count is capped at the total (which grows only
    when more records arrive than it said); :meth:`finish` sets it to the documents indexed, exactly.
    """

    def __init__(self, bar):
        self.bar, self.encoded_count, self.received_count = bar, 0, 0

    def encoded(self, count: int) -> None:
        self.encoded_count += count
        self._show()

    def received(self, records: Iterable[dict]):
        for record in records:
            self.received_count += 1
            self._show()
            yield record

    def finish(self, count: int) -> None:
        """End at ``count``, the documents indexed (whatever the encode reports added up to)."""
        if self.bar.disable:
            return
        if self.bar.total is None or self.bar.total < count:
            self.bar.total = count
        self.bar.n = count
        self.bar.refresh()

    def _show(self) -> None:
        if self.bar.disable:
            return
        if self.bar.total is not None and self.received_count > self.bar.total:  # more records than it said
            self.bar.total = self.received_count
        done = max(self.encoded_count, self.received_count)
        if self.bar.total is not None:
            done = min(done, self.bar.total)
        if done > self.bar.n:
            self.bar.update(done - self.bar.n)


def _fingerprint(record: dict) -> str | None:
    return (record.get(ENCODER_KEY) or {}).get("fingerprint") or fingerprint_of(record.get("doc_vec"))


def _stamp_record(record: dict) -> dict | None:
    """The encoder record of vectors that carry their encoder's stamp but came without a document encoder stage
    (e.g. ``enc.encode(texts)`` rows): its fingerprint, so the index still knows its encoder."""
    fingerprint = fingerprint_of(record.get("doc_vec"))
    return {"fingerprint": fingerprint, "name": "?"} if fingerprint else None


def _chunks(records: Iterable[dict], size: int):
    chunk: list[dict] = []
    for record in records:
        chunk.append(record)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def check_docno(docno: object, seen: set[str]) -> str:
    """``docno``, checked (see :func:`pt_dense.io.validation.docno_problem`: any non-empty text without a line break)
    and added to ``seen``; an invalid or repeated docno is an InputError naming it."""
    problem = docno_problem(docno)
    if problem:
        raise InputError(f"invalid docno {shown(docno)}: {problem}")
    if docno in seen:
        raise InputError(f"duplicate docno {shown(docno)}: each document must be indexed once")
    seen.add(docno)
    return docno


def stack_records(chunk: list[dict], dim: int | None) -> np.ndarray:
    try:
        vectors = np.ascontiguousarray(np.stack([np.asarray(r["doc_vec"]) for r in chunk]), dtype=np.float32)
    except ValueError as err:
        raise InputError(f"doc_vec vectors have different dimensions: {err}") from err
    if vectors.ndim != 2 or (dim is not None and vectors.shape[1] != dim):
        raise InputError(f"doc_vec has dimension {vectors.shape[1:]} but earlier documents had {dim}")
    if not np.isfinite(vectors).all():
        bad = [r["docno"] for r, ok in zip(chunk, np.isfinite(vectors).all(1), strict=True) if not ok]
        raise InputError(f"doc_vec of {bad[:5]} holds NaN or infinite values")
    if math.prod(vectors.shape) == 0:
        raise InputError("doc_vec vectors are empty")
    return vectors
