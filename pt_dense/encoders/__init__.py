"""Encoders: the BiEncoder and its PyTerrier stages."""

from pt_dense.encoders.biencoder import BiEncoder

__all__ = ["BiEncoder"]
