"""PEFA: parameter-free adapters for any embedding retriever (Chang et al., WSDM 2024): the memory and scores
(``pefa.core``, which knows no stage), the PyTerrier stages built on it (``pefa.stages``), the choice of lam and k
by scoring those stages (``pefa.tuning``), and :class:`~pt_dense.PEFA`, which puts them together (``pefa.api``)."""

from pt_dense.pefa.api import PEFA
from pt_dense.pefa.common import KINDS, drop_overlap, sparse_lookup

__all__ = ["KINDS", "PEFA", "drop_overlap", "sparse_lookup"]
