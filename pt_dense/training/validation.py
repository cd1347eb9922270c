"""Validation during training: when a run is scored, what it scored, and early stopping with the best weights.

The default score is nDCG@10 of dense retrieval over a pool (the validation topics' judged documents plus a fixed
random sample of the corpus); any ``validator(encoder) -> float`` (higher is better) can replace it, e.g. minus the
contrastive entropy on a dev split for the scaling grid. With ``patience`` the start is scored too, so a run that
never beats its starting point ends with its starting weights.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import torch
import torch.distributed as dist

from pt_dense.io.atomic import atomic_file
from pt_dense.metrics import exact_scores

BEST_WEIGHTS = "best-weights.pt"


def pool_ndcg(encoder, topics: pd.DataFrame, qrels: pd.DataFrame, texts: dict[str, str], pool_size: int,
              seed: int) -> float:
    """nDCG@10 of dense retrieval over a pool: the judged documents plus a fixed random sample of the corpus."""
    judged = set(qrels["docno"].astype(str)) & set(texts)
    rng = random.Random(f"{seed}/valid")
    others = sorted(set(texts) - judged)
    pool = sorted(judged) + rng.sample(others, min(pool_size, len(others)))
    docs = encoder.encode([texts[d] for d in pool], "doc", progress=False)
    queries = encoder.encode(list(topics["query"]), "query", progress=False)
    return exact_scores(queries, topics["qid"], docs, pool, qrels, ("nDCG@10",), depth=10)["nDCG@10"]


class Validation:
    """Scores a run when due, keeps the history and the best score, and (with ``patience``) the best weights.

    ``score(encoder)`` runs on rank 0 only; under DDP its value is broadcast so that every rank stops together.
    """

    def __init__(self, score: Callable[..., float], name: str, *, every: int, patience: int,
                 checkpoint_dir: str | None, rank: int = 0, world: int = 1):
        self.score, self.name, self.every, self.patience = score, name, every, patience
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else None
        self.rank, self.world = rank, world
        self.best_weights: dict[str, torch.Tensor] | None = None

    def due(self, step: int, epoch_end: bool) -> bool:
        """Whether to validate now: every ``every`` steps, or (``every`` = 0) at each epoch's end."""
        return epoch_end if not self.every else (not epoch_end and step % self.every == 0)

    def run(self, encoder, state: dict, write: Callable[[str], None]) -> bool:
        """Score the encoder now and record it in ``state``; returns True when patience has run out."""
        encoder.weights_changed()
        value = self._shared(self.score(encoder) if self.rank == 0 else 0.0)
        entry = {"step": state["step"], "epoch": state["epoch"], self.name: value}
        state["history"]["valid"].append(entry)
        if self.rank == 0:
            write(f"step {state['step']} (epoch {state['epoch']}): validation {self.name} = {value:.4f}")
        if state["best"] is None or value > state["best"][self.name]:
            state["best"] = entry
            if self.patience:
                self.best_weights = {n: p.detach().clone() for n, p in encoder.model.named_parameters()
                                     if p.requires_grad}
            if self.checkpoint_dir and self.rank == 0:
                encoder.save(self.checkpoint_dir / "best")
                if self.patience:
                    with atomic_file(self.checkpoint_dir / BEST_WEIGHTS) as tmp:
                        encoder.save_trainable(tmp)
        stale = sum(1 for v in state["history"]["valid"] if v["step"] > state["best"]["step"])  # survives a resume
        return bool(self.patience) and stale >= self.patience

    def restore_best(self, encoder, state: dict) -> None:
        """With patience: put the best validation's weights back (from memory, or from the checkpoint folder when
        the run was resumed after the best was found)."""
        if not self.patience or state["best"] is None:
            return
        if self.best_weights is not None:
            with torch.no_grad():
                for name, param in encoder.model.named_parameters():
                    if name in self.best_weights:
                        param.copy_(self.best_weights[name])
        elif self.checkpoint_dir and (self.checkpoint_dir / BEST_WEIGHTS).exists():
            encoder.load_trainable(self.checkpoint_dir / BEST_WEIGHTS)
        encoder.weights_changed()

    def _shared(self, value: float) -> float:
        if self.world == 1:
            return float(value)
        tensor = torch.tensor([value], dtype=torch.float64)
        dist.broadcast(tensor, src=0)
        return float(tensor.item())
