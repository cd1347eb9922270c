"""What Ray costs and gives on this machine, in one run (``pt_dense.distributed``).

1. Encoding: documents/s of ``encode_on_ray`` with 1 actor (all CPUs) and 2 actors (half each) against the
   one-process build (``build_index``), on the same SciFact documents with MiniLM at the same precision. Each Ray
   build is timed whole (wall docs/s, start-up included) and once more on a single small block, whose time is the
   fixed cost of a run (actor pool start, merge); steady docs/s = documents / (wall - fixed).
2. Sharded search: a batch of queries (q/s) and one query at a time (p50 ms), exact search (or ``--kinds``) with
   k=100, over ``--vectors`` synthetic 384-d vectors (unit-norm draws around 1,000 random centres), for one index
   (``index.retriever``) and ``ShardedRetriever`` with 1, 2 and 4 shards (CPUs split evenly between the shards).
3. Ray's start-up: ``ray.init`` of a local cluster.

Usage::

    python bench/ray.py --json out/ray.json                 # 10^6 vectors: a few minutes and about 6 GB of disk
    python bench/ray.py --docs 300 --vectors 20000 --json /tmp/ray-smoke.json
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from pt_dense.report import bench_payload, peak_rss_mb, print_table, write_json

DIM, K = 384, 100
# run as `python bench/ray.py`, this file's folder comes first on sys.path and `import ray` would find this file
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]


def subset(folder: Path, docs: int) -> Path:
    """The first ``docs`` SciFact documents as a BEIR folder (its qrels are not needed here)."""
    import json

    from pt_dense import datasets

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "qrels").mkdir(exist_ok=True)
    (folder / "qrels" / "test.tsv").write_text("q\t0\td\t1\n")
    (folder / "queries.jsonl").write_text(json.dumps({"qid": "q", "query": "x"}) + "\n")
    with open(folder / "corpus.jsonl", "w") as out:
        for _, doc in zip(range(docs), datasets.load("scifact").corpus_iter(), strict=False):
            out.write(json.dumps({"docno": doc["docno"], "text": doc["text"]}) + "\n")
    return folder


def encoding_rows(work: Path, docs: int, cpus: int) -> list[dict]:
    from pt_dense import TorchEncoder
    from pt_dense.distributed import encode_on_ray
    from pt_dense.index import build_index

    corpus, small = subset(work / "corpus", docs), subset(work / "small", 16)
    encoder = TorchEncoder.from_pretrained("minilm")
    started = time.perf_counter()
    build_index(corpus, encoder, work / "plain.ptd")
    plain_s = time.perf_counter() - started
    rows = [{"part": "encode", "system": "one process", "docs": docs, "wall_s": plain_s,
             "docs_per_s": docs / plain_s, "fixed_s": 0.0, "steady_docs_per_s": docs / plain_s}]
    for actors in (1, 2):
        settings = {"actors": actors, "cpus_per_actor": cpus / actors, "block_size": max(64, docs // 8),
                    "progress": False}
        started = time.perf_counter()
        encode_on_ray(small, encoder, work / f"small-{actors}.ptd", **settings)
        fixed = time.perf_counter() - started
        started = time.perf_counter()
        index = encode_on_ray(corpus, encoder, work / f"ray-{actors}.ptd", **settings)
        wall = time.perf_counter() - started
        assert len(index) == docs
        rows.append({"part": "encode", "system": f"Ray, {actors} actor(s) x {cpus / actors:g} CPU", "docs": docs,
                     "wall_s": wall, "docs_per_s": docs / wall, "fixed_s": fixed,
                     "steady_docs_per_s": docs / max(wall - fixed, 1e-9)})
    return rows


def vector_index(path: Path, count: int, seed: int = 0):
    from pt_dense import DenseIndex

    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(1000, DIM)).astype(np.float32)

    def records():
        for start in range(0, count, 100_000):
            size = min(100_000, count - start)
            rows = centres[rng.integers(1000, size=size)] + rng.normal(size=(size, DIM)).astype(np.float32)
            rows /= np.linalg.norm(rows, axis=1, keepdims=True)
            for i, row in enumerate(rows, start):
                yield {"docno": f"d{i}", "doc_vec": row}

    return DenseIndex(path).indexer(total=count, chunk_size=65536).index(records())


def timed(stage, topics: pd.DataFrame, one_at_a_time: int) -> tuple[float, float]:
    """(q/s on the batch, p50 ms of ``one_at_a_time`` single-query calls), after a warm-up of each."""
    stage(topics.iloc[:1])
    stage(topics)
    started = time.perf_counter()
    stage(topics)
    qps = len(topics) / (time.perf_counter() - started)
    times = []
    for i in range(one_at_a_time):
        started = time.perf_counter()
        stage(topics.iloc[i : i + 1])
        times.append(1000 * (time.perf_counter() - started))
    return qps, float(np.median(times))


def search_rows(work: Path, vectors: int, queries: int, one_at_a_time: int, kinds: list[str], cpus: int
                ) -> list[dict]:
    from pt_dense.distributed import ShardedRetriever

    started = time.perf_counter()
    index = vector_index(work / "vectors.ptd", vectors)
    print(f"built {vectors} vectors in {time.perf_counter() - started:.0f} s")
    rng = np.random.default_rng(1)
    matrix = rng.normal(size=(queries, DIM)).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    topics = pd.DataFrame({"qid": [f"q{i}" for i in range(queries)], "query_vec": list(matrix)})
    rows = []
    for spec in kinds:
        kind, *pairs = spec.split("@")
        params = {key: int(value) for key, value in (p.split("=") for p in pairs)}
        qps, p50 = timed(index.retriever(k=K, kind=kind, **params), topics, one_at_a_time)
        rows.append({"part": "search", "system": "one index", "kind": spec, "shards": 0, "vectors": vectors,
                     "qps": qps, "p50_ms": p50, "start_s": 0.0})
        for shards in (1, 2, 4):
            started = time.perf_counter()
            stage = ShardedRetriever(index, shards=shards, k=K, kind=kind, cpus_per_shard=cpus / shards, **params)
            start_s = time.perf_counter() - started  # split (written once per shard count) and actors started
            qps, p50 = timed(stage, topics, one_at_a_time)
            stage.close()
            rows.append({"part": "search", "system": f"Ray, {shards} shard(s)", "kind": spec, "shards": shards,
                         "vectors": vectors, "qps": qps, "p50_ms": p50, "start_s": start_s})
            print_table(rows[-1:])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=1000, help="SciFact documents encoded")
    parser.add_argument("--vectors", type=int, default=1_000_000, help="vectors searched")
    parser.add_argument("--queries", type=int, default=200, help="queries in the batch")
    parser.add_argument("--one-at-a-time", type=int, default=30, help="single-query calls for p50")
    parser.add_argument("--kinds", default="flat", help="comma-separated retriever kinds (params after @)")
    parser.add_argument("--precision", default="fp32", help="the encoders' precision (one for all)")
    parser.add_argument("--cpus", type=int, default=os.cpu_count(), help="CPUs of the local Ray cluster")
    parser.add_argument("--work", help="work folder (default: a temporary one, removed)")
    parser.add_argument("--json")
    args = parser.parse_args()
    os.environ["PT_DENSE_PRECISION"] = args.precision
    work = Path(args.work or tempfile.mkdtemp(prefix="bench-ray-"))
    import ray

    started = time.perf_counter()
    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False, _temp_dir=str(work / "ray"))
    init_s = time.perf_counter() - started
    try:
        rows = encoding_rows(work, args.docs, args.cpus)
        print_table(rows)
        rows += search_rows(work, args.vectors, args.queries, args.one_at_a_time, args.kinds.split(","), args.cpus)
    finally:
        ray.shutdown()
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    print_table([r for r in rows if r["part"] == "encode"])
    print_table([r for r in rows if r["part"] == "search"])
    print(f"ray.init (local cluster, {args.cpus} CPUs): {init_s:.1f} s; peak RSS {peak_rss_mb():.0f} MB")
    by = {r["system"]: r for r in rows if r["part"] == "encode"}
    first = [r for r in rows if r["part"] == "search" and r["kind"] == args.kinds.split(",")[0]]
    headline = {"ray_init_s": init_s, "encode_docs_per_s_one_process": by["one process"]["docs_per_s"],
                **{f"encode_docs_per_s_ray_{r['system'].split(',')[1].split()[0]}_actors": r["docs_per_s"]
                   for r in by.values() if r["system"].startswith("Ray")},
                **{f"search_qps_{r['shards']}_shards" if r["shards"] else "search_qps_one_index": r["qps"]
                   for r in first},
                **{f"search_p50_ms_{r['shards']}_shards" if r["shards"] else "search_p50_ms_one_index": r["p50_ms"]
                   for r in first}}
    write_json(args.json, bench_payload(rows, {**vars(args), "dim": DIM, "k": K}, **headline))


if __name__ == "__main__":
    main()
