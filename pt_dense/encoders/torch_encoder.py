"""TorchEncoder: a Hugging Face model + tokenizer + pooling + normalisation that turns texts into vectors (PyTorch).

One model serves both sides; queries and documents differ only by their max length and optional text prefix.
Inference sorts texts by token length, pads per batch, runs under ``torch.inference_mode()`` and restores the input
order, so the cost of padding is paid only once per length bucket. What trains (every weight, LoRA, deep prompts)
is an :class:`~pt_dense.encoders.adapters.Adapter` object; training itself lives a floor above
(:class:`pt_dense.training.TorchEncoder` adds ``fit``).
"""

from __future__ import annotations

import json
import numbers
import operator
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pyterrier as pt
import torch
from transformers import AutoModel, AutoTokenizer

from pt_dense.encoders.adapters import Adapter, Lora, Prompts, adapter_from_config, is_adapter_folder
from pt_dense.encoders.batching import SIDE_NAMES, check_batch_size, check_side, encode_sorted, pad
from pt_dense.encoders.loading import (
    BASE_FOLDER,
    CONFIG_FILE,
    base_record,
    load_base,
    load_pretrained,
    portable_adapter_config,
    read_folder_settings,
)
from pt_dense.encoders.onnx_encoder import OnnxEncoder
from pt_dense.encoders.onnx_export import cached_export
from pt_dense.encoders.precision import ONNX_QUANTIZE, resolve_precision
from pt_dense.encoders.stages import StageFactory, stamped
from pt_dense.errors import InputError, MissingColumnsError
from pt_dense.io.atomic import atomic_dir, recover
from pt_dense.io.hashing import state_hash
from pt_dense.models import POOLINGS, Pooling, family_for, resolve

Side = Literal["query", "doc"]

#: the settings that, with the weights, define the vectors (the fingerprint hashes them)
SETTING_KEYS = ("pooling", "normalize", "query_max_length", "doc_max_length", "query_prefix", "doc_prefix")
#: the max length an encoder takes when none is given (capped at the model's positions)
DEFAULT_MAX_LENGTH = 256
__all__ = ["CONFIG_FILE", "DEFAULT_MAX_LENGTH", "SETTING_KEYS", "TorchEncoder"]

#: how many parameters, buffers and submodules have been registered on any module of this process (torch calls the
#: hooks below): while it stands still, the tensors an encoder listed are still its model's tensors
_REGISTRATIONS = [0]


def _registered(*_) -> None:
    _REGISTRATIONS[0] += 1


torch.nn.modules.module.register_module_parameter_registration_hook(_registered)
torch.nn.modules.module.register_module_buffer_registration_hook(_registered)
torch.nn.modules.module.register_module_module_registration_hook(_registered)
_VERSION = operator.attrgetter("_version")
_UNSET = object()
_DATA_PTR = torch.Tensor.data_ptr


class TorchEncoder(StageFactory, pt.Transformer):
    """A shared-weight bi-encoder on PyTorch; see :meth:`from_pretrained` to build one.

    As a PyTerrier stage it encodes whatever its input holds (``query`` -> ``query_vec``, ``text`` -> ``doc_vec``,
    both -> ``score``). :meth:`with_lora` and :meth:`with_prompts` give a copy whose adapter alone trains.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer,
        *,
        pooling: Pooling = "mean",
        normalize: bool = True,
        query_max_length: int | None = None,
        doc_max_length: int | None = None,
        query_prefix: str = "",
        doc_prefix: str = "",
        batch_size: int = 32,
        name: str | None = None,
        device: str | torch.device | None = None,
        precision: str | None = None,
        autocast: str | None = None,
        adapter: Adapter | None = None,
    ):
        """Wrap ``model`` and ``tokenizer``.

        Every setting is checked here and again whenever it is set in place (``enc.doc_max_length = 128``): a bad
        value raises :class:`~pt_dense.InputError` naming the allowed range. Max lengths run from the
        family's special tokens to the model's positions (:attr:`~pt_dense.TorchEncoder.position_limit`); left out,
        they are ``DEFAULT_MAX_LENGTH`` capped at the positions.

        Args:
            model: A Hugging Face encoder model; its ``config.model_type`` chooses the model family.
            tokenizer: The model's tokenizer (a fast tokenizer where one exists).
            pooling: ``"mean"``, ``"cls"`` or ``"last"`` (the last real token).
            normalize: L2-normalise the vectors, so that a dot product is a cosine.
            query_max_length: Tokens kept of a query, special tokens included.
            doc_max_length: Tokens kept of a document, special tokens included.
            query_prefix: Text put before every query (E5's ``"query: "``, for instance).
            doc_prefix: Text put before every document.
            batch_size: Texts encoded per batch.
            name: The name the encoder reports (default: the model's ``_name_or_path``).
            device: A torch device or its name (default: CUDA when available, else the CPU).
            precision: ``"auto"`` (ONNX Runtime int8 on a CPU, bf16 on a GPU), ``"fp32"``, ``"bf16"``, ``"int8"``...
            autocast: The older spelling of ``precision="bf16"``.
            adapter: What trains (default: every weight).

        Raises:
            InputError: A setting out of its range.
        """
        if autocast not in (None, "bf16"):
            raise InputError(f"autocast must be None or 'bf16', not {autocast!r}")
        if autocast:  # the older spelling of precision="bf16"
            precision = "bf16"
        self._fingerprint: tuple[tuple, str] | None = None  # (the weights' versions it was computed at, the hash)
        self._runtime = None  # ((fingerprint, precision), its OnnxEncoder) for an ONNX precision, made on first use
        self._watched: tuple | None = None  # (model, registrations, its tensors) whose versions tell weight changes
        self.family = family_for(model)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        self.pooling: Pooling = pooling
        self.normalize = normalize
        default_length = min(DEFAULT_MAX_LENGTH, self.position_limit or DEFAULT_MAX_LENGTH)
        self.query_max_length = default_length if query_max_length is None else query_max_length
        self.doc_max_length = default_length if doc_max_length is None else doc_max_length
        self.query_prefix = query_prefix
        self.doc_prefix = doc_prefix
        self.batch_size = batch_size
        #: what was asked for ("auto" by default) and what encode() runs in here (see encoders/precision.py)
        self.requested_precision = precision
        self.precision = precision
        self.name = name or getattr(model.config, "_name_or_path", "") or type(model).__name__
        self.adapter = adapter or Adapter()
        self._base_source: str | None = None

    # ------------------------------------------------------------------ settings, checked whenever they are set
    def __setattr__(self, name: str, value) -> None:
        check = _CHECKS.get(name)
        if check is not None:
            value = check(self, name, value)
        if (name in SETTING_KEYS or name in ("model", "adapter")) and self.__dict__.get(name, _UNSET) != value:
            self.__dict__["_fingerprint"] = None  # the vectors change: so does the fingerprint (hashed again)
        object.__setattr__(self, name, value)

    @property
    def position_limit(self) -> int | None:
        """The most tokens (special tokens included) the model's positions allow, ``max_position_embeddings`` less
        the family's offset (RoBERTa's padding offset, for instance); None if the model does not say."""
        return self.family.max_length(self.model.config)

    def _check_length(self, name: str, value) -> int:
        low, high = len(self.family.special_tokens), self.position_limit
        if not isinstance(value, numbers.Integral) or isinstance(value, bool) or not (
                low <= value <= (high or value)):
            allowed = f"from {low} to {high}" if high else f"of at least {low}"
            why = f"room for {' and '.join(self.family.special_tokens)}"
            if high:
                config = self.model.config
                offset = self.family.position_offset(config)
                why += f"; the model has {config.max_position_embeddings} positions" + (
                    f", less {offset} for its padding offset" if offset else "")
            raise InputError(f"{name} must be a whole number of tokens {allowed} ({why}), not {value!r}")
        return int(value)

    def _check_batch_size(self, name: str, value) -> int:
        return check_batch_size(value, name)

    def _check_pooling(self, name: str, value) -> str:
        if not isinstance(value, str) or value not in POOLINGS:
            raise InputError(f"pooling must be one of {', '.join(POOLINGS)}, not {value!r}")
        return value

    def _check_normalize(self, name: str, value) -> bool:
        if not isinstance(value, (bool, np.bool_)):
            raise InputError(f"normalize must be True or False, not {value!r}")
        return bool(value)

    def _check_prefix(self, name: str, value) -> str:
        if not isinstance(value, str):
            raise InputError(f"{name} must be a string ('' for none), not {value!r}")
        return value

    def _check_precision(self, name: str, value) -> str:
        """The precision ``value`` stands for on this encoder's device (see encoders/precision.py)."""
        if value is not None and not isinstance(value, str):
            raise InputError(f"precision must be a string such as 'fp32' or 'int8', not {value!r}")
        return resolve_precision(value, self.device)

    def _check_device(self, name: str, value) -> torch.device:
        """A device, and the model moved there (once the encoder has a model)."""
        try:
            device = torch.device(value)
        except (RuntimeError, TypeError) as err:
            raise InputError(f"device must be a torch device or its name ('cpu', 'cuda', 'cuda:1'), not {value!r}"
                             ) from err
        if device.type != "cpu" and self.__dict__.get("precision") in ONNX_QUANTIZE:
            raise InputError(f"precision {self.precision!r} runs ONNX Runtime on the CPU; set precision='fp32' or "
                             f"'bf16' before moving the encoder to {device}")
        if "model" in self.__dict__:
            try:
                self.model.to(device)
            except Exception as err:  # torch says why in its own words (e.g. "not compiled with CUDA")
                raise InputError(f"device {value!r} cannot take the model here ({err}); use 'cpu' or an available "
                                 "GPU") from err
        return device

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_pretrained(cls, name_or_path: str = "minilm", **settings) -> TorchEncoder:
        """Load a short name (``"minilm"``, ``"mpnet"``), a well-known hub id (``"intfloat/e5-small-v2"``, online), a
        local HF folder, or a folder written by :meth:`save`.

        Settings come, weakest first, from the model's family (pooling), a sentence-transformers folder
        (``1_Pooling``, ``modules.json``, ``sentence_bert_config.json``) or one saved by :meth:`save`, the preset of
        a known name (prefixes, pooling, max length), and keyword ``settings``.

        Args:
            name_or_path: A short name, a hub id, or a folder.
            **settings: Settings of :class:`TorchEncoder` (``pooling``, ``doc_max_length``, ``precision``...).

        Returns:
            The encoder (a :class:`~pt_dense.BiEncoder` when called on it).

        Raises:
            UnknownModelError: ``name_or_path`` is neither a short name, a folder nor a reachable hub id.

        Example::

            enc = ptd.BiEncoder.from_pretrained("minilm", doc_max_length=128)
        """
        folder = recover(Path(str(name_or_path)).expanduser())  # a save killed mid-replace leaves the old folder
        if is_adapter_folder(folder):  # a LoRA adapter or deep prompts saved by save(): the base, then its adapter
            saved = read_folder_settings(folder)
            backbone, portable = load_base(folder, saved.get("base"), AutoModel)
            adapter = adapter_from_config(saved, folder)
            defaults = {k: v for k, v in saved.items() if k in SETTING_KEYS} | {"name": saved.get("name", str(folder))}
            model = adapter.load(backbone, folder)
            encoder = cls(model, load_pretrained(AutoTokenizer, str(folder), "tokenizer"), adapter=adapter,
                          **(_capped(defaults, model) | settings))
            encoder._base_source = portable
            return encoder
        resolved = resolve(name_or_path)
        model = load_pretrained(AutoModel, resolved.source)
        tokenizer = load_pretrained(AutoTokenizer, resolved.source, "tokenizer")
        saved = read_folder_settings(Path(resolved.source)) if Path(resolved.source).is_dir() else {}
        defaults = {"pooling": family_for(model).pooling, "name": str(name_or_path)}
        defaults |= {k: v for k, v in saved.items() if k in SETTING_KEYS or k == "name"}
        defaults |= resolved.preset.settings() if resolved.preset else {}
        encoder = cls(model, tokenizer, **(_capped(defaults, model) | settings))
        encoder._base_source = resolved.portable
        return encoder

    def settings(self) -> dict:
        """The settings that, with the weights, define the vectors this encoder produces.

        Returns:
            Setting name -> value (pooling, normalisation, max lengths, prefixes...).
        """
        return {key: getattr(self, key) for key in SETTING_KEYS}

    def descriptor(self) -> dict:
        """What an index records about the encoder that made its vectors.

        Returns:
            A JSON-ready dict: name, fingerprint, settings, adapter.
        """
        return {"fingerprint": self.fingerprint, "name": self.name, "dim": self.dim, "settings": self.settings(),
                "precision": self.precision}

    def save(self, path: str | Path) -> Path:
        """Write model, tokenizer and settings to a folder that :meth:`from_pretrained` reads back.

        Args:
            path: The folder to write.

        Returns:
            The folder written.
        """
        with atomic_dir(path, overwrite=True) as tmp:
            self.tokenizer.save_pretrained(tmp)
            config = {**self.settings(), "name": self.name, "mode": self.mode, "adapter": self.adapter.config()}
            config |= self.adapter.save(self.model, tmp)  # a LoRA or prompted model writes only its adapter
            if not self.adapter.plain:  # the base by portable name and weight hash, or stored in base/
                backbone = self.backbone()
                config["base"] = base_record(self.base_source, backbone)
                if config["base"] is None:
                    backbone.save_pretrained(tmp / BASE_FOLDER)
                portable_adapter_config(tmp, self.base_source)
            (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2))
        return Path(path)

    # ------------------------------------------------------------------ adapters
    @property
    def mode(self) -> str:
        """The adapter's name, ``"lora"``, ``"prompts"`` or ``"full"`` (every weight trains)."""
        return self.adapter.name

    def backbone(self) -> torch.nn.Module:
        """The base model without its adapter.

        Returns:
            LoRA removed from a copy of the model; the frozen model itself under deep prompts.
        """
        return self.adapter.backbone(self.model)

    @property
    def base_source(self) -> str | None:
        """The portable name (short name or hub id) the base weights load from again; None if known by path only."""
        return self._base_source

    def with_adapter(self, adapter: Adapter) -> TorchEncoder:
        """A new encoder around a copy of the model carrying ``adapter`` (its base weights frozen).

        Args:
            adapter: The adapter to wrap the model with.

        Returns:
            The new encoder; this one is unchanged.

        Raises:
            InputError: This encoder already carries an adapter.
        """
        if not self.adapter.plain:
            raise InputError(f"this encoder already has an adapter ({self.mode}); start from a plain encoder "
                             "(or merge() a LoRA adapter first)")
        return self.with_model(adapter.wrap(self.model), adapter)

    def with_lora(self, r: int = 8, alpha: int = 32, dropout: float = 0.1,
                  targets: tuple[str, ...] | None = None) -> TorchEncoder:
        """A new encoder whose base weights are frozen and whose ``targets`` carry a LoRA adapter (peft).

        Defaults follow Lee et al. (2023): r=8, alpha=32, dropout 0.1 on the attention query and value projections.

        Args:
            r: The rank of the LoRA update.
            alpha: The LoRA scaling numerator (the update is scaled by ``alpha / r``).
            dropout: Dropout on the LoRA input.
            targets: Module names to adapt; None takes the model family's (``query``/``value`` for BERT,
                ``q``/``v`` for MPNet).

        Returns:
            The new encoder; this one is unchanged.

        Raises:
            InputError: This encoder already carries an adapter.

        Example::

            enc = ptd.BiEncoder.from_pretrained("minilm").with_lora(r=8, alpha=32)
        """
        return self.with_adapter(Lora(r, alpha, dropout, targets))

    def with_prompts(self, length: int = 32, reparam: bool = False) -> TorchEncoder:
        """A new encoder whose base weights are frozen and which trains ``length`` key/value prompts in every layer
        (deep prompt tuning, P-tuning v2 / DPTDR; see ``pt_dense.encoders.prompts``). A family that cannot take
        them (DistilBERT, MPNet, ModernBERT) raises ``PromptsUnsupportedError`` (an :class:`~pt_dense.InputError`).

        Args:
            length: Prompt vectors per layer.
            reparam: Produce the prompts through a small MLP while training (P-tuning v2's reparameterisation).

        Returns:
            The new encoder; this one is unchanged.

        Raises:
            InputError: The family cannot take prompts, or this encoder already carries an adapter.
        """
        self.family.check_prompts()
        return self.with_adapter(Prompts(length, reparam))

    def with_model(self, model: torch.nn.Module, adapter: Adapter | None = None, **changes) -> TorchEncoder:
        """The same encoder (settings, tokenizer, base source) around another model.

        Args:
            model: The model to wrap.
            adapter: The adapter ``model`` carries (None: every weight trains).
            **changes: Settings to override (``name``, ``doc_max_length``...).

        Returns:
            The new encoder.
        """
        settings = {**self.settings(), "batch_size": self.batch_size, "name": self.name, "device": self.device,
                    "precision": self.requested_precision} | changes
        clone = type(self)(model, self.tokenizer, adapter=adapter or Adapter(), **settings)
        clone._base_source = self.base_source
        return clone

    def merge(self) -> TorchEncoder:
        """Fold a LoRA adapter into the weights (in place); the vectors stay the same.

        Returns:
            This encoder, now a plain one.
        """
        merged, adapter = self.adapter.merged(self.model)
        if adapter is not self.adapter:
            self.model, self.adapter = merged, adapter
            self.weights_changed()
        return self

    def trainable_parameters(self) -> tuple[int, int]:
        """Count the parameters.

        Returns:
            ``(trainable, total)`` parameter counts.
        """
        params = list(self.model.parameters())
        return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)

    def save_trainable(self, path: Path) -> None:
        """Save the trainable weights alone (the adapter's, or all under full fine-tuning).

        Args:
            path: The file to write (torch's format).
        """
        torch.save({k: v for k, v in self.model.state_dict().items() if k in self._trainable_names()}, path)

    def load_trainable(self, path: Path) -> None:
        """Load weights written by :meth:`save_trainable` into this encoder's model.

        Args:
            path: The file to read.
        """
        self.model.load_state_dict(torch.load(path, weights_only=True), strict=False)
        self.weights_changed()

    def _trainable_names(self) -> set[str]:
        names = {n for n, p in self.model.named_parameters() if p.requires_grad}
        return names | {n.replace(".default", "") for n in names}

    # ------------------------------------------------------------------ as a PyTerrier stage
    def transform(self, inp: pd.DataFrame) -> pd.DataFrame:
        """``query`` -> ``query_vec``; ``text`` (no query) -> ``doc_vec``; both -> ``score`` (re-ranking)."""
        columns = set(inp.columns)
        if {"query", "text"} <= columns:
            return self.scorer().transform(inp)
        if "query" in columns:
            return self.query_encoder().transform(inp)
        if "text" in columns:
            return self.doc_encoder().transform(inp)
        raise MissingColumnsError(f"{type(self).__name__} needs a 'query' or a 'text' column; the input has "
                                  f"{sorted(columns)}")

    @property
    def dim(self) -> int:
        """The dimension of the vectors."""
        return int(self.model.config.hidden_size)

    @property
    def fingerprint(self) -> str:
        """A stable hash of the weights and the settings; an index records it and refuses other encoders.

        It follows every change: a setting set in place, and weights changed in place (an optimiser step,
        ``load_state_dict``, ``p.add_(...)`` under ``torch.no_grad()``, a replaced parameter), which torch records
        in each tensor's version counter; reading it costs one look at those counters (about 20 microseconds for
        MiniLM's 100 tensors) and a hash only when they moved. Writes through ``param.data`` or a numpy view
        escape the counters: call :meth:`weights_changed` after those.
        """
        key = self._weights_key()
        if self._fingerprint is None or self._fingerprint[0] != key:
            settings = json.dumps(self.settings(), sort_keys=True)
            self.__dict__["_fingerprint"] = key, state_hash(self.model.state_dict(), prefix=settings.encode())
        return self._fingerprint[1]

    def _weights_key(self) -> tuple:
        """The version counters and storage addresses of the model's parameters and buffers: it changes whenever
        a weight changes in place (the tensors are listed again when any module registers a new one)."""
        watched = self._watched
        if watched is None or watched[0] is not self.model or watched[1] != _REGISTRATIONS[0]:
            watched = self.model, _REGISTRATIONS[0], [*self.model.parameters(), *self.model.buffers()]
            self.__dict__["_watched"] = watched
        tensors = watched[2]
        return tuple(map(_VERSION, tensors)), tuple(map(_DATA_PTR, tensors))

    def weights_changed(self) -> None:
        """Forget the cached fingerprint and ONNX runtime. In-place changes are followed without it (see
        :attr:`fingerprint`); call it after writing weights through ``param.data`` or a numpy view."""
        self.__dict__["_fingerprint"] = None
        self.__dict__["_runtime"] = None

    @property
    def autocast(self) -> str | None:
        """``"bf16"`` when encoding runs under bfloat16 autocast (the older spelling of ``precision``)."""
        return "bf16" if self.precision == "bf16" else None

    def exact(self) -> TorchEncoder:
        """This encoder in fp32 PyTorch, sharing its model.

        Returns:
            The reference the other precisions are measured against, and what an ONNX export traces.
        """
        if self.precision == "fp32":
            return self
        reference = self.with_model(self.model, self.adapter, precision="fp32")
        reference._fingerprint = self._fingerprint
        return reference

    def runtime(self):
        """The ONNX encoder that :meth:`encode` runs for an ONNX precision.

        Returns:
            An :class:`~pt_dense.OnnxEncoder` (exported into the cache once per weights and settings), or None for
            the PyTorch precisions.
        """
        return self._runtime_for(self.fingerprint) if self.precision in ONNX_QUANTIZE else None

    def _runtime_for(self, fingerprint: str):
        key = fingerprint, self.precision  # the weights and settings it was exported with, and quantised to
        if self._runtime is None or self._runtime[0] != key:
            folder = cached_export(self.exact(), ONNX_QUANTIZE[self.precision])
            self.__dict__["_runtime"] = key, OnnxEncoder(folder, batch_size=self.batch_size)
        return self._runtime[1]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, pooling={self.pooling!r}, dim={self.dim})"

    # ------------------------------------------------------------------ encoding
    def tokenize(self, texts: Sequence[str], side: Side) -> list[list[int]]:
        """Tokenise texts, prefix included, without padding.

        Args:
            texts: The texts.
            side: ``"query"`` or ``"doc"`` (its prefix and max length apply).

        Returns:
            Token ids of each text, with special tokens, truncated to the side's max length.
        """
        prefix = self.query_prefix if side == "query" else self.doc_prefix
        max_length = self.query_max_length if side == "query" else self.doc_max_length
        texts = [prefix + t for t in texts] if prefix else list(texts)
        return self.tokenizer(texts, truncation=True, max_length=max_length, add_special_tokens=True)["input_ids"]

    def collate(self, ids: Sequence[Sequence[int]]) -> dict[str, torch.Tensor]:
        """Pad token ids into a batch on the encoder's device.

        Args:
            ids: Token ids of each text (from :meth:`tokenize`).

        Returns:
            ``input_ids`` and ``attention_mask`` tensors.
        """
        input_ids, mask = pad(ids, self.tokenizer.pad_token_id or 0)
        return {
            "input_ids": torch.from_numpy(input_ids).to(self.device),
            "attention_mask": torch.from_numpy(mask).to(self.device),
        }

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Pooled (and normalised) embeddings of a collated batch, with gradients when enabled.

        Args:
            batch: The output of :meth:`collate`.

        Returns:
            One embedding a row.
        """
        hidden = self.model(**batch).last_hidden_state
        return self.pool(hidden, batch["attention_mask"])

    def pool(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Pool token states into one vector a text (mean, CLS or last token), normalised when set.

        Args:
            hidden: The model's last hidden states, ``(batch, tokens, dim)``.
            mask: The attention mask, ``(batch, tokens)``.

        Returns:
            ``(batch, dim)`` embeddings.
        """
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        elif self.pooling == "last":  # the last real token (right padding)
            pooled = hidden[torch.arange(hidden.shape[0], device=hidden.device), mask.sum(1) - 1]
        else:
            weights = mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, dim=-1) if self.normalize else pooled

    def embed(self, texts: Sequence[str], side: Side) -> torch.Tensor:
        """Embeddings of a few texts with gradients (for training): no sorting, one batch.

        Args:
            texts: The texts.
            side: ``"query"`` or ``"doc"``.

        Returns:
            One embedding a row, in input order.
        """
        return self.forward(self.collate(self.tokenize(texts, side)))

    def encode(
        self,
        texts: Sequence[str],
        side: Side = "doc",
        *,
        batch_size: int | None = None,
        progress: bool | None = None,
    ) -> np.ndarray:
        """float32 vectors, one row per text, in input order, computed in the encoder's ``precision``.

        Texts are sorted by token length so each batch is padded only to its own longest text. The matrix (and each
        of its rows: ``list(enc.encode(...))`` makes a ``doc_vec`` column) is an
        :class:`~pt_dense.encoders.stages.EncodedVector` carrying this encoder's :attr:`fingerprint`, which an
        index checks.

        Args:
            texts: The texts.
            side: ``"query"`` or ``"doc"`` (its prefix and max length apply).
            batch_size: Texts a batch (default: the encoder's ``batch_size``).
            progress: Show a progress bar (default: on long work only).

        Returns:
            A ``(len(texts), dim)`` float32 matrix.

        Raises:
            InputError: ``side`` is neither ``"query"`` nor ``"doc"``, or ``batch_size`` is not a whole number.

        Example::

            vecs = enc.encode(["a text", "another"], "doc")
        """
        check_side(side)
        fingerprint = self.fingerprint
        if len(texts) == 0:
            return stamped(np.zeros((0, self.dim), dtype=np.float32), fingerprint)
        return stamped(self._encode(texts, side, batch_size, progress, fingerprint), fingerprint)

    def _encode(self, texts: Sequence[str], side: Side, batch_size: int | None, progress: bool | None,
                fingerprint: str) -> np.ndarray:
        if self.precision in ONNX_QUANTIZE:
            return self._runtime_for(fingerprint).encode(texts, side, batch_size=batch_size or self.batch_size,
                                                         progress=progress)

        def run(batch: list[list[int]]) -> np.ndarray:
            return self.forward(self.collate(batch)).float().cpu().numpy()

        was_training = self.model.training
        self.model.eval()
        try:
            bf16 = self.precision == "bf16"
            with torch.inference_mode(), torch.autocast(self.device.type, torch.bfloat16, enabled=bf16):
                return encode_sorted(self.tokenize(texts, side), run, self.dim, batch_size or self.batch_size,
                                     progress=progress, desc=f"encoding {SIDE_NAMES[side]}")
        finally:
            self.model.train(was_training)

    def encode_queries(self, texts: Sequence[str], **kwargs) -> np.ndarray:
        """:meth:`encode` on the query side.

        Args:
            texts: The queries.
            **kwargs: ``batch_size`` and ``progress``, as for :meth:`encode`.

        Returns:
            A ``(len(texts), dim)`` float32 matrix.
        """
        return self.encode(texts, "query", **kwargs)

    def encode_docs(self, texts: Sequence[str], **kwargs) -> np.ndarray:
        """:meth:`encode` on the document side.

        Args:
            texts: The documents' texts.
            **kwargs: ``batch_size`` and ``progress``, as for :meth:`encode`.

        Returns:
            A ``(len(texts), dim)`` float32 matrix.
        """
        return self.encode(texts, "doc", **kwargs)

    # ------------------------------------------------------------------ export
    def export_module(self) -> torch.nn.Module:
        """A plain module for ONNX export, adapters merged.

        Returns:
            A module ``(input_ids, attention_mask) -> last_hidden_state``.
        """
        model = self.adapter.export_model(self.model).to("cpu").eval()  # LoRA merged; prompts become constants
        backbone = self.adapter.backbone(model)
        if hasattr(backbone, "set_attn_implementation"):
            backbone.set_attn_implementation("eager")  # the legacy exporter traces eager attention exactly
        return _HiddenStates(model)


class _HiddenStates(torch.nn.Module):
    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


def _capped(defaults: dict, model: torch.nn.Module) -> dict:
    """``defaults`` (a folder's or a preset's settings, not the caller's) with their max lengths capped at the
    model's positions: only a length the caller asks for is refused past them."""
    limit = family_for(model).max_length(model.config)
    return {k: min(v, limit) if limit and k.endswith("_max_length") and isinstance(v, int) else v
            for k, v in defaults.items()}


#: the settings checked whenever they are set (construction included): name -> TorchEncoder method
_CHECKS = {
    "query_max_length": TorchEncoder._check_length,
    "doc_max_length": TorchEncoder._check_length,
    "batch_size": TorchEncoder._check_batch_size,
    "pooling": TorchEncoder._check_pooling,
    "normalize": TorchEncoder._check_normalize,
    "query_prefix": TorchEncoder._check_prefix,
    "doc_prefix": TorchEncoder._check_prefix,
    "precision": TorchEncoder._check_precision,
    "device": TorchEncoder._check_device,
}
