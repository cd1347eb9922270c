""":class:`~pt_dense.PEFA`, the user's object: the core (:mod:`.core`) with its stages (:mod:`.stages`) and its
tuning (:mod:`.tuning`), the one module that imports all three."""

from __future__ import annotations

import pandas as pd
import pyterrier as pt

from pt_dense.pefa.core import PefaCore
from pt_dense.pefa.stages import reranker as make_reranker
from pt_dense.pefa.stages import retriever as make_retriever
from pt_dense.pefa.tuning import tune


class PEFA(PefaCore):
    """The training-query side of PEFA over an existing DenseIndex; a factory for its re-ranker and retriever.

    Settings never change in place: :meth:`with_settings` and :meth:`tune` return a new PEFA (sharing the encoded
    training queries), so stages already built keep the settings they were built with. Deleted documents of the
    index are never scored or returned, in serving and in tuning alike.
    """

    def reranker(self, *, encoder=None) -> pt.Transformer:
        """A stage re-scoring ``qid, query_vec, docno`` candidates from any first stage.

        Candidates the index lacks (deleted ones included) are dropped.

        Args:
            encoder: Vouches for query vectors that carry no fingerprint, as in ``index.scorer``.

        Returns:
            A :class:`~pt_dense.pefa.stages.PefaReranker`.
        """
        return make_reranker(self, encoder=encoder)

    def retriever(self, k: int = 1000, *, kind: str = "flat", encoder=None, **params) -> pt.Transformer:
        """First stage ``qid, query_vec -> docno, score, rank``. PEFA-XS is a dense search over the folded index, of
        any retriever ``kind`` (with its ``params``); PEFA-XL scores every document exactly (``kind="flat"``).

        Args:
            k: Documents returned a query.
            kind: The retriever kind over the folded index (PEFA-XS); PEFA-XL takes ``"flat"`` only.
            encoder: Vouches for query vectors that carry no fingerprint, as in ``index.retriever``.
            **params: The kind's settings (PEFA-XS).

        Returns:
            A :class:`~pt_dense.pefa.stages.PefaRetriever` (XL) or :class:`~pt_dense.pefa.stages.PefaXsRetriever`.

        Raises:
            InputError: A kind or params given to PEFA-XL.
        """
        return make_retriever(self, k, kind=kind, encoder=encoder, **params)

    def tune(self, valid_topics: pd.DataFrame, valid_qrels: pd.DataFrame, **grid) -> dict:
        """Pick lam (and k for XL) on validation data, scoring each setting with the stage :meth:`retriever` serves:
        ``{"best", "grid", "pefa"}``, where ``pefa`` is a new PEFA with the best settings (see
        ``pt_dense.pefa.tuning.tune`` for the grid and the measure).

        Args:
            valid_topics: ``qid, query`` of validation queries (not training queries).
            valid_qrels: Their qrels.
            **grid: The values to try (``lams``, ``ks``) and how (``measure``, ``depth``, ``plot``, ``kind``,
                ``params``).

        Returns:
            ``{"best": settings, "grid": rows, "pefa": the tuned PEFA}``.
        """
        return tune(self, valid_topics, valid_qrels, **grid)
