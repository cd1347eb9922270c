"""Training losses, one per module, registered here by name (``fit(loss=...)`` and ``pt-dense train`` read it).

A loss is an ``nn.Module`` built from its settings; it is called with the batch's query embeddings (B x d), its
document embeddings (B*G x d: each query's group is [positive, hard negatives...]), the documents' ids and each
query's judged positives (to mask them out of its negatives), and returns a scalar (see
:class:`pt_dense.registry.Loss`). A loss with ``needs_teacher`` also gets ``teacher``: the negative source's scores
of each group (B x G). Another package adds a loss with an entry point in the ``pt_dense.losses`` group.

The table names its built-in losses by reference, so that reading it (the CLI's help) imports no torch.
"""

from __future__ import annotations

from pt_dense.errors import InputError
from pt_dense.io.lazy import lazy_exports
from pt_dense.registry import GROUPS, Registry

#: loss classes by name
LOSSES: Registry = Registry("loss", GROUPS["loss"])
LOSSES.register("contrastive", "pt_dense.training.losses.contrastive:ContrastiveLoss")
LOSSES.register("distill", "pt_dense.training.losses.distill:DistillLoss")


def register_loss(name: str, loss: type) -> None:
    """Make ``fit(loss=name)`` train with ``loss(**settings)``.

    The trainer builds it as ``loss(temperature=..., **loss_settings)`` and calls it as ``loss_fn(queries, docs,
    doc_ids=..., positives=...)`` (the arguments of ``ContrastiveLoss.forward``), plus ``teacher=`` scores when the
    class sets ``needs_teacher = True``.

    Args:
        name: The name ``fit(loss=...)`` and ``pt-dense train`` take.
        loss: A ``torch.nn.Module`` class.

    Raises:
        InputError: ``name`` is registered already.
    """
    LOSSES.register(name, loss)


def make_loss(name: str, **settings):
    """The loss registered as ``name``, built with ``settings``.

    Args:
        name: A registered loss.
        **settings: The loss's constructor arguments.

    Returns:
        The loss module.

    Raises:
        InputError: An unknown name, or settings the loss does not take.
    """
    loss = LOSSES[name]
    try:
        return loss(**settings)
    except (TypeError, ValueError) as err:
        raise InputError(f"loss {name!r} cannot be built with {settings}: {err}") from err


_EXPORTS = {"ContrastiveLoss": ".contrastive", "contrastive_loss": ".contrastive", "DistillLoss": ".distill"}
__getattr__, _dir = lazy_exports(__name__, _EXPORTS)
__all__ = ["LOSSES", "ContrastiveLoss", "DistillLoss", "contrastive_loss", "make_loss", "register_loss"]
