"""LoRA (peft): a low-rank update on chosen linear layers, the base weights frozen."""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from torch import nn

from pt_dense.encoders.adapters.full import Adapter
from pt_dense.errors import InputError
from pt_dense.models import family_for

ALL_LINEAR = "all-linear"


class Lora(Adapter):
    """A LoRA adapter (peft) on ``targets``; defaults follow Lee et al. (2023): r=8, alpha=32, dropout 0.1 on the
    attention query and value projections (``targets=None``: the model family's; for an unknown family, peft's;
    ``"all-linear"``: every linear layer of the encoder, peft's own selection)."""

    name = "lora"
    default_lr = 2e-4
    plain = False
    marker = "adapter_config.json"

    @classmethod
    def from_record(cls, record: dict, config: dict, folder: Path) -> Lora:
        """The adapter of a saved encoder; an older folder keeps its settings in peft's ``adapter_config.json``."""
        return cls(**record) if record else cls.from_folder(folder)

    def __init__(self, r: int = 8, alpha: int = 32, dropout: float = 0.1,
                 targets: tuple[str, ...] | str | None = None):
        if r < 1 or alpha <= 0 or not 0 <= dropout < 1:
            raise InputError(f"LoRA needs r >= 1, alpha > 0 and 0 <= dropout < 1 (got r={r}, alpha={alpha}, "
                             f"dropout={dropout})")
        self.r, self.alpha, self.dropout = r, alpha, dropout
        if isinstance(targets, str) and targets != ALL_LINEAR:
            raise InputError(f"LoRA targets are module names or {ALL_LINEAR!r}, not {targets!r}")
        self.targets = tuple(targets) if targets is not None and targets != ALL_LINEAR else targets

    def config(self) -> dict:
        return {"name": self.name, "r": self.r, "alpha": self.alpha, "dropout": self.dropout,
                "targets": list(self.targets) if isinstance(self.targets, tuple) else self.targets}

    def wrap(self, model: nn.Module) -> nn.Module:
        from peft import LoraConfig, get_peft_model

        family = family_for(model)
        targets = self.targets if self.targets is not None else family.lora_targets
        config = LoraConfig(r=self.r, lora_alpha=self.alpha, lora_dropout=self.dropout,
                            target_modules=list(targets) if isinstance(targets, tuple) else targets)
        try:
            return get_peft_model(copy.deepcopy(model), config)
        except ValueError as err:  # peft: no such modules, or no default targets for this model_type
            linear = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, nn.Linear)})
            raise InputError(f"LoRA cannot be placed on this {family.name} model ({err}); pass targets= from its "
                             f"linear layers: {linear}") from err

    def backbone(self, model: nn.Module) -> nn.Module:
        # a merged model (export_model's) has no LoRA left to remove: it is its own backbone
        return copy.deepcopy(model).unload() if hasattr(model, "unload") else model

    def load(self, backbone: nn.Module, folder: Path) -> nn.Module:
        from peft import PeftModel

        return PeftModel.from_pretrained(backbone, str(folder), is_trainable=True)

    def merged(self, model: nn.Module) -> tuple[nn.Module, Adapter]:
        return model.merge_and_unload(), Adapter()

    def export_model(self, model: nn.Module) -> nn.Module:
        return copy.deepcopy(model).merge_and_unload()

    def update_start(self, model: nn.Module) -> dict[str, torch.Tensor]:
        return {}  # the update is B @ A alone: the base weights never change

    def blend(self, model: nn.Module, start: dict[str, torch.Tensor], keep: float) -> None:
        # scaling B scales the update B @ A exactly (A interpolated too would scale it by keep**2 and more)
        with torch.no_grad():
            for name, param in model.named_parameters():
                if "lora_B" in name:
                    param.mul_(keep)

    @classmethod
    def from_folder(cls, folder: Path) -> Lora:
        """The adapter described by a peft ``adapter_config.json``."""
        from peft import PeftConfig

        config = PeftConfig.from_pretrained(str(folder))
        targets = config.target_modules  # a set of names, or peft's one string ("all-linear")
        return cls(config.r, config.lora_alpha, config.lora_dropout,
                   targets if isinstance(targets, str) else tuple(sorted(targets)))
