"""PEFA: parameter-free adapters for any embedding retriever (Chang et al., WSDM 2024): the scores
(:mod:`.core`), the PyTerrier stages (:mod:`.stages`) and the choice of lam and k (:mod:`.tuning`)."""

from pt_dense.pefa.core import KINDS, PEFA, drop_overlap, sparse_lookup

__all__ = ["KINDS", "PEFA", "drop_overlap", "sparse_lookup"]
