"""Dense indexes on disk and their FAISS retrievers and vector scorer."""

from pt_dense.index.dense_index import DenseIndex

__all__ = ["DenseIndex"]
