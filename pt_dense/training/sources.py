"""Negative sources by name: the one table that ``fit(negatives=...)`` and ``pt-dense train --negatives`` read.

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
from pt_dense.training.cached import POLICIES, CachedNegatives
from pt_dense.training.negatives import (
    FileNegatives,
    HybridTeacher,
    InBatch,
    NegativeSource,
    RetrieverNegatives,
    UnifiedNegatives,
)

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


NEGATIVE_SOURCES: dict[str, Factory] = {
    "in-batch": lambda corpus, encoder, n, depth, **_: InBatch(),
    "bm25": lambda corpus, encoder, n, depth, **_: RetrieverNegatives(
        BM25(_dataset(corpus, "bm25"), num_results=depth + 20), n=n, depth=depth),
    "unified": lambda corpus, encoder, n, depth, **_: UnifiedNegatives(_dataset(corpus, "unified"), n=n, depth=depth),
    "hybrid": lambda corpus, encoder, n, depth, **_: HybridTeacher(_dataset(corpus, "hybrid"), n=n, depth=depth),
    **{f"cache:{policy}": _cache(policy) for policy in POLICIES},
}


def register_negative_source(name: str, factory: Factory) -> None:
    """Make ``fit(negatives=name)`` (and ``pt-dense train --negatives name``) use ``factory``.

    A later registration under the same name replaces the earlier one.

    Args:
        name: The name ``negatives=`` takes.
        factory: ``factory(corpus, encoder, n, depth, **settings) -> NegativeSource``: the training corpus, the
            encoder as training starts, negatives per query, pool depth, and the source's own settings (fit's
            ``negative_settings``).
    """
    NEGATIVE_SOURCES[name] = factory


def resolve(negatives, corpus=None, encoder=None, n: int = 1, depth: int = 100, **settings) -> NegativeSource:
    """Turn ``fit``'s ``negatives=`` argument into a NegativeSource: a registered name (see
    :data:`NEGATIVE_SOURCES`), a NegativeSource, a PyTerrier retriever, or the path of a mined file."""
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
    raise InputError(f"unknown negatives {negatives!r}: use one of {sorted(NEGATIVE_SOURCES)}, a PyTerrier "
                     "retriever, a mined file path or a NegativeSource")
