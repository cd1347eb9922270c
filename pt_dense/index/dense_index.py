"""DenseIndex: a folder of float32 document vectors, their docnos, and the identity of the encoder that made them.

Layout (format version 1)::

    meta.json      dim, count, dtype, normalised?, encoder {fingerprint, name, settings}, accepted fingerprints
    pt_meta.json   PyTerrier artifact type/format, so ``pt.Artifact.load(path)`` opens it
    vectors.f32    count x dim float32, row-major, memory-mapped on read
    docnos.txt     one docno per line, row order
    *.faiss        approximate-search structures built on demand and cached (e.g. hnsw-M32-efc200.faiss)
    base.f32       after a refresh by a corrector: the vectors the index was built with (see index/refresh.py)
    corrector/     after a refresh: the corrector that made vectors.f32 from base.f32
"""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import pyterrier as pt

from pt_dense.errors import EncoderMismatchError, IndexFormatError
from pt_dense.index.indexer import DenseIndexer
from pt_dense.index.layout import ARTIFACT, BASE_FILE, DOCNOS_FILE, FORMAT, FORMAT_VERSION, META_FILE, VECTORS_FILE
from pt_dense.index.refresh import refresh_index
from pt_dense.index.retriever import DenseRetriever, make_retriever
from pt_dense.index.scorer import VectorScorer


class DenseIndex(pt.Artifact):
    """A dense index on disk; a factory for its indexer, retrievers and scorer."""

    ARTIFACT_TYPE = ARTIFACT["type"]
    ARTIFACT_FORMAT = ARTIFACT["format"]
    ARTIFACT_PACKAGE_HINT = ARTIFACT["package_hint"]

    def __init__(self, path: str | Path):
        super().__init__(Path(path).expanduser())

    def __repr__(self) -> str:
        return f"DenseIndex({str(self.path)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DenseIndex) and self.path.absolute() == other.path.absolute()

    def __hash__(self) -> int:
        return hash(self.path.absolute())

    # ------------------------------------------------------------------ reading
    def built(self) -> bool:
        return (self.path / META_FILE).exists()

    @cached_property
    def meta(self) -> dict:
        file = self.path / META_FILE
        if not file.exists():
            raise IndexFormatError(f"no pt_dense index at {self.path}: build one with index.indexer().index(...)")
        meta = json.loads(file.read_text())
        if meta.get("format") != FORMAT:
            raise IndexFormatError(f"{self.path} is not a pt_dense dense index (format={meta.get('format')!r})")
        if meta.get("version", 0) > FORMAT_VERSION:
            raise IndexFormatError(
                f"{self.path} has format version {meta['version']}; this pt_dense reads up to {FORMAT_VERSION}: "
                "upgrade pt-dense"
            )
        return meta

    @property
    def dim(self) -> int:
        return int(self.meta["dim"])

    def __len__(self) -> int:
        return int(self.meta["count"])

    @property
    def fingerprint(self) -> str | None:
        """Fingerprint of the encoder whose vectors the index holds (None if it was built from foreign vectors)."""
        encoder = self.meta.get("encoder") or {}
        return encoder.get("fingerprint")

    @cached_property
    def vectors(self) -> np.ndarray:
        """All vectors as a read-only memory map (count x dim float32)."""
        return np.memmap(self.path / VECTORS_FILE, dtype=np.float32, mode="r", shape=(len(self), self.dim))

    @cached_property
    def docnos(self) -> np.ndarray:
        with open(self.path / DOCNOS_FILE, encoding="utf-8") as f:
            docnos = np.array(f.read().split("\n")[: len(self)], dtype=object)
        if len(docnos) != len(self):
            raise IndexFormatError(f"{self.path}: {len(docnos)} docnos for {len(self)} vectors; rebuild the index")
        return docnos

    @cached_property
    def docno_lookup(self) -> pd.Index:
        """Hash index docno -> row, for re-ranking candidates by their stored vectors."""
        return pd.Index(self.docnos)

    def check_encoder(self, fingerprint: str | None, *, what: str = "the query vectors") -> None:
        """Raise :class:`EncoderMismatchError` if ``fingerprint`` names an encoder this index does not stand for.

        Unknown fingerprints on either side (vectors from another library) are let through; dimensions are still
        checked where the vectors are used.
        """
        accepted = self.meta.get("accepts") or ([self.fingerprint] if self.fingerprint else [])
        if fingerprint and accepted and fingerprint not in accepted:
            name = (self.meta.get("encoder") or {}).get("name", "?")
            raise EncoderMismatchError(
                f"{what} come from encoder {fingerprint[:12]}, but {self.path} was built by {name!r} "
                f"({accepted[0][:12]}): use that encoder, re-index with this one, or refresh the index with a corrector"
            )

    # ------------------------------------------------------------------ stages
    def indexer(self, *, overwrite: bool = False, chunk_size: int = 4096, progress: bool = True,
                total: int | None = None, corpus: str | None = None) -> DenseIndexer:
        """Indexer consuming ``docno, doc_vec`` records (e.g. ``enc.doc_encoder() >> index.indexer()``).

        ``total`` (the number of documents, if known) gives the progress bar an ETA; ``corpus`` (what
        ``datasets.load`` opens the collection with) is recorded so a corrector can fetch the texts it re-encodes.
        """
        return DenseIndexer(self, overwrite=overwrite, chunk_size=chunk_size, progress=progress, total=total,
                            corpus=corpus)

    def retriever(self, k: int = 1000, kind: str = "flat", **params) -> DenseRetriever:
        """First-stage retriever ``qid, query_vec -> docno, score, rank``: ``kind="flat"`` (exact) or ``"hnsw"``.

        HNSW params: ``M`` (32), ``ef_construction`` (200), ``ef_search`` (max(128, k)); the graph is built once and
        cached in the index folder.
        """
        return make_retriever(self, k=k, kind=kind, **params)

    def scorer(self, missing: str = "error") -> VectorScorer:
        """Re-ranker ``qid, query_vec, docno -> score, rank`` from the stored vectors (no document is re-encoded).

        ``missing="error"`` refuses candidates the index lacks; ``"drop"`` removes them.
        """
        return VectorScorer(self, missing=missing)

    def refresh(self, corrector, path: str | Path | None = None, *, overwrite: bool = False,
                keep_fresh_sample: bool = True) -> DenseIndex:
        """Stand this index for the corrector's encoder without re-encoding: every vector becomes h(base vector)
        (see :mod:`pt_dense.index.refresh`); in place by default, or written to ``path``."""
        return refresh_index(self, corrector, path, overwrite=overwrite, keep_fresh_sample=keep_fresh_sample)

    @property
    def base_file(self) -> Path:
        """The file of the vectors the index was built with (``base.f32`` once refreshed, else ``vectors.f32``)."""
        base = self.path / BASE_FILE
        return base if base.exists() else self.path / VECTORS_FILE

    @property
    def base_vectors(self) -> np.ndarray:
        """The vectors the index was built with (what a refresh starts from), memory-mapped."""
        return np.memmap(self.base_file, dtype=np.float32, mode="r", shape=(len(self), self.dim))

    def info(self) -> dict:
        meta = dict(self.meta)
        meta["path"] = str(self.path)
        meta["bytes"] = sum(f.stat().st_size for f in self.path.iterdir() if f.is_file())
        return meta
