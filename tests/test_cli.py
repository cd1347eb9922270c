"""The pt-dense command line on a tiny collection and a tiny saved model."""

from __future__ import annotations

import json

import pytest
from conftest import WORDS, write_beir

from pt_dense import BiEncoder
from pt_dense.cli import main
from pt_dense.index import DenseIndex


@pytest.fixture
def tiny_setup(tmp_path, tiny_encoder):
    docs = [{"docno": f"d{i}", "title": "", "text": " ".join(WORDS[i : i + 6])} for i in range(16)]
    queries = [{"qid": f"q{i}", "query": " ".join(WORDS[i : i + 3])} for i in range(8)]
    qrels = {"train": [(f"q{i}", f"d{i}", 1) for i in range(6)], "test": [("q6", "d6", 1), ("q7", "d7", 1)]}
    data = write_beir(tmp_path / "data", docs, queries, qrels)
    tiny_encoder.save(tmp_path / "model")
    return tmp_path, data


def test_train_then_eval_with_the_trained_encoder(tiny_setup, capsys):
    tmp, data = tiny_setup
    assert main(["train", "--data", str(data), "--model", str(tmp / "model"), "--adapter", "lora", "--epochs", "1",
                 "--batch-size", "2", "--lr", "0.01", "--out", str(tmp / "trained")]) == 0
    assert "lora" in capsys.readouterr().out
    trained = BiEncoder.from_pretrained(str(tmp / "trained"))
    assert trained.mode == "lora"
    assert json.loads((tmp / "trained" / "training.json").read_text())["history"]["loss"]
    assert main(["eval", "--data", str(data), "--systems", "dense", "--encoder", str(tmp / "trained"),
                 "--json", str(tmp / "eval.json")]) == 0
    assert set(json.loads((tmp / "eval.json").read_text())["systems"]) == {"dense"}


def test_index_and_export(tiny_setup, capsys):
    tmp, data = tiny_setup
    assert main(["index", "--data", str(data), "--model", str(tmp / "model"), "--out", str(tmp / "idx")]) == 0
    assert main(["index", "--data", str(data), "--model", str(tmp / "model"), "--out", str(tmp / "idx")]) == 2
    assert "overwrite" in capsys.readouterr().err
    assert main(["export", "--encoder", str(tmp / "model"), "--index", str(tmp / "idx"), "--out",
                 str(tmp / "export")]) == 0
    assert (tmp / "export" / "onnx" / "model.onnx").exists() and (tmp / "export" / "faiss" / "index").exists()
    assert main(["export", "--encoder", str(tmp / "model"), "--out", str(tmp / "x"), "--lucene", "hnsw"]) == 2


def test_train_with_corrected_cache_negatives_then_refresh_the_index(tiny_setup, capsys):
    tmp, data = tiny_setup
    assert main(["train", "--data", str(data), "--model", str(tmp / "model"), "--epochs", "2", "--batch-size", "2",
                 "--negatives", "cache:corrected", "--cache-sample", "0.25", "--out", str(tmp / "trained")]) == 0
    cache = json.loads((tmp / "trained" / "training.json").read_text())["history"]["negatives"]
    assert cache["reencoded"] == 4 and [r["period"] for r in cache["refreshes"]] == [1]  # epoch 2 refreshes
    assert main(["index", "--data", str(data), "--model", str(tmp / "model"), "--out", str(tmp / "idx")]) == 0
    refresh = ["refresh", "--index", str(tmp / "idx"), "--encoder", str(tmp / "trained"), "--sample", "0.5", "--out",
               str(tmp / "fresh")]
    assert main(refresh) == 0  # the texts come from the collection the index recorded
    assert "8 re-encoded" in capsys.readouterr().out
    meta = DenseIndex(tmp / "fresh").meta
    assert meta["encoder"]["fingerprint"] == BiEncoder.from_pretrained(str(tmp / "trained")).fingerprint
    assert main([*refresh, "--data", str(data)]) == 2 and "overwrite" in capsys.readouterr().err
    assert DenseIndex(tmp / "fresh").meta == meta  # the refused refresh left it as it was
    assert main(["train", "--data", str(data), "--model", str(tmp / "model"), "--negatives", "cache:sometimes",
                 "--out", str(tmp / "t2")]) == 2
    assert "unknown negatives" in capsys.readouterr().err
