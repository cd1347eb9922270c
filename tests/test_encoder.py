"""BiEncoder and its stages on tiny random BERT models."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import WORDS, tiny_bert

from pt_dense import BiEncoder, InputError, MissingColumnsError, UnknownModelError
from pt_dense.encoders.stages import DocEncoder, QueryEncoder, encoders_of

TEXTS = ["the cat sat on the mat", "dog", "protein cell gene cancer risk study blood brain drug trial", "cat dog"]


def test_vectors_are_unit_length_float32_in_input_order(tiny_encoder):
    batched = tiny_encoder.encode(TEXTS, "doc", batch_size=2)
    one_by_one = np.vstack([tiny_encoder.encode([t], "doc") for t in TEXTS])
    assert batched.dtype == np.float32 and batched.shape == (4, 32)
    np.testing.assert_allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(batched, one_by_one, atol=1e-5)


def test_mean_and_cls_pooling_differ_and_normalisation_can_be_off():
    model, tok = tiny_bert()
    mean = BiEncoder(model, tok, pooling="mean").encode(TEXTS)
    cls = BiEncoder(model, tok, pooling="cls").encode(TEXTS)
    raw = BiEncoder(model, tok, normalize=False).encode(TEXTS)
    assert not np.allclose(mean, cls)
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1.0)
    np.testing.assert_allclose(raw / np.linalg.norm(raw, axis=1, keepdims=True), mean, atol=1e-5)


def test_query_and_doc_sides_use_their_own_max_length_and_prefix():
    model, tok = tiny_bert()
    enc = BiEncoder(model, tok, query_max_length=4, doc_max_length=32)
    long_text = [TEXTS[2]]
    assert len(enc.tokenize(long_text, "query")[0]) == 4
    assert len(enc.tokenize(long_text, "doc")[0]) == 12
    assert not np.allclose(enc.encode(long_text, "query"), enc.encode(long_text, "doc"))
    prefixed = BiEncoder(model, tok, query_prefix="study ")
    assert not np.allclose(prefixed.encode(["cat"], "query"), prefixed.encode(["cat"], "doc"))


def test_fingerprint_is_stable_and_tracks_weights_and_settings():
    model_a, tok = tiny_bert(seed=0)
    model_b, _ = tiny_bert(seed=0)
    model_c, _ = tiny_bert(seed=1)
    a, b, c = BiEncoder(model_a, tok), BiEncoder(model_b, tok), BiEncoder(model_c, tok)
    assert a.fingerprint == b.fingerprint
    assert a.fingerprint != c.fingerprint
    assert a.fingerprint != BiEncoder(model_a, tok, doc_max_length=40).fingerprint
    assert a.fingerprint != BiEncoder(model_a, tok, pooling="cls").fingerprint


def test_save_and_load_round_trip(tmp_path, tiny_encoder):
    tiny_encoder.save(tmp_path / "enc")
    loaded = BiEncoder.from_pretrained(str(tmp_path / "enc"))
    assert loaded.settings() == tiny_encoder.settings()
    assert loaded.fingerprint == tiny_encoder.fingerprint
    np.testing.assert_allclose(loaded.encode(TEXTS), tiny_encoder.encode(TEXTS), atol=1e-6)


def test_unknown_models_and_bad_settings_are_clear_errors(tmp_path):
    with pytest.raises(UnknownModelError, match="not a short name"):
        BiEncoder.from_pretrained("no-such-model")
    with pytest.raises(UnknownModelError, match=r"no config\.json"):
        BiEncoder.from_pretrained(str(tmp_path))
    model, tok = tiny_bert()
    with pytest.raises(InputError, match="pooling"):
        BiEncoder(model, tok, pooling="max")
    with pytest.raises(InputError, match="side"):
        BiEncoder(model, tok).encode(["cat"], "passage")


def test_query_encoder_encodes_each_distinct_query_once(tiny_encoder, monkeypatch):
    calls = []
    original = tiny_encoder.encode
    monkeypatch.setattr(tiny_encoder, "encode",
                        lambda texts, *a, **k: calls.append(list(texts)) or original(texts, *a, **k))
    frame = pd.DataFrame({"qid": ["1", "1", "2"], "query": ["cat", "cat", "dog"], "docno": ["a", "b", "a"]})
    out = tiny_encoder.query_encoder()(frame)
    assert calls == [["cat", "dog"]]
    assert list(out.columns) == ["qid", "query", "docno", "query_vec"]
    np.testing.assert_array_equal(out["query_vec"][0], out["query_vec"][1])
    assert encoders_of(out["query_vec"]) == {tiny_encoder.fingerprint}


def test_stages_validate_columns_and_texts(tiny_encoder):
    with pytest.raises(MissingColumnsError, match=r"\['query'\]"):
        tiny_encoder.query_encoder()(pd.DataFrame({"qid": ["1"]}))
    with pytest.raises(MissingColumnsError, match="text"):
        tiny_encoder.doc_encoder()(pd.DataFrame({"docno": ["d1"]}))
    with pytest.raises(InputError, match="empty"):
        tiny_encoder.query_encoder()(pd.DataFrame({"qid": ["1", "2"], "query": ["cat", "  "]}))
    with pytest.raises(InputError, match=r"d2"):
        tiny_encoder.doc_encoder()(pd.DataFrame({"docno": ["d1", "d2"], "text": ["cat", None]}))
    with pytest.raises(InputError, match=r"d3"):
        tiny_encoder.doc_encoder()(pd.DataFrame({"docno": ["d3"], "text": [float("nan")]}))


def test_stages_are_inspectable_and_compare_by_configuration(tiny_encoder):
    import pyterrier as pt

    qe = tiny_encoder.query_encoder()
    assert qe == tiny_encoder.query_encoder() and qe != tiny_encoder.query_encoder(batch_size=7)
    assert isinstance(qe, QueryEncoder) and isinstance(tiny_encoder.doc_encoder(), DocEncoder)
    assert pt.inspect.transformer_inputs(qe) == [["qid", "query"]]
    assert pt.inspect.transformer_outputs(qe, ["qid", "query"]) == ["qid", "query", "query_vec"]
    assert pt.inspect.transformer_outputs(tiny_encoder.scorer(), ["qid", "query", "docno", "text"])[-2:] == [
        "score", "rank"]


def test_text_scorer_ranks_by_dot_product(tiny_encoder):
    frame = pd.DataFrame({"qid": ["1"] * 3, "query": ["cat sat"] * 3, "docno": ["a", "b", "c"],
                          "text": ["cat sat on mat", "protein gene", "dog"]})
    out = tiny_encoder.scorer()(frame)
    q = tiny_encoder.encode(["cat sat"], "query")[0]
    expected = tiny_encoder.encode(list(frame["text"]), "doc") @ q
    by_doc = out.set_index("docno")["score"]
    np.testing.assert_allclose(by_doc[["a", "b", "c"]].to_numpy(), expected, atol=1e-5)
    assert list(out["rank"]) == [0, 1, 2] and out["score"].is_monotonic_decreasing


def test_auto_precision_takes_the_measured_fast_path_and_refuses_impossible_ones(monkeypatch):
    from pt_dense.encoders.precision import resolve_precision

    cpu = torch.device("cpu")
    monkeypatch.delenv("PT_DENSE_PRECISION")
    assert resolve_precision(None, cpu) == resolve_precision("auto", cpu) == "int8"
    assert resolve_precision("fp32", cpu) == "fp32"
    monkeypatch.setenv("PT_DENSE_PRECISION", "onnx")
    assert resolve_precision(None, cpu) == "onnx"
    with pytest.raises(InputError, match="precision must be one of"):
        resolve_precision("fp8", cpu)
    with pytest.raises(InputError, match="on the CPU"):
        resolve_precision("int8", torch.device("cuda"))
    assert resolve_precision("auto", torch.device("mps")) == "fp32"


@pytest.mark.parametrize("precision", ["onnx", "int8", "bf16"])
def test_fast_precisions_keep_the_vectors_and_the_identity_of_fp32(precision, capsys):
    model, tokenizer = tiny_bert(seed=4)
    fp32 = BiEncoder(model, tokenizer, precision="fp32", doc_max_length=32)
    fast = fp32.with_model(model, precision=precision)
    texts = [" ".join(WORDS[i : i + 6]) for i in range(12)]
    exact, approx = fp32.encode(texts), fast.encode(texts)
    assert fast.precision == precision and fast.fingerprint == fp32.fingerprint and fast.exact().precision == "fp32"
    assert fast.descriptor()["precision"] == precision and fp32.descriptor()["precision"] == "fp32"
    assert approx.dtype == np.float32 and np.min(np.sum(exact * approx, axis=1)) > 0.99
    if precision == "onnx":
        np.testing.assert_allclose(approx, exact, atol=1e-5)
    assert (fast.runtime() is None) == (precision == "bf16") and fp32.runtime() is None
    if fast.runtime() is not None:
        assert "exporting" in capsys.readouterr().err  # said once, then read from the cache
        assert fast.with_model(model, precision=precision).runtime().folder == fast.runtime().folder
        assert "exporting" not in capsys.readouterr().err


def test_onnx_inference_follows_training_and_folds_lora_in():
    model, tokenizer = tiny_bert(seed=5)
    encoder = BiEncoder(model, tokenizer, precision="onnx", doc_max_length=32).with_lora(r=4, targets=("value",))
    texts = [" ".join(WORDS[i : i + 5]) for i in range(6)]
    before, first = encoder.encode(texts), encoder.runtime()
    assert encoder.runtime() is first  # one export while the weights stay
    with torch.no_grad():
        for name, param in encoder.model.named_parameters():
            if "lora_B" in name:
                param.add_(0.5)
    encoder.weights_changed()
    after = encoder.encode(texts)
    assert encoder.runtime().folder != first.folder and not np.allclose(before, after, atol=1e-3)
    np.testing.assert_allclose(after, encoder.exact().encode(texts), atol=1e-5)


def test_the_command_line_precision_reaches_every_encoder_and_is_recorded(tmp_path, tiny_encoder, monkeypatch):
    import os

    from conftest import write_beir

    from pt_dense.cli import main
    from pt_dense.index import DenseIndex

    docs = [{"docno": f"d{i}", "title": "", "text": " ".join(WORDS[i : i + 5])} for i in range(6)]
    data = write_beir(tmp_path / "data", docs, [{"qid": "q", "query": "cat"}], {"test": [("q", "d0", 1)]})
    tiny_encoder.save(tmp_path / "model")
    before = os.environ["PT_DENSE_PRECISION"]
    args = ["index", "--data", str(data), "--model", str(tmp_path / "model"), "--out", str(tmp_path / "i")]
    assert main([*args, "--precision", "onnx"]) == 0
    assert DenseIndex(tmp_path / "i").meta["encoder"]["precision"] == "onnx"
    assert os.environ["PT_DENSE_PRECISION"] == before  # restored for the rest of the process
    assert main([*args[:-1], str(tmp_path / "j")]) == 0
    assert DenseIndex(tmp_path / "j").meta["encoder"]["precision"] == before


def test_a_setting_changed_in_place_reaches_the_onnx_path_and_the_fingerprint():
    model, tokenizer = tiny_bert(seed=6)
    encoder = BiEncoder(model, tokenizer, precision="onnx", doc_max_length=32)
    long_text = [" ".join(WORDS[:30])]
    full, fingerprint, first = encoder.encode(long_text, "doc"), encoder.fingerprint, encoder.runtime()
    encoder.doc_max_length = 8  # the exported graph was made at 32: it must not keep being used silently
    short = encoder.encode(long_text, "doc")
    assert encoder.fingerprint != fingerprint and encoder.runtime() is not first
    assert not np.allclose(full, short, atol=1e-3)
    np.testing.assert_allclose(short, encoder.exact().encode(long_text, "doc"), atol=1e-5)
