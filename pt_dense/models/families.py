"""One :class:`ModelFamily` per architecture, chosen by ``config.model_type``: everything model-specific lives here.

A family says how its encoder is pooled by default, which tokens frame a sequence, where LoRA goes, where the layer
stack is (scaling-law truncation), whether and how deep prompts reach its attention, and how far its positions go.
:class:`~pt_dense.encoders.torch_encoder.TorchEncoder`, the adapters, the ONNX export (its ``config.json``) and
the Java bridge read it; nothing model-specific is written anywhere else. Register more with :func:`register_family`
or, from another package, an entry point in the ``pt_dense.families`` group naming a ModelFamily object.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from pt_dense.errors import InputError, PromptsUnsupportedError
from pt_dense.registry import GROUPS, Registry

Pooling = Literal["mean", "cls", "last"]
POOLINGS: tuple[str, ...] = ("mean", "cls", "last")

#: where the transformer layers are in models of an unknown family, tried in order
_LAYER_PATHS = ("encoder.layer", "transformer.layer", "layers", "encoder.layers", "model.layers")


@dataclass(frozen=True)
class ModelFamily:
    """What pt_dense needs to know about an encoder architecture.

    Args:
        name: The family's name (recorded in an export's ``config.json``).
        model_types: The ``config.model_type`` values it covers.
        lora_targets: The modules LoRA wraps; None takes peft's own table by ``model_type``.
        layers: Dotted path from the Hugging Face model to the ``ModuleList`` of transformer layers; None tries the
            usual paths (``encoder.layer``, ``layers``...).
        pooling: The default pooling (``"mean"``, ``"cls"`` or ``"last"``).
        special_tokens: The tokens that open and close a sequence.
        prompt_argument: The keyword through which the model takes per-layer key/value prefixes (a ``Cache``);
            None means it cannot take deep prompts.
        positions_after_padding: The model numbers real tokens from ``pad_token_id + 1`` (RoBERTa, XLM-R, MPNet),
            which explicit ``position_ids`` must follow.
        embedding_modules: Top-level modules not counted in the non-embedding size N of the scaling laws.
        layer_lists: Per-layer config lists (``layer_types``...) that truncation cuts with the layer stack.
        known: False for the fallback that :func:`family_for` makes up for an unregistered ``model_type``.

    Example:
        A family for a BERT-like architecture that pt_dense does not know::

            register_family(ModelFamily("mybert", ("mybert",), ("query", "value"), "encoder.layer"))
    """

    name: str
    model_types: tuple[str, ...]
    lora_targets: tuple[str, ...] | None  # None: peft's own table by model_type
    layers: str | None  # dotted path to the ModuleList of transformer layers
    pooling: Pooling = "mean"
    special_tokens: tuple[str, str] = ("[CLS]", "[SEP]")  # what opens and closes a sequence
    prompt_argument: str | None = "cache"
    positions_after_padding: bool = False
    embedding_modules: tuple[str, ...] = ("embeddings", "pooler")  # not counted in the non-embedding size N
    layer_lists: tuple[str, ...] = ("layer_types",)  # per-layer config lists that truncation cuts too
    known: bool = field(default=True, compare=False)

    @property
    def deep_prompts(self) -> bool:
        """Whether deep prompts (per-layer key/value prefixes) can reach this family's attention."""
        return self.prompt_argument is not None

    def check_prompts(self) -> None:
        """Refuse deep prompts for a family whose attention they cannot reach (they would train but change nothing).

        Raises:
            PromptsUnsupportedError: The family takes no per-layer key/value cache (``prompt_argument`` is None).
        """
        if not self.deep_prompts:
            raise PromptsUnsupportedError(
                f"{self.name} models take no per-layer key/value cache, so deep prompts would train but change "
                "nothing; use with_lora() or full fine-tuning for this model instead")

    def position_offset(self, config: Any) -> int:
        """The position id of the first real token (0, or ``pad_token_id + 1`` for RoBERTa-like embeddings).

        Args:
            config: The model's Hugging Face config.

        Returns:
            The offset that explicit ``position_ids`` start from.
        """
        return int(getattr(config, "pad_token_id", 0) or 0) + 1 if self.positions_after_padding else 0

    def max_length(self, config: Any) -> int | None:
        """The most tokens (special tokens included) the model's positions allow.

        Args:
            config: The model's Hugging Face config.

        Returns:
            ``max_position_embeddings`` less the position offset, or None when the config does not say.
        """
        positions = getattr(config, "max_position_embeddings", None)
        return None if positions is None else int(positions) - self.position_offset(config)

    def layer_stack(self, model: Any):
        """The ``ModuleList`` of transformer layers of ``model`` (a plain, LoRA-wrapped or prompted model).

        Args:
            model: A Hugging Face model, or a peft or prompted wrapper around one.

        Returns:
            The layer stack (the model's own module, not a copy).

        Raises:
            InputError: No ``ModuleList`` at ``layers`` (or, when that is None, at any of the usual paths).
        """
        owner, attr = self._layer_owner(model)
        return getattr(owner, attr)

    def set_layer_stack(self, model: Any, layers) -> None:
        """Replace the layer stack of ``model`` and cut the per-layer lists in its config to match (truncation).

        Also sets ``config.num_hidden_layers`` to the new depth. ``model`` is changed in place.

        Args:
            model: A Hugging Face model, or a peft or prompted wrapper around one.
            layers: The new ``ModuleList`` of layers.

        Raises:
            InputError: ``model`` has no layer stack where the family looks (see :meth:`layer_stack`).
        """
        owner, attr = self._layer_owner(model)
        setattr(owner, attr, layers)
        config = _inner(model).config
        for name in self.layer_lists:
            values = getattr(config, name, None)
            if isinstance(values, list):
                setattr(config, name, values[: len(layers)])
        config.num_hidden_layers = len(layers)

    def _layer_owner(self, model: Any) -> tuple[Any, str]:
        inner = _inner(model)
        paths = (self.layers,) if self.layers else _LAYER_PATHS
        for path in paths:
            *parents, attr = path.split(".")
            owner = inner
            for part in parents:
                owner = getattr(owner, part, None)
            if owner is not None and _is_module_list(getattr(owner, attr, None)):
                return owner, attr
        raise InputError(f"{type(inner).__name__} ({self.name}) has no layer stack at {' or '.join(paths)}; "
                         "register a ModelFamily with its layers path (pt_dense.models.register_family)")

    def describe(self, config: Any) -> dict:
        """What an export's ``config.json`` records of the family (the Java bridge reads it).

        Args:
            config: The model's Hugging Face config.

        Returns:
            A JSON-ready dict: ``name``, ``model_type``, ``special_tokens``, ``max_length`` and ``position_offset``.
        """
        return {"name": self.name, "model_type": getattr(config, "model_type", self.name),
                "special_tokens": list(self.special_tokens), "max_length": self.max_length(config),
                "position_offset": self.position_offset(config)}


def _inner(model: Any) -> Any:
    """The Hugging Face model inside a prompted (``.base``) or peft (``.base_model.model``) wrapper."""
    if hasattr(model, "prompts") and hasattr(model, "base"):
        model = model.base
    peft_inner = getattr(getattr(model, "base_model", None), "model", None)
    return peft_inner if peft_inner is not None and hasattr(model, "peft_config") else model


def _is_module_list(value: Any) -> bool:
    return type(value).__name__ == "ModuleList"


_BERT_LIKE = {"lora_targets": ("query", "value"), "layers": "encoder.layer"}
_ROBERTA_LIKE = {**_BERT_LIKE, "special_tokens": ("<s>", "</s>"), "positions_after_padding": True}

#: families by name (each covers its ``model_types``); third parties add theirs under ``pt_dense.families``
FAMILIES: Registry[ModelFamily] = Registry("family", GROUPS["family"])


def register_family(family: ModelFamily) -> ModelFamily:
    """Make ``family`` the spec of each of its ``model_types``.

    Args:
        family: The family to register.

    Returns:
        ``family`` itself.

    Raises:
        InputError: Its name is registered already, or another family covers one of its ``model_types``.
    """
    for other in FAMILIES.values():
        taken = set(other.model_types) & set(family.model_types)
        if taken and other.name != family.name:
            raise InputError(f"family {family.name!r} covers model_type {sorted(taken)}, which family "
                             f"{other.name!r} covers already; unregister that one first (FAMILIES.unregister)")
    FAMILIES.register(family.name, family)
    return family


for _family in (
    ModelFamily("bert", ("bert",), **_BERT_LIKE),
    ModelFamily("distilbert", ("distilbert",), ("q_lin", "v_lin"), "transformer.layer", prompt_argument=None),
    ModelFamily("roberta", ("roberta", "camembert"), **_ROBERTA_LIKE),
    ModelFamily("xlm-roberta", ("xlm-roberta",), **_ROBERTA_LIKE),
    ModelFamily("mpnet", ("mpnet",), ("q", "v"), "encoder.layer", special_tokens=("<s>", "</s>"),
                prompt_argument=None, positions_after_padding=True),
    ModelFamily("modernbert", ("modernbert",), ("Wqkv",), "layers", pooling="cls", prompt_argument=None),
):
    FAMILIES.register(_family.name, _family)  # distinct model_types, checked by tests/test_registry.py

_WARNED: set[str] = set()


def family_for(config_or_model: Any) -> ModelFamily:
    """The family of a model or its config, by ``model_type``.

    An unregistered ``model_type`` gets a fallback family (``known=False``): peft's own LoRA targets, a guessed layer
    stack and no deep prompts, with a ``UserWarning`` once per ``model_type``.

    Args:
        config_or_model: A Hugging Face model (anything with a ``config``) or its config.

    Returns:
        The registered family, or the fallback.
    """
    config = getattr(config_or_model, "config", config_or_model)
    model_type = str(getattr(config, "model_type", "") or "unknown")
    for family in FAMILIES.values():
        if model_type in family.model_types:
            return family
    if model_type not in _WARNED:
        _WARNED.add(model_type)
        warnings.warn(f"pt_dense has no ModelFamily for model_type {model_type!r}: LoRA targets come from peft's own "
                      "table, the layer stack is guessed and deep prompts are refused; register one with "
                      "pt_dense.models.register_family", UserWarning, stacklevel=2)
    return replace(_FALLBACK, name=model_type, model_types=(model_type,))


_FALLBACK = ModelFamily("unknown", (), None, None, prompt_argument=None, known=False)
