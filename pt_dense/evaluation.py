"""Named retrieval systems over a collection, evaluated with ``pt.Experiment``, printed, saved and plotted.

Systems: ``bm25``, ``dense``, ``bm25>>dense`` (BM25 candidates re-ranked from the stored vectors), ``hybrid``
(normalised linear fusion of BM25 and dense) and ``rrf`` (reciprocal rank fusion of both). Dense indexes are cached
by (collection, encoder fingerprint), so a second run encodes nothing.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyterrier as pt

from pt_dense._cache import cache_dir, collection_key
from pt_dense.errors import InputError

SYSTEMS = ("bm25", "dense", "bm25>>dense", "hybrid", "rrf")
MEASURE_NAMES = ("nDCG@10", "R@100", "AP")


def measures() -> dict[str, object]:
    """The reported measures, by the names used in tables and JSON."""
    from ir_measures import AP, R, nDCG

    return {"nDCG@10": nDCG @ 10, "R@100": R @ 100, "AP": AP}


def dense_index(data, encoder, *, index_dir: str | Path | None = None, overwrite: bool = False):
    """The dense index of ``data``'s corpus under ``encoder``: opened from the cache, or built there once."""
    from pt_dense.index.dense_index import DenseIndex

    index = DenseIndex(Path(index_dir) if index_dir else cached_index_path(data, encoder))
    if overwrite or not index.built():
        corpus = data.corpus_iter()
        indexer = index.indexer(overwrite=overwrite, total=_length(corpus), corpus=getattr(data, "source", None))
        (encoder.doc_encoder() >> indexer).index(corpus)
    index.check_encoder(encoder.fingerprint, what="the cached index's encoder")
    return index


def cached_index_path(data, encoder) -> Path:
    """Where :func:`dense_index` caches ``data``'s index under ``encoder``."""
    return cache_dir() / "dense" / f"{collection_key(data)}-{encoder.fingerprint[:16]}"


def build_systems(data, encoder=None, names=SYSTEMS, *, k: int = 1000, hybrid_weight: float = 0.5,
                  bm25_engine: str = "lucene") -> dict[str, pt.Transformer]:
    """PyTerrier pipelines by name; only the components the names need are built."""
    from pt_dense.bm25 import BM25
    from pt_dense.fusion import linear_fusion, rrf

    unknown = [n for n in names if n not in SYSTEMS]
    if unknown:
        raise InputError(f"unknown system(s) {unknown}; choose from {', '.join(SYSTEMS)}")
    needs_bm25 = any(n != "dense" for n in names)
    needs_dense = any(n != "bm25" for n in names)
    bm25 = BM25(data, engine=bm25_engine, num_results=k) if needs_bm25 else None
    if needs_dense:
        if encoder is None:
            from pt_dense.encoders.biencoder import BiEncoder

            encoder = BiEncoder.from_pretrained("minilm")
        index = dense_index(data, encoder)
        dense = encoder.query_encoder() >> index.retriever(k=k)
    factories = {
        "bm25": lambda: bm25,
        "dense": lambda: dense,
        "bm25>>dense": lambda: bm25 >> encoder.query_encoder() >> index.scorer(),
        "hybrid": lambda: linear_fusion(bm25, dense, weight=hybrid_weight),
        "rrf": lambda: rrf(bm25, dense, num_results=k),
    }
    return {name: factories[name]() for name in names}


def evaluate(systems: dict[str, pt.Transformer], topics: pd.DataFrame, qrels: pd.DataFrame) -> pd.DataFrame:
    """One row per system: name and each measure of :data:`MEASURE_NAMES`."""
    if len(topics) == 0:
        raise InputError("no topics to evaluate: is the split empty?")
    table = pt.Experiment(list(systems.values()), topics, _pt_qrels(qrels), list(measures().values()),
                          names=list(systems), precompute_prefix=False)
    rename = {str(m): name for name, m in measures().items()}
    return table.rename(columns=rename)[["name", *MEASURE_NAMES]]


def to_json(table: pd.DataFrame, config: dict) -> dict:
    """``{"systems": {name: {measure: value}}, "rows": [...], "config": {...}}``."""
    rows = table.to_dict("records")
    systems = {row["name"]: {m: float(row[m]) for m in MEASURE_NAMES} for row in rows}
    return {"systems": systems, "rows": rows, "config": config}


def bar_chart(table: pd.DataFrame, path: str | Path, title: str = "") -> Path:
    """A grouped bar chart (one group per measure, one bar per system) saved as PNG."""
    from pt_dense.report import grouped_bars

    series = {row["name"]: [float(row[m]) for m in MEASURE_NAMES] for row in table.to_dict("records")}
    return grouped_bars(series, list(MEASURE_NAMES), path, title=title, ylim=(0, 1.15))


def transfer_collections(data_root: str | Path, in_domain: str = "scifact",
                         out_of_domain: tuple[str, ...] = ("vaswani", "cranfield", "nfcorpus"),
                         ood_docs: int = 3000) -> dict:
    """The in-domain collection and the out-of-domain ones (their corpora cut to ``ood_docs``: every judged test
    document plus a fixed random sample, the same for every model; 0 keeps them whole), by name."""
    from pt_dense import datasets

    root = Path(data_root)
    collections = {in_domain: datasets.load(root / in_domain)}
    for name in out_of_domain:
        data = datasets.load(root / name)
        collections[name] = data.subsample(ood_docs) if ood_docs else data
    return collections


def exact_scores(queries, qids, docs, docnos, qrels: pd.DataFrame, measure_names=("nDCG@10", "R@100"),
                 depth: int = 1000) -> dict[str, float]:
    """Measures of exact dot-product retrieval (top ``depth``) of query vectors over document vectors in memory."""
    import ir_measures
    import numpy as np

    chosen = [ir_measures.parse_measure(name) for name in measure_names]
    scores = queries @ docs.T
    top = np.argsort(-scores, axis=1)[:, :depth]
    run = [ir_measures.ScoredDoc(str(qid), str(docnos[j]), float(scores[i, j]))
           for i, qid in enumerate(qids) for j in top[i]]
    judged = [ir_measures.Qrel(str(r.qid), str(r.docno), int(r.label)) for r in qrels.itertuples()]
    result = ir_measures.calc_aggregate(chosen, judged, run)
    return {name: float(result[m]) for name, m in zip(measure_names, chosen, strict=True)}


def dense_scores(encoder, collections: dict, k: int = 1000) -> dict[str, dict[str, float]]:
    """nDCG@10 and R@100 of ``encoder`` (exact dense retrieval, indexes cached by fingerprint) on each test split."""
    from ir_measures import R, nDCG

    scores = {}
    for name, data in collections.items():
        index = dense_index(data, encoder)
        table = pt.Experiment([encoder.query_encoder() >> index.retriever(k=k)], data.topics("test"),
                              _pt_qrels(data.qrels("test")), [nDCG @ 10, R @ 100], names=[name])
        scores[name] = {"nDCG@10": float(table["nDCG@10"][0]), "R@100": float(table["R@100"][0])}
        print(f"  {name}: nDCG@10 {scores[name]['nDCG@10']:.4f}, R@100 {scores[name]['R@100']:.4f}", flush=True)
    return scores


def format_table(table: pd.DataFrame) -> str:
    """A markdown table with four decimals."""
    from pt_dense.report import markdown_table

    return markdown_table(table.rename(columns={"name": "system"}).to_dict("records"))


def _pt_qrels(qrels: pd.DataFrame) -> pd.DataFrame:
    return qrels.astype({"qid": str, "docno": str, "label": int})


def _length(corpus) -> int | None:
    return len(corpus) if hasattr(corpus, "__len__") else None
