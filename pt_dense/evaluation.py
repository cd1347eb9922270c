"""Named retrieval systems over a collection, evaluated with ``pt.Experiment``.

Systems: ``bm25``, ``dense``, ``bm25>>dense`` (BM25 candidates re-ranked from the stored vectors), ``hybrid``
(normalised linear fusion of BM25 and dense) and ``rrf`` (reciprocal rank fusion of both). Dense indexes are cached
by (collection, encoder fingerprint), so a second run encodes nothing. Tables, JSON and charts: :mod:`.report`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import pyterrier as pt

from pt_dense import datasets
from pt_dense.bm25 import BM25
from pt_dense.encoders.torch_encoder import TorchEncoder
from pt_dense.errors import InputError
from pt_dense.fusion import linear_fusion, rrf
from pt_dense.index.cached import cached_index
from pt_dense.metrics import MEASURE_NAMES, measures, trec_qrels
from pt_dense.report import results_chart, results_json, results_markdown, write_json

SYSTEMS = ("bm25", "dense", "bm25>>dense", "hybrid", "rrf")


def build_systems(data, encoder=None, names: Sequence[str] = SYSTEMS, *, k: int = 1000, hybrid_weight: float = 0.5,
                  bm25_engine: str = "lucene") -> dict[str, pt.Transformer]:
    """PyTerrier pipelines by name; only the components the names need are built (``encoder``: default MiniLM).

    A system that needs dense retrieval builds (or opens) the collection's cached dense index, so the first call
    encodes the corpus once per encoder.

    Args:
        data: A collection.
        encoder: A pt_dense encoder (None: MiniLM).
        names: Systems among ``bm25``, ``dense``, ``bm25>>dense``, ``hybrid`` and ``rrf``.
        k: Documents retrieved per query by each first stage.
        hybrid_weight: BM25's share in ``hybrid``, the dense one's being the rest (see
            :func:`~pt_dense.linear_fusion`).
        bm25_engine: The BM25 engine, ``"lucene"`` or ``"pisa"`` (see :class:`~pt_dense.BM25`).

    Returns:
        Name -> pipeline (``qid, query`` in, a ranking out), in the order of ``names``.

    Raises:
        InputError: No system named, or an unknown one.
    """
    unknown = [n for n in names if n not in SYSTEMS]
    if unknown or not names:
        problem = f"unknown system(s) {unknown}" if unknown else "no system given"
        raise InputError(f"{problem}; choose from {', '.join(SYSTEMS)} (comma-separated)")
    bm25 = BM25(data, engine=bm25_engine, num_results=k) if any(n != "dense" for n in names) else None
    if any(n != "bm25" for n in names):
        encoder = encoder or TorchEncoder.from_pretrained("minilm")
        index = cached_index(data, encoder)
        dense = encoder.query_encoder() >> index.retriever(k=k)
    factories = {
        "bm25": lambda: bm25,
        "dense": lambda: dense,
        "bm25>>dense": lambda: bm25 >> encoder.query_encoder() >> index.scorer(),
        "hybrid": lambda: linear_fusion(bm25, dense, weight=hybrid_weight),
        "rrf": lambda: rrf(bm25, dense, num_results=k),
    }
    return {name: factories[name]() for name in names}


def evaluate(systems: dict[str, pt.Transformer], topics: pd.DataFrame, qrels: pd.DataFrame,
             measure_names: Sequence[str] = MEASURE_NAMES) -> pd.DataFrame:
    """A results table: one row per system, its ``name`` and each measure.

    Args:
        systems: Name -> pipeline (``qid, query`` in, a ranking out).
        topics: ``qid, query``.
        qrels: ``qid, docno, label`` judgements.
        measure_names: ir_measures names, e.g. ``"nDCG@10"``; they are the table's columns.

    Returns:
        The table: ``name`` and one column per measure, one row per system (mean over the topics).

    Raises:
        InputError: No topics.
    """
    if len(topics) == 0:
        raise InputError("no topics to evaluate: is the split empty?")
    chosen = measures(measure_names)
    table = pt.Experiment(list(systems.values()), topics, trec_qrels(qrels), list(chosen.values()),
                          names=list(systems), precompute_prefix=False)
    table = table.rename(columns={str(m): name for name, m in chosen.items()})
    return table[["name", *measure_names]]


def run(data, systems: Sequence[str], *, encoder=None, split: str = "test", bm25_engine: str = "lucene",
        hybrid_weight: float = 0.5, json_path: str | Path | None = None, png_path: str | Path | None = None,
        title: str | None = None) -> tuple[pd.DataFrame, dict]:
    """Evaluate named ``systems`` on ``data``'s ``split`` (what ``pt-dense eval`` and ``demo`` run): prints the
    table, optionally writes JSON and a chart; ``data`` and ``encoder`` may be given by name.

    Args:
        data: A collection, or a name or folder for :func:`pt_dense.datasets.load`.
        systems: System names (see :func:`build_systems`).
        encoder: A pt_dense encoder, or a model name or folder (None: MiniLM).
        split: The split evaluated.
        bm25_engine: ``"lucene"`` or ``"pisa"``.
        hybrid_weight: BM25's share in ``hybrid``.
        json_path: Write the results as JSON there (see :func:`~pt_dense.report.results_json`).
        png_path: Write a bar chart there.
        title: The chart's title (default: the collection and the split).

    Returns:
        The results table and its JSON payload (with the settings and the seconds taken).

    Raises:
        InputError: An unknown collection, split or system.
        UnknownModelError: ``encoder`` names no model.

    Example:
        ::

            table, payload = run("scifact", ["bm25", "dense", "hybrid"], json_path="results.json")
    """
    started = time.perf_counter()
    collection = datasets.load(data) if isinstance(data, (str, Path)) else data
    topics, qrels = collection.topics(split), collection.qrels(split)  # an unknown split fails before any indexing
    if isinstance(encoder, (str, Path)) and any(n != "bm25" for n in systems):
        encoder = TorchEncoder.from_pretrained(str(encoder))
    built = build_systems(collection, encoder, systems, hybrid_weight=hybrid_weight, bm25_engine=bm25_engine)
    table = evaluate(built, topics, qrels)
    config = {"data": str(data), "split": split, "systems": list(systems),
              "model": getattr(encoder, "name", encoder) or "minilm", "bm25_engine": bm25_engine,
              "precision": getattr(encoder, "precision", None),
              "hybrid_weight": hybrid_weight, "seconds": round(time.perf_counter() - started, 1)}
    print(results_markdown(table), flush=True)
    payload = results_json(table, config)
    if json_path:
        write_json(json_path, payload)
    if png_path:
        name = Path(str(data)).name if isinstance(data, (str, Path)) else getattr(collection, "name", "collection")
        results_chart(table, png_path, title=title or f"{name} {split}")  # not the repr of a collection object
    return table, payload


def transfer_collections(data_root: str | Path, in_domain: str = "scifact",
                         out_of_domain: tuple[str, ...] = ("vaswani", "cranfield", "nfcorpus"),
                         ood_docs: int = 3000) -> dict:
    """The in-domain collection and the out-of-domain ones (their corpora cut to ``ood_docs``: every judged test
    document plus a fixed random sample, the same for every model; 0 keeps them whole), by name.

    The transfer study's set: a model trained in domain is measured on all of them with :func:`dense_scores`.

    Args:
        data_root: A folder holding one BEIR-format folder per collection, named as below (``../shared/data``).
        in_domain: The in-domain collection (kept whole).
        out_of_domain: The out-of-domain collections.
        ood_docs: Documents kept of each out-of-domain corpus (0: all).

    Returns:
        Name -> collection, the in-domain one first.

    Raises:
        InputError: A named folder is not a BEIR-format collection.
    """
    root = Path(data_root)
    collections = {in_domain: datasets.load(root / in_domain)}
    for name in out_of_domain:
        data = datasets.load(root / name)
        collections[name] = data.subsample(ood_docs) if ood_docs else data
    return collections


def dense_scores(encoder, collections: dict, k: int = 1000) -> dict[str, dict[str, float]]:
    """nDCG@10 and R@100 of ``encoder`` (exact dense retrieval, indexes cached by fingerprint) on each test split.

    Prints one line per collection as it goes.

    Args:
        encoder: A pt_dense encoder.
        collections: Name -> collection (e.g. from :func:`transfer_collections`); each needs a ``test`` split.
        k: Documents retrieved per query.

    Returns:
        Name -> ``{"nDCG@10": ..., "R@100": ...}``.
    """
    scores = {}
    for name, data in collections.items():
        index = cached_index(data, encoder)
        table = evaluate({name: encoder.query_encoder() >> index.retriever(k=k)}, data.topics("test"),
                         data.qrels("test"), ("nDCG@10", "R@100"))
        scores[name] = {"nDCG@10": float(table["nDCG@10"][0]), "R@100": float(table["R@100"][0])}
        print(f"  {name}: nDCG@10 {scores[name]['nDCG@10']:.4f}, R@100 {scores[name]['R@100']:.4f}", flush=True)
    return scores
