"""Refreshing an index with a corrector vs re-encoding it: wall time, in one process, alternating rounds.

The index holds ``--limit`` SciFact documents encoded by the frozen MiniLM; the current encoder is ``--encoder`` (a
trained folder) or MiniLM with a fresh LoRA adapter (inference costs the same). Each round times (a) a full
re-encode of the corpus into a new index and (b) ``Corrector.fit`` on each ``--samples`` fraction (its re-encoded
sample included) followed by ``index.refresh``; medians over ``--rounds``. Usage::

    python bench/refresh.py --data ../shared/data/scifact --limit 1000 --json out/bench-refresh.json
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from pt_dense.report import bench_payload, peak_rss_mb, print_table, write_json


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/scifact")
    parser.add_argument("--encoder")
    parser.add_argument("--limit", type=int, default=1000)
    parser.add_argument("--samples", default="0.01,0.05,0.1")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json")
    args = parser.parse_args()

    from pt_dense import BiEncoder, datasets
    from pt_dense.corrector import Corrector
    from pt_dense.index.dense_index import DenseIndex

    docs = [d for _, d in zip(range(args.limit), datasets.load(args.data).corpus_iter(), strict=False)]
    texts = {d["docno"]: d["text"] for d in docs}
    frozen = BiEncoder.from_pretrained("minilm")
    current = BiEncoder.from_pretrained(args.encoder) if args.encoder else frozen.with_lora()
    samples = [float(s) for s in args.samples.split(",")]
    work = Path(tempfile.mkdtemp(prefix="pt-dense-bench-refresh-"))
    stale = DenseIndex(work / "stale")
    (frozen.doc_encoder() >> stale.indexer(progress=False)).index(docs)

    timings: dict[str, list[float]] = {"full re-encode": []} | {f"refresh, {s:.0%} sample": [] for s in samples}
    for round_ in range(args.rounds):
        started = time.perf_counter()
        fresh = DenseIndex(work / f"fresh-{round_}")
        (current.doc_encoder() >> fresh.indexer(progress=False)).index(docs)
        timings["full re-encode"].append(time.perf_counter() - started)
        for s in samples:
            started = time.perf_counter()
            corrector = Corrector.fit(stale, current, texts, s, progress=False, seed=round_)
            stale.refresh(corrector, work / f"refreshed-{s}-{round_}")
            timings[f"refresh, {s:.0%} sample"].append(time.perf_counter() - started)
    full = statistics.median(timings["full re-encode"])
    rows = [{"path": name, "re-encoded docs": len(docs) if name.startswith("full") else round(s * len(docs)),
             "median s": statistics.median(values), "speed-up": full / statistics.median(values)}
            for (name, values), s in zip(timings.items(), [1.0, *samples], strict=True)]
    print_table(rows)
    print(f"{len(docs)} documents, {args.rounds} rounds, peak RSS {peak_rss_mb():.0f} MiB")
    headline = {f"speedup_{int(s * 100)}pct": r["speed-up"] for s, r in zip(samples, rows[1:], strict=True)}
    write_json(args.json, bench_payload(rows, vars(args), peak_rss_mb=peak_rss_mb(), **headline))


if __name__ == "__main__":
    main()
