"""A writer for tests/test_faults.py, run as a subprocess that the test kills with SIGKILL at chosen moments.

    python fault_writer.py index   INDEX SEED        overwrite INDEX with vectors drawn from SEED
    python fault_writer.py refresh INDEX SEED        refresh INDEX in place with a corrector drawn from SEED
    python fault_writer.py add     INDEX SEED        add 50,000 documents drawn from SEED to INDEX
    python fault_writer.py train   DATA MODEL OUT    train_collection(... resume=True, checkpoint_every=1)
    python fault_writer.py publish INDEX COUNT       COUNT generations: refreshes, overwrites, adds and deletes in turn

Prints "ready" (flushed) when its imports and set-up are done and the write begins.
"""

from __future__ import annotations

import sys

import numpy as np
import torch

from pt_dense.corrector import Corrector
from pt_dense.index import DenseIndex

COUNT, DIM = 200_000, 64


def vectors(seed: int, count: int = COUNT, dim: int = DIM) -> np.ndarray:
    rows = np.random.default_rng(seed).normal(size=(count, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def overwrite(path: str, seed: int, count: int = COUNT, dim: int = DIM) -> None:
    rows = vectors(seed, count, dim)
    DenseIndex(path).indexer(overwrite=True, progress=False).index(
        {"docno": f"d{i}", "doc_vec": v} for i, v in enumerate(rows))


def refresh(path: str, seed: int) -> None:
    index = DenseIndex(path)
    corrector = Corrector(index.dim, width=16, depth=2)
    for p in corrector.parameters():
        p.data.normal_(0, 0.01, generator=torch.Generator().manual_seed(seed))
    corrector.target = {"fingerprint": f"encoder-{seed:04d}".ljust(32, "0"), "name": f"seed {seed}"}
    corrector.source = index.base_fingerprint
    index.refresh(corrector)


def add(path: str, seed: int, count: int = 50_000) -> None:
    index = DenseIndex(path)
    rows = vectors(seed, count, index.dim)
    index.add([{"docno": f"s{seed}-{i}", "doc_vec": v} for i, v in enumerate(rows)],
              encoder=index.fingerprint)  # plain vectors, vouched for as the encoder a refresh stood the index for


def main(mode: str, *args: str) -> None:
    if mode == "train":
        from pt_dense.training.run import train_collection

        data, model, out = args
        print("ready", flush=True)
        train_collection(data, out, model=model, epochs=3, batch_size=4, resume=True, checkpoint_every=1,
                         progress=False)
        return
    path, number = args[0], int(args[1])
    print("ready", flush=True)
    if mode == "index":
        overwrite(path, number)
    elif mode == "refresh":
        refresh(path, number)
    elif mode == "add":
        add(path, number)
    else:
        for generation in range(number):
            if generation % 4 == 0:
                refresh(path, generation)
            elif generation % 4 == 1:
                overwrite(path, generation, 2000, 32)
            elif generation % 4 == 2:
                add(path, generation, 100)
            else:
                DenseIndex(path).delete([f"s{generation - 1}-{i}" for i in range(50)])


if __name__ == "__main__":
    main(*sys.argv[1:])
