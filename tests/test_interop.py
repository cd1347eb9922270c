"""Interop with peers: pyterrier_dr FlexIndex folders opened in place and exported, Pyserini's FaissSearcher and
search command on our ONNX export, and PyTerrier artifact packages of indexes and encoders."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyterrier as pt
import pytest
from conftest import WORDS

from pt_dense import Corrector, EncoderMismatchError, IndexExistsError, IndexFormatError, InputError, export
from pt_dense.index import DenseIndex, open_flex

DOCS = [{"docno": f"d{i}", "text": " ".join(WORDS[i : i + 5])} for i in range(len(WORDS) - 5)]
QUERIES = pd.DataFrame({"qid": ["1", "2", "3"], "query": ["cat sat on mat", "gene cancer risk", "brain drug trial"]})


def unit_vectors(n: int, dim: int, seed: int = 0) -> np.ndarray:
    vectors = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def dr_flex(path, records):
    """A FlexIndex built by pyterrier_dr's own indexer from ``docno, doc_vec`` records."""
    import pyterrier_dr

    flex = pyterrier_dr.FlexIndex(str(path), verbose=False)
    flex.index(records)
    return flex


def folder_digest(folder) -> str:
    """The FlexIndex's own files (caches may be added beside them, as pyterrier_dr adds its own)."""
    digest = hashlib.sha256()
    for name in ("pt_meta.json", "vecs.f4", "docnos.npids"):
        digest.update(name.encode() + (Path(folder) / name).read_bytes())
    return digest.hexdigest()


def ranking(frame: pd.DataFrame) -> list[tuple]:
    return list(frame.sort_values(["qid", "rank"])[["qid", "docno"]].itertuples(index=False, name=None))


@pytest.fixture
def tiny_index(tmp_path, tiny_encoder):
    index = DenseIndex(tmp_path / "index")
    (tiny_encoder.doc_encoder() >> index.indexer(progress=False)).index(DOCS)
    return index


# ---------------------------------------------------------------------------------------------- pyterrier_dr
def test_a_flexindex_is_searched_in_place_like_pyterrier_dr_searches_it(tmp_path):
    vectors = unit_vectors(300, 16)
    flex = dr_flex(tmp_path / "x.flex", [{"docno": f"doc-{i}", "doc_vec": v} for i, v in enumerate(vectors)])
    before = folder_digest(flex.index_path)
    view = open_flex(flex)  # the pyterrier_dr object, or its folder
    assert isinstance(view, DenseIndex) and len(view) == 300 and view.dim == 16 and view.fingerprint is None
    assert view.meta["normalized"] and Path(view.vectors.filename) == (tmp_path / "x.flex" / "vecs.f4").absolute()
    queries = pd.DataFrame({"qid": ["q1", "q2", "q3"], "query_vec": list(unit_vectors(3, 16, seed=1))})
    ours = view.retriever(k=10)(queries)
    theirs = flex.np_retriever(num_results=10)(queries)
    assert ranking(ours) == ranking(theirs)
    np.testing.assert_allclose(ours.sort_values(["qid", "rank"])["score"],
                               theirs.sort_values(["qid", "rank"])["score"], atol=1e-5)
    hnsw = open_flex(tmp_path / "x.flex").retriever(k=10, kind="hnsw")(queries)
    assert len(set(ranking(hnsw)) & set(ranking(ours))) >= 27  # approximate, nearly exact at this size
    rescored = view.scorer()(ours[["qid", "query_vec", "docno"]])
    np.testing.assert_allclose(np.sort(rescored["score"]), np.sort(ours["score"]), atol=1e-6)
    with pytest.raises(InputError, match="dimension"):
        view.retriever()(pd.DataFrame({"qid": ["q"], "query_vec": [np.ones(8, np.float32)]}))
    assert folder_digest(flex.index_path) == before  # vectors, docnos and meta untouched


def test_pefa_and_a_corrector_refresh_run_on_a_flex_view(tmp_path, tiny_encoder, tiny_index):
    flex = dr_flex(tmp_path / "x.flex", [{"docno": d, "doc_vec": v} for d, v in
                                         zip(tiny_index.docnos, np.asarray(tiny_index.vectors), strict=True)])
    before = folder_digest(flex.index_path)
    view = open_flex(flex)
    from pt_dense import PEFA

    train = pd.DataFrame({"qid": ["t1", "t2"], "query": ["dog on the mat", "protein cell gene"]})
    qrels = pd.DataFrame({"qid": ["t1", "t2"], "docno": ["d2", "d7"], "label": [1, 1]})
    stage = tiny_encoder.query_encoder()
    on_view = (stage >> PEFA(view, tiny_encoder, train, qrels).retriever(k=5))(QUERIES)
    on_index = (stage >> PEFA(tiny_index, tiny_encoder, train, qrels).retriever(k=5))(QUERIES)
    assert ranking(on_view) == ranking(on_index)

    from conftest import tiny_bert

    from pt_dense import BiEncoder

    newer = BiEncoder(*tiny_bert(seed=3), name="newer", query_max_length=16, doc_max_length=32)
    corrector = Corrector.fit(view, newer, corpus=DOCS, sample=0.5, epochs=3, progress=False)
    with pytest.raises(InputError, match="path="):
        view.refresh(corrector)
    refreshed = view.refresh(corrector, tmp_path / "refreshed.ptd")
    assert type(refreshed) is DenseIndex and refreshed.fingerprint == newer.fingerprint
    assert np.array_equal(np.asarray(refreshed.base_vectors), np.asarray(view.vectors))
    assert len((newer.query_encoder() >> refreshed.retriever(k=3))(QUERIES)) == 9
    with pytest.raises(EncoderMismatchError):
        (tiny_encoder.query_encoder() >> refreshed.retriever(k=3))(QUERIES)
    with pytest.raises(IndexExistsError):
        view.refresh(corrector, tmp_path / "refreshed.ptd")
    assert folder_digest(flex.index_path) == before


def test_a_dense_index_exported_as_flex_opens_in_pyterrier_dr_and_keeps_its_encoder(tmp_path, tiny_encoder,
                                                                                     tiny_index):
    import pyterrier_dr

    out = export.flex(tiny_index, tmp_path / "out.flex")
    assert export.to("flex", tiny_index, tmp_path / "again.flex") == tmp_path / "again.flex"
    loaded = pt.Artifact.load(str(out))
    assert isinstance(loaded, pyterrier_dr.FlexIndex)
    encoded = tiny_encoder.query_encoder()(QUERIES)
    theirs = loaded.np_retriever(num_results=5)(encoded)
    ours = tiny_index.retriever(k=5)(encoded)
    assert ranking(theirs) == ranking(ours)
    view = open_flex(out)
    assert view.fingerprint == tiny_encoder.fingerprint  # pt_dense.json beside the vectors
    assert ranking(view.retriever(k=5)(encoded)) == ranking(ours)
    from conftest import tiny_bert

    from pt_dense import BiEncoder

    other = BiEncoder(*tiny_bert(seed=9), name="other", query_max_length=16)
    with pytest.raises(EncoderMismatchError):
        (other.query_encoder() >> view.retriever())(QUERIES)
    with pytest.raises(IndexExistsError):
        export.flex(tiny_index, out)
    flex_again = export.flex(view, tmp_path / "copy.flex")  # a view exports too
    assert list(open_flex(flex_again).docnos) == list(tiny_index.docnos)
    tiny_index.delete(["d0", "d3"])  # deleted documents are left out
    shrunk = pyterrier_dr.FlexIndex(str(export.flex(tiny_index, tmp_path / "shrunk.flex")), verbose=False)
    assert len(shrunk) == len(DOCS) - 2 and not {"d0", "d3"} & set(open_flex(shrunk).docnos)
    assert ranking(shrunk.np_retriever(num_results=5)(encoded)) == ranking(tiny_index.retriever(k=5)(encoded))


def test_flex_bad_input(tmp_path, tiny_index):
    with pytest.raises(IndexFormatError, match="does not exist"):
        open_flex(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(IndexFormatError, match=r"no pt_meta\.json"):
        open_flex(tmp_path / "empty")
    with pytest.raises(IndexFormatError, match=r"ptd.DenseIndex\(path\)"):
        open_flex(tiny_index.path)  # a pt_dense index, not a FlexIndex
    with pytest.raises(InputError, match="open_flex takes"):
        open_flex(42)
    flex = dr_flex(tmp_path / "x.flex", [{"docno": f"d{i}", "doc_vec": v} for i, v in enumerate(unit_vectors(9, 4))])
    view = open_flex(flex)
    with pytest.raises(InputError, match="read-only"):
        view.indexer()
    with pytest.raises(InputError, match=r"to_dense_index\(path\)"):
        view.delete(["d1"])
    with pytest.raises(InputError, match="read-only"):
        view.add([{"docno": "new", "doc_vec": np.ones(4, np.float32)}])
    with pytest.raises(InputError, match="FlexIndex itself"):
        view.to_dense_index(flex.index_path)
    vecs = flex.index_path / "vecs.f4"
    vecs.write_bytes(vecs.read_bytes()[:-4])
    with pytest.raises(IndexFormatError, match=r"vecs\.f4 holds 140 bytes"):
        open_flex(flex.index_path)
    docnos = ["x1", "x1", "y2"]
    dup = dr_flex(tmp_path / "dup.flex", [{"docno": d, "doc_vec": v} for d, v in
                                         zip(docnos, unit_vectors(3, 4), strict=True)])
    with pytest.raises(IndexFormatError, match="repeats docnos"):
        open_flex(dup).retriever(k=2)(pd.DataFrame({"qid": ["q"], "query_vec": [np.ones(4, np.float32)]}))
    (tmp_path / "bad.flex").mkdir()
    (tmp_path / "bad.flex" / "pt_meta.json").write_text('{"type": "dense_index", "format": "flex", "doc_count": 0}')
    with pytest.raises(IndexFormatError, match="doc_count=0"):
        open_flex(tmp_path / "bad.flex")


@pytest.mark.integration
def test_flex_round_trip_on_scifact_gives_pt_dense_ndcg(tmp_path, scifact_subset, minilm):
    import pyterrier_dr

    from pt_dense import datasets, evaluation
    from pt_dense.index import cached_index

    data = datasets.load(scifact_subset)
    index = cached_index(data, minilm)
    flex = dr_flex(tmp_path / "scifact.flex", ({"docno": d, "doc_vec": v} for d, v in
                                               zip(index.docnos, np.asarray(index.vectors), strict=True)))
    exported = pyterrier_dr.FlexIndex(str(export.flex(index, tmp_path / "exported.flex")), verbose=False)
    query = minilm.query_encoder()
    systems = {
        "pt_dense": query >> index.retriever(k=100),
        "open_flex(pyterrier_dr index)": query >> open_flex(flex).retriever(k=100),
        "pyterrier_dr on its index": query >> flex.np_retriever(num_results=100),
        "pyterrier_dr on export.flex": query >> exported.np_retriever(num_results=100),
        "open_flex(export.flex)": query >> open_flex(exported).retriever(k=100),
    }
    table = evaluation.evaluate(systems, data.topics("test"), data.qrels("test")).set_index("name")
    print("\n" + table[["nDCG@10", "R@100"]].to_string(float_format="{:.6f}".format))
    reference = table.loc["pt_dense", "nDCG@10"]
    assert reference > 0.6
    for name in systems:
        assert abs(table.loc[name, "nDCG@10"] - reference) < 1e-4, name


# ---------------------------------------------------------------------------------------------- Pyserini
@pytest.fixture(scope="module")
def minilm_deployment(tmp_path_factory, scifact_subset, minilm):
    """MiniLM's index of the SciFact subset, its ONNX export and its Pyserini FAISS export."""
    from pt_dense import datasets
    from pt_dense.index import cached_index

    data = datasets.load(scifact_subset)
    index = cached_index(data, minilm)
    folder = tmp_path_factory.mktemp("deploy")
    queries = list(data.topics("test")["query"][:8])
    onnx = export.onnx(minilm, folder / "onnx", sample_docs=queries, sample_queries=queries)
    return data, index, onnx, export.pyserini_faiss(index, folder / "faiss")


def trec_run(path) -> pd.DataFrame:
    run = pd.read_csv(path, sep=r"\s+", header=None, names=["qid", "q0", "docno", "rank", "score", "tag"],
                      dtype={"qid": str, "docno": str})
    return run[["qid", "docno", "score", "rank"]]


@pytest.mark.integration
def test_pyserini_searches_with_our_onnx_encoder_like_pt_dense(tmp_path, minilm, minilm_deployment):
    import subprocess
    import sys

    from pt_dense import evaluation
    from pt_dense.deploy.pyserini_encoder import PtDenseQueryEncoder
    from pt_dense.metrics import measures, trec_qrels

    data, index, onnx, faiss_dir = minilm_deployment
    topics = data.topics("test")
    from pyserini.search.faiss import FaissSearcher

    searcher = FaissSearcher(str(faiss_dir), PtDenseQueryEncoder(onnx))
    hits = searcher.batch_search(list(topics["query"]), list(topics["qid"]), k=100, threads=2)
    api_run = pd.DataFrame([(qid, h.docid, float(h.score)) for qid, found in hits.items() for h in found],
                           columns=["qid", "docno", "score"])
    one = searcher.search(topics["query"].iloc[0], k=3)
    assert [h.docid for h in one] == list(api_run[api_run["qid"] == topics["qid"].iloc[0]]["docno"][:3])

    (tmp_path / "topics.tsv").write_text("".join(f"{q}\t{t}\n" for q, t in zip(topics["qid"], topics["query"],
                                                                                   strict=True)))
    command = [sys.executable, "-m", "pt_dense.deploy.pyserini_encoder", "--index", str(faiss_dir), "--encoder",
               str(onnx), "--topics", str(tmp_path / "topics.tsv"), "--output", str(tmp_path / "run.trec"),
               "--hits", "100", "--batch-size", "16", "--threads", "2"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    cli_run = trec_run(tmp_path / "run.trec")

    dense = (minilm.query_encoder() >> index.retriever(k=100))(topics)
    table = evaluation.evaluate({"pt_dense": minilm.query_encoder() >> index.retriever(k=100)}, topics,
                                data.qrels("test"))
    reference = table.loc[0, "nDCG@10"]
    ndcg = measures(["nDCG@10"])["nDCG@10"]
    qrels = trec_qrels(data.qrels("test")).rename(columns={"qid": "query_id", "docno": "doc_id", "label": "relevance"})
    scores = {}
    for name, run in {"FaissSearcher + PtDenseQueryEncoder": api_run, "python -m ...pyserini_encoder": cli_run,
                      "pt_dense (same computation)": dense}.items():
        frame = run.rename(columns={"qid": "query_id", "docno": "doc_id"})[["query_id", "doc_id", "score"]]
        scores[name] = ndcg.calc_aggregate(qrels, frame)
    print(f"\npt_dense stages nDCG@10 {reference:.6f};",
          {k: f"{v:.6f} ({v - reference:+.1e})" for k, v in scores.items()})
    assert reference > 0.6 and abs(scores["pt_dense (same computation)"] - reference) < 1e-9
    for name, value in scores.items():
        assert abs(value - reference) < 1e-4, name
    merged = dense.merge(api_run, on=["qid", "docno"], suffixes=("", "_pyserini"))
    assert len(merged) == len(dense)  # the same 100 documents per query, with the same dot products
    np.testing.assert_allclose(merged["score"], merged["score_pyserini"], atol=1e-4)


@pytest.mark.integration
def test_pyserini_encoder_refuses_settings_its_export_decides(tmp_path, minilm_deployment):
    from pt_dense.deploy.pyserini_encoder import PtDenseQueryEncoder

    _, _, onnx, faiss_dir = minilm_deployment
    with pytest.raises(InputError, match="pooling 'cls'"):
        PtDenseQueryEncoder(onnx, pooling="cls")
    with pytest.raises(InputError, match="prefix"):
        PtDenseQueryEncoder(onnx, prefix="query: ")
    with pytest.raises(InputError, match="not a pt_dense ONNX export"):
        PtDenseQueryEncoder(faiss_dir)
    assert PtDenseQueryEncoder(onnx, pooling="mean", l2_norm=True, device="cpu").encode("a claim").shape == (384,)


# ---------------------------------------------------------------------------------------------- packages
def test_an_index_packages_and_unpacks_from_a_file_url(tmp_path, monkeypatch, tiny_encoder, tiny_index):
    monkeypatch.setenv("PYTERRIER_HOME", str(tmp_path / "pyterrier-home"))
    corrector = Corrector.fit(tiny_index, tiny_encoder, corpus=DOCS, sample=0.5, epochs=2, progress=False)
    tiny_index.refresh(corrector)  # two generations, base vectors and a corrector: all but the current one stay
    tiny_index.retriever(k=3, kind="hnsw")(tiny_encoder.query_encoder()(QUERIES))  # a cached graph: left out
    package = export.package(tiny_index, tmp_path / "pkg" / "tiny.ptd.tar.lz4")
    info = json.loads((tmp_path / "pkg" / "tiny.ptd.tar.lz4.json").read_text())
    names = {c["path"] for c in info["contents"]}
    generation = tiny_index.generation.name
    assert names == {"pt_meta.json", "CURRENT", *(f"{generation}/{n}" for n in
                     (".readers", "meta.json", "vectors.f32", "docnos.txt", "base.f32"))} | {
        n for n in names if n.startswith(f"{generation}/corrector/")}
    loaded = pt.Artifact.from_url(package.absolute().as_uri())
    assert isinstance(loaded, DenseIndex) and loaded.path != tiny_index.path
    assert loaded.fingerprint == tiny_index.fingerprint and np.array_equal(loaded.vectors, tiny_index.vectors)
    encoded = tiny_encoder.query_encoder()(QUERIES)
    assert ranking(loaded.retriever(k=5)(encoded)) == ranking(tiny_index.retriever(k=5)(encoded))
    assert pt.Artifact.from_url(package.absolute().as_uri()).path == loaded.path  # unpacked once
    assert pt.Artifact.from_url(tiny_index.path.absolute().as_uri()).path == tiny_index.path  # a folder: in place
    with pytest.raises(IndexExistsError):
        export.package(tiny_index, package)

    segmented = export.package(tiny_index, tmp_path / "seg" / "tiny.tar.lz4", max_file_size=1024)
    assert len(json.loads((tmp_path / "seg" / "tiny.tar.lz4.json").read_text())["segments"]) > 1
    assert np.array_equal(pt.Artifact.from_url(segmented.absolute().as_uri()).vectors, tiny_index.vectors)

    damaged = tmp_path / "damaged.tar.lz4"
    damaged.write_bytes(package.read_bytes()[:-200] + bytes(200))
    (tmp_path / "damaged.tar.lz4.json").write_text(json.dumps(info))
    with pytest.raises(InputError, match=r"damaged|not a readable"):
        pt.Artifact.from_url(damaged.absolute().as_uri())
    with pytest.raises(InputError, match="neither an artifact folder nor a package"):
        pt.Artifact.from_url((tmp_path / "missing.tar.lz4").absolute().as_uri())
    with pytest.raises(InputError, match="not on host"):
        pt.Artifact.from_url("file://elsewhere/x.tar.lz4")


def test_a_saved_encoder_packages_and_unpacks_as_an_artifact(tmp_path, monkeypatch, tiny_encoder):
    from pt_dense.encoders.artifact import EncoderArtifact
    from pt_dense.errors import ModelFolderError

    monkeypatch.setenv("PYTERRIER_HOME", str(tmp_path / "pyterrier-home"))
    lora = tiny_encoder.with_lora(r=2)
    package = export.package(lora, tmp_path / "lora.tar.lz4")  # saved first, then packed
    art = pt.Artifact.from_url(package.absolute().as_uri())
    assert isinstance(art, EncoderArtifact) and art.encoder().fingerprint == lora.fingerprint
    np.testing.assert_allclose(art.query_encoder()(QUERIES)["query_vec"].iloc[0],
                               lora.query_encoder()(QUERIES)["query_vec"].iloc[0], atol=1e-6)
    saved = tiny_encoder.save(tmp_path / "saved")
    assert pt.Artifact.load(str(pt.Artifact.from_url(export.package(saved, tmp_path / "plain.tar.lz4")
                                                     .absolute().as_uri()).path)).encoder().fingerprint \
        == tiny_encoder.fingerprint
    with pytest.raises(ModelFolderError, match="not an encoder saved by pt_dense"):
        EncoderArtifact(tmp_path)
    with pytest.raises(InputError, match="nothing to package"):
        export.package(tmp_path / "nowhere", tmp_path / "x.tar.lz4")
