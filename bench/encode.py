"""Documents/s of pt_dense's document encoder vs sentence-transformers on the same model, texts and settings.

Both encode the same texts with the same max length (256) and batch size, in one process, alternating, and the
median of the rounds is reported. Usage::

    python bench/encode.py --data ../shared/data/scifact --limit 1000 --json out/encode.json
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time

from pt_dense.report import bench_payload, peak_rss_mb, print_table, write_json


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="scifact")
    parser.add_argument("--limit", type=int, default=1000, help="documents to encode (0: all)")
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json")
    args = parser.parse_args()

    import torch
    from sentence_transformers import SentenceTransformer

    from pt_dense import BiEncoder, datasets
    from pt_dense.models import resolve_model

    corpus = datasets.load(args.data).corpus_iter()
    docs = list(itertools.islice(corpus, args.limit or None))
    texts = [d["text"] for d in docs]
    ours = BiEncoder.from_pretrained(args.model, doc_max_length=args.max_length, batch_size=args.batch_size,
                                     device="cpu")
    theirs = SentenceTransformer(resolve_model(args.model), device="cpu")
    theirs.max_seq_length = args.max_length

    runners = {
        "pt_dense": lambda: ours.encode(texts, "doc", progress=False),
        "sentence_transformers": lambda: theirs.encode(texts, batch_size=args.batch_size,
                                                       normalize_embeddings=True, show_progress_bar=False),
    }
    ours.encode(texts[:64], "doc", progress=False)  # warm-up
    theirs.encode(texts[:64], batch_size=args.batch_size, show_progress_bar=False)
    seconds: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(args.rounds):
        for name, run in runners.items():
            started = time.perf_counter()
            run()
            seconds[name].append(time.perf_counter() - started)

    rows = [{"system": name, "docs_per_s": len(texts) / statistics.median(s),
             "median_s": statistics.median(s), "rounds": len(s)} for name, s in seconds.items()]
    ratio = rows[0]["docs_per_s"] / rows[1]["docs_per_s"]
    print_table(rows)
    print(f"\nratio pt_dense / sentence_transformers = {ratio:.3f}  ({len(texts)} docs, "
          f"{torch.get_num_threads()} threads, peak RSS {peak_rss_mb():.0f} MiB)")
    config = {**vars(args), "docs": len(texts), "threads": torch.get_num_threads()}
    write_json(args.json, bench_payload(rows, config, pt_dense_docs_per_s=rows[0]["docs_per_s"],
                                        sentence_transformers_docs_per_s=rows[1]["docs_per_s"], ratio=ratio,
                                        peak_rss_mb=peak_rss_mb()))


if __name__ == "__main__":
    main()
