"""Deep prompts (P-tuning v2 / DPTDR): trainable key/value prefixes in every layer (:mod:`..prompts`)."""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from torch import nn

from pt_dense.encoders.adapters.full import Adapter
from pt_dense.encoders.prompts import DeepPrompts, PromptedModel, prompt_state
from pt_dense.errors import InputError
from pt_dense.models import family_for

PROMPTS_FILE = "prompts.pt"
NO_PROMPT_BLEND = ("deep prompts cannot be blended with their starting point (no prompts is not a point on their "
                   "path): train them with interpolate=1.0")


class Prompts(Adapter):
    """Deep prompt tuning (P-tuning v2 / DPTDR): ``length`` trainable key/value prompts in every layer."""

    name = "prompts"
    default_lr = 7e-3
    plain = False
    marker = PROMPTS_FILE

    @classmethod
    def from_record(cls, record: dict, config: dict, folder: Path) -> Prompts:
        """The adapter of a saved encoder; an older folder keeps its settings under ``prompts``."""
        if record:
            return cls(**record)
        prompts = config.get("prompts") or {}
        return cls(prompts.get("length", 32), prompts.get("reparam", False))

    def __init__(self, length: int = 32, reparam: bool = False):
        if length < 1:
            raise InputError(f"prompt length must be at least 1, not {length}")
        self.length, self.reparam = length, reparam

    def config(self) -> dict:
        return {"name": self.name, "length": self.length, "reparam": self.reparam}

    def wrap(self, model: nn.Module) -> nn.Module:
        family_for(model).check_prompts()
        base = copy.deepcopy(model)
        return PromptedModel(base, DeepPrompts.for_model(base.config, self.length, self.reparam))

    def backbone(self, model: nn.Module) -> nn.Module:
        return model.base

    def save(self, model: nn.Module, folder: Path) -> dict:
        torch.save(prompt_state(model), folder / PROMPTS_FILE)
        return {"prompts": model.prompts.config()}

    def update_start(self, model: nn.Module) -> dict[str, torch.Tensor]:
        raise InputError(NO_PROMPT_BLEND)

    def blend(self, model: nn.Module, start: dict[str, torch.Tensor], keep: float) -> None:
        raise InputError(NO_PROMPT_BLEND)

    def load(self, backbone: nn.Module, folder: Path) -> nn.Module:
        family_for(backbone).check_prompts()
        model = PromptedModel(backbone, DeepPrompts.for_model(backbone.config, self.length, self.reparam))
        model.prompts.load_state_dict(torch.load(folder / PROMPTS_FILE, weights_only=True))
        return model
