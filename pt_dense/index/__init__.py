"""Dense indexes on disk, their indexer, FAISS retrievers (a table of kinds), the vector scorer, refresh by a
corrector, and the per-collection cache."""

from pt_dense.index.cached import build_index, cached_index, cached_index_path
from pt_dense.index.dense_index import DenseIndex
from pt_dense.index.retriever import RETRIEVER_KINDS, register_retriever_kind

__all__ = ["RETRIEVER_KINDS", "DenseIndex", "build_index", "cached_index", "cached_index_path",
           "register_retriever_kind"]
