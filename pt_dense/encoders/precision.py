"""Which runtime and arithmetic an encoder's inference runs in.

- ``fp32``: PyTorch in float32, the reference every other path is measured against (and what training uses);
- ``bf16``: PyTorch under bfloat16 autocast (GPUs, and CPUs with AMX);
- ``onnx``: ONNX Runtime in float32 (the same vectors as ``fp32`` to about 1e-7, without PyTorch's per-call cost);
- ``int8``: ONNX Runtime with int8 weights (per channel) and dynamically quantised activations;
- ``auto`` (the default): on a CUDA GPU, ``bf16`` where it has bfloat16, else ``fp32``; on a CPU, ``int8``, the
  fastest path measured on this project's machine that keeps nDCG@10 within 0.005 of ``fp32`` on SciFact and
  NFCorpus (``python bench/encode.py --quality ...``; PyTorch's own dynamic int8 lost 0.017 and bf16 without AMX ran
  slower than fp32, so neither is chosen).

ONNX paths export the model once per weights and settings into the cache (``$PT_DENSE_CACHE/onnx/``) the first time
it encodes. Training always runs in fp32 PyTorch on the model itself. The precision is not part of an encoder's
fingerprint (the weights are the same) but an index records it beside the encoder. bf16 and int8 vectors differ
from fp32 ones by about 1e-3 and depend slightly on which texts share a batch: where builds must agree to 1e-6 (a
sharded build against a one-process one), use ``precision="fp32"`` or set ``PT_DENSE_PRECISION=fp32``.
"""

from __future__ import annotations

import os
from importlib.util import find_spec
from typing import TYPE_CHECKING

from pt_dense.errors import InputError

if TYPE_CHECKING:
    import torch

PRECISIONS = ("auto", "fp32", "bf16", "onnx", "int8")
#: the precisions that run in ONNX Runtime, and the quantisation their export applies
ONNX_QUANTIZE = {"onnx": None, "int8": "int8"}
#: the environment variable that sets the default for every encoder (e.g. ``fp32`` for bit-reproducible builds)
PRECISION_ENV = "PT_DENSE_PRECISION"


def resolve_precision(requested: str | None, device: torch.device) -> str:
    """The precision ``requested`` stands for on ``device`` (None: $PT_DENSE_PRECISION, else ``"auto"``, resolved;
    an impossible one refused)."""
    requested = requested or os.environ.get(PRECISION_ENV) or "auto"
    if requested not in PRECISIONS:
        raise InputError(f"precision must be one of {', '.join(PRECISIONS)}, not {requested!r}")
    if device.type != "cpu":
        if requested in ONNX_QUANTIZE:
            raise InputError(f"precision={requested!r} runs ONNX Runtime on the CPU; on a GPU use 'bf16' or 'fp32'")
        if requested == "auto":
            import torch  # a GPU's device means torch is loaded; this module itself stays light for the CLI

            return "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
        return requested
    if requested == "auto":
        return "int8" if find_spec("onnxruntime") else "fp32"
    return requested
