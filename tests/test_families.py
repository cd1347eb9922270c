"""The model-family contract, on a tiny random model of every family (built in memory, tokenizer trained in memory):
encode, a LoRA step, a deep-prompts step (or the clear refusal), save/load, ONNX parity, Java parity, layer
truncation, fingerprint stability. Then presets, portable saved encoders, and bad folders."""

from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import WORDS, assert_java_parity
from tiny_families import FAMILIES, SPECIAL, tiny_model

from pt_dense import BiEncoder, export
from pt_dense.encoders.onnx_encoder import OnnxEncoder
from pt_dense.errors import BaseModelMismatchError, InputError, ModelFolderError, PromptsUnsupportedError
from pt_dense.models import FAMILIES as REGISTRY
from pt_dense.models import PRESETS, PackageFolder, Preset, family_for, register_preset, resolve
from pt_dense.scaling.grid import non_embedding_parameters, truncated_encoder

TEXTS = ["the cat sat on the mat", "Über-cat, the café dog", "protein cell gene cancer risk study blood brain drug",
         "日本 α-helix p53 mRNA", "human patients treatment effect level increase decrease " * 4]
TOPICS = pd.DataFrame({"qid": [f"q{i}" for i in range(8)], "query": [" ".join(WORDS[i : i + 3]) for i in range(8)]})
DOCS = {f"d{i}": " ".join(WORDS[i : i + 6]) for i in range(16)}
QRELS = pd.DataFrame({"qid": [f"q{i}" for i in range(8)], "docno": [f"d{i}" for i in range(8)], "label": 1})
PROMPTED = {"bert", "roberta", "xlm-roberta"}


def encoder(family: str, seed: int = 0, **settings) -> BiEncoder:
    settings = {"query_max_length": 12, "doc_max_length": 24, "batch_size": 2, **settings}
    return BiEncoder(*tiny_model(family, seed), name=f"tiny-{family}", **settings)


def step(enc: BiEncoder, lr: float) -> None:
    enc.fit(TOPICS, QRELS, corpus=DOCS, steps=2, batch_size=4, lr=lr, progress=False, seed=0)


@pytest.mark.parametrize("family", FAMILIES)
def test_family_spec_is_registered_and_read(family):
    enc = encoder(family)
    spec = REGISTRY[family]
    assert enc.family is spec and family_for(enc.model.config) is spec
    assert tuple(SPECIAL[family][:2]) == spec.special_tokens
    ids = enc.tokenize(["cat"], "query")[0]
    assert enc.tokenizer.convert_ids_to_tokens([ids[0], ids[-1]]) == list(spec.special_tokens)
    assert enc.query_max_length == 12 and BiEncoder(*tiny_model(family)).doc_max_length == spec.max_length(
        enc.model.config) < 256  # capped by the model's positions


@pytest.mark.parametrize("family", FAMILIES)
def test_encode(family):
    enc = encoder(family)
    batched = enc.encode(TEXTS, "doc", batch_size=2)
    one_by_one = np.vstack([enc.encode([t], "doc") for t in TEXTS])
    assert batched.shape == (len(TEXTS), 32) and batched.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(batched, one_by_one, atol=1e-5)  # padding does not leak into the vectors
    assert not np.allclose(enc.encode(TEXTS[:2], "query"), encoder(family, pooling="cls").encode(TEXTS[:2], "query"))


@pytest.mark.parametrize("family", FAMILIES)
def test_lora_fit_step_on_the_family_targets(family):
    enc = encoder(family).with_lora(r=2, alpha=4)
    trainable = [n for n, p in enc.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert {n.split(".lora_")[0].rsplit(".", 1)[-1] for n in trainable} == set(REGISTRY[family].lora_targets)
    before = enc.encode(TEXTS)
    step(enc, lr=5e-2)
    assert np.abs(enc.encode(TEXTS) - before).max() > 1e-4


@pytest.mark.parametrize("family", FAMILIES)
def test_prompts_fit_step_or_a_clear_refusal(family):
    base = encoder(family)
    if family not in PROMPTED:
        with pytest.raises(PromptsUnsupportedError, match="with_lora"):
            base.with_prompts(length=2)
        return
    dpt = base.with_prompts(length=2)
    start = dpt.encode(TEXTS)
    assert np.abs(start - base.encode(TEXTS)).max() < 0.1  # zero prompts start near the frozen model
    step(dpt, lr=5e-2)
    assert dpt.model.prompts.prefix.detach().abs().max() > 0 and np.abs(dpt.encode(TEXTS) - start).max() > 1e-5
    with torch.no_grad():  # the prompts reach the attention: random prefixes move the vectors far
        dpt.model.prompts.prefix.normal_(0.0, 1.0, generator=torch.Generator().manual_seed(0))
    assert np.abs(dpt.encode(TEXTS) - start).max() > 1e-3  # (a model that ignored them would give exactly 0)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("adapter", ["full", "lora"])
def test_save_and_load_round_trip(tmp_path, family, adapter):
    enc = encoder(family)
    if adapter == "lora":
        enc = enc.with_lora(r=2, alpha=4)
        step(enc, lr=5e-2)
    enc.save(tmp_path / "enc")
    loaded = BiEncoder.from_pretrained(str(tmp_path / "enc"))
    assert loaded.mode == enc.mode and loaded.settings() == enc.settings() and loaded.family is enc.family
    assert loaded.fingerprint == enc.fingerprint
    np.testing.assert_allclose(loaded.encode(TEXTS), enc.encode(TEXTS), atol=1e-6)


def _export(tmp_path, enc, name="onnx"):
    return export.onnx(enc, tmp_path / name, sample_docs=TEXTS, sample_queries=TEXTS[:3])


@pytest.mark.parametrize("family", FAMILIES)
def test_onnx_parity(tmp_path, family):
    enc = encoder(family)
    folder = _export(tmp_path, enc)
    config = json.loads((folder / "config.json").read_text())
    assert config["family"]["name"] == family and config["family"]["special_tokens"] == list(SPECIAL[family][:2])
    onnx = OnnxEncoder.from_dir(folder)
    for side in ("query", "doc"):
        np.testing.assert_allclose(onnx.encode(TEXTS, side, batch_size=2), enc.encode(TEXTS, side), atol=1e-5)
        assert onnx.tokenize(TEXTS, side) == enc.tokenize(TEXTS, side)


@pytest.mark.integration
@pytest.mark.parametrize("family", FAMILIES)
def test_java_parity(tmp_path, family):
    enc = encoder(family, query_prefix="query: " if family == "xlm-roberta" else "")
    if family in PROMPTED:  # prompts baked into the export reach Java too
        enc = enc.with_prompts(length=2)
        with torch.no_grad():
            enc.model.prompts.prefix.normal_(0.0, 0.5, generator=torch.Generator().manual_seed(0))
    assert_java_parity(_export(tmp_path, enc), enc, TEXTS)


@pytest.mark.parametrize("family", FAMILIES)
def test_layer_truncation(family):
    enc = BiEncoder(*tiny_model(family, layers=3), query_max_length=12, doc_max_length=24)
    one = truncated_encoder(enc, 1)
    assert len(enc.family.layer_stack(one.model)) == 1 and one.model.config.num_hidden_layers == 1
    assert len(enc.family.layer_stack(enc.model)) == 3  # the original is untouched
    assert non_embedding_parameters(one.model) * 3 <= non_embedding_parameters(enc.model) + 3 * 1000
    assert one.encode(TEXTS).shape == (len(TEXTS), 32)
    assert not np.allclose(one.encode(TEXTS), enc.encode(TEXTS))
    with pytest.raises(InputError, match="between 1 and 3"):
        truncated_encoder(enc, 4)


@pytest.mark.parametrize("family", FAMILIES)
def test_fingerprint_stability(family):
    a, b, c = encoder(family, seed=0), encoder(family, seed=0), encoder(family, seed=1)
    assert a.fingerprint == b.fingerprint != c.fingerprint
    assert a.fingerprint != encoder(family, doc_max_length=20).fingerprint
    assert a.with_lora(r=2).merge().fingerprint == a.fingerprint  # LoRA starts at zero


# ---------------------------------------------------------------------------------------------- presets, fallback
def test_presets_give_prefixes_pooling_and_lengths_by_name():
    e5 = resolve("intfloat/e5-small-v2")
    assert e5.source == e5.portable == "intfloat/e5-small-v2"
    assert e5.preset.settings() == {"pooling": "mean", "normalize": True, "query_prefix": "query: ",
                                    "doc_prefix": "passage: ", "query_max_length": 512, "doc_max_length": 512}
    assert resolve("BAAI/bge-small-en-v1.5").preset.pooling == "cls"
    assert resolve("gte-modernbert-base").preset.name == "Alibaba-NLP/gte-modernbert-base"
    assert resolve("some-org/unknown-model").preset is None
    minilm = resolve("minilm")
    assert minilm.portable == "minilm" and resolve(minilm.source).portable == "minilm"  # the folder maps back


def test_unknown_family_falls_back_to_peft_and_says_so_once(recwarn):
    from transformers import ElectraConfig, ElectraModel

    from pt_dense.models import families

    families._WARNED.discard("electra")
    model = ElectraModel(ElectraConfig(vocab_size=40, embedding_size=32, hidden_size=32, num_hidden_layers=2,
                                       num_attention_heads=2, intermediate_size=64, max_position_embeddings=32))
    tokenizer = tiny_model("bert")[1]
    enc = BiEncoder(model, tokenizer, query_max_length=12, doc_max_length=12)
    enc.with_lora(r=2)  # peft's own table: query/value
    BiEncoder(model, tokenizer)
    assert sum("no ModelFamily for model_type 'electra'" in str(w.message) for w in recwarn.list) == 1
    with pytest.raises(PromptsUnsupportedError):
        enc.with_prompts()
    assert len(enc.family.layer_stack(enc.model)) == 2  # guessed


# ---------------------------------------------------------------------------------------------- portability
@pytest.fixture
def fake_package(tmp_path, monkeypatch):
    """A packaged tiny BERT ("tiny-packaged") inside an importable package on a site folder of its own."""
    import importlib

    def install(site_name: str, seed: int = 0):
        site = tmp_path / site_name
        model, tokenizer = tiny_model("bert", seed)
        model.save_pretrained(site / "tinypkg_ptd" / "model")
        tokenizer.save_pretrained(site / "tinypkg_ptd" / "model")
        (site / "tinypkg_ptd" / "__init__.py").write_text("")
        monkeypatch.setattr(sys, "path", [str(site), *[p for p in sys.path if "site-" not in p or "venv" in p]])
        sys.modules.pop("tinypkg_ptd", None)
        importlib.invalidate_caches()
        return site

    register_preset(Preset("tiny-packaged", PackageFolder("tinypkg_ptd", "model", "tinypkg-ptd"), "mean", True, 24))
    yield install
    PRESETS.unregister("tiny-packaged")


def test_saved_adapter_names_its_base_portably_and_loads_elsewhere(tmp_path, fake_package, monkeypatch):
    first = fake_package("site-a")
    lora = BiEncoder.from_pretrained("tiny-packaged").with_lora(r=2, alpha=4)
    step(lora, lr=5e-2)
    lora.save(tmp_path / "enc")
    text = "".join(p.read_text(errors="ignore") for p in (tmp_path / "enc").rglob("*") if p.is_file())
    assert str(first) not in text and str(tmp_path) not in text  # no absolute path is kept
    assert json.loads((tmp_path / "enc" / "pt_dense_encoder.json").read_text())["base"]["name"] == "tiny-packaged"
    assert not (tmp_path / "enc" / "base").exists()
    shutil.copytree(tmp_path / "enc", tmp_path / "elsewhere" / "enc")
    shutil.rmtree(first)  # "another machine": the package now lives under another prefix, HOME elsewhere
    fake_package("site-b")
    monkeypatch.setenv("HOME", str(tmp_path / "other-home"))
    moved = BiEncoder.from_pretrained(str(tmp_path / "elsewhere" / "enc"))
    assert moved.fingerprint == lora.fingerprint and moved.base_source == "tiny-packaged"
    np.testing.assert_allclose(moved.encode(TEXTS), lora.encode(TEXTS), atol=1e-6)
    shutil.rmtree(tmp_path / "site-b")
    fake_package("site-c", seed=7)  # another base under the same name
    with pytest.raises(BaseModelMismatchError, match="other weights"):
        BiEncoder.from_pretrained(str(tmp_path / "elsewhere" / "enc"))


def test_folders_that_name_no_model_are_clear_errors(tmp_path):
    (tmp_path / "empty-config").mkdir()
    (tmp_path / "empty-config" / "config.json").write_text("{}")
    with pytest.raises(ModelFolderError, match="names no model_type"):
        BiEncoder.from_pretrained(str(tmp_path / "empty-config"))
    enc = encoder("bert")
    enc.save(tmp_path / "saved")
    (tmp_path / "saved" / "config.json").write_text("{}")
    with pytest.raises(ModelFolderError, match="names no model_type"):
        BiEncoder.from_pretrained(str(tmp_path / "saved"))
    lora = encoder("bert").with_lora(r=2)
    lora.save(tmp_path / "lora")
    (tmp_path / "lora" / "base" / "config.json").write_text("{}")
    with pytest.raises(ModelFolderError, match="names no model_type"):
        BiEncoder.from_pretrained(str(tmp_path / "lora"))
    (tmp_path / "lora" / "pt_dense_encoder.json").write_text("{")
    with pytest.raises(ModelFolderError, match="not valid JSON"):
        BiEncoder.from_pretrained(str(tmp_path / "lora"))


@pytest.mark.integration
def test_a_minilm_lora_folder_loads_in_a_fresh_environment_elsewhere(tmp_path, minilm):
    """Copy the saved folder, move HOME and the site-packages prefix: the base is found by name and hash."""
    import subprocess

    from pt_dense.models import packaged_model_path

    lora = minilm.with_lora(r=2, alpha=4)
    lora.save(tmp_path / "enc")
    package = packaged_model_path("minilm").parent
    text = "".join(p.read_text(errors="ignore") for p in (tmp_path / "enc").rglob("*") if p.is_file())
    assert str(package.parent) not in text and str(tmp_path) not in text
    shutil.copytree(tmp_path / "enc", tmp_path / "clone" / "enc")
    shutil.copytree(package, tmp_path / "site" / package.name)  # the same wheel under another prefix
    code = ("import pt_dense as ptd; from pt_dense.models import packaged_model_path; "
            "e = ptd.BiEncoder.from_pretrained('clone/enc'); "
            "print(e.fingerprint, e.base_source, packaged_model_path('minilm'))")
    env = {**__import__("os").environ, "HOME": str(tmp_path / "home"), "PYTHONPATH": str(tmp_path / "site")}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                         check=True).stdout.split()
    assert out[:2] == [lora.fingerprint, "minilm"] and out[2].startswith(str(tmp_path / "site"))
