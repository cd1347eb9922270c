"""The scaling grid: models of several sizes trained on nested subsets of the annotations, L measured on each.

Model size: a pretrained encoder cut to its first k layers, its size N counted as non-embedding parameters (the
transformer layers; embeddings and the unused pooler are left out, as in the paper). Annotations: the training
split's (query, judged positive) pairs, shuffled once by the seed, the first D of them; so each subset contains the
smaller ones. Each cell (k, D) trains with every pair as an example (in-batch negatives; a small subset is repeated)
either to convergence (``patience``: stopped early on the contrastive entropy of a dev split, the best weights kept,
so no cell ends worse than its start on dev) or for a fixed number of steps, and is measured by
:func:`~pt_dense.scaling.measure.contrastive_loglik` on the test split in fp32: ``L`` over every test query, and
``L_unseen`` over the test queries none of whose positives is a training positive (see :func:`unseen_queries`);
each cell keeps L per query too. Without a dev split, ``dev_queries`` training queries are held out of the
annotations. Cells are written atomically to ``<out>/cells/`` as they finish, so a killed run resumes at the first
missing cell; ``<out>/grid.json`` holds the settings and refuses a resume under other settings.
"""

from __future__ import annotations

import copy
import json
import random
import time
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import torch
from tqdm.auto import tqdm

from pt_dense import datasets
from pt_dense.errors import InputError
from pt_dense.io.atomic import atomic_file
from pt_dense.models import family_for
from pt_dense.scaling.config import GridConfig
from pt_dense.scaling.measure import contrastive_loglik
from pt_dense.training.biencoder import BiEncoder


def study_encoder(model: str, query_max_length: int, doc_max_length: int, **settings):
    """The BiEncoder ``model`` with the study's max lengths, each capped at the model's positions (the study's
    defaults, 32 and 128 tokens, are meant for any model; an encoder refuses a length past its positions)."""
    encoder = BiEncoder.from_pretrained(model, **settings)
    limit = encoder.position_limit or max(query_max_length, doc_max_length)
    encoder.query_max_length, encoder.doc_max_length = min(query_max_length, limit), min(doc_max_length, limit)
    return encoder


def truncated_encoder(base, layers: int):
    """A copy of ``base`` (a BiEncoder) keeping only its first ``layers`` transformer layers, found where its
    :class:`~pt_dense.models.ModelFamily` says the layer stack is.

    The grid's way to make smaller models of one pretrained encoder; ``base`` is left as it is.

    Args:
        base: The BiEncoder to cut.
        layers: How many of its first layers to keep.

    Returns:
        A new BiEncoder named ``"<name>[:<layers> layers]"``.

    Raises:
        InputError: ``layers`` is not between 1 and the model's depth, or the family finds no layer stack.
    """
    family = family_for(base.model)
    stack = family.layer_stack(base.model)
    if not 1 <= layers <= len(stack):
        raise InputError(f"layers must be between 1 and {len(stack)} for this model, not {layers}")
    model = copy.deepcopy(base.model)
    family.set_layer_stack(model, torch.nn.ModuleList(list(family.layer_stack(model))[:layers]))
    return base.with_model(model, name=f"{base.name}[:{layers} layers]")


def non_embedding_parameters(model: torch.nn.Module) -> int:
    """Parameters of the transformer layers: everything but the family's embedding modules (and the pooler).

    This is the model size N of the scaling laws, as in the paper.

    Args:
        model: A Hugging Face model.

    Returns:
        The parameter count, leaving out the top-level modules named in the family's ``embedding_modules``.
    """
    skip = family_for(model).embedding_modules
    return sum(p.numel() for name, p in model.named_parameters() if name.split(".")[0] not in skip)


def annotation_pairs(qrels: pd.DataFrame, topics: pd.DataFrame, docnos: set[str], seed: int,
                     min_label: int = 1) -> pd.DataFrame:
    """Judged (qid, docno) positives (label >= ``min_label``) whose query and document exist, in one fixed shuffled
    order."""
    judged = qrels[qrels["label"] >= max(min_label, 1)].astype({"qid": str, "docno": str})
    judged = judged[judged["qid"].isin(set(topics["qid"].astype(str))) & judged["docno"].isin(docnos)]
    judged = judged.drop_duplicates(["qid", "docno"]).sort_values(["qid", "docno"])
    return judged.sample(frac=1.0, random_state=seed).reset_index(drop=True)


def run_grid(config: GridConfig, out: str | Path, progress: bool = True) -> list[dict]:
    """Train and measure every missing cell of the grid (see the module docstring).

    Each cell is written to ``<out>/cells/`` as soon as it is measured, so a killed run resumes at the first missing
    cell.

    Args:
        config: The grid's settings.
        out: The grid folder.
        progress: Show a progress bar.

    Returns:
        Every cell (those found and those new) by layers, then annotations: dicts with ``layers``, ``N``, ``D``,
        ``L``, ``L_unseen``, the training steps and times, and ``L_by_qid``.

    Raises:
        InputError: ``out`` holds cells made under other settings, an annotation count exceeds the training split's
            judged pairs, or the dev split is too small (fewer than five queries whose positives no training pair
            has, or ``dev_queries`` leaves no training query).
    """
    out = Path(out)
    _check_settings(config, out)
    data = datasets.load(config.data)
    texts = datasets.doc_texts(data)
    train_topics = data.topics(config.train_split)
    pairs = annotation_pairs(data.qrels(config.train_split), train_topics, set(texts), config.seed, config.min_label)
    train_docs = set(pairs["docno"])  # every judged positive of the training split, dev queries' included
    validator = None
    if config.patience:
        dev_topics, dev_qrels, pairs = _dev_split(data, config, pairs, train_topics)
        validator = dev_validator(dev_topics, dev_qrels, texts, config)
    too_many = [d for d in config.annotations if d > len(pairs)]
    if too_many:
        raise InputError(f"{config.data} {config.train_split} has {len(pairs)} judged pairs to train on; "
                         f"annotations {too_many} ask for more")
    base = study_encoder(config.model, config.query_max_length, config.doc_max_length, precision="fp32")
    test_topics, test_qrels = data.topics(config.test_split), data.qrels(config.test_split)
    test_qrels = test_qrels[test_qrels["label"] >= config.min_label]
    unseen = unseen_queries(test_qrels, train_docs)
    cells = [(k, d) for k in sorted(config.layers) for d in sorted(config.annotations)]
    results = []
    bar = tqdm(cells, desc="scaling grid", unit="cell", disable=not progress)
    for layers, n_pairs in bar:
        path = out / "cells" / f"layers{layers}-annotations{n_pairs}.json"
        if not path.exists():
            bar.set_postfix(layers=layers, annotations=n_pairs)
            encoder = truncated_encoder(base, layers)
            subset = pairs.head(n_pairs)
            started = time.perf_counter()
            history = encoder.fit(train_topics, subset.assign(label=1), corpus=texts, negatives="in-batch",
                                  each_positive=True, steps=config.steps, batch_size=config.batch_size,
                                  lr=config.lr, temperature=config.temperature, seed=config.seed, progress=False,
                                  validator=validator, patience=config.patience, valid_every=config.valid_every)
            train_seconds = time.perf_counter() - started
            by_query = contrastive_loglik(encoder, test_topics, test_qrels, texts, negatives=config.negatives,
                                          seed=config.seed, temperature=config.temperature, per_query=True,
                                          progress=False)
            loss, on_unseen = float(by_query.mean()), by_query[by_query.index.isin(unseen)]
            best = history["best"]
            cell = {"layers": layers, "N": non_embedding_parameters(encoder.model), "D": n_pairs, "L": loss,
                    "L_unseen": float(on_unseen.mean()), "unseen_queries": len(on_unseen),
                    "queries": int(subset["qid"].nunique()), "steps": len(history["loss"]),
                    "best_step": best["step"] if best else len(history["loss"]),
                    "dev_L": -best[DEV_SCORE] if best else None,
                    "final_train_loss": history["loss"][-1] if history["loss"] else None,
                    "train_seconds": round(train_seconds, 1),
                    "eval_seconds": round(time.perf_counter() - started - train_seconds, 1),
                    "L_by_qid": {qid: round(float(v), 5) for qid, v in by_query.items()}}
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_file(path) as tmp:
                tmp.write_text(json.dumps(cell, indent=1))
            bar.write(f"layers {layers}, D {n_pairs}: L = {loss:.4f}, on unseen documents {cell['L_unseen']:.4f} "
                      f"(best of {cell['steps']} steps at step "
                      f"{cell['best_step']}; {cell['train_seconds']} s training)")
        results.append(json.loads(path.read_text()))
    return results


DEV_SCORE = "minus_dev_L"


def dev_validator(topics: pd.DataFrame, qrels: pd.DataFrame, texts: dict[str, str], config: GridConfig):
    """``encoder -> -L`` on the dev topics, against negatives from a fixed sample of ``config.dev_pool`` documents
    (the dev positives are always in it): cheap enough to score every few steps."""
    positives = set(qrels["docno"].astype(str)) & set(texts)
    others = sorted(set(texts) - positives)
    sample = random.Random(f"{config.seed}/dev-pool").sample(others, min(config.dev_pool, len(others)))
    pool = {d: texts[d] for d in sorted(positives) + sample}
    negatives = min(config.negatives, len(sample))

    def minus_dev_L(encoder) -> float:
        return -contrastive_loglik(encoder, topics, qrels, pool, negatives=negatives, seed=config.seed,
                                   temperature=config.temperature, progress=False)

    minus_dev_L.__name__ = DEV_SCORE
    return minus_dev_L


def unseen_queries(qrels: pd.DataFrame, seen_docs: set[str]) -> set[str]:
    """The qids of ``qrels`` none of whose judged positives is in ``seen_docs``.

    Collections like SciFact judge the same documents relevant to training and test queries: the more pairs a model
    trains on, the more test positives it has already been trained to retrieve, which lowers L for a reason that
    is not generalisation. L measured on these queries alone does not move with that overlap."""
    positives = qrels.astype({"qid": str, "docno": str}).groupby("qid")["docno"].agg(set)
    return {qid for qid, docs in positives.items() if not docs & seen_docs}


def _dev_split(data, config: GridConfig, pairs: pd.DataFrame,
               train_topics: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(dev topics, dev positives, the pairs left to train on): the collection's dev split, or ``dev_queries``
    training queries (drawn by the seed) held out of the annotations; either way only the dev queries whose
    positives are none of the training pairs' documents, as L is measured on unseen documents."""
    if config.dev_split:
        topics, qrels, kept = data.topics(config.dev_split), data.qrels(config.dev_split), pairs
        qrels = qrels[qrels["label"] >= config.min_label]
    else:
        qids = sorted(pairs["qid"].unique())
        if config.dev_queries >= len(qids):
            raise InputError(f"dev_queries {config.dev_queries} would leave no training query of {len(qids)}; "
                             "lower dev_queries or give dev_split")
        held = set(random.Random(f"{config.seed}/dev").sample(qids, config.dev_queries))
        topics, qrels = train_topics, pairs[pairs["qid"].isin(held)].assign(label=1)
        kept = pairs[~pairs["qid"].isin(held)].reset_index(drop=True)
    clean = unseen_queries(qrels, set(kept["docno"]))
    if len(clean) < MIN_DEV_QUERIES:
        raise InputError(f"only {len(clean)} dev queries have positives that no training pair has; early stopping "
                         f"needs {MIN_DEV_QUERIES}: raise dev_queries or give another dev_split")
    qrels = qrels.astype({"qid": str, "docno": str})
    return topics.astype({"qid": str})[lambda t: t["qid"].isin(clean)], qrels[qrels["qid"].isin(clean)], kept


MIN_DEV_QUERIES = 5


def load_cells(out: str | Path) -> list[dict]:
    """The finished cells of a grid folder, in the order of their file names.

    Args:
        out: The grid folder (the ``out`` of :func:`run_grid`).

    Returns:
        The cells' dicts.

    Raises:
        InputError: The folder holds no finished cell.
    """
    files = sorted((Path(out) / "cells").glob("*.json"))
    if not files:
        raise InputError(f"no finished cells under {Path(out) / 'cells'}: run `pt-dense scaling run` first")
    return [json.loads(f.read_text()) for f in files]


def _check_settings(config: GridConfig, out: Path) -> None:
    """Record the settings on the first run; refuse to mix cells made under other settings."""
    settings = {k: v for k, v in asdict(config).items() if k not in ("layers", "annotations")}
    file = out / "grid.json"
    if file.exists():
        saved = json.loads(file.read_text())
        changed = {k: (saved.get(k), v) for k, v in settings.items() if saved.get(k) != v}
        if changed:
            raise InputError(f"{out} holds cells made under other settings {changed} (saved, now): "
                             "use another --out folder or the saved settings")
        return
    out.mkdir(parents=True, exist_ok=True)
    with atomic_file(file) as tmp:
        tmp.write_text(json.dumps(settings, indent=1))
