"""BiEncoder: the public encoder, a :class:`~pt_dense.encoders.torch_encoder.TorchEncoder` that also trains.

Encoding, adapters and saving live a floor below (``encoders``), which knows nothing of training; this class adds
PyTerrier's Estimator interface, so ``enc.fit(...)`` runs :func:`pt_dense.training.trainer.fit` on it.
"""

from __future__ import annotations

import pandas as pd
import pyterrier as pt

from pt_dense.encoders.torch_encoder import TorchEncoder
from pt_dense.training.trainer import fit


class BiEncoder(TorchEncoder, pt.Estimator):
    """A shared-weight bi-encoder that encodes (every stage of a TorchEncoder) and trains (:meth:`fit`): fully, or
    only a LoRA adapter (:meth:`~pt_dense.TorchEncoder.with_lora`) or deep prompts
    (:meth:`~pt_dense.TorchEncoder.with_prompts`)."""

    def fit(self, topics: pd.DataFrame, qrels: pd.DataFrame, valid_topics: pd.DataFrame | None = None,
            valid_qrels: pd.DataFrame | None = None, *, corpus=None, negatives=None, recipe=None,
            **settings) -> dict:
        """Train contrastively in place; returns the history (see :class:`~pt_dense.training.TrainConfig` for the
        settings and their defaults, ``pt_dense.training.sources`` for ``negatives`` (default in-batch),
        ``pt_dense.training.recipes`` for the named recipes)."""
        return fit(self, topics, qrels, corpus=corpus, negatives=negatives, valid_topics=valid_topics,
                   valid_qrels=valid_qrels, recipe=recipe, **settings)
