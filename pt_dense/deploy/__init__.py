"""Deployment: ONNX export, Pyserini/Lucene indexes, the Java bridge, and the stages that search them."""

from __future__ import annotations

import importlib

_EXPORTS = {"LuceneDense": "pt_dense.deploy.lucene", "PyseriniFaiss": "pt_dense.deploy.lucene"}
__all__ = ["LuceneDense", "PyseriniFaiss"]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'pt_dense.deploy' has no attribute {name!r}")
