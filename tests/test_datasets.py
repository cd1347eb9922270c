"""BEIR-format collections: the shared folders, the embedded SciFact and bad paths."""

from __future__ import annotations

import pytest
from conftest import SHARED_DATA, write_beir

from pt_dense import InputError, datasets


def test_embedded_scifact_matches_its_documented_counts():
    data = datasets.load("scifact")
    assert data.splits() == ["test", "train"]
    assert data.corpus_size == 5183
    assert len(data.topics("test")) == 300 and len(data.qrels("test")) == 339
    assert len(data.topics("train")) == 809
    assert (datasets.EMBEDDED / "scifact" / "SOURCE.md").exists()


def test_document_text_is_title_then_text(tmp_path):
    data = datasets.load(write_beir(tmp_path, [{"docno": "1", "title": "Title", "text": "Body."},
                                               {"docno": "2", "title": "", "text": "Only body."}],
                                    [{"qid": "q", "query": "x"}], {"test": [("q", "1", 1)]}))
    assert list(data.corpus_iter()) == [{"docno": "1", "text": "Title Body."}, {"docno": "2", "text": "Only body."}]
    assert len(data.corpus_iter()) == 2
    assert data.qrels("test").to_dict("records") == [{"qid": "q", "docno": "1", "label": 1}]


def test_shared_collections_load_by_path():
    assert SHARED_DATA.exists(), f"{SHARED_DATA} is missing: the shared collections must lie beside the repository"
    for name in ("scifact", "nfcorpus", "vaswani", "cranfield"):
        data = datasets.load(SHARED_DATA / name)
        topics = data.topics("test")
        assert len(topics) > 0 and set(topics.columns) == {"qid", "query"}
        assert set(data.qrels("test")["qid"]) >= set(topics["qid"])


def test_bad_names_and_splits_are_clear_errors(tmp_path):
    with pytest.raises(InputError, match="no collection"):
        datasets.load("no-such-collection")
    with pytest.raises(InputError, match="not a BEIR-format folder"):
        datasets.load(tmp_path)
    with pytest.raises(InputError, match="no split 'dev'"):
        datasets.load("scifact").qrels("dev")


def test_ir_datasets_ids_are_adapted_to_the_same_interface(monkeypatch):
    import sys
    import types
    from collections import namedtuple

    Query, Qrel, Doc = (namedtuple("Query", "query_id text"), namedtuple("Qrel", "query_id doc_id relevance"),
                        namedtuple("Doc", "doc_id title text"))

    class Fake:
        def __init__(self, split):
            self.split = split

        def queries_iter(self):
            return iter([Query("1", f"query of {self.split}")])

        def qrels_iter(self):
            return iter([Qrel("1", "d1", 2)])

        def docs_iter(self):
            return iter([Doc("d1", "T", "body")])

    fake = types.SimpleNamespace(registry={"beir/x", "beir/x/train", "beir/x/test"},
                                 load=lambda name: Fake(name.rsplit("/", 1)[-1]))
    monkeypatch.setitem(sys.modules, "ir_datasets", fake)
    data = datasets.load("irds:beir/x")
    assert data.topics("train").to_dict("records") == [{"qid": "1", "query": "query of train"}]
    assert data.qrels("test").to_dict("records") == [{"qid": "1", "docno": "d1", "label": 2}]
    assert list(data.corpus_iter()) == [{"docno": "d1", "text": "T body"}]
    with pytest.raises(InputError, match="no beir/x/dev"):
        data.topics("dev")


def test_subsample_keeps_judged_documents_and_a_fixed_sample(tmp_path):
    docs = [{"docno": str(i), "title": "", "text": f"doc {i}"} for i in range(20)]
    data = datasets.load(write_beir(tmp_path, docs, [{"qid": "q", "query": "x"}], {"test": [("q", "7", 1)]}))
    small = data.subsample(5, seed=1)
    kept = [d["docno"] for d in small.corpus_iter()]
    assert len(kept) == 5 == small.corpus_size and "7" in kept
    assert kept == [d["docno"] for d in data.subsample(5, seed=1).corpus_iter()]
    assert small.name != data.name and data.subsample(50) is data


def test_documents_without_any_text_are_skipped(tmp_path):
    docs = [{"docno": "1", "title": "", "text": ""}, {"docno": "2", "title": "T", "text": ""}]
    data = datasets.load(write_beir(tmp_path, docs, [{"qid": "q", "query": "x"}], {"test": [("q", "2", 1)]}))
    assert list(data.corpus_iter()) == [{"docno": "2", "text": "T"}] and data.corpus_size == 1


def test_cache_key_follows_the_corpus_content_not_its_place(tmp_path):
    import shutil

    from pt_dense.io.cache import collection_key

    docs = [{"docno": "d1", "title": "", "text": "alpha beta"}]
    first = write_beir(tmp_path / "a" / "c", docs, [{"qid": "q1", "query": "alpha"}], {"test": [("q1", "d1", 1)]})
    shutil.copytree(first, tmp_path / "b" / "c")
    key = collection_key(datasets.load(str(first)))
    assert collection_key(datasets.load(str(tmp_path / "b" / "c"))) == key  # a copy keeps the cache
    write_beir(first, [*docs, {"docno": "d2", "title": "", "text": "gamma"}], [], {})
    assert collection_key(datasets.load(str(first))) != key  # an edited corpus does not
