"""Deep prompt tuning: prefixes as a cache, positions kept, training, save/load, the prompt bank, ONNX export."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import WORDS, tiny_bert

from pt_dense import BiEncoder, InputError, export
from pt_dense.encoders.bank import PromptBank
from pt_dense.encoders.onnx_encoder import OnnxEncoder

TEXTS = ["the cat sat on the mat", "protein cell gene cancer risk", "human patients treatment effect"]
TOPICS = pd.DataFrame({"qid": [f"q{i}" for i in range(8)], "query": [" ".join(WORDS[i : i + 3]) for i in range(8)]})
DOCS = {f"d{i}": " ".join(WORDS[i : i + 6]) for i in range(16)}
QRELS = pd.DataFrame({"qid": [f"q{i}" for i in range(8)], "docno": [f"d{i}" for i in range(8)], "label": 1})


def encoder(seed: int = 0) -> BiEncoder:
    return BiEncoder(*tiny_bert(seed), query_max_length=16, doc_max_length=16)


def trained_prompts(seed: int, length: int = 4, **settings) -> BiEncoder:
    dpt = encoder().with_prompts(length=length, **settings)
    dpt.fit(TOPICS, QRELS, corpus=DOCS, epochs=2, batch_size=4, lr=5e-2, progress=False, seed=seed)
    return dpt


def test_prompts_train_alone_and_keep_the_tokens_positions():
    base = encoder()
    dpt = base.with_prompts(length=4)
    trainable, total = dpt.trainable_parameters()
    layers, heads = base.model.config.num_hidden_layers, base.model.config.num_attention_heads
    assert dpt.mode == "prompts" and trainable == layers * 2 * 4 * base.dim and 0 < trainable < total
    assert base.mode == "full" and all(p.requires_grad for p in base.model.parameters())  # the original untouched
    seen = {}
    dpt.model.base.embeddings.register_forward_hook(
        lambda module, args, kwargs, out: seen.update(kwargs), with_kwargs=True)
    start = dpt.encode(TEXTS)
    assert torch.equal(seen["position_ids"][0], torch.arange(seen["input_ids"].shape[1]))  # not shifted by 4
    assert np.abs(start - base.encode(TEXTS)).max() < 0.05  # zero prompts: close to the frozen model at the start
    frozen = {k: v.clone() for k, v in dpt.model.base.state_dict().items()}
    dpt.fit(TOPICS, QRELS, corpus=DOCS, epochs=2, batch_size=4, lr=5e-2, progress=False)
    assert all(torch.equal(v, dpt.model.base.state_dict()[k]) for k, v in frozen.items())
    assert np.abs(dpt.encode(TEXTS) - start).max() > 1e-3
    assert heads * (base.dim // heads) == base.dim


def test_reparameterised_prompts_train_the_mlp():
    dpt = encoder().with_prompts(length=3, reparam=True)
    before = dpt.encode(TEXTS)
    np.testing.assert_allclose(before, encoder().with_prompts(length=3).encode(TEXTS), atol=1e-6)  # zero at start
    assert dpt.model.prompts.key_values().shape == (2, 2, 2, 3, 16)
    dpt.fit(TOPICS, QRELS, corpus=DOCS, epochs=2, batch_size=4, lr=1e-2, progress=False)
    assert np.abs(dpt.encode(TEXTS) - before).max() > 1e-4


def test_prompt_encoder_saves_only_its_prompts_and_loads_back(tmp_path):
    dpt = trained_prompts(seed=1)
    dpt.save(tmp_path / "dpt")
    saved = {p.name for p in (tmp_path / "dpt").iterdir()}
    assert "prompts.pt" in saved and "model.safetensors" not in saved
    prompts_bytes = (tmp_path / "dpt" / "prompts.pt").stat().st_size
    assert prompts_bytes < 0.2 * sum(p.stat().st_size for p in (tmp_path / "dpt" / "base").iterdir())
    loaded = BiEncoder.from_pretrained(str(tmp_path / "dpt"))
    assert loaded.mode == "prompts" and loaded.fingerprint == dpt.fingerprint
    np.testing.assert_array_equal(loaded.encode(TEXTS), dpt.encode(TEXTS))


def test_prompt_bank_serves_tasks_bit_for_bit_and_adding_one_changes_no_other(tmp_path):
    first, second = trained_prompts(seed=1), trained_prompts(seed=2, length=6)
    bank = PromptBank(encoder())
    bank.add("one", first)
    one_alone = bank.task("one").encode(TEXTS, "query")
    second.save(tmp_path / "second")
    bank.add("two", str(tmp_path / "second"))
    assert bank.tasks() == ["one", "two"]
    np.testing.assert_array_equal(bank.task("one").encode(TEXTS, "query"), one_alone)
    np.testing.assert_array_equal(bank.task("one").encode(TEXTS, "doc"), first.encode(TEXTS, "doc"))
    np.testing.assert_array_equal(bank.task("two").encode(TEXTS, "doc"), second.encode(TEXTS, "doc"))
    assert bank.task("one").model.base is bank.task("two").model.base  # one backbone in memory
    assert np.abs(bank.task("one").encode(TEXTS) - bank.task("two").encode(TEXTS)).max() > 1e-4
    out = bank.task("two").query_encoder()(pd.DataFrame({"qid": ["1"], "query": ["cat dog"]}))
    np.testing.assert_array_equal(out["query_vec"][0], second.encode(["cat dog"], "query")[0])


def test_prompt_bank_refuses_foreign_backbones_and_unprompted_encoders():
    bank = PromptBank(encoder(seed=0))
    other = encoder(seed=5).with_prompts(length=2)
    with pytest.raises(InputError, match="another backbone"):
        bank.add("x", other)
    with pytest.raises(InputError, match="not prompt-tuned"):
        bank.add("x", encoder())
    with pytest.raises(InputError, match="no task 'y'"):
        bank.task("y")
    with pytest.raises(InputError, match="plain encoder"):
        PromptBank(other)
    with pytest.raises(InputError, match="already has an adapter"):
        other.with_lora()
    with pytest.raises(InputError, match="already has an adapter"):
        encoder().with_lora().with_prompts()
    with pytest.raises(InputError, match="at least 1"):
        encoder().with_prompts(length=0)


def test_prompts_are_baked_into_the_onnx_export(tmp_path):
    dpt = trained_prompts(seed=3)
    assert np.abs(dpt.encode(TEXTS) - encoder().encode(TEXTS)).max() > 1e-3  # the prompts do something
    folder = export.onnx(dpt, tmp_path / "onnx", sample_docs=TEXTS, sample_queries=TEXTS[:2])
    onnx = OnnxEncoder.from_dir(folder)
    for side in ("query", "doc"):
        np.testing.assert_allclose(onnx.encode(TEXTS, side, batch_size=2), dpt.encode(TEXTS, side), atol=1e-5)


def test_pseudo_pairs_point_titles_and_spans_at_the_body():
    from pt_dense.training.pretrain import pseudo_pairs

    records = [{"docno": "a", "title": "Cats and dogs", "text": " ".join(WORDS)},
               {"docno": "b", "title": "", "text": " ".join(reversed(WORDS))},
               {"docno": "c", "title": "empty body", "text": ""}]
    topics, qrels, texts = pseudo_pairs(records, span_words=(4, 6), seed=1)
    assert set(texts) == {"a", "b"} and texts["a"] == " ".join(WORDS)  # the title is not in the document
    assert dict(zip(topics["qid"], topics["query"], strict=True))["title:a"] == "Cats and dogs"
    spans = topics[topics["qid"].str.startswith("span:")]
    assert sorted(spans["qid"]) == ["span:a", "span:b"]
    for qid, span in spans.itertuples(index=False):
        assert span in texts[qid.split(":")[1]] and 4 <= len(span.split()) <= 6
    assert set(qrels["docno"]) == {"a", "b"} and (qrels["label"] == 1).all()
    assert pseudo_pairs(records, span_words=(4, 6), seed=1)[0].equals(topics)  # seeded
    with pytest.raises(InputError, match="kinds"):
        pseudo_pairs(records, ["summary"])
    with pytest.raises(InputError, match="no pseudo-query"):
        pseudo_pairs([{"docno": "x", "title": "", "text": "too short"}], ["span"])


def test_pretraining_then_fine_tuning_through_the_cli(tmp_path, capsys):
    from conftest import write_beir

    from pt_dense.cli import main

    docs = [{"docno": f"d{i}", "title": " ".join(WORDS[i : i + 2]), "text": " ".join(WORDS[i : i + 12])}
            for i in range(12)]
    queries = [{"qid": f"q{i}", "query": " ".join(WORDS[i : i + 3])} for i in range(12)]
    data = write_beir(tmp_path / "c", docs, queries, {"train": [(f"q{i}", f"d{i}", 1) for i in range(12)]})
    model, tok = tiny_bert()
    model.save_pretrained(tmp_path / "tiny")
    tok.save_pretrained(tmp_path / "tiny")
    assert main(["pretrain", "--data", str(data), "--model", str(tmp_path / "tiny"), "--adapter", "prompts",
                 "--prompt-length", "3", "--out", str(tmp_path / "pre"), "--batch-size", "4"]) == 0
    pretrained = BiEncoder.from_pretrained(str(tmp_path / "pre"))
    assert pretrained.mode == "prompts" and pretrained.model.prompts.length == 3
    assert np.abs(pretrained.model.prompts.prefix.detach().numpy()).max() > 0  # the prompts moved off zero
    assert main(["train", "--data", str(data), "--model", str(tmp_path / "pre"), "--out", str(tmp_path / "ft"),
                 "--epochs", "1", "--batch-size", "4"]) == 0
    assert "prompts" in capsys.readouterr().out
    assert main(["train", "--data", str(data), "--model", str(tmp_path / "pre"), "--adapter", "lora",
                 "--out", str(tmp_path / "x")]) == 2
    assert "already carries a prompts adapter" in capsys.readouterr().err
