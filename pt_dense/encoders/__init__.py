"""Encoders: the TorchEncoder (PyTorch) with its adapters and prompt bank, the OnnxEncoder (onnxruntime, no
torch), and their PyTerrier stages."""

from __future__ import annotations

import importlib

_EXPORTS = {"TorchEncoder": "pt_dense.encoders.torch_encoder", "OnnxEncoder": "pt_dense.encoders.onnx_encoder",
            "PromptBank": "pt_dense.encoders.bank"}
__all__ = ["OnnxEncoder", "PromptBank", "TorchEncoder"]


def __getattr__(name: str):
    if name in _EXPORTS:  # lazily: OnnxEncoder users must not pay for importing torch
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'pt_dense.encoders' has no attribute {name!r}")
