"""Kill -9 at many points of every writer, and readers running while a writer publishes generations.

After every kill the index opens and searches, holding either the old or the new content in full; a killed training
run resumes to exactly the weights of an uninterrupted one. The counts are printed (``-s``) for the README.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import WORDS, tiny_bert, write_beir
from fault_writer import overwrite

from pt_dense import BiEncoder, IndexFormatError
from pt_dense.index import DenseIndex

WRITER = Path(__file__).with_name("fault_writer.py")
KILLS = 20


def start(*args: str) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, str(WRITER), *args], stdout=subprocess.PIPE, text=True,
                               env=os.environ | {"PYTHONPATH": str(WRITER.parent)})
    assert process.stdout.readline().strip() == "ready"
    return process


def run_to_end(*args: str) -> float:
    """Run a writer uninterrupted; the seconds from the start of its write to its end."""
    process = start(*args)
    started = time.perf_counter()
    assert process.wait(timeout=600) == 0
    return time.perf_counter() - started


def kill_at(delay: float, *args: str) -> bool:
    """Start a writer, SIGKILL it ``delay`` s after it began writing; True if it was still running."""
    process = start(*args)
    time.sleep(delay)
    alive = process.poll() is None
    process.send_signal(signal.SIGKILL)
    process.wait()
    return alive


def top(index: DenseIndex) -> list[str]:
    query = np.zeros(index.dim, np.float32)
    query[0] = 1
    # a plain vector carries no encoder: vouch for it as the encoder the index stands for (None: foreign vectors)
    retriever = index.retriever(k=5, encoder=index.fingerprint)
    return retriever(pd.DataFrame({"qid": ["1"], "query_vec": [query]}))["docno"].tolist()


def fingerprint_of_contents(path: Path) -> tuple:
    index = DenseIndex(path)
    return len(index), index.fingerprint, tuple(top(index)), float(np.asarray(index.vectors[:50]).sum())


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["index", "refresh", "add"])
def test_killing_an_index_writer_anywhere_leaves_a_whole_index(tmp_path, mode):
    path = tmp_path / "idx"
    overwrite(str(path), seed=0)
    states = {fingerprint_of_contents(path)}
    duration = run_to_end(mode, str(path), "1")  # how long one write takes, uninterrupted
    states.add(fingerprint_of_contents(path))
    killed_mid_write = 0
    for point in range(KILLS):
        seed = 2 + point
        killed_mid_write += kill_at(duration * (point + 0.5) / KILLS, mode, str(path), str(seed))
        found = fingerprint_of_contents(path)  # opens and searches, whatever the kill interrupted
        assert len(found[2]) == 5 and found[0] in ((200_000, 250_000) if mode == "add" else (200_000,))
        if found[0] == 250_000:
            overwrite(str(path), seed=0)  # the add went through before the kill: start the next one from 200,000
        states.add(found)
    assert killed_mid_write >= KILLS // 2  # the kills landed inside the writes, not after them
    run_to_end(mode, str(path), "99")  # the next write succeeds and removes what the killed ones left
    assert not list(path.glob(".tmp-*")) and not list(path.glob(".trash-*"))
    assert len(list(path.glob("gen-*"))) == 1
    print(f"\n{mode}: {KILLS} kills ({killed_mid_write} mid-write) over {duration:.1f} s; the index opened and "
          f"searched after every one; {len(states)} distinct complete states seen")


@pytest.mark.slow
def test_killing_training_anywhere_resumes_to_the_uninterrupted_weights(tmp_path):
    docs = [{"docno": f"d{i}", "title": "", "text": " ".join(WORDS[i : i + 6])} for i in range(16)]
    queries = [{"qid": f"q{i}", "query": " ".join(WORDS[i : i + 3])} for i in range(12)]
    data = write_beir(tmp_path / "data", docs, queries, {"train": [(f"q{i}", f"d{i}", 1) for i in range(12)]})
    BiEncoder(*tiny_bert(), query_max_length=16, doc_max_length=16).save(tmp_path / "model")
    duration = run_to_end("train", str(data), str(tmp_path / "model"), str(tmp_path / "reference"))
    reference = (tmp_path / "reference" / "adapter_model.safetensors").read_bytes()
    for point in range(KILLS):
        out = tmp_path / f"run{point}"
        kill_at(duration * (point + 0.5) / KILLS, "train", str(data), str(tmp_path / "model"), str(out))
        if out.exists():  # saved whole or not at all
            BiEncoder.from_pretrained(str(out))
        run_to_end("train", str(data), str(tmp_path / "model"), str(out))  # resume from its checkpoints
        assert (out / "adapter_model.safetensors").read_bytes() == reference, point
    print(f"\ntrain: {KILLS} kills over {duration:.1f} s; every resumed run ended bit-identical to the reference")


def test_readers_never_fail_while_a_writer_publishes_generations(tmp_path):
    path = tmp_path / "idx"
    overwrite(str(path), seed=0, count=2000, dim=32)
    writer = start("publish", str(path), "100")  # refreshes, overwrites, adds and deletes in turn
    reads, failures, generations = 0, [], set()
    while writer.poll() is None or reads < 1000:
        try:
            index = DenseIndex(path)
            assert len(top(index)) == 5 and index.live_count in (2000, 2050, 2100)
            generations.add(index.generation.name)
            index.close()
        except (AssertionError, OSError, IndexFormatError, ValueError) as err:
            failures.append(repr(err))
        reads += 1
    assert writer.wait() == 0
    assert failures == [] and reads >= 1000
    assert len(generations) > 10  # the reads really ran across many publications
    print(f"\nconcurrency: {reads} reads while 100 generations (refreshes, overwrites, adds, deletes) were "
          f"published: {len(failures)} failures, "
          f"{len(generations)} generations seen")
