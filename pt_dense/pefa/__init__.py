"""PEFA: parameter-free adapters for any embedding retriever (Chang et al., WSDM 2024): the scores
(``pefa.core``), the PyTerrier stages (``pefa.stages``) and the choice of lam and k (``pefa.tuning``)."""

from pt_dense.pefa.core import KINDS, PEFA, drop_overlap, sparse_lookup

__all__ = ["KINDS", "PEFA", "drop_overlap", "sparse_lookup"]
