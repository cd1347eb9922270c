"""Which arithmetic an encoder runs inference in: fp32, bf16 autocast, or int8 (dynamically quantised linear layers).

``"auto"`` takes the fastest path that keeps retrieval quality (nDCG@10 within 0.005 of fp32 on SciFact and
NFCorpus, measured by ``bench/encode.py --quality``) on the hardware it finds:

- a CUDA GPU with bfloat16: ``bf16`` (tensor cores);
- a CPU with AMX (``amx_bf16``): ``bf16`` (its matrix units run bfloat16 several times faster than fp32);
- a CPU with AVX512-VNNI or AVX-VNNI and no AMX: ``int8`` (fbgemm's int8 kernels; bf16 there is emulated and slower
  than fp32);
- anything else: ``fp32``.

Training always runs in fp32 on the model itself; only :meth:`TorchEncoder.encode` uses the chosen path. The
precision is not part of an encoder's fingerprint (the weights are the same; the vectors differ from fp32 ones by
about 1e-3 in cosine) but an index records it beside the encoder. bf16 and int8 vectors also depend slightly (about
1e-4) on which texts share a batch: where builds must agree to 1e-6 (a sharded build against a one-process one),
use ``precision="fp32"`` or set ``PT_DENSE_PRECISION=fp32``.
"""

from __future__ import annotations

import os
import warnings
from functools import cache
from pathlib import Path

import torch

from pt_dense.errors import InputError

PRECISIONS = ("auto", "fp32", "bf16", "int8")
#: the environment variable that sets the default for every encoder (e.g. ``fp32`` for bit-reproducible builds)
PRECISION_ENV = "PT_DENSE_PRECISION"


@cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (``/proc/cpuinfo``; empty where there is none, e.g. macOS)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    lines = [line for line in text.splitlines() if line.startswith("flags")]
    return frozenset(flag for line in lines for flag in line.split(":", 1)[1].split())


def resolve_precision(requested: str | None, device: torch.device, flags: frozenset[str] | None = None) -> str:
    """The precision ``requested`` stands for on ``device`` (None: $PT_DENSE_PRECISION, else ``"auto"``, resolved;
    an impossible one refused)."""
    requested = requested or os.environ.get(PRECISION_ENV) or "auto"
    if requested not in PRECISIONS:
        raise InputError(f"precision must be one of {', '.join(PRECISIONS)}, not {requested!r}")
    flags = cpu_flags() if flags is None else flags
    if device.type == "cuda":
        if requested == "int8":
            raise InputError("precision='int8' runs on the CPU only; on a GPU use 'bf16' or 'fp32'")
        if requested == "auto":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
        return requested
    if requested != "auto":
        return requested
    if "amx_bf16" in flags:
        return "bf16"
    if flags & {"avx512_vnni", "avx_vnni"} and "fbgemm" in torch.backends.quantized.supported_engines:
        return "int8"
    return "fp32"


def quantized(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` (a copy the caller owns: it is changed) for int8 inference: every ``nn.Linear`` dynamically
    quantised (int8 weights, activations quantised per batch), the rest (embeddings, layer norms) in fp32."""
    with warnings.catch_warnings():  # torch 2.13 marks its quantised-tensor constructors deprecated (issue 184982)
        warnings.filterwarnings("ignore", message=".*quantize_per_tensor.*", category=UserWarning)
        return torch.ao.quantization.quantize_dynamic(model.eval(), {torch.nn.Linear}, dtype=torch.qint8, inplace=True)
