"""The built-in negative sources (their names are in :mod:`pt_dense.training.source_table`), and :func:`resolve`.

A factory takes ``(corpus, encoder, n, depth, **settings)`` (the training corpus, the encoder as training starts,
negatives per query, pool depth, and the source's own settings) and returns a
:class:`~pt_dense.training.negatives.NegativeSource`. Besides names, ``fit`` accepts a NegativeSource, any PyTerrier
retriever, or the path of a mined negatives file.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pyterrier as pt

from pt_dense.bm25 import BM25
from pt_dense.errors import InputError
from pt_dense.index.cached import cached_index
from pt_dense.training.cached import CachedNegatives
from pt_dense.training.negatives import (
    FileNegatives,
    HybridTeacher,
    InBatch,
    NegativeSource,
    RetrieverNegatives,
    UnifiedNegatives,
)
from pt_dense.training.source_table import NEGATIVE_SOURCES, register_negative_source

Factory = Callable[..., NegativeSource]


def _dataset(corpus, name: str):
    if corpus is None or not hasattr(corpus, "corpus_iter"):
        raise InputError(f"negatives={name!r} needs corpus= a dataset (with corpus_iter) to index")
    return corpus


def _cache(policy: str) -> Factory:
    def factory(corpus, encoder, n, depth, *, sample: float = 0.05, every: int | None = None,
                progress: bool = True, **settings) -> NegativeSource:
        data = _dataset(corpus, f"cache:{policy}")
        return CachedNegatives(cached_index(data, encoder), data, policy, sample=sample, n=n, depth=depth,
                               every=every, progress=progress, **settings)

    return factory


def in_batch(corpus, encoder, n, depth, **_) -> NegativeSource:
    """No hard negatives: every other query's documents in the batch."""
    return InBatch()


def bm25(corpus, encoder, n, depth, **_) -> NegativeSource:
    """Hard negatives from BM25 over ``corpus``."""
    return RetrieverNegatives(BM25(_dataset(corpus, "bm25"), num_results=depth + 20), n=n, depth=depth)


def unified(corpus, encoder, n, depth, **_) -> NegativeSource:
    """Hard negatives from BM25 and the dense index of ``corpus`` together."""
    return UnifiedNegatives(_dataset(corpus, "unified"), n=n, depth=depth)


def hybrid(corpus, encoder, n, depth, **_) -> NegativeSource:
    """Hard negatives from the BM25 + dense fusion, whose scores also teach (``loss="distill"``)."""
    return HybridTeacher(_dataset(corpus, "hybrid"), n=n, depth=depth)


cache_stale, cache_corrected, cache_reencode = _cache("stale"), _cache("corrected"), _cache("reencode")


def resolve(negatives, corpus=None, encoder=None, n: int = 1, depth: int = 100, **settings) -> NegativeSource:
    """Turn ``fit``'s ``negatives=`` argument into a NegativeSource: a registered name (see
    :data:`~pt_dense.training.source_table.NEGATIVE_SOURCES`), a NegativeSource, a PyTerrier retriever, or the path
    of a mined file."""
    if isinstance(negatives, NegativeSource):
        return negatives
    if negatives is None:
        return InBatch()
    if isinstance(negatives, str) and negatives in NEGATIVE_SOURCES:
        return NEGATIVE_SOURCES[negatives](corpus, encoder, n, depth, **settings)
    if isinstance(negatives, pt.Transformer):
        return RetrieverNegatives(negatives, n=n, depth=depth)
    if isinstance(negatives, (str, Path)) and Path(negatives).exists():
        return FileNegatives(negatives, n=n, depth=depth)
    raise InputError(f"unknown negatives {negatives!r}: use one of {NEGATIVE_SOURCES.choices()}, a PyTerrier "
                     "retriever, a mined file path or a NegativeSource")


__all__ = ["NEGATIVE_SOURCES", "Factory", "bm25", "cache_corrected", "cache_reencode", "cache_stale", "hybrid",
           "in_batch", "register_negative_source", "resolve", "unified"]
