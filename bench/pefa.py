"""Queries/s of dense retrieval alone vs PEFA-XS vs PEFA-XL on the same index, in one run.

Query vectors are encoded once up front (encoding costs the same for all three), then each system retrieves the
top ``--k`` for every test query, in one batch and one query per call, alternating systems, ``--rounds`` times;
medians are reported with ratios to dense retrieval. Usage::

    python bench/pefa.py --data ../shared/data/nfcorpus --json out/bench-pefa.json
"""

from __future__ import annotations

import argparse
import statistics
import time

from pt_dense.report import bench_payload, peak_rss_mb, print_table, write_json


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/nfcorpus")
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--k", type=int, default=1000, help="results per query")
    parser.add_argument("--xl-k", type=int, default=32, help="training-query neighbours of PEFA-XL")
    parser.add_argument("--lam", type=float, default=0.5)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json")
    args = parser.parse_args()

    from pt_dense import BiEncoder, datasets
    from pt_dense.index import cached_index
    from pt_dense.pefa import PEFA, drop_overlap

    data = datasets.load(args.data)
    encoder = BiEncoder.from_pretrained(args.model)
    index = cached_index(data, encoder)
    test = data.topics("test")
    memory = drop_overlap(data.topics("train"), test)
    queries = encoder.query_encoder()(test)
    systems = {
        "dense": index.retriever(k=args.k),
        "PEFA-XS": PEFA(index, encoder, memory, data.qrels("train"), kind="xs", lam=args.lam).retriever(k=args.k),
        "PEFA-XL": PEFA(index, encoder, memory, data.qrels("train"), kind="xl", lam=args.lam,
                        k=args.xl_k).retriever(k=args.k),
    }
    singles = [queries.iloc[[i]] for i in range(len(queries))]
    for system in systems.values():  # warm-up: builds the folded index and caches
        system(queries)
    timings: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.rounds):
        for name, system in systems.items():
            started = time.perf_counter()
            system(queries)
            timings.setdefault((name, "batch"), []).append(time.perf_counter() - started)
            started = time.perf_counter()
            for one in singles:
                system(one)
            timings.setdefault((name, "one query per call"), []).append(time.perf_counter() - started)

    rows = []
    for (name, mode), seconds in timings.items():
        qps = len(queries) / statistics.median(seconds)
        rows.append({"system": name, "mode": mode, "queries_per_s": qps})
    for row in rows:
        base = next(r for r in rows if r["system"] == "dense" and r["mode"] == row["mode"])
        row["ratio_to_dense"] = row["queries_per_s"] / base["queries_per_s"]
    print_table(rows)
    print(f"\n{len(queries)} queries, {len(index)} documents, k={args.k}, peak RSS {peak_rss_mb():.0f} MiB")
    ratio = {f"{r['system']}_{r['mode'].split()[0]}_ratio": r["ratio_to_dense"] for r in rows if r["system"] != "dense"}
    config = {**vars(args), "queries": len(queries), "documents": len(index)}
    write_json(args.json, bench_payload(rows, config, **ratio, peak_rss_mb=peak_rss_mb()))


if __name__ == "__main__":
    main()
