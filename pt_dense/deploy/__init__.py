"""Deployment: Pyserini/Lucene indexes and the stages that search them (the ONNX export lives with the encoders,
which run it by default on CPUs; the Java bridge's build and the JVM start live in ``pt_dense.io``)."""

from __future__ import annotations

from pt_dense.io.lazy import lazy_exports

_EXPORTS = {"LuceneDense": ".lucene", "PyseriniFaiss": ".lucene"}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
