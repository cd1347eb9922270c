"""PEFA-XL and PEFA-XS on synthetic vectors: the formulas, candidate merging, leak checks, tuning."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyterrier as pt
import pytest

from pt_dense import InputError
from pt_dense.index.dense_index import DenseIndex
from pt_dense.io.cache import cache_dir
from pt_dense.pefa import PEFA

DIM = 8


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


class TextToVector(pt.Transformer):
    """A stand-in encoder stage: looks each query text up in a table."""

    def __init__(self, table: dict[str, np.ndarray]):
        self.table = table

    def transform(self, inp: pd.DataFrame) -> pd.DataFrame:
        return inp.assign(query_vec=[self.table[q] for q in inp["query"]])


@pytest.fixture
def setup(tmp_path):
    rng = np.random.default_rng(0)
    docs = unit(rng.normal(size=(40, DIM)))
    index = DenseIndex(tmp_path / "docs")
    index.indexer(progress=False).index({"docno": f"d{i}", "doc_vec": v} for i, v in enumerate(docs))
    train_vecs = unit(rng.normal(size=(6, DIM)))
    table = {f"train {i}": v for i, v in enumerate(train_vecs)}
    test_vecs = unit(train_vecs[:2] + 0.05 * rng.normal(size=(2, DIM)))  # near training queries 0 and 1
    table |= {"test 0": test_vecs[0], "test 1": test_vecs[1]}
    train_topics = pd.DataFrame({"qid": [f"t{i}" for i in range(6)], "query": [f"train {i}" for i in range(6)]})
    # training query i is relevant to documents 30+i and 36 (docno 'd99' is not in the index and is ignored)
    qrels = pd.DataFrame({"qid": [f"t{i}" for i in range(6)] * 2 + ["t0"],
                          "docno": [f"d{30 + i}" for i in range(6)] + ["d36"] * 6 + ["d99"], "label": 1})
    test = pd.DataFrame({"qid": ["q0", "q1"], "query": ["test 0", "test 1"]})
    return index, TextToVector(table), train_topics, qrels, test, docs, train_vecs, test_vecs


def test_xl_reranker_follows_the_formula(setup):
    index, enc, topics, qrels, test, docs, train_vecs, test_vecs = setup
    pefa = PEFA(index, enc, topics, qrels, kind="xl", lam=0.3, k=2)
    cands = enc(test).merge(pd.DataFrame({"docno": ["d30", "d31", "d36", "d5"]}), how="cross")
    out = pefa.reranker()(cands).set_index(["qid", "docno"])["score"]
    labels = np.zeros((6, 40))
    labels[np.arange(6), 30 + np.arange(6)] = 1
    labels[:, 36] = 1
    for qpos, qid in enumerate(["q0", "q1"]):
        sims = train_vecs @ test_vecs[qpos]
        nearest = np.argsort(-sims)[:2]
        knn = (sims[nearest, None] * labels[nearest]).sum(0)
        for docno in ["d30", "d31", "d36", "d5"]:
            row = int(docno[1:])
            expected = 0.3 * docs[row] @ test_vecs[qpos] + 0.7 * knn[row]
            assert out[(qid, docno)] == pytest.approx(expected, abs=1e-5)


def test_xl_retriever_adds_the_documents_of_neighbouring_training_queries(setup):
    index, enc, topics, qrels, test, *_ = setup
    pefa = PEFA(index, enc, topics, qrels, kind="xl", lam=0.5, k=1)
    res = (enc >> pefa.retriever(k=3))(test)
    assert res.groupby("qid").size().tolist() == [3, 3]
    top = res[res["rank"] == 0].set_index("qid")["docno"]
    assert set(res[res["qid"] == "q0"]["docno"]) >= {"d30", "d36"}  # labels of the nearest training query
    assert top["q1"] in {"d31", "d36"}
    assert res.groupby("qid")["score"].apply(lambda s: s.is_monotonic_decreasing).all()
    reranked = pefa.reranker()(res[["qid", "query_vec", "docno"]])
    np.testing.assert_allclose(np.sort(reranked["score"].to_numpy()), np.sort(res["score"].to_numpy()), atol=1e-6)


def test_xs_folds_training_queries_into_document_vectors(setup):
    index, enc, topics, qrels, test, docs, train_vecs, test_vecs = setup
    pefa = PEFA(index, enc, topics, qrels, kind="xs", lam=0.4)
    folded = pefa.folded_vectors()
    np.testing.assert_allclose(folded[30], 0.4 * docs[30] + 0.6 * train_vecs[0], atol=1e-6)
    np.testing.assert_allclose(folded[36], 0.4 * docs[36] + 0.6 * unit(train_vecs.sum(0)), atol=1e-6)
    np.testing.assert_allclose(folded[5], 0.4 * docs[5], atol=1e-6)
    res = (enc >> pefa.retriever(k=5))(test)
    expected = np.argsort(-(test_vecs @ folded.T), axis=1)[:, :5]
    assert list(res[res["qid"] == "q0"]["docno"]) == [f"d{i}" for i in expected[0]]
    folded = pefa.folded_index()
    assert folded.built() and folded.path.is_relative_to(cache_dir())  # in the cache, never beside the user's index
    assert [p.name for p in index.path.parent.iterdir()] == ["docs"]


def test_training_queries_are_refused_by_qid_and_by_text(setup):
    index, enc, topics, qrels, *_ = setup
    pefa = PEFA(index, enc, topics, qrels)
    with pytest.raises(InputError, match="training queries"):
        (enc >> pefa.retriever())(topics.head(1))
    same_text = pd.DataFrame({"qid": ["new"], "query": ["Train  0"]}).assign(query_vec=[np.ones(DIM, np.float32)])
    with pytest.raises(InputError, match="new"):
        pefa.reranker()(same_text.assign(docno="d1"))


def test_bad_settings_and_unmatched_qrels(setup):
    index, enc, topics, qrels, *_ = setup
    with pytest.raises(InputError, match="lam"):
        PEFA(index, enc, topics, qrels, lam=2)
    with pytest.raises(InputError, match="kind"):
        PEFA(index, enc, topics, qrels, kind="xxl")
    with pytest.raises(InputError, match="same collection"):
        PEFA(index, enc, topics, qrels.assign(docno="elsewhere"))


def test_tune_picks_the_best_setting_and_plots(setup, tmp_path):
    index, enc, topics, qrels, test, *_ = setup
    valid_qrels = pd.DataFrame({"qid": ["q0", "q1"], "docno": ["d30", "d31"], "label": 1})
    pefa = PEFA(index, enc, topics, qrels, kind="xl")
    stage = pefa.retriever(k=3)
    result = pefa.tune(test, valid_qrels, lams=(0.0, 1.0), ks=(1, 4), measure="RR", plot=tmp_path / "grid.png")
    assert len(result["grid"]) == 4 and result["best"]["RR"] == max(r["RR"] for r in result["grid"])
    tuned = result["pefa"]
    assert (tuned.lam, tuned.k) == (result["best"]["lam"], result["best"]["k"])
    assert (pefa.lam, pefa.k) == (0.5, 32) and stage.pefa is pefa  # tuning returns a new PEFA, changes nothing live
    assert tuned.train_vectors is pefa.train_vectors  # nothing encoded again
    assert result["best"]["lam"] == 0.0  # the labels beat the random document vectors here
    assert (tmp_path / "grid.png").stat().st_size > 5000


def test_drop_overlap_removes_shared_queries_from_the_training_side():
    from pt_dense.pefa import drop_overlap

    train = pd.DataFrame({"qid": ["a", "b", "c"], "query": ["Cats sit", "dogs run", "birds fly"]})
    held = pd.DataFrame({"qid": ["c", "x"], "query": ["something", "cats  SIT"]})
    assert drop_overlap(train, held)["qid"].tolist() == ["b"]


def test_sparse_lookup_matches_dense_indexing():
    import scipy.sparse as sp

    from pt_dense.pefa import sparse_lookup

    matrix = sp.random(30, 50, density=0.1, random_state=0, format="csr")
    rng = np.random.default_rng(1)
    rows, cols = rng.integers(0, 30, 500), rng.integers(0, 50, 500)
    np.testing.assert_allclose(sparse_lookup(matrix, rows, cols), matrix.toarray()[rows, cols])
    assert sparse_lookup(sp.csr_matrix((3, 4)), np.array([0, 2]), np.array([1, 3])).tolist() == [0.0, 0.0]


def test_xl_refuses_approximate_kinds_that_it_would_ignore(setup):
    index, enc, topics, qrels, *_ = setup
    with pytest.raises(InputError, match="PEFA-XL scores every document exactly"):
        PEFA(index, enc, topics, qrels, kind="xl").retriever(kind="hnsw")
    assert PEFA(index, enc, topics, qrels, kind="xs").retriever(k=3, kind="hnsw").folded_retriever.kind == "hnsw"


def test_with_settings_shares_the_encoded_queries_and_leaves_the_original(setup):
    index, enc, topics, qrels, *_ = setup
    pefa = PEFA(index, enc, topics, qrels, kind="xl", lam=0.5, k=2)
    other = pefa.with_settings(lam=0.9)
    assert (other.lam, other.k, pefa.lam) == (0.9, 2, 0.5) and other.labels is pefa.labels
    with pytest.raises(InputError, match="lam"):
        pefa.with_settings(lam=1.5)
