"""Progress bars that tell the truth: the indexing bar advances as documents are encoded (not when PyTerrier's stage
batch of 1,024 arrives whole), encoding runs its batches in an order whose cost does not drift, and BM25 counts a
document once Lucene has it."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest
import tqdm.auto

from pt_dense.encoders.batching import encode_sorted
from pt_dense.index.dense_index import DenseIndex

WORDS = "the cat dog sat on mat protein cell gene cancer risk study blood brain drug trial".split()


def docs(n: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [{"docno": f"d{i}", "text": " ".join(rng.choice(WORDS, size=int(rng.integers(1, 25))))} for i in range(n)]


class Recorder(tqdm.auto.tqdm):
    """A tqdm that records (its position, what the probe says) at every update of the bars named ``watch``."""

    watch: tuple[str, ...] = ()
    probe = staticmethod(lambda: None)
    log: ClassVar[list[tuple[str, int, object]]] = []

    def update(self, n=1):
        result = super().update(n)
        if getattr(self, "desc", None) in self.watch:
            Recorder.log.append((self.desc, self.n, Recorder.probe()))
        return result


@pytest.fixture
def recorder(monkeypatch):
    Recorder.log = []
    monkeypatch.setattr(tqdm.auto, "tqdm", Recorder)
    return Recorder


def test_indexing_bar_advances_with_each_encoded_batch_not_with_each_stage_batch(tiny_encoder, tmp_path, recorder):
    tiny_encoder.batch_size = 4
    forwards = []
    forward = tiny_encoder.forward
    tiny_encoder.forward = lambda batch: forwards.append(len(batch["input_ids"])) or forward(batch)
    recorder.watch, recorder.probe = ("indexing",), lambda: len(forwards)

    corpus = docs(40)  # one stage batch: PyTerrier hands the document encoder all 40 at once
    index = DenseIndex(tmp_path / "idx")
    (tiny_encoder.doc_encoder() >> index.indexer(total=len(corpus))).index(corpus)

    assert len(index) == 40 and len(forwards) == 10
    positions = [n for _, n, _ in recorder.log]
    batches_done = [probe for _, _, probe in recorder.log]
    assert positions == list(range(4, 41, 4))  # 4 documents more after each model batch...
    assert batches_done == list(range(1, 11))  # ...as soon as that batch is encoded, long before the stage returns


def test_indexing_bar_counts_records_of_vectors_computed_elsewhere(tmp_path, recorder):
    recorder.watch = ("indexing",)
    vectors = np.eye(8, dtype=np.float32)
    DenseIndex(tmp_path / "idx").indexer(chunk_size=3).index(
        {"docno": f"d{i}", "doc_vec": v} for i, v in enumerate(vectors))
    assert [n for _, n, _ in recorder.log] == list(range(1, 9))


def test_batches_run_in_an_order_whose_cost_does_not_drift_and_rows_come_back_in_input_order():
    rng = np.random.default_rng(1)
    ids = [list(range(int(n))) for n in rng.integers(1, 200, size=640)]
    def run(batch):
        return np.array([[len(x), x[-1]] for x in batch], dtype=np.float32)

    def widths_of_one_run() -> list[int]:
        widths = []
        out = encode_sorted(ids, lambda b: widths.append(max(map(len, b))) or run(b), 2, 32, progress=False, desc="t")
        np.testing.assert_array_equal(out[:, 0], [len(x) for x in ids])
        np.testing.assert_array_equal(out[:, 1], [x[-1] for x in ids])
        return widths

    widths = widths_of_one_run()
    assert len(widths) == 20 and sorted(widths, reverse=True) != widths  # not longest first...
    median = np.median(widths)
    for half in (widths[:10], widths[10:]):  # ...each half of the run holds wide and narrow batches alike
        assert min(half) < median < max(half)
    assert widths_of_one_run() == widths  # a fixed order: the same batches every run


@pytest.mark.integration
def test_bm25_counts_documents_once_lucene_has_added_them(tmp_path, recorder):
    from pt_dense.bm25 import build_index

    read = []
    recorder.watch, recorder.probe = ("BM25 (lucene) indexing",), lambda: len(read)

    def source():
        for d in docs(2500):
            read.append(d["docno"])
            yield d

    build_index(source(), tmp_path / "bm25")
    assert [n for _, n, _ in recorder.log] == [1024, 2048, 2500]
    assert [probe for _, _, probe in recorder.log] == [1024, 2048, 2500]
