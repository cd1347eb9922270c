"""Content hashes (weights, seeds) without importing torch: encoder fingerprints, the prompt bank's backbone check,
seeded sampling."""

from __future__ import annotations

import hashlib

import numpy as np


def state_hash(state: dict, prefix: bytes = b"") -> str:
    """A hash of ``prefix`` and a state dict's names and values (identical weights, identical hash).

    Tensors are read through their own methods (``detach``, ``float``, ``cpu``), so this module needs no torch."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(prefix)
    for key, tensor in sorted(state.items()):
        digest.update(key.encode())
        digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def seeded_rng(*parts: object) -> np.random.Generator:
    """A numpy generator that is a pure function of ``parts`` (e.g. seed, epoch, qid), stable across processes."""
    key = "/".join(map(str, parts)).encode()
    return np.random.default_rng(int(hashlib.blake2b(key, digest_size=8).hexdigest(), 16))
