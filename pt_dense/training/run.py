"""A collection trained end to end (what ``pt-dense train`` and ``pt-dense pretrain`` run): load the data, put the
adapter on the encoder, fit, save the encoder with a record of the run."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from pt_dense import datasets
from pt_dense.encoders.adapters import ADAPTERS, adapter_kind
from pt_dense.errors import InputError
from pt_dense.training.biencoder import BiEncoder
from pt_dense.training.pretrain import pretrain
from pt_dense.training.recipes import get_recipe


def adapted_encoder(model: str, adapter: str | None = None, prompt_length: int = 32,
                    lora: dict | None = None) -> BiEncoder:
    """``model`` ready to train ``adapter``: ``"lora"`` (with ``lora``, ``with_lora``'s settings), ``"prompts"`` or
    ``"full"`` (every weight; ``"none"`` too), or another kind registered in ``ADAPTERS`` (built with no
    settings). An encoder saved with an adapter goes on training that adapter; otherwise the
    default is LoRA.

    Args:
        model: A model name, hub id or folder (a folder saved with an adapter keeps it).
        adapter: A name of ``pt_dense.encoders.adapters.ADAPTERS`` (``"lora"``, ``"prompts"``, ``"full"``, or
            ``"none"`` for ``"full"``); None: the saved adapter, else LoRA.
        prompt_length: Prompts per layer, for ``"prompts"``.
        lora: ``with_lora``'s settings (``r``, ``alpha``, ``dropout``, ``targets``), for ``"lora"``.

    Returns:
        The encoder, ready to train.

    Raises:
        InputError: ``adapter`` is unknown, or differs from the adapter ``model`` was saved with.
        PromptsUnsupportedError: ``"prompts"`` for a family that cannot take deep prompts.
        UnknownModelError: ``model`` names no model.
    """
    adapter = adapter_kind(adapter) if adapter is not None else None
    encoder = BiEncoder.from_pretrained(model)
    if not encoder.adapter.plain:
        if adapter not in (None, encoder.mode):
            raise InputError(f"{model} already carries a {encoder.mode} adapter; drop --adapter {adapter} "
                             "to go on training it")
        return encoder
    kind = ADAPTERS[adapter or "lora"]
    settings = {"lora": lora or {}, "prompts": {"length": prompt_length}}.get(kind.name, {})
    return encoder if kind.plain else encoder.with_adapter(kind(**settings))


def train_collection(data, out: str | Path, *, model: str = "minilm", adapter: str | None = None,
                     prompt_length: int = 32, split: str = "train", valid_split: str | None = None,
                     negatives: str | None = None, recipe: str | None = None, overwrite: bool = False,
                     seed: int = 42, **settings) -> tuple[BiEncoder, dict]:
    """Train ``model`` on ``data``'s ``split`` (checkpoints beside ``out``), save it to ``out`` with a
    ``training.json`` record; returns (the encoder, the history). A ``recipe`` chooses the adapter, the negatives and
    the settings that are not given.

    An existing ``out`` is refused unless ``overwrite`` (or ``resume``, which continues its checkpoints). The
    ``seed`` covers every random draw, the adapter's initialisation included: one seed, identical weights.

    Args:
        data: A collection, or a name or folder for :func:`pt_dense.datasets.load`.
        out: The folder the trained encoder is saved to; checkpoints go to ``<out>.checkpoints`` unless
            ``checkpoint_dir`` is given.
        model: The model to start from (name, hub id or folder).
        adapter: ``"lora"``, ``"prompts"`` or ``"full"`` (see :func:`adapted_encoder`); None: the recipe's, else
            the saved adapter, else LoRA.
        prompt_length: Prompts per layer, for ``"prompts"``.
        split: The training split.
        valid_split: A split to validate on (nDCG@10; needed for ``patience``).
        negatives: The negative source (see :func:`fit`); None: the recipe's, else in-batch.
        recipe: A recipe's name.
        overwrite: Replace an existing ``out``.
        seed: Seeds everything.
        **settings: Any field of :class:`TrainConfig`.

    Returns:
        The trained encoder and the training history.

    Raises:
        InputError: ``out`` exists (without ``overwrite`` or ``resume``), an unknown split or recipe, or what
            :func:`fit` refuses.
        UnknownModelError: ``model`` names no model.

    Example:
        ::

            encoder, history = train_collection("scifact", "scifact-lora", recipe="lora-all-linear")
    """
    out = Path(out)
    if out.exists() and not (overwrite or settings.get("resume")):
        raise InputError(f"{out} already exists: pass overwrite=True (--overwrite) to replace it, or resume=True "
                         "(--resume) to continue the run whose checkpoints lie beside it")
    data = datasets.load(data) if isinstance(data, (str, Path)) else data
    topics, qrels = data.topics(split), data.qrels(split)  # an unknown split fails before anything is built
    chosen = get_recipe(recipe) if recipe else None
    with torch.random.fork_rng():
        torch.manual_seed(seed)  # LoRA draws its initial weights here
        encoder = adapted_encoder(model, adapter or (chosen.adapter if chosen else None), prompt_length,
                                  chosen.lora if chosen else None)
    settings.setdefault("checkpoint_dir", str(out.with_name(out.name + ".checkpoints")))
    valid = (data.topics(valid_split), data.qrels(valid_split)) if valid_split else (None, None)
    history = encoder.fit(topics, qrels, *valid, corpus=data, negatives=negatives, recipe=chosen, seed=seed,
                          **settings)
    encoder.save(out)
    record = {"recipe": recipe, "settings": (chosen.settings if chosen else {}) | settings,
              "negatives": negatives or (chosen.negatives if chosen else "in-batch"), "history": history}
    (out / "training.json").write_text(json.dumps(record, indent=1, default=str))
    return encoder, history


def pretrain_collection(data, out: str | Path, *, model: str = "minilm", adapter: str | None = None,
                        prompt_length: int = 32, kinds: tuple[str, ...] = ("title", "span"),
                        max_docs: int | None = None, seed: int = 42, **settings) -> tuple[BiEncoder, dict]:
    """Intermediate pretraining of ``model`` on ``data``'s corpus alone (see ``training.pretrain``), saved to ``out``
    with a ``pretraining.json`` record; returns (the encoder, the history).

    Unlike :func:`train_collection`, an existing ``out`` is replaced.

    Args:
        data: A BEIR-format collection (titles are read apart), or its name or folder.
        out: The folder the pretrained encoder is saved to (fine-tune it with ``train_collection(model=out)``).
        model: The model to start from (name, hub id or folder).
        adapter: ``"lora"``, ``"prompts"`` or ``"full"`` (see :func:`adapted_encoder`); None: the saved adapter,
            else LoRA.
        prompt_length: Prompts per layer, for ``"prompts"``.
        kinds: The pseudo-queries: ``"title"`` (a document's title) and/or ``"span"`` (a random window of its body).
        max_docs: Pretrain on a random sample of this many documents (None: all).
        seed: Seeds everything.
        **settings: Any field of :class:`TrainConfig`.

    Returns:
        The pretrained encoder and the training history.

    Raises:
        InputError: ``data`` has no ``records()`` (not a BEIR-format collection), an unknown kind, a corpus that
            gives no pseudo-query, or what :func:`fit` refuses.
        UnknownModelError: ``model`` names no model.
    """
    data = datasets.load(data) if isinstance(data, (str, Path)) else data
    if not hasattr(data, "records"):
        raise InputError("pretrain needs a BEIR-format folder or an embedded collection (titles are read apart)")
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        encoder = adapted_encoder(model, adapter, prompt_length)
    history = pretrain(encoder, data, kinds=kinds, max_docs=max_docs, seed=seed, **settings)
    out = encoder.save(out)
    record = {"settings": settings, "kinds": list(kinds), "max_docs": max_docs, "history": history}
    (out / "pretraining.json").write_text(json.dumps(record, default=str))
    return encoder, history
