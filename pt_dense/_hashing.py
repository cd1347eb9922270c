"""Content hashes of model weights: encoder fingerprints and the prompt bank's backbone check."""

from __future__ import annotations

import hashlib

import torch


def state_hash(state: dict[str, torch.Tensor], prefix: bytes = b"") -> str:
    """A hash of ``prefix`` and a state dict's names and values (identical weights, identical hash)."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(prefix)
    for key, tensor in sorted(state.items()):
        digest.update(key.encode())
        digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()
