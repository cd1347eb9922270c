"""Dense indexes on disk, their indexer, FAISS retrievers (a table of kinds), the vector scorer, refresh by a
corrector, the per-collection cache, and pyterrier_dr FlexIndex folders opened in place (open_flex)."""

from pt_dense.index.cached import add_documents, build_index, cached_index, cached_index_path, delete_documents
from pt_dense.index.dense_index import DenseIndex
from pt_dense.index.flex import FlexIndexView, is_flex, open_flex
from pt_dense.index.retriever import RETRIEVER_KINDS, register_retriever_kind
from pt_dense.index.shards import encode_shard, merge_shards, parse_shard

__all__ = ["RETRIEVER_KINDS", "DenseIndex", "FlexIndexView", "add_documents", "build_index", "cached_index",
           "cached_index_path", "delete_documents", "encode_shard", "is_flex", "merge_shards", "open_flex",
           "parse_shard", "register_retriever_kind"]
