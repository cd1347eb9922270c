"""Training: the BiEncoder (a TorchEncoder with ``fit``), the loop, losses and negative sources (each a table by
name), cached negatives that follow the encoder, intermediate pretraining, and whole runs on a collection.

Names are imported lazily, so that ``pt_dense.training`` costs nothing until one is used.
"""

from __future__ import annotations

from pt_dense.io.lazy import lazy_exports

_EXPORTS = {
    "BiEncoder": ".biencoder", "fit": ".trainer", "TrainConfig": ".trainer", "LOSSES": ".losses",
    "register_loss": ".losses", "NEGATIVE_SOURCES": ".source_table", "register_negative_source": ".source_table",
    "CachedNegatives": ".cached", "CorrectedNegatives": ".cached", "pretrain": ".pretrain",
    "train_collection": ".run", "pretrain_collection": ".run", "adapted_encoder": ".run",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
