"""Encoders: the TorchEncoder (PyTorch) with its adapters and prompt bank, the OnnxEncoder (onnxruntime, no
torch), and their PyTerrier stages. Names load lazily: OnnxEncoder users must not pay for importing torch."""

from __future__ import annotations

from pt_dense.io.lazy import lazy_exports

_EXPORTS = {"TorchEncoder": ".torch_encoder", "OnnxEncoder": ".onnx_encoder", "PromptBank": ".bank"}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
