"""The house: one-way layers, a CLI that loads no torch for --help, and extension points that are tables by name."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import WORDS

from pt_dense import InputError, export
from pt_dense.encoders.adapters import Adapter, Lora, Prompts
from pt_dense.index.dense_index import DenseIndex
from pt_dense.index.retriever import DenseRetriever, register_retriever_kind
from pt_dense.training.losses import LOSSES, ContrastiveLoss, register_loss
from pt_dense.training.negatives import NegativeSource
from pt_dense.training.sources import NEGATIVE_SOURCES, register_negative_source, resolve

ROOT = Path(__file__).resolve().parents[1]
TOPICS = pd.DataFrame({"qid": [f"q{i}" for i in range(4)], "query": [" ".join(WORDS[i : i + 3]) for i in range(4)]})
DOCS = {f"d{i}": " ".join(WORDS[i : i + 6]) for i in range(8)}
QRELS = pd.DataFrame({"qid": [f"q{i}" for i in range(4)], "docno": [f"d{i}" for i in range(4)], "label": 1})


def test_the_layers_contract_is_kept():
    result = subprocess.run([str(Path(sys.executable).parent / "lint-imports")], cwd=ROOT, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "one-way layers KEPT" in result.stdout


def test_help_loads_no_torch():
    code = ("import sys\nfrom pt_dense.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "assert not any(m.split('.')[0] in ('torch', 'transformers', 'pyterrier') for m in sys.modules), 'heavy'")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "pt-dense" in result.stdout and "refresh" in result.stdout


class CountingLoss(ContrastiveLoss):
    calls = 0

    def forward(self, queries, docs, **kwargs):
        CountingLoss.calls += 1
        return super().forward(queries, docs, **kwargs)


class OneFixedNegative(NegativeSource):
    n = 1

    def sample(self, qid, positives, n, seed, epoch):
        return ["d7"]


def test_fit_reads_losses_and_negative_sources_from_their_tables(tiny_encoder, monkeypatch):
    monkeypatch.setitem(LOSSES, "counting", CountingLoss)  # the table is restored after the test
    monkeypatch.setitem(NEGATIVE_SOURCES, "fixed", lambda corpus, encoder, n, depth, **_: OneFixedNegative())
    history = tiny_encoder.with_lora(r=2).fit(TOPICS, QRELS, corpus=DOCS, negatives="fixed", loss="counting",
                                              epochs=1, batch_size=2, progress=False)
    assert CountingLoss.calls == 2 == len(history["loss"])
    assert history["negatives"] == {"source": "OneFixedNegative"}
    with pytest.raises(InputError, match=r"unknown loss 'nope'; registered: .*contrastive"):
        tiny_encoder.fit(TOPICS, QRELS, corpus=DOCS, loss="nope")
    with pytest.raises(InputError, match=r"unknown negatives 'nope': use one of .*cache:corrected"):
        resolve("nope", DOCS)


def test_register_functions_extend_the_tables(request):
    for table, register, name, value in [(LOSSES, register_loss, "x-loss", CountingLoss),
                                         (NEGATIVE_SOURCES, register_negative_source, "x-neg", lambda *a, **k: None),
                                         (export.TARGETS, export.register_target, "x-target", lambda *a, **k: None)]:
        register(name, value)
        request.addfinalizer(lambda table=table, name=name: table.unregister(name))  # restored afterwards
        assert table[name] is value
        with pytest.raises(InputError, match="registered twice"):
            register(name, value)


def test_export_targets_by_name(tmp_path, monkeypatch):
    written = []
    monkeypatch.setitem(export.TARGETS, "listing", lambda source, out, **settings: written.append((source, out,
                                                                                                 settings)) or out)
    assert export.to("listing", "idx", tmp_path / "o", fmt="tsv") == tmp_path / "o"
    assert written == [("idx", tmp_path / "o", {"fmt": "tsv"})]
    with pytest.raises(InputError, match=r"unknown export target 'zip'; registered: .*lucene"):
        export.to("zip", "idx", tmp_path / "o")


class ReversedRetriever(DenseRetriever):
    """A retriever kind for the test: the exact scores, worst first."""

    kind = "reversed"

    def search(self, queries, k):
        scores = queries @ np.asarray(self.index.vectors).T
        rows = np.argsort(scores, axis=1)[:, :k]
        return np.take_along_axis(scores, rows, axis=1), rows


def test_retriever_kinds_are_a_table(tmp_path, request):
    from pt_dense.index.retriever import RETRIEVER_KINDS

    index = DenseIndex(tmp_path / "idx")
    vectors = np.eye(4, dtype=np.float32)
    index.indexer(progress=False).index({"docno": f"d{i}", "doc_vec": v} for i, v in enumerate(vectors))
    register_retriever_kind("reversed", ReversedRetriever)
    request.addfinalizer(lambda: RETRIEVER_KINDS.unregister("reversed"))
    query = pd.DataFrame({"qid": ["1"], "query_vec": [np.array([1, 0.5, 0.25, 0], np.float32)]})
    assert index.retriever(k=4)(query)["docno"].tolist() == ["d0", "d1", "d2", "d3"]
    assert index.retriever(k=2, kind="reversed")(query)["docno"].tolist() == ["d3", "d2"]
    with pytest.raises(InputError, match=r"unknown retriever kind 'ivf'; choose one of .*reversed"):
        index.retriever(kind="ivf")
    with pytest.raises(InputError, match="does not take"):
        index.retriever(kind="flat", nprobe=4)


def test_adapters_are_objects_that_save_and_load(tiny_encoder, tmp_path):
    assert tiny_encoder.adapter == Adapter() and tiny_encoder.mode == "full"
    torch.manual_seed(0)
    lora = tiny_encoder.with_lora(r=2)
    torch.manual_seed(0)
    same = tiny_encoder.with_adapter(Lora(r=2))
    assert lora.adapter == Lora(r=2) != Lora(r=4) and lora.fingerprint == same.fingerprint
    prompted = tiny_encoder.with_adapter(Prompts(length=3))
    for encoder, folder in ((lora, "lora"), (prompted, "prompts")):
        loaded = type(encoder).from_pretrained(encoder.save(tmp_path / folder))
        assert loaded.adapter == encoder.adapter and loaded.fingerprint == encoder.fingerprint
    with pytest.raises(InputError, match="already has an adapter"):
        lora.with_adapter(Prompts())
    with pytest.raises(InputError, match="prompt length"):
        Prompts(length=0)
    merged = lora.merge()
    assert merged.adapter == Adapter() and merged.adapter.plain and merged.mode == "full"
