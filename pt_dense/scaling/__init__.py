"""Scaling laws for dense retrieval (Fang et al., SIGIR 2024).

- :mod:`~pt_dense.scaling.measure`: contrastive log-likelihood L, as a function, a candidates stage and an
  ir_measures measure for ``pt.Experiment``;
- :mod:`~pt_dense.scaling.laws`: power-law fits in model size N and annotations D, and budget planning;
- :mod:`~pt_dense.scaling.grid`: the grid of (model size, annotations) cells behind ``pt-dense scaling run``.
"""

from pt_dense.scaling.grid import GridConfig, load_cells, non_embedding_parameters, run_grid, truncated_encoder
from pt_dense.scaling.laws import BudgetPlan, ScalingLaw, fit_law
from pt_dense.scaling.measure import CLL, ContrastiveCandidates, contrastive_candidates, contrastive_loglik

__all__ = [
    "CLL", "BudgetPlan", "ContrastiveCandidates", "GridConfig", "ScalingLaw", "contrastive_candidates",
    "contrastive_loglik", "fit_law", "load_cells", "non_embedding_parameters", "run_grid", "truncated_encoder",
]
