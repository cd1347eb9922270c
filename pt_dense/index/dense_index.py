"""DenseIndex: a folder of document vectors (float32, or float16 on request), their docnos, and the identity of the
encoder that made them.

Layout (format version 2)::

    pt_meta.json       PyTerrier artifact type/format, so ``pt.Artifact.load(path)`` opens it
    CURRENT            the name of the generation readers open (see index/generations.py)
    gen-000001/        one generation, never changed once published:
      meta.json        dim, count, dtype, normalised?, encoder {fingerprint, name, settings}, accepted
                       fingerprints, the size of every file
      vectors.f32      count x dim float32, row-major, memory-mapped on read (vectors.f16 and base.f16 when the
                       index stores float16: meta.json's dtype)
      docnos.txt       one docno per line, row order
      base.f32         after a refresh by a corrector: the vectors the index was built with (see index/refresh.py)
      corrector/       after a refresh: the corrector that made vectors.f32 from base.f32
      *.faiss          approximate-search structures built on demand and cached (e.g. hnsw-M32-efc200.faiss)

An open DenseIndex reads one generation (the newest when it first reads) and keeps it, however many are published
after; :meth:`DenseIndex.reload` moves it to the newest. Every file is checked against meta.json on open.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import pyterrier as pt

from pt_dense.encoders.stages import fingerprint_for, origins
from pt_dense.errors import EncoderMismatchError
from pt_dense.index.changes import add, compact, delete
from pt_dense.index.generations import Generation, has_generations, open_newest
from pt_dense.index.indexer import DenseIndexer
from pt_dense.index.layout import (
    ARTIFACT,
    META_FILE,
    as_float32,
    check_files,
    read_deleted,
    read_docnos,
    read_meta,
    vector_dtype,
    vector_files,
    verified,
)
from pt_dense.index.package import package_files
from pt_dense.index.refresh import refresh_index
from pt_dense.index.retriever import DenseRetriever, make_retriever
from pt_dense.index.scorer import VectorScorer


class DenseIndex(pt.Artifact):
    """A dense index on disk; a factory for its indexer, retrievers and scorer."""

    ARTIFACT_TYPE = ARTIFACT["type"]
    ARTIFACT_FORMAT = ARTIFACT["format"]
    ARTIFACT_PACKAGE_HINT = ARTIFACT["package_hint"]

    def __init__(self, path: str | Path, *, verify: bool = True):
        """Open (or name, before it is built) the index at ``path``.

        Args:
            path: the index folder.
            verify: check each file against the SHA-256 recorded when its generation was published, on its first
                read in this process (about 1 s per GB of vectors, once); ``False`` trusts the files as they are.
        """
        super().__init__(Path(path).expanduser())
        self.verify = verify
        self._generation: Generation | None = None

    def __repr__(self) -> str:
        return f"DenseIndex({str(self.path)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DenseIndex) and self.path.absolute() == other.path.absolute()

    def __hash__(self) -> int:
        return hash(self.path.absolute())

    # ------------------------------------------------------------------ reading
    def built(self) -> bool:
        """Whether an index has been written at this path.

        Returns:
            True once a generation (or a format-1 ``meta.json``) exists.
        """
        return has_generations(self.path) or (self.path / META_FILE).exists()

    @property
    def generation(self) -> Generation:
        """The generation this object reads (the newest one when it first read, until :meth:`reload`)."""
        if self._generation is None:
            self._generation = self.open_generation()
        return self._generation

    def open_generation(self) -> Generation:
        """Pin the newest complete generation (a view of a foreign layout opens its own folder instead).

        Returns:
            The generation, held open (other writers do not remove it) until released.
        """
        return open_newest(self.path)

    @property
    def folder(self) -> Path:
        """The folder of the generation this object reads."""
        return self.generation.folder

    def reload(self) -> DenseIndex:
        """Let go of the generation read so far; the next read opens the newest one.

        Returns:
            This index.
        """
        for attr in ("meta", "vectors", "docnos", "docno_column", "docno_lookup", "deleted"):
            self.__dict__.pop(attr, None)
        if self._generation is not None:
            self._generation.close()
            self._generation = None
        return self

    close = reload

    @cached_property
    def meta(self) -> dict:
        """The generation's ``meta.json`` (dimension, count, encoder, files), checked against the files on disk."""
        meta = read_meta(self.folder)
        check_files(self.folder, meta)
        return meta

    @property
    def dim(self) -> int:
        """The dimension of the vectors."""
        return int(self.meta["dim"])

    def __len__(self) -> int:
        return int(self.meta["count"])

    @property
    def fingerprint(self) -> str | None:
        """Fingerprint of the encoder whose vectors the index holds (None if it was built from foreign vectors)."""
        encoder = self.meta.get("encoder") or {}
        return encoder.get("fingerprint")

    @property
    def dtype(self) -> np.dtype:
        """The dtype the vectors are stored in (float32, or float16 if the index was built with ``dtype="float16"``)."""
        return vector_dtype(self.meta)

    @cached_property
    def vectors(self) -> np.ndarray:
        """All vectors as a read-only memory map (count x dim, in :attr:`dtype`; compute on float32 copies)."""
        return _memmap(self._checked(vector_files(self.meta)[0]), len(self), self.dim, self.dtype)

    @cached_property
    def docnos(self) -> np.ndarray:
        """The docno of every row, deleted rows included."""
        return read_docnos(self.folder, self._verifiable_meta)

    @cached_property
    def docno_column(self) -> pd.api.extensions.ExtensionArray:
        """The docnos as a pandas string array. Result frames take from it without converting a Python string per
        hit (at k=1000 that conversion costs more than the search)."""
        return pd.array(self.docnos, dtype="str")

    @cached_property
    def deleted(self) -> np.ndarray:
        """Sorted row numbers of deleted documents (never returned; gone after :meth:`compact`)."""
        return read_deleted(self.folder, self._verifiable_meta)

    @property
    def live_count(self) -> int:
        """The number of documents the index returns (its rows less the deleted ones)."""
        return len(self) - len(self.deleted)

    @cached_property
    def docno_lookup(self) -> pd.Index | LiveLookup:
        """docno -> row (``get_indexer``; -1 for absent or deleted documents), for re-ranking from stored vectors."""
        if not len(self.deleted):
            return pd.Index(self.docnos)
        live = np.setdiff1d(np.arange(len(self)), self.deleted)
        return LiveLookup(pd.Index(self.docnos[live]), live)

    @property
    def accepted_fingerprints(self) -> list[str]:
        """The encoders whose vectors this index takes (the one that built it, and those a refresh stood it for);
        empty for an index built from foreign vectors (it takes any)."""
        return self.meta.get("accepts") or ([self.fingerprint] if self.fingerprint else [])

    def check_vectors(self, vectors, *, what: str = "the query vectors", encoder=None) -> None:
        """Refuse ``vectors`` (a column of them) unless this index can tell they come from an encoder it stands for.

        A vector made by a pt_dense encoder carries that encoder's fingerprint (an
        :class:`~pt_dense.encoders.stages.EncodedVector`); one that lost it (``np.array(v)``, a parquet round
        trip) or was made elsewhere carries none, and an index that knows its encoder cannot tell where it came
        from: it is refused unless ``encoder`` vouches for it.

        Args:
            vectors: a column (or list) of vectors.
            what: how the error names them.
            encoder: the encoder that made the vectors which carry no fingerprint (a pt_dense encoder, one of its
                stages, or a fingerprint); checked against the index itself.

        Raises:
            EncoderMismatchError: a vector comes from an encoder the index does not stand for, the vectors come
                from several encoders, or some carry no fingerprint and no ``encoder`` is given.
        """
        fingerprints, unstamped = origins(vectors)
        self.check_origins(fingerprints, unstamped, what=what, encoder=encoder)

    def check_origins(self, fingerprints: set[str], unstamped: int, *, what: str = "the query vectors",
                      encoder=None) -> None:
        """:meth:`check_vectors` on what it reads from the vectors.

        Args:
            fingerprints: The fingerprints the vectors carry.
            unstamped: How many vectors carry none.
            what: How the error names the vectors.
            encoder: A pt_dense encoder (or its fingerprint) vouching for the vectors that carry none.

        Raises:
            EncoderMismatchError: The vectors come from several encoders, or from one this index does not stand
                for, or carry no fingerprint and no encoder vouches for them.
        """
        if len(fingerprints) > 1:
            raise EncoderMismatchError(f"{what} come from {len(fingerprints)} different encoders "
                                       f"({', '.join(sorted(e[:12] for e in fingerprints))}): encode them with one")
        for fingerprint in fingerprints:
            self.check_encoder(fingerprint, what=what)
        if not unstamped or not self.accepted_fingerprints:  # an index built from foreign vectors takes any
            return
        if encoder is None:
            mixed = f" (and {', '.join(e[:12] for e in fingerprints)} for the others)" if fingerprints else ""
            raise EncoderMismatchError(
                f"{unstamped} of {what} carry no encoder fingerprint{mixed}, so {self.path} cannot tell which "
                "encoder made them: they lost it (rebuilt by np.array or arithmetic, read back from parquet or "
                "CSV) or were made outside pt_dense. Give the stage the encoder that made them, which is checked "
                "against the index: index.retriever(..., encoder=enc), index.scorer(encoder=enc), "
                "index.add(docs, encoder=enc); or keep the vectors pt_dense's encoders return")
        self.check_encoder(fingerprint_for(encoder), what=f"the encoder given for {what}", strict=True)

    def check_encoder(self, fingerprint: str | None, *, what: str = "the query vectors", strict: bool = False
                      ) -> None:
        """Raise :class:`EncoderMismatchError` if ``fingerprint`` names an encoder this index does not stand for.

        An index built from foreign vectors takes any encoder.

        Args:
            fingerprint: The fingerprint the vectors carry (``what`` names them), or with ``strict`` that of an
                encoder given to vouch for vectors (``what`` names it).
            what: How the error names them.
            strict: An unknown fingerprint (None) is refused too; without it, it is let through (vectors from
                another library; :meth:`check_vectors` decides about those).

        Raises:
            EncoderMismatchError: The fingerprint names another encoder (or, with ``strict``, none).
        """
        accepted = self.accepted_fingerprints
        if strict and not fingerprint and accepted:
            raise EncoderMismatchError(f"{what} has no fingerprint, so {self.path} cannot tell whether it built the "
                                       "index: give a pt_dense encoder")
        if fingerprint and accepted and fingerprint not in accepted:
            name = (self.meta.get("encoder") or {}).get("name", "?")
            raise EncoderMismatchError(
                f"{what} {'is' if strict else 'come from'} encoder {fingerprint[:12]}, but {self.path} was built by "
                f"{name!r} ({accepted[0][:12]}): use that encoder, re-index with this one, or refresh the index with "
                "a corrector"
            )

    def chunks(self, size: int = 65536) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Read the live documents in chunks (for exports and rebuilds).

        Args:
            size: Rows a chunk.

        Yields:
            ``(docnos, float32 vectors)`` of up to ``size`` documents.
        """
        keep = np.ones(len(self), dtype=bool)
        keep[self.deleted] = False
        for start in range(0, len(self), size):
            live = keep[start : start + size]
            yield (self.docnos[start : start + size][live],
                   as_float32(self.vectors[start : start + size])[live])

    # ------------------------------------------------------------------ changes
    def add(self, documents, *, encoder=None) -> DenseIndex:
        """Append documents (``docno, doc_vec``, e.g. ``enc.doc_encoder()(docs)``) as a new generation.

        Args:
            documents: A frame (or records) of ``docno, doc_vec``.
            encoder: A pt_dense encoder (or its fingerprint) that vouches for vectors carrying no fingerprint (see
                :meth:`check_vectors`); it must be one the index stands for.

        Returns:
            This index, reading the new generation.

        Raises:
            EncoderMismatchError: The vectors come from an encoder the index does not stand for.
            IndexReadOnlyError: This user may not write the index.

        Example::

            index.add(enc.doc_encoder()(new_docs))
        """
        return add(self, documents, encoder=encoder)

    def update(self, documents, *, encoder=None) -> DenseIndex:
        """Replace documents (by docno; new ones are added) as a new generation.

        Args:
            documents: A frame (or records) of ``docno, doc_vec``.
            encoder: Vouches for vectors carrying no fingerprint, as in :meth:`add`.

        Returns:
            This index, reading the new generation.
        """
        return add(self, documents, replace=True, encoder=encoder)

    def delete(self, docnos) -> DenseIndex:
        """Mark documents deleted (tombstones) as a new generation; :meth:`compact` removes them.

        Args:
            docnos: The docnos to delete (a string is one docno).

        Returns:
            This index, reading the new generation.
        """
        return delete(self, docnos)

    def compact(self) -> DenseIndex:
        """Rewrite the index without its deleted rows, as a new generation.

        Returns:
            This index, reading the new generation.
        """
        return compact(self)

    # ------------------------------------------------------------------ stages
    def indexer(self, *, overwrite: bool = False, chunk_size: int = 4096, progress: bool = True,
                total: int | None = None, corpus: str | None = None, shard: dict | None = None,
                dtype: str = "float32") -> DenseIndexer:
        """Indexer consuming ``docno, doc_vec`` records (e.g. ``enc.doc_encoder() >> index.indexer()``).

        Args:
            overwrite: Replace an index already at the path (refused otherwise).
            chunk_size: Records written at a time.
            progress: Show a progress bar.
            total: The number of documents, if known (gives the progress bar an ETA).
            corpus: What ``datasets.load`` opens the collection with, recorded so a corrector can fetch the texts it
                re-encodes.
            shard: What a part of a sharded build records about itself (``pt-dense index --shard i/n`` sets it).
            dtype: ``"float32"``, or ``"float16"`` to store the vectors in half the bytes (every change and refresh
                keeps the dtype).

        Returns:
            A :class:`~pt_dense.index.indexer.DenseIndexer`.

        Example::

            (enc.doc_encoder() >> index.indexer()).index(data.corpus_iter())
        """
        return DenseIndexer(self, overwrite=overwrite, chunk_size=chunk_size, progress=progress, total=total,
                            corpus=corpus, shard=shard, dtype=dtype)

    def retriever(self, k: int = 1000, kind: str = "flat", *, encoder=None, **params) -> DenseRetriever:
        """First-stage retriever ``qid, query_vec -> docno, score, rank``: ``kind="flat"`` (exact) or ``"hnsw"``.

        HNSW params: ``M`` (32), ``ef_construction`` (200), ``ef_search`` (max(128, k)); the graph is built once and
        cached in the index folder. Any FAISS factory string (``"IVF4096,PQ48"``) is a kind too.

        Args:
            k: Documents returned a query.
            kind: ``"flat"``, ``"hnsw"``, a FAISS factory string, or a registered retriever kind.
            encoder: A pt_dense encoder (or its fingerprint) that vouches for query vectors carrying no
                fingerprint (see :meth:`check_vectors`); it must be one the index stands for.
            **params: The kind's settings (``M``, ``ef_search``, ``nprobe``...).

        Returns:
            A :class:`~pt_dense.index.retriever.DenseRetriever`.

        Example::

            dense = enc.query_encoder() >> index.retriever(k=100, kind="hnsw")
        """
        return make_retriever(self, k=k, kind=kind, **params).vouched_by(encoder)

    def scorer(self, missing: str = "error", *, encoder=None) -> VectorScorer:
        """Re-ranker ``qid, query_vec, docno -> score, rank`` from the stored vectors (no document is re-encoded).

        Args:
            missing: ``"error"`` refuses candidates the index lacks; ``"drop"`` removes them.
            encoder: A pt_dense encoder (or its fingerprint) that vouches for query vectors carrying no
                fingerprint (see :meth:`check_vectors`); it must be one the index stands for.

        Returns:
            A :class:`~pt_dense.index.scorer.VectorScorer`.

        Example::

            rerank = bm25 >> enc.query_encoder() >> index.scorer()
        """
        return VectorScorer(self, missing=missing, encoder=encoder)

    def refresh(self, corrector, path: str | Path | None = None, *, overwrite: bool = False,
                keep_fresh_sample: bool = True) -> DenseIndex:
        """Stand this index for the corrector's encoder without re-encoding: every vector becomes h(base vector)
        (see ``pt_dense.index.refresh``); in place by default, or written to ``path``.

        Args:
            corrector: A fitted :class:`~pt_dense.Corrector`.
            path: Write the refreshed index there instead of in place.
            overwrite: Replace an index already at ``path``.
            keep_fresh_sample: Keep the freshly encoded sample's vectors as they are (not corrected).

        Returns:
            The refreshed index (this one, or the one at ``path``).

        Example::

            index.refresh(ptd.Corrector.fit(index, new_enc, sample=0.05))
        """
        return refresh_index(self, corrector, path, overwrite=overwrite, keep_fresh_sample=keep_fresh_sample)

    @property
    def base_file(self) -> Path:
        """The file of the vectors the index was built with (``base.f32`` once refreshed, else ``vectors.f32``)."""
        vectors_name, base_name = vector_files(self.meta)
        base = self.folder / base_name
        return base if base.exists() else self.folder / vectors_name

    @property
    def base_vectors(self) -> np.ndarray:
        """The vectors the index was built with (what a refresh starts from), memory-mapped in :attr:`dtype`."""
        return _memmap(self._checked(self.base_file.name), len(self), self.dim, self.dtype)

    @property
    def _verifiable_meta(self) -> dict:
        """meta.json, less its checksums when this object trusts its files (``verify=False``)."""
        return self.meta if self.verify else {k: v for k, v in self.meta.items() if k != "checksums"}

    def _checked(self, name: str) -> Path:
        """The path of the generation's file ``name``, verified against its checksum unless ``verify=False``."""
        return verified(self.folder, self._verifiable_meta, name) if len(self) else self.folder / name

    def verify_files(self) -> dict[str, str]:
        """Hash every file of the generation this object reads against meta.json (what ``pt-dense verify`` runs).

        Returns:
            {file name: "ok"} for the files checked; files of an index older than checksums are "unrecorded".

        Raises:
            IndexFormatError: a file is missing, has another size, or holds other bytes than were published.
        """
        recorded = self.meta.get("checksums")
        if recorded is None:
            return {name: "unrecorded" for name in sorted(self.meta.get("files") or {})}
        for name in sorted(recorded):
            verified(self.folder, self.meta, name, again=True)
        return {name: "ok" for name in sorted(recorded)}

    @property
    def base_fingerprint(self) -> str | None:
        """Fingerprint of the encoder that made the base vectors (the one a corrector maps from)."""
        return (self.meta.get("base_encoder") or self.meta.get("encoder") or {}).get("fingerprint")

    def _package_files(self):
        """What ``build_package`` packs: the generation this object reads, no caches (see index/package.py)."""
        return package_files(self)

    def info(self) -> dict:
        """Describe the index (what ``pt-dense verify`` and ``info`` print).

        Returns:
            ``meta.json`` with the path, the current generation's name and the bytes on disk.
        """
        meta = dict(self.meta)
        meta["path"] = str(self.path)
        meta["generation"] = self.generation.name
        meta["bytes"] = sum(f.stat().st_size for f in self.folder.rglob("*") if f.is_file())
        return meta


def _memmap(path: Path, count: int, dim: int, dtype: np.dtype) -> np.ndarray:
    """A read-only (count x dim) map of ``path``; an empty index maps nothing."""
    if count == 0:
        return np.zeros((0, dim), dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r", shape=(count, dim))


class LiveLookup:
    """docno -> row over the live rows of an index with deletions (``pd.Index.get_indexer``'s contract)."""

    def __init__(self, live_docnos: pd.Index, live_rows: np.ndarray):
        self.live_docnos, self.live_rows = live_docnos, live_rows

    def get_indexer(self, docnos) -> np.ndarray:
        positions = self.live_docnos.get_indexer(docnos)
        return np.where(positions >= 0, self.live_rows[np.maximum(positions, 0)], -1)

    def __len__(self) -> int:
        return len(self.live_docnos)
