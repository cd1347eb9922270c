"""The one contrastive loss: InfoNCE over [positive, hard negatives] groups with in-batch negatives.

Query i's group is docs[i*G : (i+1)*G] (its positive first, then G-1 hard negatives); every other group in the
(global) batch serves as in-batch negatives. A document that is a judged positive of query i (another query's
positive, or a mis-mined negative) is masked out of query i's denominator, so a positive is never a negative.
Under ``torch.distributed`` the embeddings of all ranks are gathered (with gradients), each rank scores its own
queries against the global batch, and the loss is scaled by ``world / global_queries`` so that the averaged
gradients equal those of one process on the whole batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_nn
import torch.nn.functional as F
from torch import nn


class ContrastiveLoss(nn.Module):
    """:func:`contrastive_loss` as a module with its configuration (the trainer's default loss, ``"contrastive"``)."""

    name = "contrastive"

    def __init__(self, temperature: float = 0.05):
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"temperature must be positive, not {temperature}")
        self.temperature = temperature

    def config(self) -> dict:
        return {"name": self.name, "temperature": self.temperature}

    def forward(self, queries: torch.Tensor, docs: torch.Tensor, *, doc_ids: Sequence[str] | None = None,
                positives: Sequence[set[str]] | None = None) -> torch.Tensor:
        return contrastive_loss(queries, docs, temperature=self.temperature, doc_ids=doc_ids, positives=positives)


def contrastive_loss(
    queries: torch.Tensor,
    docs: torch.Tensor,
    *,
    temperature: float = 0.05,
    doc_ids: Sequence[str] | None = None,
    positives: Sequence[set[str]] | None = None,
) -> torch.Tensor:
    """Mean InfoNCE of ``queries`` (B x d) against ``docs`` (B*G x d), target of query i = doc i*G.

    ``doc_ids`` (one per doc) and ``positives`` (one set per query) mask judged positives out of the negatives.
    In a distributed run, pass the local tensors: they are gathered here.
    """
    if docs.shape[0] % queries.shape[0] != 0:
        raise ValueError(f"{docs.shape[0]} documents for {queries.shape[0]} queries: expected a multiple")
    group = docs.shape[0] // queries.shape[0]
    world, rank = _world()
    local_queries = queries.shape[0]
    if world > 1:
        docs = torch.cat(dist_nn.all_gather(docs), dim=0)
        if doc_ids is not None:
            gathered: list = [None] * world
            dist.all_gather_object(gathered, list(doc_ids))
            doc_ids = [d for part in gathered for d in part]
        sizes: list = [None] * world
        dist.all_gather_object(sizes, local_queries)
        offset, total_queries = sum(sizes[:rank]), sum(sizes)
    else:
        offset, total_queries = 0, local_queries
    scores = queries @ docs.T / temperature
    targets = (torch.arange(local_queries, device=scores.device) + offset) * group
    if doc_ids is not None and positives is not None:
        mask = torch.tensor([[d in pos for d in doc_ids] for pos in positives], device=scores.device)
        mask[torch.arange(local_queries), targets] = False
        scores = scores.masked_fill(mask, float("-inf"))
    loss = F.cross_entropy(scores, targets, reduction="sum")
    return loss * world / total_queries


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0
