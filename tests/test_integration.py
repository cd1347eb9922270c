"""The real MiniLM on a real SciFact subset: parity with sentence-transformers, the full pipeline, caching, CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from pt_dense import datasets, evaluation
from pt_dense.cli import main
from pt_dense.index import cached_index

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def subset(scifact_subset):
    return datasets.load(scifact_subset)


@pytest.fixture(scope="module")
def subset_index(subset, minilm):
    return cached_index(subset, minilm)


def test_minilm_matches_sentence_transformers(minilm, subset):
    from sentence_transformers import SentenceTransformer

    from pt_dense.models import packaged_model_path

    texts = [d["text"] for d in list(subset.corpus_iter())[:40]]
    reference = SentenceTransformer(str(packaged_model_path("minilm")), device="cpu").encode(
        texts, batch_size=16, normalize_embeddings=True)
    np.testing.assert_allclose(minilm.encode(texts, "doc", batch_size=7), reference, atol=1e-5)


def test_dense_pipeline_finds_relevant_documents(subset, subset_index, minilm):
    systems = {"dense": minilm.query_encoder() >> subset_index.retriever(k=100)}
    table = evaluation.evaluate(systems, subset.topics("test"), subset.qrels("test"))
    assert table.loc[0, "nDCG@10"] > 0.6 and table.loc[0, "R@100"] > 0.85


def test_reranking_from_stored_vectors_equals_dense_scores(subset, subset_index, minilm):
    topics = subset.topics("test").head(5)
    dense = (minilm.query_encoder() >> subset_index.retriever(k=20))(topics)
    reranked = (minilm.query_encoder() >> subset_index.scorer())(dense[["qid", "query", "docno"]])
    merged = dense.merge(reranked, on=["qid", "docno"], suffixes=("_dense", "_rerank"))
    assert len(merged) == len(dense)
    np.testing.assert_allclose(merged["score_dense"], merged["score_rerank"], atol=1e-5)
    assert (merged["rank_dense"] == merged["rank_rerank"]).all()


def test_second_use_encodes_no_document(subset, subset_index, minilm, monkeypatch):
    encode = minilm.encode

    def queries_only(texts, side="doc", **kwargs):
        assert side != "doc", "a cached index was encoded again"
        return encode(texts, side, **kwargs)

    monkeypatch.setattr(minilm, "encode", queries_only)
    assert cached_index(subset, minilm).path == subset_index.path
    assert len((minilm.query_encoder() >> subset_index.retriever(k=3))(subset.topics("test").head(2))) == 6


def test_cli_eval_prints_a_table_and_writes_json(scifact_subset, subset_index, tmp_path, capsys):
    out = tmp_path / "eval.json"
    png = tmp_path / "eval.png"
    code = main(["eval", "--data", str(scifact_subset), "--systems", "bm25,dense,bm25>>dense,hybrid,rrf",
                 "--json", str(out), "--png", str(png)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "| bm25>>dense |" in printed and "nDCG@10" in printed
    payload = json.loads(out.read_text())
    assert set(payload["systems"]) == {"bm25", "dense", "bm25>>dense", "hybrid", "rrf"}
    for scores in payload["systems"].values():
        assert set(scores) == {"nDCG@10", "R@100", "AP"} and all(0 <= v <= 1 for v in scores.values())
    assert payload["systems"]["hybrid"]["nDCG@10"] > payload["systems"]["bm25"]["nDCG@10"] - 0.05
    assert png.stat().st_size > 10_000


def test_cli_reports_bad_input_with_exit_code_2(capsys):
    assert main(["eval", "--data", "scifact", "--systems", "bm25,colbert"]) == 2
    assert "unknown system" in capsys.readouterr().err
    assert main(["eval", "--data", "no-such-data"]) == 2


def test_import_is_light():
    code = "import sys, pt_dense; print(sorted(m for m in ('torch', 'transformers', 'pyterrier', 'jnius') " \
           "if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
