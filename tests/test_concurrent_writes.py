"""Writers from several processes and several objects on one index: every change lands, none is lost.

Each writer builds on the generation that is current under the index lock, never on the one it read before, so the
final content equals applying the same changes one after another (in any order: these changes commute).
"""

from __future__ import annotations

import multiprocessing

import numpy as np
import pandas as pd
import pytest

from pt_dense import InputError
from pt_dense.index import DenseIndex

DIM, INITIAL, WORKERS, ROUNDS = 8, 40, 4, 6


def unit(n: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def build(path) -> DenseIndex:
    index = DenseIndex(path)
    index.indexer(progress=False).index({"docno": f"d{i}", "doc_vec": v} for i, v in enumerate(unit(INITIAL, 0)))
    return index


def worker_changes(worker: int) -> list[tuple[str, list[str], np.ndarray | None]]:
    """The changes of one worker: per round, add 3 documents of its own, delete one initial document of its share
    and, from the second round, one of the documents it added the round before."""
    changes = []
    for round_ in range(ROUNDS):
        docnos = [f"w{worker}-r{round_}-{i}" for i in range(3)]
        changes.append(("add", docnos, unit(3, 1000 * worker + round_)))
        changes.append(("delete", [f"d{worker * ROUNDS + round_}"], None))
        if round_:
            changes.append(("delete", [f"w{worker}-r{round_ - 1}-0"], None))
    return changes


def apply(index: DenseIndex, change: tuple[str, list[str], np.ndarray | None]) -> None:
    kind, docnos, vectors = change
    if kind == "add":
        index.add(pd.DataFrame({"docno": docnos, "doc_vec": list(vectors)}))
    else:
        index.delete(docnos)


def run_worker(path: str, worker: int, start) -> None:
    index = DenseIndex(path)
    index.meta  # noqa: B018  (pins the generation before the others write: a stale object from here on)
    start.wait()
    for change in worker_changes(worker):
        apply(index, change)


def content(index: DenseIndex) -> dict[str, bytes]:
    """docno -> vector bytes of the live documents."""
    index = DenseIndex(index.path)
    return {docno: vector.tobytes() for docnos, vectors in index.chunks() for docno, vector in
            zip(docnos, vectors, strict=True)}


def test_concurrent_adds_and_deletes_from_several_processes_equal_the_serial_result(tmp_path):
    concurrent, serial = build(tmp_path / "concurrent"), build(tmp_path / "serial")
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(WORKERS)
    processes = [context.Process(target=run_worker, args=(str(concurrent.path), w, start)) for w in range(WORKERS)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=300)
    assert [p.exitcode for p in processes] == [0] * WORKERS
    for worker in range(WORKERS):
        for change in worker_changes(worker):
            apply(serial, change)
    got, expected = content(concurrent), content(serial)
    assert got == expected
    assert len(got) == INITIAL + WORKERS * (3 * ROUNDS - (ROUNDS - 1) - ROUNDS)
    assert DenseIndex(concurrent.path).live_count == len(expected)  # tombstones: every delete kept
    assert DenseIndex(concurrent.path).verify_files()


def test_two_objects_on_one_path_both_land(tmp_path):
    a, b = build(tmp_path / "idx"), DenseIndex(tmp_path / "idx")
    b.meta  # noqa: B018  (b read the first generation)
    a.add(pd.DataFrame({"docno": ["A"], "doc_vec": list(unit(1, 7))}))
    b.add(pd.DataFrame({"docno": ["B"], "doc_vec": list(unit(1, 8))}))
    docnos = set(content(a))
    assert {"A", "B"} <= docnos and len(docnos) == INITIAL + 2


def test_an_add_that_read_the_index_before_a_delete_keeps_the_delete(tmp_path):
    """What `pt-dense add` racing `pt-dense delete` did: the add's object read the index before the delete."""
    adder, deleter = build(tmp_path / "idx"), DenseIndex(tmp_path / "idx")
    adder.meta  # noqa: B018
    deleter.delete(["d3"])
    adder.add(pd.DataFrame({"docno": ["new"], "doc_vec": list(unit(1, 9))}))
    docnos = set(content(adder))
    assert "d3" not in docnos and "new" in docnos


def test_a_change_checks_against_the_content_current_under_the_lock(tmp_path):
    first, second = build(tmp_path / "idx"), DenseIndex(tmp_path / "idx")
    second.meta  # noqa: B018
    first.add(pd.DataFrame({"docno": ["X"], "doc_vec": list(unit(1, 3))}))
    with pytest.raises(InputError, match=r"in .* already"):
        second.add(pd.DataFrame({"docno": ["X"], "doc_vec": list(unit(1, 4))}))
    first.delete(["d5"])
    with pytest.raises(InputError, match="not in"):
        second.delete(["d5"])  # deleted meanwhile through another object: as if run after it
