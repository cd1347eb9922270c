"""Full fine-tuning, the base of every adapter kind: every weight trains and the model is used as it is.

An adapter object wraps a plain model for training and knows how the wrapped model is saved, loaded, unwrapped to
its backbone, merged and exported, so the encoder never branches on what kind of adapter it carries (the contract
is :class:`pt_dense.registry.Adapter`).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import ClassVar

import torch
from torch import nn


class Adapter:
    """Every weight trains (full fine-tuning): the model is used as it is."""

    name: ClassVar[str] = "full"
    #: learning rate that suits this adapter when the user gives none (Lee et al. 2023; DPTDR for prompts)
    default_lr: ClassVar[float] = 2e-5
    #: the model carries nothing but its own weights (so an adapter may be added)
    plain: ClassVar[bool] = True

    #: a file that only a folder saved with this adapter holds (None: none)
    marker: ClassVar[str | None] = None

    @classmethod
    def from_record(cls, record: dict, config: dict, folder: Path) -> Adapter:
        """The adapter a saved encoder's ``adapter`` record describes (``name`` taken out), its whole ``config`` and
        its ``folder`` at hand for older layouts."""
        return cls(**record)

    def config(self) -> dict:
        """Settings that rebuild this adapter (saved beside the weights)."""
        return {"name": self.name}

    def wrap(self, model: nn.Module) -> nn.Module:
        """A copy of the plain ``model`` carrying this adapter, its base weights frozen."""
        return model

    def backbone(self, model: nn.Module) -> nn.Module:
        """The base model of a wrapped ``model``, without the adapter."""
        return model

    def save(self, model: nn.Module, folder: Path) -> dict:
        """Write what must be kept of ``model`` (the adapter alone where there is one); returns config additions."""
        model.save_pretrained(folder)
        return {}

    def load(self, backbone: nn.Module, folder: Path) -> nn.Module:
        """The base ``backbone`` with the adapter saved in ``folder``."""
        return backbone

    def merged(self, model: nn.Module) -> tuple[nn.Module, Adapter]:
        """(a model with the adapter folded into its weights, the adapter it then carries)."""
        return model, self

    def export_model(self, model: nn.Module) -> nn.Module:
        """A copy of ``model`` with the adapter turned into plain weights or constants (for ONNX)."""
        return copy.deepcopy(model)

    def update_start(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """What :meth:`blend` needs of ``model`` before training: a copy of its trainable weights."""
        return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}

    def blend(self, model: nn.Module, start: dict[str, torch.Tensor], keep: float) -> None:
        """Keep the fraction ``keep`` of what training changed, in place: the weights move to
        ``start + keep * (trained - start)``. Weight-space ensembling of the starting and the trained model
        (WiSE-FT, Wortsman et al. 2022) keeps most of the in-domain gain and loses less out of domain."""
        with torch.no_grad():
            for name, param in model.named_parameters():
                if name in start:
                    param.copy_(start[name] + keep * (param - start[name]))

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if k != "name")
        return f"{type(self).__name__}({settings})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.config() == other.config()

    def __hash__(self) -> int:
        return hash(repr(self))
