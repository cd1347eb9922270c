"""BiEncoder: a Hugging Face model + tokenizer + pooling + normalisation that turns texts into vectors.

One model serves both sides; queries and documents differ only by their max length and optional text prefix.
Inference sorts texts by token length, pads per batch, runs under ``torch.inference_mode()`` and restores the input
order, so the cost of padding is paid only once per length bucket.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pyterrier as pt
import torch

from pt_dense._hashing import state_hash
from pt_dense.encoders.batching import SIDE_NAMES, check_side, encode_sorted, pad
from pt_dense.encoders.stages import StageFactory
from pt_dense.errors import InputError
from pt_dense.models import resolve_model

Pooling = Literal["mean", "cls"]
Side = Literal["query", "doc"]

CONFIG_FILE = "pt_dense_encoder.json"
PROMPTS_FILE = "prompts.pt"


class BiEncoder(StageFactory, pt.Estimator):
    """A shared-weight bi-encoder; see :meth:`from_pretrained` to build one.

    As a PyTerrier stage it encodes whatever its input holds (``query`` -> ``query_vec``, ``text`` -> ``doc_vec``,
    both -> ``score``); as an Estimator, :meth:`fit` trains it (fully, or only a LoRA adapter: :meth:`with_lora`).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer,
        *,
        pooling: Pooling = "mean",
        normalize: bool = True,
        query_max_length: int = 256,
        doc_max_length: int = 256,
        query_prefix: str = "",
        doc_prefix: str = "",
        batch_size: int = 32,
        name: str | None = None,
        device: str | torch.device | None = None,
        autocast: str | None = None,
    ):
        if pooling not in ("mean", "cls"):
            raise InputError(f"pooling must be 'mean' or 'cls', not {pooling!r}")
        if autocast not in (None, "bf16"):
            raise InputError(f"autocast must be None or 'bf16', not {autocast!r}")
        if min(query_max_length, doc_max_length) < 2:
            raise InputError("max lengths must be at least 2 tokens (room for [CLS] and [SEP])")
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        self.pooling: Pooling = pooling
        self.normalize = normalize
        self.query_max_length = query_max_length
        self.doc_max_length = doc_max_length
        self.query_prefix = query_prefix
        self.doc_prefix = doc_prefix
        self.batch_size = batch_size
        self.autocast = autocast  # inference in bfloat16 (faster on CPUs with AVX512-BF16/AMX; vectors differ ~1e-3)
        self.name = name or getattr(model.config, "_name_or_path", "") or type(model).__name__
        self._fingerprint: str | None = None
        self._base_source: str | None = None

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_pretrained(cls, name_or_path: str = "minilm", **settings) -> BiEncoder:
        """Load a packaged short name (``"minilm"``), a local HF folder, or a hub id (when online).

        Pooling, normalisation and max length are read from a sentence-transformers folder when present
        (``1_Pooling/config.json``, ``modules.json``, ``sentence_bert_config.json``) or from a folder saved by
        :meth:`save`; keyword ``settings`` override them.
        """
        from transformers import AutoModel, AutoTokenizer

        source = str(name_or_path) if _is_adapter_folder(name_or_path) else resolve_model(name_or_path)
        defaults = _read_folder_settings(Path(source)) if Path(source).is_dir() else {}
        defaults.setdefault("name", name_or_path)
        base = defaults.pop("base", None)
        defaults.update(settings)
        prompts = defaults.pop("prompts", None)
        if _is_adapter_folder(source):  # a LoRA adapter or deep prompts saved by save(): the base, then its adapter
            base_source = Path(source) / "base" if (Path(source) / "base").is_dir() else resolve_model(base)
            backbone = AutoModel.from_pretrained(base_source)
            if prompts is not None:
                from pt_dense.encoders.prompts import DeepPrompts, PromptedModel

                model = PromptedModel(backbone, DeepPrompts.for_model(backbone.config, prompts["length"],
                                                                      prompts["reparam"]))
                model.prompts.load_state_dict(torch.load(Path(source) / PROMPTS_FILE, weights_only=True))
            else:
                from peft import PeftModel

                model = PeftModel.from_pretrained(backbone, source, is_trainable=True)
            encoder = cls(model, AutoTokenizer.from_pretrained(source), **defaults)
            encoder._base_source = base if base is not None and not (Path(source) / "base").is_dir() else None
            return encoder
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModel.from_pretrained(source)
        encoder = cls(model, tokenizer, **defaults)
        encoder._base_source = source if Path(source).is_dir() else name_or_path
        return encoder

    def settings(self) -> dict:
        """The settings that, with the weights, define the vectors this encoder produces."""
        return {
            "pooling": self.pooling,
            "normalize": self.normalize,
            "query_max_length": self.query_max_length,
            "doc_max_length": self.doc_max_length,
            "query_prefix": self.query_prefix,
            "doc_prefix": self.doc_prefix,
        }

    def descriptor(self) -> dict:
        """What an index records about the encoder that made its vectors."""
        return {"fingerprint": self.fingerprint, "name": self.name, "dim": self.dim, "settings": self.settings()}

    def save(self, path: str | Path) -> Path:
        """Write model, tokenizer and settings to a folder that :meth:`from_pretrained` reads back."""
        from pt_dense._atomic import atomic_dir

        with atomic_dir(path, overwrite=True) as tmp:
            self.tokenizer.save_pretrained(tmp)
            config = {**self.settings(), "name": self.name, "mode": self.mode}
            if self.mode == "prompts":
                from pt_dense.encoders.prompts import prompt_state

                torch.save(prompt_state(self.model), tmp / PROMPTS_FILE)
                config["prompts"] = self.model.prompts.config()
            else:
                self.model.save_pretrained(tmp)  # a peft model writes only its adapter
            if self.mode != "full":
                if self.base_source is None:  # built in memory: keep the base weights beside the adapter
                    self.backbone().save_pretrained(tmp / "base")
                config["base"] = self.base_source
            (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2))
        return Path(path)

    # ------------------------------------------------------------------ adapters and training
    @property
    def mode(self) -> str:
        """``"lora"`` with a LoRA adapter, ``"prompts"`` with deep prompts, else ``"full"`` (every weight trains)."""
        from pt_dense.encoders.prompts import PromptedModel

        if isinstance(self.model, PromptedModel):
            return "prompts"
        return "lora" if hasattr(self.model, "peft_config") else "full"

    def backbone(self) -> torch.nn.Module:
        """The base model without its adapter (LoRA removed from a copy; the frozen model under deep prompts)."""
        if self.mode == "prompts":
            return self.model.base
        return copy.deepcopy(self.model).unload() if self.mode == "lora" else self.model

    @property
    def base_source(self) -> str | None:
        """Where the base weights can be loaded from again (a packaged name or a folder), if known."""
        return self._base_source

    def with_lora(self, r: int = 8, alpha: int = 32, dropout: float = 0.1,
                  targets: tuple[str, ...] = ("query", "value")) -> BiEncoder:
        """A new encoder whose base weights are frozen and whose ``targets`` carry a LoRA adapter (peft).

        Defaults follow Lee et al. (2023): r=8, alpha=32, dropout 0.1 on the attention query and value projections.
        """
        from peft import LoraConfig, get_peft_model

        if self.mode != "full":
            raise InputError(f"this encoder already has an adapter ({self.mode}); start from a plain encoder "
                             "(or merge() a LoRA adapter first)")
        config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(targets))
        return self._with_model(get_peft_model(copy.deepcopy(self.model), config))

    def with_prompts(self, length: int = 32, reparam: bool = False) -> BiEncoder:
        """A new encoder whose base weights are frozen and which trains ``length`` key/value prompts in every layer
        (deep prompt tuning, P-tuning v2 / DPTDR; see :mod:`pt_dense.encoders.prompts`)."""
        from pt_dense.encoders.prompts import DeepPrompts, PromptedModel

        if self.mode != "full":
            raise InputError(f"this encoder already has an adapter ({self.mode}); start from a plain encoder")
        if length < 1:
            raise InputError(f"prompt length must be at least 1, not {length}")
        base = copy.deepcopy(self.model)
        return self._with_model(PromptedModel(base, DeepPrompts.for_model(base.config, length, reparam)))

    def _with_model(self, model: torch.nn.Module) -> BiEncoder:
        """The same encoder (settings, tokenizer, base source) around another model."""
        clone = type(self)(model, self.tokenizer, **self.settings(), batch_size=self.batch_size, name=self.name,
                           device=self.device, autocast=self.autocast)
        clone._base_source = self.base_source
        return clone

    def merge(self) -> BiEncoder:
        """Fold the LoRA adapter into the weights (in place); the vectors stay the same."""
        if self.mode == "lora":
            self.model = self.model.merge_and_unload()
            self.weights_changed()
        return self

    def trainable_parameters(self) -> tuple[int, int]:
        """(trainable, total) parameter counts."""
        params = list(self.model.parameters())
        return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)

    def fit(self, topics: pd.DataFrame, qrels: pd.DataFrame, valid_topics: pd.DataFrame | None = None,
            valid_qrels: pd.DataFrame | None = None, *, corpus=None, negatives="in-batch", **settings) -> dict:
        """Train contrastively (see :mod:`pt_dense.training.trainer` for the settings and their defaults)."""
        from pt_dense.training.trainer import fit

        return fit(self, topics, qrels, corpus=corpus, negatives=negatives, valid_topics=valid_topics,
                   valid_qrels=valid_qrels, **settings)

    def save_trainable(self, path: Path) -> None:
        torch.save({k: v for k, v in self.model.state_dict().items() if k in self._trainable_names()}, path)

    def load_trainable(self, path: Path) -> None:
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
        from pt_dense.errors import MissingColumnsError

        raise MissingColumnsError(f"BiEncoder needs a 'query' or a 'text' column; the input has {sorted(columns)}")

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    @property
    def fingerprint(self) -> str:
        """A stable hash of the weights and the settings; an index records it and refuses other encoders."""
        if self._fingerprint is None:
            settings = json.dumps(self.settings(), sort_keys=True).encode()
            self._fingerprint = state_hash(self.model.state_dict(), prefix=settings)
        return self._fingerprint

    def weights_changed(self) -> None:
        """Forget the cached fingerprint; call after changing the weights (training does)."""
        self._fingerprint = None

    def __repr__(self) -> str:
        return f"BiEncoder({self.name!r}, pooling={self.pooling!r}, dim={self.dim})"

    # ------------------------------------------------------------------ encoding
    def tokenize(self, texts: Sequence[str], side: Side) -> list[list[int]]:
        """Token ids (with special tokens, truncated to the side's max length) of each text, not padded."""
        prefix = self.query_prefix if side == "query" else self.doc_prefix
        max_length = self.query_max_length if side == "query" else self.doc_max_length
        texts = [prefix + t for t in texts] if prefix else list(texts)
        return self.tokenizer(texts, truncation=True, max_length=max_length, add_special_tokens=True)["input_ids"]

    def collate(self, ids: Sequence[Sequence[int]]) -> dict[str, torch.Tensor]:
        """Pad token ids into ``input_ids`` and ``attention_mask`` tensors on the encoder's device."""
        input_ids, mask = pad(ids, self.tokenizer.pad_token_id or 0)
        return {
            "input_ids": torch.from_numpy(input_ids).to(self.device),
            "attention_mask": torch.from_numpy(mask).to(self.device),
        }

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Pooled (and normalised) embeddings of a collated batch, with gradients when enabled."""
        hidden = self.model(**batch).last_hidden_state
        return self.pool(hidden, batch["attention_mask"])

    def pool(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            weights = mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, dim=-1) if self.normalize else pooled

    def embed(self, texts: Sequence[str], side: Side) -> torch.Tensor:
        """Embeddings of a few texts with gradients (for training): no sorting, one batch."""
        return self.forward(self.collate(self.tokenize(texts, side)))

    def encode(
        self,
        texts: Sequence[str],
        side: Side = "doc",
        *,
        batch_size: int | None = None,
        progress: bool | None = None,
    ) -> np.ndarray:
        """float32 vectors, one row per text, in input order.

        Texts are sorted by token length so each batch is padded only to its own longest text.
        """
        check_side(side)
        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)

        def run(batch: list[list[int]]) -> np.ndarray:
            return self.forward(self.collate(batch)).float().cpu().numpy()

        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode(), torch.autocast(self.device.type, torch.bfloat16, enabled=bool(self.autocast)):
                return encode_sorted(self.tokenize(texts, side), run, self.dim, batch_size or self.batch_size,
                                     progress=progress, desc=f"encoding {SIDE_NAMES[side]}")
        finally:
            self.model.train(was_training)

    def encode_queries(self, texts: Sequence[str], **kwargs) -> np.ndarray:
        return self.encode(texts, "query", **kwargs)

    def encode_docs(self, texts: Sequence[str], **kwargs) -> np.ndarray:
        return self.encode(texts, "doc", **kwargs)

    # ------------------------------------------------------------------ export
    def export_module(self) -> torch.nn.Module:
        """A plain module ``(input_ids, attention_mask) -> last_hidden_state`` for ONNX export (adapters merged)."""
        model = copy.deepcopy(self.model).to("cpu").eval()
        if hasattr(model, "merge_and_unload"):  # a peft model: fold the adapter into the weights
            model = model.merge_and_unload()
        backbone = model.base if self.mode == "prompts" else model  # deep prompts become constants of the graph
        if hasattr(backbone, "set_attn_implementation"):
            backbone.set_attn_implementation("eager")  # the legacy exporter traces eager attention exactly
        return _HiddenStates(model)


class _HiddenStates(torch.nn.Module):
    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


def _is_adapter_folder(path: str | Path) -> bool:
    """A folder saved by :meth:`BiEncoder.save` from a LoRA or deep-prompt encoder (the base is stored apart)."""
    return (Path(path) / "adapter_config.json").exists() or (Path(path) / PROMPTS_FILE).exists()


def _read_folder_settings(folder: Path) -> dict:
    """Settings stored beside a model: ours (from :meth:`BiEncoder.save`) or sentence-transformers'."""
    ours = folder / CONFIG_FILE
    if ours.exists():
        settings = json.loads(ours.read_text())
        settings.pop("mode", None)
        return settings
    settings: dict = {}
    pooling_file = folder / "1_Pooling" / "config.json"
    if pooling_file.exists():
        pooling = json.loads(pooling_file.read_text())
        settings["pooling"] = "cls" if pooling.get("pooling_mode_cls_token") else "mean"
    modules_file = folder / "modules.json"
    if modules_file.exists():
        modules = json.loads(modules_file.read_text())
        settings["normalize"] = any(m.get("type", "").endswith("Normalize") for m in modules)
    st_file = folder / "sentence_bert_config.json"
    if st_file.exists():
        max_length = json.loads(st_file.read_text()).get("max_seq_length")
        if max_length:
            settings["query_max_length"] = settings["doc_max_length"] = int(max_length)
    return settings
