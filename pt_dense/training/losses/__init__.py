"""Training losses, one per module, registered here by name (``fit(loss=...)`` and ``pt-dense train`` read it).

A loss is an ``nn.Module`` built from its settings; it is called with the batch's query embeddings (B x d), its
document embeddings (B*G x d: each query's group is [positive, hard negatives...]), the documents' ids and each
query's judged positives (to mask them out of its negatives), and returns a scalar. A loss with ``needs_teacher``
also gets ``teacher``: the negative source's scores of each group (B x G).
"""

from __future__ import annotations

from torch import nn

from pt_dense.errors import InputError
from pt_dense.training.losses.contrastive import ContrastiveLoss, contrastive_loss
from pt_dense.training.losses.distill import DistillLoss

LOSSES: dict[str, type[nn.Module]] = {"contrastive": ContrastiveLoss, "distill": DistillLoss}


def register_loss(name: str, loss: type[nn.Module]) -> None:
    """Make ``fit(loss=name)`` train with ``loss(**settings)``.

    The trainer builds it as ``loss(temperature=..., **loss_settings)`` and calls it as ``loss_fn(queries, docs,
    doc_ids=..., positives=...)`` (the arguments of ``ContrastiveLoss.forward``), plus ``teacher=`` scores when the
    class sets ``needs_teacher = True``. A later registration under the same name replaces the earlier one.

    Args:
        name: The name ``fit(loss=...)`` and ``pt-dense train`` take.
        loss: A ``torch.nn.Module`` class.
    """
    LOSSES[name] = loss


def make_loss(name: str, **settings) -> nn.Module:
    """The loss registered as ``name``, built with ``settings``."""
    if name not in LOSSES:
        raise InputError(f"unknown loss {name!r}; registered: {sorted(LOSSES)}")
    try:
        return LOSSES[name](**settings)
    except (TypeError, ValueError) as err:
        raise InputError(f"loss {name!r} cannot be built with {settings}: {err}") from err


__all__ = ["LOSSES", "ContrastiveLoss", "DistillLoss", "contrastive_loss", "make_loss", "register_loss"]
