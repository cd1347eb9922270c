"""Scaling laws for dense retrieval (Fang et al., SIGIR 2024).

- ``scaling.measure``: contrastive log-likelihood L, as a function, a candidates stage and an
  ir_measures measure for ``pt.Experiment``;
- ``scaling.laws``: power-law fits in model size N and annotations D, and budget planning;
- ``scaling.grid``: the grid of (model size, annotations) cells behind ``pt-dense scaling run``;
- ``scaling.run``: the other ``pt-dense scaling`` steps (measure one encoder, fit a grid's law).

Names are imported lazily, so reading :class:`GridConfig` (the CLI's defaults) does not import torch.
"""

from __future__ import annotations

from pt_dense.io.lazy import lazy_exports

_EXPORTS = {
    "GridConfig": ".config", "load_cells": ".grid", "non_embedding_parameters": ".grid", "run_grid": ".grid",
    "truncated_encoder": ".grid", "BudgetPlan": ".laws", "ScalingLaw": ".laws", "fit_law": ".laws",
    "CLL": ".measure", "ContrastiveCandidates": ".measure", "contrastive_candidates": ".measure",
    "contrastive_loglik": ".measure", "fit_grid": ".run", "measure_encoder": ".run",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
