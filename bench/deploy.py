"""Deployment paths compared in one run on SciFact: encoding speed, per-query latency and quality.

1. docs/s of PyTorch fp32, PyTorch bf16 autocast, ONNX fp32 and ONNX int8 on the same texts (alternating, medians);
2. nDCG@10 / R@100 of each encoding path on SciFact test (each path encodes the corpus and the queries itself);
3. per-query latency (p50, p95; one query per call) of Lucene HNSW with queries encoded in Java by the bridge,
   FAISS + PyTorch and FAISS + ONNX, with their nDCG@10.

Usage::

    python bench/deploy.py --data ../shared/data/scifact --out out/deploy --json out/deploy/deploy.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import time
from pathlib import Path

import numpy as np

from pt_dense.report import bench_payload, peak_rss_mb, print_table, write_json


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/scifact")
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--speed-docs", type=int, default=500, help="documents timed per encoding path")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--latency-queries", type=int, default=300)
    parser.add_argument("--out", default="out/deploy", type=Path)
    parser.add_argument("--json")
    args = parser.parse_args()

    import pyterrier as pt
    from ir_measures import R, nDCG

    from pt_dense import BiEncoder, datasets, export
    from pt_dense.deploy import LuceneDense, PyseriniFaiss
    from pt_dense.encoders.onnx_encoder import OnnxEncoder
    from pt_dense.index import cached_index
    from pt_dense.index.dense_index import DenseIndex

    data = datasets.load(args.data)
    fp32 = BiEncoder.from_pretrained(args.model, precision="fp32")
    bf16 = BiEncoder.from_pretrained(args.model, precision="bf16")
    onnx_dir, int8_dir = args.out / "onnx-fp32", args.out / "onnx-int8"
    export.onnx(fp32, onnx_dir, overwrite=True)
    export.onnx(fp32, int8_dir, quantize="int8", overwrite=True)
    encoders = {"pytorch fp32": fp32, "pytorch bf16 autocast": bf16, "onnx fp32": OnnxEncoder(onnx_dir),
                "onnx int8": OnnxEncoder(int8_dir)}

    # 1. encoding speed on the same texts
    texts = [d["text"] for d in itertools.islice(data.corpus_iter(), args.speed_docs)]
    for enc in encoders.values():
        enc.encode(texts[:32], "doc", progress=False)
    seconds: dict[str, list[float]] = {name: [] for name in encoders}
    for _ in range(args.rounds):
        for name, enc in encoders.items():
            started = time.perf_counter()
            enc.encode(texts, "doc", progress=False)
            seconds[name].append(time.perf_counter() - started)
    base = len(texts) / statistics.median(seconds["pytorch fp32"])

    # 2. quality of each encoding path (its own corpus vectors and query vectors)
    topics, qrels = data.topics("test"), data.qrels("test")
    measures = [nDCG @ 10, R @ 100]
    rows = []
    for name, enc in encoders.items():
        if name == "pytorch fp32":
            index = cached_index(data, enc)
        else:  # reused from an earlier run when the same encoder built it
            index = DenseIndex(args.out / f"index-{name.replace(' ', '-')}")
            if not index.built() or index.fingerprint != enc.fingerprint:
                corpus = data.corpus_iter()
                (enc.doc_encoder() >> index.indexer(overwrite=True, total=len(corpus))).index(corpus)
        table = pt.Experiment([enc.query_encoder() >> index.retriever(k=1000)], topics, qrels, measures, names=[name])
        docs_per_s = len(texts) / statistics.median(seconds[name])
        rows.append({"path": name, "docs_per_s": docs_per_s, "speedup": docs_per_s / base,
                     "nDCG@10": float(table["nDCG@10"][0]), "R@100": float(table["R@100"][0])})
    print("Encoding paths (docs/s on the same texts; quality with the path's own vectors):")
    print_table(rows)

    # 3. serving latency, one query per call
    fp32_index = cached_index(data, fp32)
    lucene_dir, faiss_dir = args.out / "lucene-hnsw", args.out / "pyserini-faiss"
    export.lucene(fp32_index, lucene_dir, kind="hnsw", M=16, ef_construction=100, overwrite=True)
    export.pyserini_faiss(fp32_index, faiss_dir, overwrite=True)
    onnx_fp32 = encoders["onnx fp32"]
    serving = {
        "Lucene HNSW + Java bridge": LuceneDense(lucene_dir, onnx_dir, k=1000, threads=1),
        "FAISS + PyTorch": fp32.query_encoder() >> fp32_index.retriever(k=1000),
        "FAISS + ONNX": onnx_fp32.query_encoder() >> fp32_index.retriever(k=1000),
        "Pyserini FAISS + ONNX": PyseriniFaiss(faiss_dir, onnx_dir, k=1000, threads=1),
    }
    singles = [topics.iloc[[i]] for i in range(min(args.latency_queries, len(topics)))]
    latency_rows = []
    for name, system in serving.items():
        system(singles[0])
        times = []
        for one in singles:
            started = time.perf_counter()
            system(one)
            times.append((time.perf_counter() - started) * 1000)
        quality = pt.Experiment([system], topics, qrels, measures, names=[name])
        latency_rows.append({"path": name, "p50_ms": float(np.percentile(times, 50)),
                             "p95_ms": float(np.percentile(times, 95)), "nDCG@10": float(quality["nDCG@10"][0]),
                             "R@100": float(quality["R@100"][0])})
    print("\nServing paths (one query per call, k=1000):")
    print_table(latency_rows)
    parity = {p.name: json.loads((p / "parity.json").read_text()) for p in (onnx_dir, int8_dir)}
    by_path = {r["path"]: r for r in rows}
    headline = {
        "onnx_int8_speedup": by_path["onnx int8"]["speedup"],
        "onnx_int8_ndcg_drop": by_path["pytorch fp32"]["nDCG@10"] - by_path["onnx int8"]["nDCG@10"],
        "bf16_speedup": by_path["pytorch bf16 autocast"]["speedup"],
        "bf16_ndcg_drop": by_path["pytorch fp32"]["nDCG@10"] - by_path["pytorch bf16 autocast"]["nDCG@10"],
        "lucene_vs_faiss_torch_ndcg_diff": latency_rows[0]["nDCG@10"] - latency_rows[1]["nDCG@10"],
        "peak_rss_mb": peak_rss_mb(),
    }
    print("\nheadline:", {k: round(v, 4) for k, v in headline.items()})
    config = {k: str(v) for k, v in vars(args).items()} | {"speed_texts": len(texts), "parity": parity}
    write_json(args.json or args.out / "deploy.json",
               bench_payload(rows + latency_rows, config, **headline))


if __name__ == "__main__":
    main()
