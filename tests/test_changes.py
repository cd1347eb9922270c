"""Indexes that grow and shrink: add, update, delete (tombstones) and compact, each a new generation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import WORDS, write_beir

from pt_dense import BiEncoder, Corrector, EncoderMismatchError, InputError
from pt_dense.cli import main
from pt_dense.encoders.stages import stamp
from pt_dense.index import DenseIndex
from pt_dense.index import retriever as retriever_module

DIM = 8


def unit(n: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def frame(docnos: list[str], vectors: np.ndarray, encoder: str | None = None) -> pd.DataFrame:
    return pd.DataFrame({"docno": docnos, "doc_vec": stamp(vectors, encoder) if encoder else list(vectors)})


def hits(index: DenseIndex, vector: np.ndarray, k: int = 5) -> list[str]:
    return index.retriever(k=k)(pd.DataFrame({"qid": ["1"], "query_vec": [vector]}))["docno"].tolist()


@pytest.fixture
def index(tmp_path) -> DenseIndex:
    index = DenseIndex(tmp_path / "idx")
    index.indexer(progress=False).index({"docno": f"d{i}", "doc_vec": v} for i, v in enumerate(unit(20, 0)))
    return index


def test_added_documents_are_found_by_readers_opened_after_and_not_by_those_before(index):
    before = DenseIndex(index.path)
    before_hits = hits(before, unit(1, 5)[0])
    new = unit(3, 9)
    index.add(frame(["n0", "n1", "n2"], new))
    assert hits(DenseIndex(index.path), new[1], k=1) == ["n1"]  # a reader opened after the change sees it
    assert hits(before, unit(1, 5)[0]) == before_hits  # one opened before keeps its generation
    assert len(DenseIndex(index.path)) == 23 and index.live_count == 23
    with pytest.raises(InputError, match="already"):
        index.add(frame(["n1"], new[:1]))
    with pytest.raises(InputError, match="dimension"):
        index.add(frame(["z"], np.ones((1, 4), np.float32)))


def test_deleted_documents_are_never_returned_and_compact_removes_them(index):
    vectors = np.asarray(index.vectors).copy()
    index.delete(["d3", "d7"])
    fresh = DenseIndex(index.path)
    assert fresh.live_count == 18 and "d3" not in hits(fresh, vectors[3], k=20)
    assert hits(fresh, vectors[3], k=1) != ["d3"]
    assert fresh.docno_lookup.get_indexer(["d3", "d4"]).tolist() == [-1, 4]
    cands = pd.DataFrame({"qid": ["1", "1"], "query_vec": [vectors[3]] * 2, "docno": ["d3", "d4"]})
    assert fresh.scorer(missing="drop")(cands)["docno"].tolist() == ["d4"]
    with pytest.raises(InputError, match="not in"):
        fresh.scorer()(cands)
    with pytest.raises(InputError, match="not in"):
        fresh.delete(["d3"])  # deleted already
    index.update(frame(["d3"], vectors[3:4]))  # re-adding a deleted docno is an add
    assert hits(DenseIndex(index.path), vectors[3], k=1) == ["d3"]
    index.update(frame(["d4"], -vectors[4:5]))  # replacing a live one
    assert "d4" not in hits(DenseIndex(index.path), vectors[4], k=3)
    compacted = DenseIndex(index.path).compact()
    assert len(compacted) == compacted.live_count == 19 and not len(compacted.deleted)  # d7 stays deleted
    assert sorted(compacted.docnos) == sorted(f"d{i}" for i in range(20) if i != 7)
    np.testing.assert_allclose(np.asarray(compacted.vectors)[compacted.docno_lookup.get_indexer(["d5"])][0],
                               vectors[5])
    assert fresh.folder.exists()  # a reader still holds the generation it opened: kept
    fresh.close()
    compacted.compact()  # the next write removes every generation no reader holds
    assert [p.name for p in index.path.glob("gen-*")] == [compacted.generation.name]


def test_changes_follow_the_encoder_and_survive_refreshes(tmp_path, tiny_encoder):
    index = DenseIndex(tmp_path / "idx")
    docs = [{"docno": f"d{i}", "text": " ".join(WORDS[i : i + 5])} for i in range(12)]
    (tiny_encoder.doc_encoder() >> index.indexer(progress=False)).index(docs[:10])
    other = BiEncoder(*__import__("conftest").tiny_bert(seed=3), query_max_length=16, doc_max_length=32)
    with pytest.raises(EncoderMismatchError):
        index.add(other.doc_encoder()(pd.DataFrame(docs[10:])))
    index.add(tiny_encoder.doc_encoder()(pd.DataFrame(docs[10:11])))
    index.delete(["d0"])
    texts = {d["docno"]: d["text"] for d in docs}
    index.refresh(Corrector.fit(index, other, texts, sample=6, width=8, epochs=2, progress=False))
    refreshed = DenseIndex(index.path)
    assert refreshed.fingerprint == other.fingerprint and refreshed.live_count == 10 and list(refreshed.deleted) == [0]
    index.add(other.doc_encoder()(pd.DataFrame(docs[11:])))  # after a refresh: the index's current encoder
    query = pd.DataFrame({"qid": ["1"], "query": [docs[11]["text"]]})
    assert "d0" not in (other.query_encoder() >> DenseIndex(index.path).retriever(k=12))(query)["docno"].tolist()


def test_pt_dense_add_and_delete(tmp_path, tiny_encoder, capsys):
    docs = [{"docno": f"d{i}", "title": "", "text": " ".join(WORDS[i : i + 6])} for i in range(12)]
    data = write_beir(tmp_path / "data", docs[:8], [{"qid": "q", "query": "cat"}], {"test": [("q", "d0", 1)]})
    more = write_beir(tmp_path / "more", docs[8:], [{"qid": "q", "query": "cat"}], {"test": [("q", "d8", 1)]})
    tiny_encoder.save(tmp_path / "model")
    assert main(["index", "--data", str(data), "--model", str(tmp_path / "model"), "--out", str(tmp_path / "i")]) == 0
    assert main(["add", "--index", str(tmp_path / "i"), "--docs", str(more), "--encoder", str(tmp_path / "model")]) == 0
    assert "12 documents" in capsys.readouterr().out
    assert main(["add", "--index", str(tmp_path / "i"), "--docs", str(more), "--encoder", str(tmp_path / "model")]) == 2
    assert "already" in capsys.readouterr().err
    assert main(["delete", "--index", str(tmp_path / "i"), "--docnos", "d1", "d9", "--compact"]) == 0
    assert "10 documents (0 deleted rows" in capsys.readouterr().out
    assert main(["delete", "--index", str(tmp_path / "i"), "--docnos", "zz"]) == 2
    assert "not in" in capsys.readouterr().err


def test_a_two_shard_build_equals_the_one_process_build(tmp_path, tiny_encoder, capsys):
    docs = [{"docno": f"d{i}", "title": "", "text": " ".join(WORDS[i % 20 : i % 20 + 4 + i % 5])} for i in range(25)]
    data = write_beir(tmp_path / "data", docs, [{"qid": "q", "query": "cat"}], {"test": [("q", "d0", 1)]})
    tiny_encoder.save(tmp_path / "model")
    common = ["--data", str(data), "--model", str(tmp_path / "model")]
    assert main(["index", *common, "--out", str(tmp_path / "one")]) == 0
    assert main(["merge", "--out", str(tmp_path / "two")]) == 2
    assert "no shards" in capsys.readouterr().err
    assert main(["index", *common, "--out", str(tmp_path / "two"), "--shard", "1/2"]) == 0
    assert main(["merge", "--out", str(tmp_path / "two")]) == 2
    assert "missing [0]" in capsys.readouterr().err
    assert main(["index", *common, "--out", str(tmp_path / "two"), "--shard", "0/2"]) == 0
    assert main(["merge", "--out", str(tmp_path / "two")]) == 0
    one, two = DenseIndex(tmp_path / "one"), DenseIndex(tmp_path / "two")
    assert two.docnos.tolist() == one.docnos.tolist() and two.fingerprint == one.fingerprint
    np.testing.assert_allclose(np.asarray(two.vectors), np.asarray(one.vectors), atol=1e-6)
    assert two.meta["corpus"] == one.meta["corpus"]
    assert main(["index", *common, "--out", str(tmp_path / "x"), "--shard", "2/2"]) == 2
    assert "0 <= i < n" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["hnsw", "IVF8,Flat"])
def test_approximate_kinds_skip_deleted_rows_and_keep_their_structure(tmp_path, kind):
    index = DenseIndex(tmp_path / "idx")
    vectors = unit(500, 1)
    index.indexer(progress=False).index({"docno": f"d{i}", "doc_vec": v} for i, v in enumerate(vectors))
    params = {"nprobe": 8, "train_size": 500} if kind != "hnsw" else {}
    query = pd.DataFrame({"qid": ["1"], "query_vec": [vectors[7]]})
    assert index.retriever(k=3, kind=kind, **params)(query)["docno"].iloc[0] == "d7"
    inode = next(index.folder.glob("*.faiss")).stat().st_ino
    index.delete(["d7"])
    after = DenseIndex(tmp_path / "idx")
    found = after.retriever(k=3, kind=kind, **params)(query)["docno"].tolist()
    assert "d7" not in found and len(found) == 3
    assert next(after.folder.glob("*.faiss")).stat().st_ino == inode  # linked, not rebuilt


def test_float16_storage_halves_the_disk_keeps_the_ranking_and_its_dtype_through_changes(tmp_path, monkeypatch):
    vectors = np.random.default_rng(2).normal(size=(3000, 64)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    built = {}
    for dtype in ("float32", "float16"):
        built[dtype] = DenseIndex(tmp_path / dtype)
        built[dtype].indexer(progress=False, dtype=dtype).index(
            {"docno": f"d{i}", "doc_vec": v} for i, v in enumerate(vectors))
    half, full = built["float16"], built["float32"]
    assert half.dtype == np.float16 and (half.folder / "vectors.f16").stat().st_size * 2 == (
        full.folder / "vectors.f32").stat().st_size
    queries = pd.DataFrame({"qid": [str(i) for i in range(50)],
                            "query_vec": list(vectors[:50] + 0.3 * vectors[50:100])})
    exact, approx = full.retriever(k=10)(queries), half.retriever(k=10)(queries)
    overlap = np.mean([len(set(exact[exact.qid == q].docno) & set(approx[approx.qid == q].docno)) / 10
                       for q in queries.qid])
    assert overlap >= 0.98
    np.testing.assert_allclose(approx["score"].to_numpy()[:10], exact["score"].to_numpy()[:10], atol=2e-3)
    monkeypatch.setattr(retriever_module, "FLAT_CHUNK_ROWS", 1000)  # chunked scans merge to the same top 10
    chunked = half.retriever(k=10)(queries)
    assert chunked["docno"].tolist() == approx["docno"].tolist()
    np.testing.assert_allclose(chunked["score"], approx["score"], rtol=1e-6)
    rescored = half.scorer()(exact)
    np.testing.assert_allclose(np.sort(rescored["score"].to_numpy()), np.sort(exact["score"].to_numpy()), atol=2e-3)
    half.add(frame(["n0"], vectors[:1]))
    half.delete(["d3"])
    half.compact()
    again = DenseIndex(half.path)
    assert again.dtype == np.float16 and again.live_count == 3000 and not list(again.folder.glob("*.f32"))
    assert hits(again, vectors[0], k=2) in (["d0", "n0"], ["n0", "d0"])
    assert next(again.chunks())[1].dtype == np.float32
    with pytest.raises(InputError, match="float16"):
        DenseIndex(tmp_path / "bad").indexer(dtype="int8")


def test_a_float16_index_refreshes_and_merges_in_float16(tmp_path, tiny_encoder):
    docs = [{"docno": f"d{i}", "title": "", "text": " ".join(WORDS[i % 20 : i % 20 + 5])} for i in range(16)]
    data = write_beir(tmp_path / "data", docs, [{"qid": "q", "query": "cat"}], {"test": [("q", "d0", 1)]})
    tiny_encoder.save(tmp_path / "model")
    common = ["--data", str(data), "--model", str(tmp_path / "model"), "--dtype", "float16"]
    for shard in ("0/2", "1/2"):
        assert main(["index", *common, "--out", str(tmp_path / "two"), "--shard", shard]) == 0
    assert main(["merge", "--out", str(tmp_path / "two")]) == 0
    merged = DenseIndex(tmp_path / "two")
    assert merged.dtype == np.float16 and len(merged) == 16
    other = BiEncoder(*__import__("conftest").tiny_bert(seed=3), query_max_length=16, doc_max_length=32)
    texts = {d["docno"]: d["text"] for d in docs}
    merged.refresh(Corrector.fit(merged, other, texts, sample=6, width=8, epochs=2, progress=False))
    refreshed = DenseIndex(merged.path)
    assert refreshed.dtype == np.float16 and (refreshed.folder / "base.f16").exists()
    assert refreshed.fingerprint == other.fingerprint
    query = pd.DataFrame({"qid": ["1"], "query": [docs[4]["text"]]})
    assert len((other.query_encoder() >> refreshed.retriever(k=5))(query)) == 5


def test_an_unknown_stored_dtype_and_shards_of_two_dtypes_are_refused(tmp_path, tiny_encoder, capsys):
    import json

    from pt_dense import IndexFormatError

    index = DenseIndex(tmp_path / "idx")
    index.indexer(progress=False).index({"docno": f"d{i}", "doc_vec": v} for i, v in enumerate(unit(4, 0)))
    meta_file = index.folder / "meta.json"
    meta = json.loads(meta_file.read_text())
    meta_file.write_text(json.dumps(meta | {"dtype": "int8"}))
    with pytest.raises(IndexFormatError, match=r"stores vectors as 'int8'.*upgrade"):
        DenseIndex(tmp_path / "idx").meta  # noqa: B018
    assert (index.folder / "vectors.f32").stat().st_size == 4 * DIM * 4  # nothing rewritten

    docs = [{"docno": f"d{i}", "title": "", "text": " ".join(WORDS[i : i + 4])} for i in range(6)]
    data = write_beir(tmp_path / "data", docs, [{"qid": "q", "query": "cat"}], {"test": [("q", "d0", 1)]})
    tiny_encoder.save(tmp_path / "model")
    common = ["--data", str(data), "--model", str(tmp_path / "model"), "--out", str(tmp_path / "two")]
    assert main(["index", *common, "--shard", "0/2", "--dtype", "float16"]) == 0
    assert main(["index", *common, "--shard", "1/2"]) == 0
    assert main(["merge", "--out", str(tmp_path / "two")]) == 2
    assert "different encoders, dtypes or corpora" in capsys.readouterr().err
    assert not DenseIndex(tmp_path / "two").built()
