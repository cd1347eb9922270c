"""LoRA vs full fine-tuning, with in-batch vs BM25 hard negatives (Lee et al., 2023) on our collections.

Trains MiniLM on SciFact train in each cell of {full, LoRA} x {in-batch, BM25 negatives}, then evaluates it
in-domain (SciFact test) and out-of-domain (Vaswani, Cranfield, NFCorpus test) against the frozen MiniLM. Each
cell is cached in ``--out`` (trained encoder + its scores), so an interrupted run resumes where it stopped.
Out-of-domain corpora can be subsampled (``--ood-docs``: all judged documents plus a fixed random sample) to fit a
CPU budget; the same subset serves every model. Writes a markdown table, JSON and a PNG chart. Usage::

    python examples/lora_vs_full.py --data-root ../shared/data --out out/lora_vs_full
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

CELLS = [("lora", "in-batch"), ("full", "in-batch"), ("lora", "bm25"), ("full", "bm25")]
OOD = ("vaswani", "cranfield", "nfcorpus")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default="../shared/data", type=Path)
    parser.add_argument("--out", default="out/lora_vs_full", type=Path)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--doc-max-length", type=int, default=128,
                        help="document tokens kept in training (evaluation encodes 256, as the model was built)")
    parser.add_argument("--ood-docs", type=int, default=3000, help="subsample out-of-domain corpora (0: all)")
    parser.add_argument("--cells", default=",".join(f"{a}/{n}" for a, n in CELLS))
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--json")
    args = parser.parse_args()

    from pt_dense.encoders.biencoder import BiEncoder
    from pt_dense.evaluation import dense_scores, transfer_collections
    from pt_dense.report import bench_payload, grouped_bars, markdown_table, write_json

    args.out.mkdir(parents=True, exist_ok=True)
    collections = transfer_collections(args.data_root, "scifact", OOD, args.ood_docs)
    scifact = collections["scifact"]

    results = {}
    frozen_file = args.out / "frozen.json"
    if not frozen_file.exists():
        print("frozen MiniLM", flush=True)
        frozen_file.write_text(json.dumps({"scores": dense_scores(BiEncoder.from_pretrained("minilm"), collections)}))
    results["frozen"] = json.loads(frozen_file.read_text()) | {"trainable": 0}
    for cell in args.cells.split(","):
        adapter, negatives = cell.split("/")
        folder = args.out / f"{adapter}-{negatives}"
        cell_file = folder / "scores.json"
        if not cell_file.exists():
            print(f"training {cell}", flush=True)
            encoder = BiEncoder.from_pretrained("minilm")
            encoder = encoder.with_lora() if adapter == "lora" else encoder
            started = time.perf_counter()
            history = encoder.fit(scifact.topics("train"), scifact.qrels("train"), corpus=scifact,
                                  negatives=negatives, epochs=args.epochs, batch_size=args.batch_size,
                                  doc_max_length=args.doc_max_length, seed=args.seed,
                                  checkpoint_dir=str(args.out / f"{adapter}-{negatives}.checkpoints"), resume=True)
            train_seconds = time.perf_counter() - started
            encoder.doc_max_length = 256
            encoder.save(folder / "encoder")
            trainable, total = encoder.trainable_parameters()
            scores = dense_scores(encoder, collections)
            cell_file.write_text(json.dumps({"scores": scores, "trainable": trainable, "total": total,
                                             "train_seconds": train_seconds, "final_loss": history["loss"][-1]}))
        results[cell] = json.loads(cell_file.read_text())

    names = list(collections)
    rows = []
    for system, r in results.items():
        row = {"system": "frozen MiniLM" if system == "frozen" else system, "trainable": r["trainable"]}
        for name in names:
            row[f"{name} nDCG@10"] = r["scores"][name]["nDCG@10"]
        row["OOD mean nDCG@10"] = sum(r["scores"][n]["nDCG@10"] for n in OOD) / len(OOD)
        rows.append(row)
    table = markdown_table(rows)
    print(table)
    (args.out / "lora_vs_full.md").write_text(table + "\n")
    grouped_bars({r["system"]: [r[f"{n} nDCG@10"] for n in names] for r in rows}, names,
                 args.out / "lora_vs_full.png", ylabel="nDCG@10 (test)",
                 title="Trained on SciFact train: in-domain (scifact) and out-of-domain")
    frozen = results["frozen"]["scores"]["scifact"]["nDCG@10"]
    headline = {f"{cell}_scifact_gain": results[cell]["scores"]["scifact"]["nDCG@10"] - frozen
                for cell in results if cell != "frozen"}
    config = vars(args) | {"out": str(args.out), "data_root": str(args.data_root)}
    write_json(args.json or args.out / "lora_vs_full.json", bench_payload(rows, config, **headline))


if __name__ == "__main__":
    main()
