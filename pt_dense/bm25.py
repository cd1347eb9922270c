"""BM25 as a PyTerrier stage: Pyserini's Lucene (the deployment engine) or PISA (``engine="pisa"``).

Indexes are built into a folder (atomically) from a dataset or any iterable of ``docno, text`` dicts. When given a
dataset and no folder, the index is cached under the pt_dense cache, keyed by the collection.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import pyterrier as pt

from pt_dense.errors import InputError
from pt_dense.io.atomic import atomic_dir
from pt_dense.io.cache import cache_dir, collection_key
from pt_dense.io.jvm import start_jvm
from pt_dense.io.validation import clean_texts, docno_problem, require_columns, shown

ENGINES = ("lucene", "pisa")


class BM25(pt.Transformer):
    """``qid, query`` -> ``docno, score, rank`` (input columns kept) by BM25.

    ``source`` is a dataset (with ``corpus_iter()``), an iterable of ``{"docno", "text"}`` dicts, or the folder
    of an existing index. Defaults follow Pyserini's BEIR baselines: Lucene's English analyzer (Porter stemming,
    stopwords removed), k1=0.9, b=0.4.
    """

    def __init__(
        self,
        source,
        *,
        index_dir: str | Path | None = None,
        engine: str = "lucene",
        k1: float = 0.9,
        b: float = 0.4,
        num_results: int = 1000,
        threads: int | None = None,
        overwrite: bool = False,
    ):
        """Open, or build once, a BM25 index of ``source``.

        Args:
            source: A dataset, an iterable of ``{"docno", "text"}`` dicts, or the folder of an existing index.
            index_dir: Where the index lives (default: the cache, keyed by the collection).
            engine: ``"lucene"`` (Pyserini) or ``"pisa"`` (pyterrier-pisa).
            k1: BM25's term-frequency saturation.
            b: BM25's length normalisation.
            num_results: Documents returned a query.
            threads: Search threads (default: all).
            overwrite: Rebuild an index already at ``index_dir``.

        Raises:
            InputError: An unknown engine, a bad ``num_results``, an empty corpus, or a docno the engine cannot keep.
            DeploymentError: Java or the engine could not be started.

        Example::

            bm25 = ptd.BM25(ptd.datasets.load("scifact"))
        """
        if engine not in ENGINES:
            raise InputError(f"unknown BM25 engine {engine!r}; choose one of {ENGINES}")
        if num_results < 1:
            raise InputError(f"num_results must be at least 1, not {num_results}")
        self.engine, self.k1, self.b, self.num_results = engine, k1, b, num_results
        self.threads = threads or os.cpu_count() or 1
        if isinstance(source, (str, Path)) and index_dir is None:
            self.index_dir = Path(source)
            if not _built(self.index_dir, engine):
                raise InputError(f"no {engine} index at {self.index_dir}; give a dataset or documents to build one")
        else:
            if index_dir is None:
                if not hasattr(source, "corpus_iter"):
                    raise InputError("give index_dir= to build a BM25 index from an iterable of documents")
                index_dir = cache_dir() / f"bm25-{engine}" / collection_key(source)
            self.index_dir = Path(index_dir)
            if overwrite or not _built(self.index_dir, engine):
                build_index(source, self.index_dir, engine=engine, threads=self.threads, overwrite=overwrite)
        self._searcher = None

    def __repr__(self) -> str:
        return f"BM25({str(self.index_dir)!r}, engine={self.engine!r}, k1={self.k1}, b={self.b}, " \
               f"num_results={self.num_results})"

    def _config(self) -> tuple:
        return (self.index_dir.absolute(), self.engine, self.k1, self.b, self.num_results)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BM25) and self._config() == other._config()

    def __hash__(self) -> int:
        return hash(self._config())

    def transform_inputs(self) -> list[str]:
        return ["qid", "query"]

    def transform_outputs(self, input_columns: list[str]) -> list[str]:
        require_columns(input_columns, ["qid", "query"], self)
        return list(input_columns) + [c for c in ("docno", "score", "rank") if c not in input_columns]

    def transform(self, inp: pd.DataFrame) -> pd.DataFrame:
        require_columns(inp.columns, ["qid", "query"], self)
        if len(inp) == 0:
            return inp.assign(docno=pd.Series(dtype=object), score=pd.Series(dtype=np.float32),
                              rank=pd.Series(dtype=np.int64))
        clean_texts(inp["query"].to_numpy(), inp["qid"].to_numpy(), "query")
        queries = inp.drop(columns=[c for c in ("docno", "score", "rank") if c in inp.columns])
        queries = queries.drop_duplicates("qid")
        hits = self._search_lucene(queries) if self.engine == "lucene" else self._search_pisa(queries)
        out = queries.merge(hits, on="qid", how="inner")
        return out.sort_values(["qid", "rank"], kind="stable").reset_index(drop=True)

    def _search_lucene(self, queries: pd.DataFrame) -> pd.DataFrame:
        if self._searcher is None:
            start_jvm()
            from pyserini.search.lucene import LuceneSearcher

            self._searcher = LuceneSearcher(str(self.index_dir))
            self._searcher.set_bm25(self.k1, self.b)
        qids = [str(q) for q in queries["qid"]]
        results = self._searcher.batch_search(list(queries["query"]), qids, k=self.num_results, threads=self.threads)
        rows = [(qid, hit.docid, hit.score, rank) for qid in qids for rank, hit in enumerate(results.get(qid, []))]
        frame = pd.DataFrame(rows, columns=["qid", "docno", "score", "rank"])
        frame["qid"] = frame["qid"].astype(queries["qid"].dtype)
        return frame

    def _search_pisa(self, queries: pd.DataFrame) -> pd.DataFrame:
        if self._searcher is None:
            from pyterrier_pisa import PisaIndex

            self._searcher = PisaIndex(str(self.index_dir), threads=self.threads).bm25(
                k1=self.k1, b=self.b, num_results=self.num_results)
        return self._searcher(queries[["qid", "query"]])[["qid", "docno", "score", "rank"]]


def build_index(docs, index_dir: str | Path, *, engine: str = "lucene", threads: int = 1,
                overwrite: bool = False) -> Path:
    """Build a BM25 index of ``docs`` (a dataset or an iterable of ``docno, text`` dicts) into ``index_dir``."""
    from tqdm.auto import tqdm

    records = docs.corpus_iter() if hasattr(docs, "corpus_iter") else docs
    total = len(records) if hasattr(records, "__len__") else None
    bar = tqdm(total=total, desc=f"BM25 ({engine}) indexing", unit="doc", smoothing=0.05)
    with bar, atomic_dir(index_dir, overwrite=overwrite) as tmp:  # Lucene's documents count once added, not read
        count = _index_lucene(records, tmp, threads, bar.update) if engine == "lucene" else \
            _index_pisa(_advancing(records, bar.update), tmp, threads)
        if count == 0:
            raise InputError("the corpus is empty: there is nothing to index")
    return Path(index_dir)


#: the characters PISA splits its docnos file at (it would return "smith," and "john" for "smith, john")
PISA_DOCNO_SEPARATORS = " \t\x0b\x0c"


def _checked(records: Iterable[dict], engine: str = "lucene") -> Iterable[dict]:
    seen: set[str] = set()
    for record in records:
        docno, text = record.get("docno"), record.get("text")
        problem = docno_problem(docno)
        if problem:
            raise InputError(f"invalid docno {shown(docno)}: {problem}")
        if engine == "pisa" and any(c in docno for c in PISA_DOCNO_SEPARATORS):
            raise InputError(f"docno {shown(docno)} holds whitespace, which PISA splits docnos at (it would return "
                             "its pieces): use engine='lucene', which keeps any docno whole")
        if docno in seen:
            raise InputError(f"duplicate docno {shown(docno)}: each document must be indexed once")
        seen.add(docno)
        clean_texts([text], [docno], "document text")
        yield record


def _advancing(records: Iterable[dict], advance: Callable[[int], object]) -> Iterable[dict]:
    for record in records:
        advance(1)
        yield record


def _index_lucene(records: Iterable[dict], folder: Path, threads: int, advance: Callable[[int], object]) -> int:
    start_jvm()
    from pyserini.index.lucene import LuceneIndexer

    indexer = LuceneIndexer(str(folder), threads=threads)
    count, batch = 0, []
    for record in _checked(records):
        batch.append({"id": record["docno"], "contents": record["text"]})
        if len(batch) == 1024:
            indexer.add_batch_dict(batch)
            advance(len(batch))
            count, batch = count + len(batch), []
    if batch:
        indexer.add_batch_dict(batch)
        advance(len(batch))
        count += len(batch)
    indexer.close()
    return count


def _index_pisa(records: Iterable[dict], folder: Path, threads: int) -> int:
    from pyterrier_pisa import PisaIndex

    counter = _Counter(_checked(records, "pisa"))
    PisaIndex(str(folder), text_field="text", stemmer="porter2", threads=threads, overwrite=True).index(
        {"docno": r["docno"], "text": r["text"]} for r in counter)
    return counter.count


class _Counter:
    def __init__(self, records: Iterable[dict]):
        self.records, self.count = records, 0

    def __iter__(self):
        for record in self.records:
            self.count += 1
            yield record


def _built(folder: Path, engine: str) -> bool:
    if engine == "lucene":
        return folder.is_dir() and any(folder.glob("segments_*"))
    return (folder / "pt_meta.json").exists() or (folder / "pt_pisa_config.json").exists()
