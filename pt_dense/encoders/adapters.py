"""What trains in an encoder: every weight, a LoRA adapter (peft), or deep prompts (see :mod:`.prompts`).

An adapter object wraps a plain model for training and knows how the wrapped model is saved, loaded, unwrapped to
its backbone, merged and exported, so the encoder never branches on what kind of adapter it carries. New kinds
register in :data:`ADAPTERS` by name.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import ClassVar

import torch
from torch import nn

from pt_dense.encoders.prompts import DeepPrompts, PromptedModel, prompt_state
from pt_dense.errors import InputError
from pt_dense.models import family_for

PROMPTS_FILE = "prompts.pt"
NO_PROMPT_BLEND = ("deep prompts cannot be blended with their starting point (no prompts is not a point on their "
                   "path): train them with interpolate=1.0")


class Adapter:
    """Every weight trains (full fine-tuning): the model is used as it is."""

    name: ClassVar[str] = "full"
    #: learning rate that suits this adapter when the user gives none (Lee et al. 2023; DPTDR for prompts)
    default_lr: ClassVar[float] = 2e-5
    #: the model carries nothing but its own weights (so an adapter may be added)
    plain: ClassVar[bool] = True

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


ALL_LINEAR = "all-linear"


class Lora(Adapter):
    """A LoRA adapter (peft) on ``targets``; defaults follow Lee et al. (2023): r=8, alpha=32, dropout 0.1 on the
    attention query and value projections (``targets=None``: the model family's; for an unknown family, peft's;
    ``"all-linear"``: every linear layer of the encoder, peft's own selection)."""

    name = "lora"
    default_lr = 2e-4
    plain = False

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


class Prompts(Adapter):
    """Deep prompt tuning (P-tuning v2 / DPTDR): ``length`` trainable key/value prompts in every layer."""

    name = "prompts"
    default_lr = 7e-3
    plain = False

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


#: adapter kinds by name (what a saved encoder's ``adapter`` record names)
ADAPTERS: dict[str, type[Adapter]] = {"full": Adapter, "lora": Lora, "prompts": Prompts}


def adapter_from_config(config: dict, folder: Path) -> Adapter:
    """The adapter a saved encoder's settings describe (older folders name it ``mode`` and keep prompts apart)."""
    record = dict(config.get("adapter") or {"name": config.get("mode", "full")})
    name = record.pop("name")
    if name not in ADAPTERS:
        raise InputError(f"{folder} names an unknown adapter {name!r}; known: {sorted(ADAPTERS)}")
    if name == "lora" and not record:
        return Lora.from_folder(folder)
    if name == "prompts" and not record:
        prompts = config.get("prompts") or {}
        return Prompts(prompts.get("length", 32), prompts.get("reparam", False))
    return ADAPTERS[name](**record)


def is_adapter_folder(path: str | Path) -> bool:
    """A folder saved from an encoder with an adapter: the adapter alone, its base weights stored apart."""
    return (Path(path) / "adapter_config.json").exists() or (Path(path) / PROMPTS_FILE).exists()
