"""PEFA on an index with deleted documents: XS and XL, retriever and re-ranker, never score or return one, and
tuning scores each setting with the very stage that serves it (same documents, same scores)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyterrier as pt
import pytest

from pt_dense.index.dense_index import DenseIndex
from pt_dense.pefa import PEFA
from pt_dense.pefa.tuning import grid_run

DIM = 8
DELETED = ["d30", "d31", "d36", "d5", "d17"]  # the labelled documents of the test queries' neighbours among them


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


class TextToVector(pt.Transformer):
    def __init__(self, table: dict[str, np.ndarray]):
        self.table = table

    def transform(self, inp: pd.DataFrame) -> pd.DataFrame:
        return inp.assign(query_vec=[self.table[q] for q in inp["query"]])


@pytest.fixture
def setup(tmp_path):
    rng = np.random.default_rng(3)
    docs = unit(rng.normal(size=(40, DIM)))
    train_vecs = unit(rng.normal(size=(6, DIM)))
    test_vecs = unit(train_vecs[:2] + 0.05 * rng.normal(size=(2, DIM)))
    docs[5], docs[17] = test_vecs[0], test_vecs[1]  # the dense nearest documents of the test queries: deleted below
    index = DenseIndex(tmp_path / "docs")
    index.indexer(progress=False).index({"docno": f"d{i}", "doc_vec": v} for i, v in enumerate(docs))
    index.delete(DELETED)
    table = {f"train {i}": v for i, v in enumerate(train_vecs)} | {"test 0": test_vecs[0], "test 1": test_vecs[1]}
    topics = pd.DataFrame({"qid": [f"t{i}" for i in range(6)], "query": [f"train {i}" for i in range(6)]})
    qrels = pd.DataFrame({"qid": [f"t{i}" for i in range(6)] * 2, "label": 1,
                          "docno": [f"d{30 + i}" for i in range(6)] + ["d36"] * 6})
    test = pd.DataFrame({"qid": ["q0", "q1"], "query": ["test 0", "test 1"]})
    return index, TextToVector(table), topics, qrels, test


@pytest.mark.parametrize("kind", ["xl", "xs"])
def test_the_retriever_never_returns_a_deleted_document(setup, kind):
    index, enc, topics, qrels, test = setup
    pefa = PEFA(index, enc, topics, qrels, kind=kind, lam=0.5, k=4)
    res = (enc >> pefa.retriever(k=100))(test)
    assert not set(res["docno"]) & set(DELETED)
    assert res.groupby("qid").size().tolist() == [index.live_count] * 2  # every live document, and nothing else


@pytest.mark.parametrize("kind", ["xl", "xs"])
def test_the_reranker_never_scores_a_deleted_candidate(setup, kind):
    index, enc, topics, qrels, test = setup
    pefa = PEFA(index, enc, topics, qrels, kind=kind, lam=0.5, k=4)
    candidates = test.merge(pd.DataFrame({"docno": [f"d{i}" for i in range(40)]}), how="cross")
    res = (enc >> pefa.reranker())(candidates)
    assert not set(res["docno"]) & set(DELETED) and len(res) == 2 * index.live_count


def test_xl_scores_by_the_formula_over_the_live_documents_only(setup):
    index, enc, topics, qrels, test = setup
    pefa = PEFA(index, enc, topics, qrels, kind="xl", lam=0.5, k=2)
    res = (enc >> pefa.retriever(k=100))(test)
    queries = np.stack(enc(test)["query_vec"])
    live = np.setdiff1d(np.arange(len(index)), index.deleted)
    expected = 0.5 * queries @ np.asarray(index.vectors)[live].T + 0.5 * pefa.knn_scores(queries).toarray()[:, live]
    for q, qid in enumerate(test["qid"]):
        got = res[res["qid"] == qid].set_index("docno")["score"]
        want = pd.Series(expected[q], index=index.docnos[live])
        np.testing.assert_allclose(got.sort_index(), want.sort_index(), rtol=1e-5, atol=1e-6)
    assert pefa.labels[:, index.deleted].nnz == 0  # a judgement of a deleted document is no label


@pytest.mark.parametrize(("kind", "lam", "k"), [("xl", 0.3, 2), ("xl", 0.0, 4), ("xs", 0.3, 4), ("xs", 0.0, 4)])
def test_tuning_scores_what_serving_returns(setup, kind, lam, k):
    index, enc, topics, qrels, test = setup
    cell = PEFA(index, enc, topics, qrels, kind=kind).with_settings(lam=lam, k=k)
    tuned = grid_run(cell, enc(test), 100).sort_values(["query_id", "doc_id"]).reset_index(drop=True)
    served = (enc >> cell.retriever(k=100))(test).rename(columns={"qid": "query_id", "docno": "doc_id"})
    served = served[["query_id", "doc_id", "score"]].sort_values(["query_id", "doc_id"]).reset_index(drop=True)
    assert not set(tuned["doc_id"]) & set(DELETED)
    pd.testing.assert_frame_equal(tuned, served.astype({"query_id": str, "doc_id": str}))


@pytest.mark.parametrize("kind", ["xl", "xs"])
def test_tuning_gives_a_deleted_relevant_document_no_credit(setup, kind):
    index, enc, topics, qrels, test = setup
    valid_qrels = pd.DataFrame({"qid": ["q0", "q1"], "docno": ["d30", "d5"], "label": 1})  # both deleted
    result = PEFA(index, enc, topics, qrels, kind=kind).tune(test, valid_qrels, lams=(0.0, 0.5, 1.0), ks=(1, 4),
                                                             measure="RR")
    assert all(row["RR"] == 0 for row in result["grid"])


def test_a_document_deleted_after_a_folded_index_was_built_is_not_served(setup):
    index, enc, topics, qrels, test = setup
    live = set(index.docnos) - set(DELETED)
    first = (enc >> PEFA(index, enc, topics, qrels, kind="xs").retriever(k=100))(test)
    victim = first.iloc[0]["docno"]
    index.delete([victim])
    again = (enc >> PEFA(index, enc, topics, qrels, kind="xs").retriever(k=100))(test)
    assert victim not in set(again["docno"]) and set(again["docno"]) == live - {victim}
