"""Distillation from a teacher's scores (e.g. the hybrid BM25 + dense ranking), on top of the contrastive loss.

Each query's group is [positive, hard negatives...] as for :mod:`.contrastive`; the teacher scored the same
documents (a ``B x G`` tensor, from a negative source with ``teacher_scores`` such as ``"hybrid"``). The loss is the
contrastive loss plus ``weight`` times KL(teacher || student) over each group's softmax distributions, the teacher's
at ``teacher_temperature`` and the student's at ``temperature`` (RocketQAv2-style listwise distillation): the student
learns how the teacher orders the hard negatives, not only that the positive beats them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from pt_dense.training.losses.contrastive import contrastive_loss


class DistillLoss(nn.Module):
    """Contrastive loss + ``weight`` x listwise KL to the teacher's scores over each query's group."""

    name = "distill"
    needs_teacher = True

    def __init__(self, temperature: float = 0.05, teacher_temperature: float = 0.1, weight: float = 1.0):
        super().__init__()
        if not (temperature > 0 and teacher_temperature > 0):
            raise ValueError(f"temperatures must be positive, not {temperature} and {teacher_temperature}")
        if not weight >= 0:
            raise ValueError(f"weight must be >= 0, not {weight}")
        self.temperature, self.teacher_temperature, self.weight = temperature, teacher_temperature, weight

    def config(self) -> dict:
        return {"name": self.name, "temperature": self.temperature,
                "teacher_temperature": self.teacher_temperature, "weight": self.weight}

    def forward(self, queries: torch.Tensor, docs: torch.Tensor, *, teacher: torch.Tensor,
                doc_ids: Sequence[str] | None = None, positives: Sequence[set[str]] | None = None) -> torch.Tensor:
        contrastive = contrastive_loss(queries, docs, temperature=self.temperature, doc_ids=doc_ids,
                                       positives=positives)
        groups = docs.view(queries.shape[0], -1, docs.shape[-1])  # B x G x d, this rank's own groups
        if teacher.shape != groups.shape[:2]:
            raise ValueError(f"teacher scores of shape {tuple(teacher.shape)} for groups {tuple(groups.shape[:2])}")
        student = torch.einsum("bd,bgd->bg", queries, groups) / self.temperature
        target = F.log_softmax(teacher.to(student) / self.teacher_temperature, dim=-1)
        kl = F.kl_div(F.log_softmax(student, dim=-1), target, log_target=True, reduction="batchmean")
        return contrastive + self.weight * kl
