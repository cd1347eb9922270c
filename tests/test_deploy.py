"""ONNX export (fp32, int8, LoRA merged), OnnxEncoder, the Java bridge, and Pyserini/Lucene deployment."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import WORDS, assert_java_parity, tiny_bert

from pt_dense import BiEncoder, EncoderMismatchError, IndexExistsError, InputError, export
from pt_dense.encoders.onnx_encoder import OnnxEncoder
from pt_dense.encoders.stages import encoders_of
from pt_dense.index.dense_index import DenseIndex

TEXTS = ["the cat sat on the mat", "Dog!", "protein cell gene cancer risk study blood brain drug trial mouse",
         "Über-cat, the café dog", "human patients treatment effect level increase decrease"]
DOCS = [{"docno": f"d{i}", "text": " ".join(WORDS[i : i + 5])} for i in range(len(WORDS) - 5)]


def export_tiny(tmp_path, encoder, name="onnx", **kwargs):
    return export.onnx(encoder, tmp_path / name, sample_docs=TEXTS, sample_queries=TEXTS[:3], **kwargs)


def test_onnx_export_matches_pytorch_and_writes_everything(tmp_path, tiny_encoder):
    folder = export_tiny(tmp_path, tiny_encoder)
    assert {"model.onnx", "tokenizer.json", "config.json", "parity.json"} <= {p.name for p in folder.iterdir()}
    config = json.loads((folder / "config.json").read_text())
    assert config["ir_version"] <= 9 and config["fingerprint"] == tiny_encoder.fingerprint
    assert config["tokenizer"] == "tokenizer.json" and config["family"]["name"] == "bert"
    assert config["family"]["special_tokens"] == ["[CLS]", "[SEP]"] and config["family"]["max_length"] == 64
    assert config["settings"] == tiny_encoder.settings()
    parity = json.loads((folder / "parity.json").read_text())
    assert parity["max_abs_diff_docs"] < 1e-5 and parity["top10_agreement"] == 1.0
    onnx = OnnxEncoder.from_dir(folder)
    for side in ("query", "doc"):
        np.testing.assert_allclose(onnx.encode(TEXTS, side, batch_size=2), tiny_encoder.encode(TEXTS, side),
                                   atol=1e-5)
    out = onnx.query_encoder()(pd.DataFrame({"qid": ["1"], "query": ["cat"]}))
    assert encoders_of(out["query_vec"]) == {tiny_encoder.fingerprint}


def test_int8_export_is_smaller_and_close(tmp_path, tiny_encoder):
    fp32, int8 = export_tiny(tmp_path, tiny_encoder), export_tiny(tmp_path, tiny_encoder, "int8", quantize="int8")
    assert json.loads((int8 / "config.json").read_text())["precision"] == "int8"
    assert (int8 / "model.onnx").stat().st_size < (fp32 / "model.onnx").stat().st_size
    cos = (OnnxEncoder(int8).encode(TEXTS) * tiny_encoder.encode(TEXTS)).sum(1)
    assert cos.min() > 0.95


def test_lora_adapter_is_merged_into_the_export(tmp_path):
    from peft import LoraConfig, get_peft_model

    model, tok = tiny_bert()
    lora = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["query", "value"],
                                            init_lora_weights=False))
    encoder = BiEncoder(lora, tok)
    base = BiEncoder(tiny_bert()[0], tok)
    assert np.abs(encoder.encode(TEXTS) - base.encode(TEXTS)).max() > 1e-3  # the adapter does something
    np.testing.assert_allclose(OnnxEncoder(export_tiny(tmp_path, encoder)).encode(TEXTS), encoder.encode(TEXTS),
                               atol=1e-5)


def test_an_encoder_made_by_with_lora_exports_with_its_adapter_merged(tmp_path, tiny_encoder):
    import torch

    lora = tiny_encoder.with_lora(r=2, alpha=4)
    with torch.no_grad():  # LoRA starts as a no-op (B = 0): give it weights that change the vectors
        for name, param in lora.model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn_like(param) * 0.5)
    lora.weights_changed()
    assert np.abs(lora.encode(TEXTS) - tiny_encoder.encode(TEXTS)).max() > 1e-3
    folder = export_tiny(tmp_path, lora)
    assert json.loads((folder / "config.json").read_text())["fingerprint"] == lora.fingerprint
    np.testing.assert_allclose(OnnxEncoder(folder).encode(TEXTS), lora.encode(TEXTS), atol=1e-5)
    assert lora.mode == "lora"  # the encoder itself keeps its adapter

def test_export_bad_input(tmp_path, tiny_encoder):
    with pytest.raises(InputError, match="quantize"):
        export_tiny(tmp_path, tiny_encoder, quantize="int4")
    export_tiny(tmp_path, tiny_encoder)
    with pytest.raises(IndexExistsError):
        export_tiny(tmp_path, tiny_encoder)
    with pytest.raises(InputError, match="not a pt_dense ONNX export"):
        OnnxEncoder(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["onnx"]


@pytest.fixture
def tiny_index(tmp_path, tiny_encoder):
    index = DenseIndex(tmp_path / "index")
    (tiny_encoder.doc_encoder() >> index.indexer(progress=False)).index(DOCS)
    return index


@pytest.mark.integration
@pytest.mark.parametrize("prompted", [False, True], ids=["plain", "deep-prompts"])
def test_java_bridge_encodes_like_python(tmp_path, tiny_encoder, prompted):
    import torch

    encoder = tiny_encoder.with_prompts(length=3) if prompted else tiny_encoder
    if prompted:
        with torch.no_grad():
            encoder.model.prompts.prefix.normal_(0.0, 0.5, generator=torch.Generator().manual_seed(0))
        assert np.abs(encoder.encode(TEXTS) - tiny_encoder.encode(TEXTS)).max() > 1e-3
    assert_java_parity(export_tiny(tmp_path, encoder), encoder, TEXTS)


@pytest.mark.integration
@pytest.mark.parametrize("kind", ["hnsw", "flat"])
def test_lucene_deployment_returns_the_faiss_results(tmp_path, tiny_encoder, tiny_index, kind):
    from pt_dense.deploy import LuceneDense, PyseriniFaiss

    onnx = export_tiny(tmp_path, tiny_encoder)
    lucene_dir = export.lucene(tiny_index, tmp_path / f"lucene-{kind}", kind=kind)
    faiss_dir = export.pyserini_faiss(tiny_index, tmp_path / "faiss")
    topics = pd.DataFrame({"qid": ["1", "2"], "query": ["cat sat on mat", "gene cancer risk"]})
    expected = (tiny_encoder.query_encoder() >> tiny_index.retriever(k=5))(topics)
    for stage in (LuceneDense(lucene_dir, onnx, k=5), PyseriniFaiss(faiss_dir, onnx, k=5)):
        got = stage(topics)
        assert list(got["docno"]) == list(expected["docno"])
        np.testing.assert_allclose(got["score"], expected["score"], atol=1e-5)  # dot products, not Lucene's
        one = stage(topics.iloc[[1]])  # one query goes straight to the searcher
        assert list(one["docno"]) == list(expected[expected.qid == "2"]["docno"]) and list(one["rank"]) == [0, 1, 2,
                                                                                                            3, 4]
        twice = stage(pd.concat([topics.iloc[[0]], topics.iloc[[0]]]))  # a repeated qid keeps both rows' hits
        assert len(twice) == 10 and list(twice["docno"][:5]) == list(twice["docno"][5:])
    hits = LuceneDense(lucene_dir, onnx, k=3, threads=2).searcher.search("cat sat on mat", 3)
    assert hits.docids.splitlines() == list(expected["docno"][:3]) and hits.count == 3
    assert min(hits.encodeMillis, hits.searchMillis, hits.lookupMillis) > 0  # where the time went, timed in Java


@pytest.mark.integration
def test_deployment_refuses_unnormalised_vectors_and_foreign_encoders(tmp_path, tiny_encoder, tiny_index):
    from pt_dense.deploy import PyseriniFaiss

    raw = DenseIndex(tmp_path / "raw")
    raw.indexer(progress=False).index([{"docno": "a", "doc_vec": np.array([3.0, 4.0], np.float32)}])
    with pytest.raises(InputError, match="unit vectors"):
        export.lucene(raw, tmp_path / "lucene")
    other = export_tiny(tmp_path, BiEncoder(*tiny_bert(seed=9)), "other")
    with pytest.raises(EncoderMismatchError):
        PyseriniFaiss(export.pyserini_faiss(tiny_index, tmp_path / "faiss"), other)


@pytest.mark.integration
def test_java_bridge_matches_python_for_minilm_on_scifact_queries(tmp_path, minilm):
    from pt_dense import datasets
    from pt_dense.io.jvm import autoclass

    queries = list(datasets.load("scifact").topics("test")["query"][:100])
    folder = export.onnx(minilm, tmp_path / "minilm", sample_docs=queries[:8], sample_queries=queries[:8])
    autoclass("java.lang.System").setProperty("ptdense.onnx.dir", str(folder))
    java = autoclass("io.anserini.encoder.dense.PtDenseEncoder")()
    vectors = np.array([list(java.encode(q)) for q in queries], dtype=np.float32)
    assert np.abs(vectors - minilm.encode(queries, "query")).max() < 1e-5


def test_onnx_encoder_runs_without_importing_torch(tmp_path, tiny_encoder):
    import subprocess
    import sys

    folder = export_tiny(tmp_path, tiny_encoder)
    code = ("import sys; from pt_dense.encoders.onnx_encoder import OnnxEncoder; "
            f"v = OnnxEncoder({str(folder)!r}).encode(['cat sat']); print(v.shape, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "(1, 32) False"
