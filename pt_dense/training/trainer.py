"""The training loop behind ``BiEncoder.fit``: batches, the loss, checkpoints, resume, validation, DDP.

Determinism: the order of each epoch, the positive each query uses and its sampled negatives depend only on
(seed, epoch), and checkpoints carry the optimiser, scheduler and RNG states, so a run that is killed and resumed
ends with the same weights as one that was not.
"""

from __future__ import annotations

import atexit
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from pt_dense.datasets import doc_texts, judged_positives
from pt_dense.errors import InputError
from pt_dense.registry import TeacherSource
from pt_dense.training import checkpoints
from pt_dense.training.losses import make_loss
from pt_dense.training.negatives import NegativeSource
from pt_dense.training.recipes import Recipe, get_recipe
from pt_dense.training.sources import resolve
from pt_dense.training.validation import Validation, pool_ndcg


@dataclass
class TrainConfig:
    """The settings of a training run: the keyword settings that :func:`fit` and ``BiEncoder.fit`` take.

    Args:
        epochs: Passes over the training queries (with ``steps``, as many as those steps need).
        batch_size: Queries per micro-batch, over all processes (in-batch negatives); a step takes ``grad_accum``
            micro-batches, and an epoch's ragged tail is dropped.
        lr: The learning rate; None takes the adapter's default.
        loss: A loss name registered with :func:`~pt_dense.training.register_loss` (``"contrastive"``,
            ``"distill"``).
        loss_settings: The loss's own settings (e.g. distill's ``teacher_temperature`` and ``weight``).
        temperature: The loss's softmax temperature.
        warmup_ratio: The fraction of the steps over which the learning rate warms up linearly; it then decays
            linearly to 0.
        weight_decay: AdamW's weight decay, on matrices only (not on biases or norms).
        grad_accum: Micro-batches whose gradients make one step.
        seed: Seeds every random draw: the order of each epoch, the positive each query uses, the negatives.
        n_negatives: Hard negatives per query, for sources that give them.
        negative_depth: The depth of the ranking that hard negatives are drawn from.
        negative_settings: The negative source's own settings (e.g. the cache's ``sample`` and ``every``).
        each_positive: Make every (query, judged positive) pair an example of each epoch; otherwise each query
            contributes one of its positives per epoch, in turn.
        query_max_length: Query tokens in training only (capped at the model's positions); the encoder keeps its
            own length for inference.
        doc_max_length: Document tokens in training only, as ``query_max_length``.
        max_grad_norm: Gradients are clipped to this norm.
        checkpoint_dir: Write checkpoints (weights, optimiser, scheduler and RNG states) there.
        checkpoint_every: Steps between checkpoints; 0 writes one at the end of each epoch.
        resume: Continue from the newest checkpoint in ``checkpoint_dir``, ending with the weights of an
            uninterrupted run.
        max_steps: Stop after this many steps (e.g. to test resuming); the schedule still spans the whole run.
        steps: Train exactly this many steps (epochs repeat as needed); the schedule spans them.
        valid_pool: Random corpus documents added to the validation topics' judged ones for the nDCG@10 score.
        valid_every: Steps between validations; 0 validates after each epoch.
        patience: > 0: stop after this many validations in a row without a better score, and keep the best weights.
        interpolate: < 1: keep this fraction of the update at the end (WiSE-FT), in (0, 1].
        progress: Show a progress bar.
    """

    epochs: int = 3
    batch_size: int = 32
    lr: float | None = None  # None: the adapter's default
    loss: str = "contrastive"  # a name registered in pt_dense.training.losses
    loss_settings: dict = field(default_factory=dict)  # the loss's own (e.g. distill: teacher_temperature, weight)
    temperature: float = 0.05
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    grad_accum: int = 1
    seed: int = 42
    n_negatives: int = 1
    negative_depth: int = 100
    negative_settings: dict = field(default_factory=dict)  # passed to the negative source (e.g. cache: sample, every)
    each_positive: bool = False  # True: every (query, judged positive) pair is an example of each epoch
    query_max_length: int | None = None  # lengths used in training only; the encoder keeps its own for inference
    doc_max_length: int | None = None
    max_grad_norm: float = 1.0
    checkpoint_dir: str | None = None
    checkpoint_every: int = 0  # steps; 0: at the end of each epoch
    resume: bool = False
    max_steps: int | None = None  # stop early (e.g. to test resuming); the schedule still spans all epochs
    steps: int | None = None  # train exactly this many steps (epochs repeat as needed); the schedule spans them
    valid_pool: int = 2000
    valid_every: int = 0  # steps between validations; 0: after each epoch
    patience: int = 0  # > 0: stop after this many validations without a better score and keep the best weights
    interpolate: float = 1.0  # < 1: keep this fraction of the update at the end (WiSE-FT; Adapter.blend)
    progress: bool = True

    def make_loss(self) -> torch.nn.Module:
        """The loss these settings name, built with its temperature and its own settings.

        Returns:
            The loss module.

        Raises:
            InputError: No loss is registered under ``loss``, or it does not take these settings.
        """
        return make_loss(self.loss, temperature=self.temperature, **self.loss_settings)


def fit(encoder, topics: pd.DataFrame, qrels: pd.DataFrame, *, corpus=None, negatives=None,
        valid_topics: pd.DataFrame | None = None, valid_qrels: pd.DataFrame | None = None,
        validator: Callable[..., float] | None = None, recipe: str | Recipe | None = None, **settings) -> dict:
    """Train ``encoder`` in place; returns a history dict (loss per step, each validation's score).

    Validation scores nDCG@10 on ``valid_topics``/``valid_qrels``, or calls ``validator(encoder)`` (higher is
    better), after each epoch or every ``valid_every`` steps; with ``patience`` it also scores the start, stops when
    that many validations in a row did not beat the best, and ends with the best weights (early stopping).
    ``recipe`` (a name of ``training.recipes``) supplies the negatives and settings that are not given explicitly;
    without one, ``negatives`` defaults to in-batch.

    Under ``torchrun`` (``WORLD_SIZE`` > 1) each process takes its share of every batch and the gradients are
    averaged, as with DDP. Judged documents missing from the corpus are skipped (and counted in a message).

    Args:
        encoder: A :class:`~pt_dense.BiEncoder` (plain, with LoRA or with prompts); its trainable weights change.
        topics: ``qid, query``; queries without a judged positive in the corpus are left out.
        qrels: ``qid, docno, label`` judgements; label > 0 is a positive.
        corpus: The documents: a dataset, a list of ``{"docno", "text"}`` dicts or a docno -> text mapping (a
            dataset for the sources that index it: ``bm25``, ``hybrid``, ``cache:*``...).
        negatives: A name registered in ``NEGATIVE_SOURCES`` (``"in-batch"``, ``"bm25"``, ``"hybrid"``,
            ``"cache:stale"``...), a :class:`~pt_dense.training.negatives.NegativeSource`, a PyTerrier retriever or
            the path of a mined negatives file.
        valid_topics: Validation queries, scored by nDCG@10 over a pool of documents.
        valid_qrels: Their judgements.
        validator: Instead of those, ``validator(encoder) -> float`` (higher is better).
        recipe: A recipe or its name; the encoder's adapter must be the recipe's.
        **settings: Any field of :class:`TrainConfig`.

    Returns:
        The history: ``loss`` per step, ``valid`` (each validation's score), ``step_seconds``, ``seconds``,
        ``best`` (the best validation, None without one), ``optimizer_state_bytes`` and ``negatives`` (the
        source's report).

    Raises:
        InputError: An unknown setting or out-of-range value, validation half given, ``patience`` without
            validation, no topic with a positive in the corpus, no trainable parameters, a recipe whose adapter is
            not the encoder's, unknown ``negatives``, or a loss that needs teacher scores from a source without them.

    Example:
        ::

            enc = ptd.BiEncoder.from_pretrained("minilm").with_lora()
            history = enc.fit(data.topics("train"), data.qrels("train"), corpus=data, epochs=1)
    """
    if recipe is not None:
        recipe = get_recipe(recipe)
        recipe.check(encoder)
        settings = recipe.settings | settings
        negatives = recipe.negatives if negatives is None else negatives
    negatives = "in-batch" if negatives is None else negatives
    unknown = set(settings) - set(TrainConfig.__dataclass_fields__)
    if unknown:
        known = sorted(TrainConfig.__dataclass_fields__)
        raise InputError(f"unknown training settings {sorted(unknown)}; known: {known}")
    cfg = TrainConfig(**settings)
    cfg.lr = cfg.lr if cfg.lr is not None else encoder.adapter.default_lr
    loss_fn = cfg.make_loss()
    if not 0 < cfg.interpolate <= 1:
        raise InputError(f"interpolate must be in (0, 1] (the fraction of the update kept), not {cfg.interpolate}")
    if cfg.resume and not cfg.checkpoint_dir:
        raise InputError("resume=True needs checkpoint_dir=")
    if cfg.valid_every < 0 or cfg.patience < 0:
        raise InputError(f"valid_every and patience must be >= 0, not {cfg.valid_every} and {cfg.patience}")
    if validator is None and (valid_topics is None) != (valid_qrels is None):
        raise InputError("validation needs both valid_topics and valid_qrels")
    if cfg.patience and validator is None and valid_topics is None:
        raise InputError("patience (early stopping) needs validation: give valid_topics and valid_qrels, or validator")
    world, rank = _init_distributed()
    if cfg.batch_size % world:
        raise InputError(f"batch_size {cfg.batch_size} must be a multiple of the number of processes ({world})")

    positives = judged_positives(qrels)
    topics = topics.astype({"qid": str})
    topics = topics[topics["qid"].isin(positives)].drop_duplicates("qid").reset_index(drop=True)
    if len(topics) == 0:
        raise InputError("no training topic has a judged positive in the qrels")
    texts = doc_texts(corpus)
    missing = {d for docs in positives.values() for d in docs} - set(texts)
    positives = {q: {d for d in docs if d in texts} for q, docs in positives.items()}
    topics = topics[topics["qid"].map(lambda q: bool(positives.get(q)))].reset_index(drop=True)
    if len(topics) == 0:  # else every step would be empty: a run that changes nothing and says nothing
        raise InputError("no training topic has a judged positive in the corpus: check that corpus= is the "
                         "collection the qrels judge")
    source: NegativeSource = resolve(negatives, corpus, encoder, n=cfg.n_negatives, depth=cfg.negative_depth,
                                     **cfg.negative_settings)
    if getattr(loss_fn, "needs_teacher", False) and not isinstance(source, TeacherSource):
        raise InputError(f"loss {cfg.loss!r} learns from a teacher's scores, which negatives={source.describe()!r} "
                         "does not give: use negatives='hybrid' (BM25 + frozen dense fusion scores)")
    source.prepare(topics, positives)

    # restored after training; meanwhile every encoding (validation, mined negatives) runs the model being trained
    inference = encoder.query_max_length, encoder.doc_max_length, encoder.precision
    encoder.precision = "fp32"
    limit = encoder.position_limit or math.inf  # a recipe's lengths are capped at the model's positions
    encoder.query_max_length = min(cfg.query_max_length, limit) if cfg.query_max_length else encoder.query_max_length
    encoder.doc_max_length = min(cfg.doc_max_length, limit) if cfg.doc_max_length else encoder.doc_max_length
    params = [p for p in encoder.model.parameters() if p.requires_grad]
    if not params:
        raise InputError("the encoder has no trainable parameters")
    start = encoder.adapter.update_start(encoder.model) if cfg.interpolate < 1 else None
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr)
    examples = sum(len(positives[q]) for q in topics["qid"]) if cfg.each_positive else len(topics)
    steps_per_epoch = max(1, (examples // cfg.batch_size) // cfg.grad_accum)
    if cfg.steps:
        cfg.epochs = math.ceil(cfg.steps / steps_per_epoch)
        cfg.max_steps = cfg.steps if cfg.max_steps is None else min(cfg.max_steps, cfg.steps)
    total = cfg.steps or steps_per_epoch * cfg.epochs
    warmup = int(cfg.warmup_ratio * total)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / max(warmup, 1), max(0.0, (total - s) / max(total - warmup, 1))))

    state = {"epoch": 0, "step": 0, "history": {"loss": [], "valid": [], "step_seconds": []}, "best": None}
    seed_everything(cfg.seed)
    if cfg.checkpoint_dir:
        record = checkpoints.run_record(asdict(cfg), encoder, negatives, checkpoints.data_fingerprint(
            topics, positives, texts))
        if latest := checkpoints.start(cfg.checkpoint_dir, record, resume=cfg.resume, rank=rank):
            state = checkpoints.load(latest, encoder, optimizer, scheduler)
    if missing and rank == 0:
        print(f"pt_dense: {len(missing)} judged documents are not in the corpus and are skipped")
    validation = _validation(validator, valid_topics, valid_qrels, texts, cfg, rank, world)

    bar = tqdm(total=total, initial=state["step"], desc=f"training ({encoder.mode}, {source.describe()})",
               unit="step", disable=not cfg.progress or rank != 0)
    encoder.model.train()
    started = time.perf_counter()
    try:
        stop = bool(validation and cfg.patience and state["step"] == 0 and validation.run(encoder, state, bar.write))
        paused = False  # max_steps reached before the run's last step: stop without the end-of-run steps
        while state["epoch"] < cfg.epochs and not stop:
            epoch = state["epoch"]
            batches = epoch_batches(topics, positives, cfg, epoch)
            for index in range(state["step"] - epoch * steps_per_epoch, steps_per_epoch):
                if cfg.max_steps is not None and state["step"] >= cfg.max_steps:
                    stop, paused = True, state["step"] < (cfg.steps or math.inf)
                    break
                loss, step_started = 0.0, time.perf_counter()
                source.update(encoder, state["step"], epoch)
                for micro in batches[index * cfg.grad_accum : (index + 1) * cfg.grad_accum]:
                    part = micro[rank::world] if world > 1 else micro
                    loss += batch_loss(encoder, part, texts, positives, source, cfg, epoch, loss_fn) / cfg.grad_accum
                sync_gradients(params, world)
                torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                state["step"] += 1
                state["history"]["loss"].append(float(loss))
                state["history"]["step_seconds"].append(time.perf_counter() - step_started)
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.4f}", lr=f"{scheduler.get_last_lr()[0]:.2e}")
                if validation and validation.due(state["step"], epoch_end=False):
                    stop = validation.run(encoder, state, bar.write)
                    encoder.model.train()
                if cfg.checkpoint_dir and cfg.checkpoint_every and state["step"] % cfg.checkpoint_every == 0:
                    checkpoints.save(cfg.checkpoint_dir, encoder, optimizer, scheduler, state, rank)
                if stop:
                    break
            if paused:
                return state["history"]  # e.g. to test resuming
            if not stop:
                state["epoch"] += 1
                encoder.weights_changed()
                if validation and validation.due(state["step"], epoch_end=True):
                    stop = validation.run(encoder, state, bar.write)
            if cfg.checkpoint_dir:
                checkpoints.save(cfg.checkpoint_dir, encoder, optimizer, scheduler, state, rank)
            encoder.model.train()
        if validation:
            validation.restore_best(encoder, state)
        if start is not None:
            encoder.adapter.blend(encoder.model, start, cfg.interpolate)
    finally:
        bar.close()
        encoder.query_max_length, encoder.doc_max_length, encoder.precision = inference
        encoder.model.eval()
        encoder.weights_changed()
        state["history"]["seconds"] = time.perf_counter() - started
        state["history"]["optimizer_state_bytes"] = sum(
            t.numel() * t.element_size() for s in optimizer.state.values() for t in s.values()
            if isinstance(t, torch.Tensor))
    state["history"]["best"] = state["best"]
    state["history"]["negatives"] = source.report()
    return state["history"]


def epoch_batches(topics: pd.DataFrame, positives: dict[str, set[str]], cfg: TrainConfig,
                   epoch: int) -> list[list[tuple[str, str, str]]]:
    """(qid, query, positive docno) micro-batches of one epoch, a pure function of (seed, epoch).

    Each query contributes one of its positives per epoch (in turn), or with ``each_positive`` all of them."""
    rows = []
    for qid, query in topics[["qid", "query"]].itertuples(index=False):
        pos = sorted(positives[qid])
        rows += [(qid, query, p) for p in pos] if cfg.each_positive else [(qid, query, pos[epoch % len(pos)])]
    random.Random(f"{cfg.seed}/order/{epoch}").shuffle(rows)
    full = len(rows) - len(rows) % cfg.batch_size if len(rows) >= cfg.batch_size else len(rows)
    return [rows[i : i + cfg.batch_size] for i in range(0, full, cfg.batch_size)]  # a ragged tail is dropped


def batch_loss(encoder, batch: list[tuple[str, str, str]], texts: dict[str, str], positives: dict[str, set[str]],
               source: NegativeSource, cfg: TrainConfig, epoch: int, loss_fn: torch.nn.Module | None = None) -> float:
    """Loss of one (micro-)batch of (qid, query, positive docno), its gradients accumulated (scaled by
    ``grad_accum``); the loss is ``cfg.loss`` unless ``loss_fn`` is given."""
    loss_fn = loss_fn or cfg.make_loss()
    n_neg = source.n
    groups: list[list[str]] = []
    for qid, _, pos in batch:
        negs = source.sample(qid, positives[qid], n_neg, cfg.seed, epoch) if n_neg else []
        negs = (negs + [pos] * n_neg)[:n_neg] if n_neg else []  # pad a short pool with the positive (masked)
        groups.append([pos, *negs])
    docs = [d for group in groups for d in group]
    q = encoder.embed([b[1] for b in batch], "query")
    d = encoder.embed([texts[x] for x in docs], "doc")
    group_pos = [positives[qid] for qid, _, _ in batch]
    teacher = {}
    if getattr(loss_fn, "needs_teacher", False):
        teacher["teacher"] = torch.tensor([source.teacher_scores(qid, group, positives[qid])
                                           for (qid, _, _), group in zip(batch, groups, strict=True)])
    loss = loss_fn(q, d, doc_ids=docs, positives=group_pos, **teacher)
    (loss / cfg.grad_accum).backward()
    return float(loss.detach())


def _validation(validator, topics: pd.DataFrame | None, qrels: pd.DataFrame | None, texts: dict[str, str],
                cfg: TrainConfig, rank: int, world: int) -> Validation | None:
    """The run's validation: ``validator``, or nDCG@10 over a pool for ``topics``/``qrels``; None without either."""
    if validator is not None:
        score, name = validator, getattr(validator, "__name__", "score")
    elif topics is not None:
        def score(encoder):
            return pool_ndcg(encoder, topics, qrels, texts, cfg.valid_pool, cfg.seed)
        name = "nDCG@10"
    else:
        return None
    return Validation(score, name, every=cfg.valid_every, patience=cfg.patience, checkpoint_dir=cfg.checkpoint_dir,
                      rank=rank, world=world)


# ---------------------------------------------------------------------- distributed
def _init_distributed() -> tuple[int, int]:
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        # A group left to interpreter finalisation can abort the process (SIGABRT) when gloo's worker threads
        # free tensors after the GIL is gone; the group we opened we also close, while Python is still whole.
        atexit.register(_close_distributed)
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


def _close_distributed() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def sync_gradients(params: list[torch.nn.Parameter], world: int) -> None:
    """Average gradients over ranks (what DDP does), so every rank takes the same step."""
    if world == 1:
        return
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        dist.all_reduce(p.grad)
        p.grad /= world


def seed_everything(seed: int) -> None:
    """Seed every generator training draws from (Python, numpy, torch)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
