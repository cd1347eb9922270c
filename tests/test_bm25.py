"""BM25 over Pyserini's Lucene (through our JVM start-up) and PISA, on a real SciFact subset."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pt_dense import BM25, IndexExistsError, InputError, MissingColumnsError, datasets
from pt_dense.bm25 import build_index

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def subset(scifact_subset):
    return datasets.load(scifact_subset)


@pytest.mark.parametrize("engine", ["lucene", "pisa"])
def test_bm25_ranks_relevant_documents_high(subset, tmp_path, engine):
    bm25 = BM25(subset, index_dir=tmp_path / engine, engine=engine, num_results=50)
    topics = subset.topics("test")
    res = bm25(topics)
    assert {"qid", "query", "docno", "score", "rank"} <= set(res.columns)
    assert res.groupby("qid")["rank"].min().eq(0).all() and res.groupby("qid").size().max() <= 50
    first = res[res["rank"] == 0].merge(subset.qrels("test"), on=["qid", "docno"])
    assert len(first) / len(topics) > 0.4  # BM25 puts a relevant document first for most SciFact claims
    reopened = BM25(str(tmp_path / engine), engine=engine, num_results=50)
    pd.testing.assert_frame_equal(reopened(topics), res)


def test_k1_and_b_rank_exactly_as_pyserinis_own_searcher(subset, tmp_path):
    topics = subset.topics("test").head(5)
    ours = BM25(subset, index_dir=tmp_path / "l", k1=1.5, b=0.9, num_results=10)(topics)
    from pyserini.search.lucene import LuceneSearcher  # the JVM is already up (started by BM25)

    searcher = LuceneSearcher(str(tmp_path / "l"))
    searcher.set_bm25(1.5, 0.9)
    for qid, query in topics[["qid", "query"]].itertuples(index=False):
        hits = searcher.search(query, k=10)
        mine = ours[ours["qid"] == qid]
        assert mine["docno"].tolist() == [h.docid for h in hits]
        np.testing.assert_allclose(mine["score"].to_numpy(), [h.score for h in hits], rtol=1e-6)
    default = BM25(str(tmp_path / "l"), num_results=10)(topics)  # k1=0.9, b=0.4
    assert not np.allclose(default.groupby("qid")["score"].max(), ours.groupby("qid")["score"].max())


def test_bm25_bad_input(subset, tmp_path):
    with pytest.raises(InputError, match="engine"):
        BM25(subset, index_dir=tmp_path / "x", engine="terrier")
    with pytest.raises(InputError, match="no lucene index"):
        BM25(str(tmp_path / "nothing"))
    with pytest.raises(InputError, match="duplicate docno 'a'"):
        BM25([{"docno": "a", "text": "x y"}, {"docno": "a", "text": "z"}], index_dir=tmp_path / "dup")
    with pytest.raises(InputError, match="empty"):
        BM25([], index_dir=tmp_path / "empty")
    with pytest.raises(InputError, match="b2"):
        BM25([{"docno": "b1", "text": "x"}, {"docno": "b2", "text": None}], index_dir=tmp_path / "none")
    assert not any(p.name in {"dup", "empty", "none"} for p in tmp_path.iterdir())
    bm25 = BM25([{"docno": "a", "text": "cats sit"}], index_dir=tmp_path / "ok")
    with pytest.raises(IndexExistsError):
        build_index([{"docno": "b", "text": "x"}], tmp_path / "ok")
    assert bm25(pd.DataFrame({"qid": ["1"], "query": ["cat"]}))["docno"].tolist() == ["a"]  # index untouched
    with pytest.raises(InputError, match="empty"):
        bm25(pd.DataFrame({"qid": ["1"], "query": [""]}))
    with pytest.raises(MissingColumnsError, match="query"):
        bm25(pd.DataFrame({"qid": ["1"]}))
