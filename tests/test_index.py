"""DenseIndex: writing, reading, exact and HNSW search, re-ranking, encoder checks and bad input."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pandas as pd
import pyterrier as pt
import pytest

from pt_dense import EncoderMismatchError, IndexExistsError, IndexFormatError, InputError, MissingColumnsError
from pt_dense.encoders.stages import ENCODER_KEY, stamp
from pt_dense.index.dense_index import DenseIndex


def unit_rows(n: int, dim: int = 16, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def build(path, vectors, **kwargs) -> DenseIndex:
    index = DenseIndex(path)
    index.indexer(progress=False, **kwargs).index(
        {"docno": f"d{i}", "doc_vec": v} for i, v in enumerate(vectors))
    return index


def queries(vectors) -> pd.DataFrame:
    return pd.DataFrame({"qid": [f"q{i}" for i in range(len(vectors))], "query_vec": list(vectors)})


def test_index_round_trip_memory_maps_vectors_and_records_meta(tmp_path):
    vectors = unit_rows(50)
    index = build(tmp_path / "idx", vectors, chunk_size=7)
    assert isinstance(index.vectors, np.memmap)
    np.testing.assert_array_equal(np.asarray(index.vectors), vectors)
    assert list(index.docnos[:3]) == ["d0", "d1", "d2"]
    meta = json.loads((index.folder / "meta.json").read_text())
    assert (meta["dim"], meta["count"], meta["normalized"], meta["version"]) == (16, 50, True, 2)
    assert index.folder == tmp_path / "idx" / "gen-000001" and meta["files"]["vectors.f32"] == 50 * 16 * 4
    assert isinstance(pt.Artifact.load(str(tmp_path / "idx")), DenseIndex)


def test_flat_search_is_exact_and_hnsw_agrees(tmp_path):
    vectors = unit_rows(500)
    index = build(tmp_path / "idx", vectors)
    q = unit_rows(5, seed=1)
    res = index.retriever(k=10)(queries(q))
    expected = np.argsort(-(q @ vectors.T), axis=1)[:, :10]
    for i in range(5):
        hits = res[res["qid"] == f"q{i}"]
        assert list(hits["docno"]) == [f"d{j}" for j in expected[i]]
        assert list(hits["rank"]) == list(range(10))
        np.testing.assert_allclose(hits["score"], (q[i] @ vectors.T)[expected[i]], atol=1e-5)
    hnsw = index.retriever(k=10, kind="hnsw", M=16, ef_construction=100, ef_search=200)(queries(q))
    assert (hnsw["docno"].to_numpy() == res["docno"].to_numpy()).mean() > 0.9
    assert list(index.folder.glob("hnsw-M16-efc100.faiss"))


def test_k_larger_than_index_and_extra_columns_kept(tmp_path):
    index = build(tmp_path / "idx", unit_rows(3))
    frame = queries(unit_rows(2, seed=2)).assign(query=["a", "b"])
    res = index.retriever(k=10)(frame)
    assert len(res) == 6 and {"query", "query_vec", "docno", "score", "rank"} <= set(res.columns)


def test_scorer_rescores_candidates_from_stored_vectors(tmp_path):
    vectors = unit_rows(20)
    index = build(tmp_path / "idx", vectors)
    q = unit_rows(1, seed=3)[0]
    cands = pd.DataFrame({"qid": "q0", "query_vec": [q] * 3, "docno": ["d5", "d1", "d9"], "score": [3.0, 2.0, 1.0]})
    out = index.scorer()(cands)
    np.testing.assert_allclose(out.set_index("docno").loc[["d5", "d1", "d9"], "score"], vectors[[5, 1, 9]] @ q,
                               atol=1e-6)
    assert out["score"].is_monotonic_decreasing
    with_unknown = pd.concat([cands, cands.assign(docno="zzz").head(1)], ignore_index=True)
    with pytest.raises(InputError, match="zzz"):
        index.scorer()(with_unknown)
    assert len(index.scorer(missing="drop")(with_unknown)) == 3


def test_existing_index_is_never_overwritten_without_asking(tmp_path):
    build(tmp_path / "idx", unit_rows(5))
    with pytest.raises(IndexExistsError, match="overwrite=True"):
        build(tmp_path / "idx", unit_rows(9))
    assert len(DenseIndex(tmp_path / "idx")) == 5
    assert len(build(tmp_path / "idx", unit_rows(9), overwrite=True)) == 9


@pytest.mark.parametrize(
    ("records", "error", "match"),
    [
        ([], InputError, "empty"),
        ([{"docno": "a", "doc_vec": np.ones(4)}, {"docno": "a", "doc_vec": np.ones(4)}], InputError, "duplicate"),
        ([{"docno": "a", "doc_vec": np.ones(4)}, {"docno": "b", "doc_vec": np.ones(5)}], InputError, "dimension"),
        ([{"docno": "a", "doc_vec": np.array([1.0, np.nan])}], InputError, "NaN"),
        ([{"docno": "", "doc_vec": np.ones(4)}], InputError, "docno"),
        ([{"docno": "a", "text": "no vector"}], MissingColumnsError, "doc_encoder"),
    ],
)
def test_bad_documents_raise_and_leave_nothing_on_disk(tmp_path, records, error, match):
    with pytest.raises(error, match=match):
        DenseIndex(tmp_path / "idx").indexer(progress=False).index(iter(records))
    assert list(tmp_path.iterdir()) == []


def test_a_crash_mid_stream_leaves_the_old_index_intact(tmp_path):
    build(tmp_path / "idx", unit_rows(5))

    def crashing():
        yield {"docno": "x", "doc_vec": np.ones(16, np.float32)}
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        DenseIndex(tmp_path / "idx").indexer(overwrite=True, progress=False).index(crashing())
    assert len(DenseIndex(tmp_path / "idx")) == 5
    assert [p.name for p in tmp_path.iterdir()] == ["idx"]


def test_wrong_dimension_missing_columns_and_foreign_encoder_are_refused(tmp_path):
    index = DenseIndex(tmp_path / "idx")
    index.indexer(progress=False).index(
        [{"docno": "a", "doc_vec": np.ones(4, np.float32), ENCODER_KEY: {"fingerprint": "f" * 32, "name": "enc-a"}}])
    with pytest.raises(InputError, match="dimension 3 but the index has dimension 4"):
        index.retriever()(queries([np.ones(3, np.float32)]))
    with pytest.raises(MissingColumnsError, match="query_vec"):
        index.retriever()(pd.DataFrame({"qid": ["1"], "query": ["x"]}))
    foreign = pd.DataFrame({"qid": ["1"], "query_vec": stamp(np.ones((1, 4), np.float32), "0" * 32)})
    with pytest.raises(EncoderMismatchError, match="enc-a"):
        index.retriever()(foreign)
    with pytest.raises(EncoderMismatchError):
        index.scorer()(foreign.assign(docno="a"))
    own = pd.DataFrame({"qid": ["2"], "query_vec": stamp(np.ones((1, 4), np.float32), "f" * 32)})
    assert len(index.retriever()(own)) == 1
    # the identity rides on the vectors: it survives what drops DataFrame.attrs (merge, concat, copy, pickle)
    merged = foreign.merge(pd.DataFrame({"qid": ["1"], "extra": [1]}), on="qid")
    for frame in (merged, pd.concat([foreign, own]).copy(deep=True), pickle.loads(pickle.dumps(foreign))):
        with pytest.raises(EncoderMismatchError):
            index.retriever()(frame)
    with pytest.raises(EncoderMismatchError, match="2 different encoders"):
        index.scorer()(pd.concat([foreign, own]).assign(docno="a"))


def test_opening_something_that_is_not_an_index(tmp_path):
    with pytest.raises(IndexFormatError, match="no pt_dense index"):
        len(DenseIndex(tmp_path / "nothing"))
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "meta.json").write_text('{"format": "something-else"}')
    with pytest.raises(IndexFormatError, match="not a pt_dense"):
        len(DenseIndex(tmp_path / "other"))
    with pytest.raises(InputError, match="kind"):
        DenseIndex(tmp_path / "other").retriever(kind="ivf")


def test_encoder_to_index_pipeline_records_the_encoder(tmp_path, tiny_encoder):
    docs = [{"docno": f"d{i}", "text": t} for i, t in enumerate(["cat sat", "dog on mat", "gene protein", "cat"])]
    index = DenseIndex(tmp_path / "idx")
    (tiny_encoder.doc_encoder() >> index.indexer(progress=False)).index(docs)
    assert index.fingerprint == tiny_encoder.fingerprint
    assert index.meta["encoder"]["name"] == "tiny"
    res = (tiny_encoder.query_encoder() >> index.retriever(k=2))(pd.DataFrame({"qid": ["1"], "query": ["cat sat"]}))
    assert res["docno"].iloc[0] == "d0"
    from conftest import tiny_bert

    from pt_dense import BiEncoder

    other = BiEncoder(*tiny_bert(seed=5))
    with pytest.raises(EncoderMismatchError):
        (other.query_encoder() >> index.retriever())(pd.DataFrame({"qid": ["1"], "query": ["cat"]}))


@pytest.mark.parametrize(("kind", "params", "least_recall"), [
    ("IVF16,Flat", {"nprobe": 16}, 1.0),  # every list probed: exact
    ("IVF16,PQ8", {"nprobe": 16}, 0.5),
    ("HNSW16,SQ8", {"ef_search": 64}, 0.8),
    ("OPQ8,IVF8,PQ8", {"nprobe": 8}, 0.5),
])
def test_faiss_factory_kinds_are_trained_cached_and_searched(tmp_path, kind, params, least_recall):
    vectors = unit_rows(3000, dim=32)
    index = build(tmp_path / "idx", vectors)
    q = unit_rows(20, dim=32, seed=1)
    exact = index.retriever(k=10)(queries(q))
    approximate = index.retriever(k=10, kind=kind, train_size=2000, **params)(queries(q))
    recall = np.mean([len(set(exact[exact.qid == f"q{i}"].docno) & set(approximate[approximate.qid == f"q{i}"].docno))
                      / 10 for i in range(20)])
    assert recall >= least_recall
    assert len(list(index.folder.glob("factory-*.faiss"))) == 1  # trained once, kept beside the vectors


def test_factory_search_parameters_belong_to_each_stage(tmp_path):
    index = build(tmp_path / "idx", unit_rows(2000, dim=16))
    q = queries(unit_rows(30, dim=16, seed=2))
    narrow = index.retriever(k=10, kind="IVF32,Flat", nprobe=1, train_size=2000)
    wide = index.retriever(k=10, kind="IVF32,Flat", nprobe=32, train_size=2000)
    exact = index.retriever(k=10)(q)
    assert wide(q)["docno"].tolist() == exact["docno"].tolist()
    assert narrow(q)["docno"].tolist() != exact["docno"].tolist()
    assert wide(q)["docno"].tolist() == exact["docno"].tolist()  # the narrow stage did not change the wide one
    with pytest.raises(InputError, match="or a FAISS factory string"):
        index.retriever(kind="IVF32;PQ8")
    with pytest.raises(InputError, match="FAISS cannot build"):
        index.retriever(k=10, kind="IVF32,PQ7")(q)  # 16 dimensions do not split into 7 sub-vectors
    with pytest.raises(InputError, match="needs more vectors"):
        index.retriever(k=10, kind="IVF4096,Flat")(q)


@pytest.mark.parametrize("k", [1, 10, 57, 80])
def test_blas_topk_returns_what_faiss_knn_returns(monkeypatch, k):
    import faiss

    from pt_dense.index import retriever as retriever_module

    rng = np.random.default_rng(k)
    vectors, queries = rng.normal(size=(57, 16)).astype(np.float32), rng.normal(size=(9, 16)).astype(np.float32)
    monkeypatch.setattr(retriever_module, "SCORE_BLOCK", 57 * 4)  # blocks of 4 queries
    scores, rows = retriever_module.blas_topk(queries, vectors, k)
    expected_scores, expected_rows = faiss.knn(queries, vectors, k, metric=faiss.METRIC_INNER_PRODUCT)
    assert rows.shape == expected_rows.shape == (9, k)
    np.testing.assert_array_equal(rows, expected_rows)  # -1 where there are fewer than k vectors, as FAISS pads
    np.testing.assert_allclose(scores[rows >= 0], expected_scores[expected_rows >= 0], rtol=1e-5, atol=1e-5)
