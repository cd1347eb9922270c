"""Documents/s of pt_dense's document encoder, at its default precision and at each other one, against
sentence-transformers on the same model, texts, threads and settings; with ``--quality``, the nDCG@10 of each
precision with its own corpus and query vectors against fp32's.

All runners encode the same texts with the same max length (256) and batch size, in one process, alternating, and
the median of the rounds is reported. Usage::

    python bench/encode.py --data ../shared/data/scifact --limit 500 \
        --quality ../shared/data/scifact,../shared/data/nfcorpus --json out/encode.json
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import tempfile
import time
from pathlib import Path

from pt_dense.report import bench_payload, peak_rss_mb, print_table, write_json

PRECISIONS = ("fp32", "bf16", "onnx", "int8")


def quality(encoder, collection: str, work: str) -> float:
    """Dense nDCG@10 on ``collection``'s test queries with ``encoder``'s own corpus vectors (never a cached index:
    the cache is keyed by fingerprint, which precision does not change)."""
    import pyterrier as pt
    from ir_measures import nDCG

    from pt_dense import datasets
    from pt_dense.index import DenseIndex

    data = datasets.load(collection)
    index = DenseIndex(Path(work) / f"{Path(collection).name}-{encoder.precision}")
    corpus = data.corpus_iter()
    (encoder.doc_encoder() >> index.indexer(total=len(corpus), progress=False)).index(corpus)
    table = pt.Experiment([encoder.query_encoder() >> index.retriever(k=1000)], data.topics("test"),
                          data.qrels("test"), [nDCG @ 10])
    return float(table["nDCG@10"][0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="scifact")
    parser.add_argument("--limit", type=int, default=1000, help="documents to encode (0: all)")
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quality", default="", help="comma-separated collections whose test nDCG@10 to measure at "
                        "the default precision and at fp32 (e.g. scifact,nfcorpus)")
    parser.add_argument("--json")
    args = parser.parse_args()

    import torch
    from sentence_transformers import SentenceTransformer

    from pt_dense import BiEncoder, datasets
    from pt_dense.models import resolve_model

    docs = list(itertools.islice(datasets.load(args.data).corpus_iter(), args.limit or None))
    texts = [d["text"] for d in docs]
    settings = {"doc_max_length": args.max_length, "batch_size": args.batch_size, "device": "cpu"}
    default = BiEncoder.from_pretrained(args.model, **settings)
    ours = {f"pt_dense default ({default.precision})": default} | {
        f"pt_dense {p}": default.with_model(default.model, precision=p) for p in PRECISIONS if p != default.precision}
    theirs = SentenceTransformer(resolve_model(args.model), device="cpu")
    theirs.max_seq_length = args.max_length
    runners = {name: (lambda enc=enc: enc.encode(texts, "doc", progress=False)) for name, enc in ours.items()}
    runners["sentence_transformers"] = lambda: theirs.encode(texts, batch_size=args.batch_size,
                                                             normalize_embeddings=True, show_progress_bar=False)
    for enc in ours.values():  # warm-up (and the int8 copy made)
        enc.encode(texts[:64], "doc", progress=False)
    theirs.encode(texts[:64], batch_size=args.batch_size, show_progress_bar=False)
    seconds: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(args.rounds):
        for name, run in runners.items():
            started = time.perf_counter()
            run()
            seconds[name].append(time.perf_counter() - started)
    st = len(texts) / statistics.median(seconds["sentence_transformers"])
    rows = [{"system": name, "docs_per_s": len(texts) / statistics.median(s),
             "x sentence_transformers": len(texts) / statistics.median(s) / st, "rounds": len(s)}
            for name, s in seconds.items()]
    collections = [c.strip() for c in args.quality.split(",") if c.strip()]
    with tempfile.TemporaryDirectory() as work:
        for row in rows:
            enc = next((e for name, e in ours.items() if name == row["system"]), None)
            for collection in collections if enc is not None and enc.precision in ("fp32", default.precision) else ():
                row[f"{Path(collection).name} nDCG@10"] = quality(enc, collection, work)
    print_table(rows)
    ratio = rows[0]["x sentence_transformers"]
    print(f"\ndefault ({default.precision}) / sentence_transformers = {ratio:.3f}  ({len(texts)} docs, "
          f"{torch.get_num_threads()} threads, peak RSS {peak_rss_mb():.0f} MiB)")
    fp32_row = next(r for r in rows if r["system"].endswith("fp32") or "(fp32)" in r["system"])
    names = [Path(c).name for c in collections]
    changes = {c: rows[0][f"{c} nDCG@10"] - fp32_row[f"{c} nDCG@10"] for c in names}
    if changes:
        print("nDCG@10 change of the default against fp32:", {c: round(v, 4) for c, v in changes.items()})
    config = {**vars(args), "docs": len(texts), "threads": torch.get_num_threads(), "default": default.precision}
    write_json(args.json, bench_payload(rows, config, default_precision=default.precision, ratio=ratio,
                                        ndcg_change=changes, peak_rss_mb=peak_rss_mb()))


if __name__ == "__main__":
    main()
