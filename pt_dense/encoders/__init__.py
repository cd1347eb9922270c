"""Encoders: the BiEncoder (PyTorch), the OnnxEncoder (onnxruntime, no torch), and their PyTerrier stages."""

from __future__ import annotations

import importlib

_EXPORTS = {"BiEncoder": "pt_dense.encoders.biencoder", "OnnxEncoder": "pt_dense.encoders.onnx_encoder"}
__all__ = ["BiEncoder", "OnnxEncoder"]


def __getattr__(name: str):
    if name in _EXPORTS:  # lazily: OnnxEncoder users must not pay for importing torch
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'pt_dense.encoders' has no attribute {name!r}")
