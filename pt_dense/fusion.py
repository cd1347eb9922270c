"""Hybrid BM25 + dense stages, built from PyTerrier's own operators and fusion.

- :func:`~pt_dense.linear_fusion`: per-query min-max normalised scores, mixed with a weight
  (``w * (a >> norm) + (1 - w) * (b >> norm)``: PyTerrier's ``*`` and ``+``; a document one system misses counts 0
  on that side, which is that system's minimum).
- :func:`~pt_dense.rrf`: reciprocal rank fusion (pyterrier-alpha's ``RRFusion``).
"""

from __future__ import annotations

import pyterrier as pt

from pt_dense.errors import InputError


def minmax() -> pt.Transformer:
    """Per-query min-max score normalisation to [0, 1] (PyTerrier's own).

    Returns:
        The normalising stage.
    """
    return pt.pipelines.PerQueryMaxMinScoreTransformer()


def linear_fusion(first: pt.Transformer, second: pt.Transformer, weight: float = 0.5) -> pt.Transformer:
    """``weight * norm(first) + (1 - weight) * norm(second)``, scores min-max normalised per query.

    Args:
        first: A retrieval stage.
        second: Another.
        weight: The first system's share, in [0, 1].

    Returns:
        The fused stage.

    Raises:
        InputError: ``weight`` outside [0, 1].

    Example::

        hybrid = ptd.linear_fusion(bm25, dense, weight=0.3)
    """
    if not 0.0 <= weight <= 1.0:
        raise InputError(f"weight must be in [0, 1], not {weight}")
    return weight * (first >> minmax()) + (1.0 - weight) * (second >> minmax())


def rrf(*systems: pt.Transformer, k: int = 60, num_results: int = 1000) -> pt.Transformer:
    """Reciprocal rank fusion: score = sum over systems of 1 / (k + rank).

    Args:
        *systems: Two or more retrieval stages.
        k: The rank constant.
        num_results: Documents kept a query.

    Returns:
        The fused stage.

    Raises:
        InputError: Fewer than two systems.

    Example::

        hybrid = ptd.rrf(bm25, dense)
    """
    if len(systems) < 2:
        raise InputError("reciprocal rank fusion needs at least two systems")
    from pyterrier_alpha.fusion import RRFusion

    return RRFusion(*systems, k=k, num_results=num_results)
