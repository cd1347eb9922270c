"""Hard negatives from a cache of document vectors that follows the encoder while it trains (Monath et al., 2024).

The cache starts as a DenseIndex's base vectors (the encoder before training). At the start of every epoch after the
first (or every ``every`` steps), training queries are re-encoded with the current encoder (queries are cheap) and the
cache is brought up to date by one of three policies:

- ``"stale"``: never; the documents keep their initial vectors;
- ``"corrected"``: a corrector is re-fitted on a fresh random ``sample`` of the corpus and applied to every cached
  vector (the sample itself keeps its exact fresh vectors, unless ``exact_sample=False``: exact vectors score higher
  against the current queries than corrected ones, so negatives would come from the sample more often than from
  the rest): ``sample`` of the corpus re-encoded per refresh;
- ``"reencode"``: the whole corpus is re-encoded (the expensive reference).

Negatives for a query are drawn without replacement from the softmax over its ``depth`` best-scored non-positive
documents at ``temperature`` (Gumbel top-k), seeded by (seed, epoch, qid). ``reencoded`` counts the documents encoded.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from pt_dense.corrector import Corrector
from pt_dense.datasets import doc_texts
from pt_dense.errors import InputError
from pt_dense.index.layout import as_float32
from pt_dense.io.hashing import seeded_rng
from pt_dense.training.negatives import NegativeSource

POLICIES = ("stale", "corrected", "reencode")


class CachedNegatives(NegativeSource):
    """Hard negatives from a cache of document vectors that follows the encoder while it trains (Monath et al., 2024).

    The cache starts as ``index``'s vectors (built by the encoder training starts from). Every epoch (or every
    ``every`` steps) the training queries are re-encoded and the cache is refreshed by a policy: ``"stale"``
    (never), ``"corrected"`` (a corrector re-fitted on a fresh ``sample`` of the corpus is applied to every cached
    vector) or ``"reencode"`` (the whole corpus, the expensive reference). Negatives are drawn from the softmax over a
    query's ``depth`` best non-positive documents at ``temperature``, seeded by (seed, epoch, qid).

    Example::

        enc.fit(topics, qrels, corpus=data, negatives=ptd.CachedNegatives(index, data, "corrected", sample=0.05))
    """

    def __init__(self, index, corpus, refresh: str = "corrected", *, sample: float = 0.05, n: int = 1,
                 depth: int = 100, temperature: float = 0.05, every: int | None = None,
                 corrector_settings: dict | None = None, exact_sample: bool = True, progress: bool = False):
        """Set the policy up; the cache is read when training starts.

        Args:
            index: The :class:`~pt_dense.DenseIndex` holding the starting vectors.
            corpus: The collection's texts (a dataset, or ``docno, text`` records).
            refresh: ``"stale"``, ``"corrected"`` or ``"reencode"``.
            sample: The share of the corpus re-encoded a refresh (``"corrected"``).
            n: Negatives a query.
            depth: Candidates a query, best first, that negatives are drawn from.
            temperature: The softmax temperature of the draw.
            every: Refresh every this many steps (None: once an epoch).
            corrector_settings: Settings of the corrector's fit.
            exact_sample: Keep the sample's fresh vectors exact rather than corrected.
            progress: Show progress bars.

        Raises:
            InputError: An unknown policy, ``n`` or ``depth`` out of range, or ``every`` below 1.
        """
        if refresh not in POLICIES:
            raise InputError(f"refresh must be one of {POLICIES}, not {refresh!r}")
        if n < 1 or depth < n:
            raise InputError("cached negatives need n >= 1 and depth >= n")
        if every is not None and every < 1:
            raise InputError(f"every={every}: refresh every N >= 1 steps, or None for once an epoch")
        self.index, self.texts, self.policy = index, doc_texts(corpus), refresh
        missing = set(index.docnos.tolist()) - set(self.texts)
        if missing:
            raise InputError(f"{len(missing)} documents of the index are missing from the corpus (e.g. "
                             f"{sorted(missing)[:3]}): give the corpus the index was built from")
        self.sample_size, self.n, self.depth, self.temperature, self.every = sample, n, depth, temperature, every
        self.corrector_settings = corrector_settings or {}
        self.exact_sample = exact_sample
        self.progress = progress
        self.reencoded = 0
        self.refreshes: list[dict] = []
        self._topics: pd.DataFrame | None = None
        self._positives: Mapping[str, set[str]] = {}
        self._period: int | None = None  # the epoch, or step // every, of the last refresh
        self.candidates: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # qid -> (doc rows, scores), best first

    def describe(self) -> str:
        """A short name for logs and reports.

        Returns:
            ``cached(policy...)``.
        """
        return f"cached({self.policy}, sample={self.sample_size})" if self.policy == "corrected" else \
            f"cached({self.policy})"

    def report(self) -> dict:
        """What the source cost.

        Returns:
            The source's name, the documents re-encoded and the refreshes.
        """
        return {"source": self.describe(), "reencoded": self.reencoded, "refreshes": self.refreshes}

    def prepare(self, topics: pd.DataFrame, positives: Mapping[str, set[str]]) -> None:
        """Take the training queries before the first step.

        Args:
            topics: ``qid, query`` of the training queries.
            positives: Each qid's relevant docnos.
        """
        self._topics, self._positives = topics[["qid", "query"]].reset_index(drop=True), positives

    def update(self, encoder, step: int, epoch: int) -> None:
        """Refresh the cache and re-rank the candidates when a new period starts.

        Args:
            encoder: The encoder being trained.
            step: The training step.
            epoch: The epoch.
        """
        period = epoch if self.every is None else step // self.every
        if self._period == period:
            return
        self._period = period
        docs = self._documents(encoder, refresh=period > 0)
        queries = encoder.encode(list(self._topics["query"]), "query", progress=False)
        self._rank(queries, docs)

    def _documents(self, encoder, refresh: bool) -> np.ndarray:
        """The cache's document vectors for this epoch, refreshed by the policy."""
        base = as_float32(self.index.base_vectors)
        if not refresh or self.policy == "stale":
            return base
        if self.policy == "reencode":
            fresh = encoder.encode([self.texts[d] for d in self.index.docnos], "doc", progress=self.progress)
            self.reencoded += len(base)
            self.refreshes.append({"period": self._period, "reencoded": len(base),
                                   "cosine_before": float(np.mean(np.sum(base * fresh, axis=1)))})
            return fresh
        corrector = Corrector.fit(self.index, encoder, self.texts, self.sample_size,
                                  seed=self._period, progress=self.progress, **self.corrector_settings)
        self.reencoded += corrector.report.reencoded
        self.refreshes.append({"period": self._period, "reencoded": corrector.report.reencoded,
                               "cosine_before": corrector.report.cosine_before,
                               "cosine_after": corrector.report.cosine_after})
        docs = corrector.correct(base, self.index.docnos)
        if self.exact_sample:
            rows, fresh = corrector.fresh_positions(self.index.docno_lookup)
            docs[rows] = fresh
        return docs

    def _rank(self, queries: np.ndarray, docs: np.ndarray) -> None:
        lookup = self.index.docno_lookup
        keep = min(self.depth + 64, len(docs))
        for start in range(0, len(queries), 256):
            scores = queries[start : start + 256] @ docs.T
            top = np.argpartition(-scores, keep - 1, axis=1)[:, :keep]
            for i, rows in enumerate(top):
                qid = self._topics.at[start + i, "qid"]
                positive_rows = set(lookup.get_indexer(list(self._positives.get(qid, ()))).tolist())
                rows = np.array([r for r in rows[np.argsort(-scores[i, rows])] if r not in positive_rows])
                rows = rows[: self.depth]
                self.candidates[qid] = (rows, scores[i, rows])

    def sample(self, qid: str, positives: set[str], n: int, seed: int, epoch: int) -> list[str]:
        """Draw negatives for one query.

        Args:
            qid: The query.
            positives: Its relevant docnos (never drawn).
            n: Negatives to draw.
            seed: The run's seed.
            epoch: The epoch (the draw differs each epoch).

        Returns:
            Up to ``n`` docnos.
        """
        if qid not in self.candidates:
            return []
        rows, scores = self.candidates[qid]
        rng = seeded_rng(seed, epoch, qid)
        keys = scores / self.temperature + rng.gumbel(size=len(scores))
        picked = rows[np.argsort(-keys)[:n]]
        return [self.index.docnos[r] for r in picked]


class CorrectedNegatives(CachedNegatives):
    """``CachedNegatives`` with the corrected policy: a corrector re-fitted on a fresh ``sample`` each epoch (or every
    ``every`` steps)."""

    def __init__(self, index, corpus, *, sample: float = 0.05, **settings):
        """Cached negatives under the corrected policy.

        Args:
            index: The :class:`~pt_dense.DenseIndex` holding the starting vectors.
            corpus: The collection's texts.
            sample: The share of the corpus re-encoded a refresh.
            **settings: The other settings of :class:`CachedNegatives`.
        """
        super().__init__(index, corpus, "corrected", sample=sample, **settings)
