"""LoRA vs full fine-tuning, with in-batch vs BM25 hard negatives (Lee et al., 2023) on our collections.

Trains MiniLM on SciFact train in each cell of {full, LoRA} x {in-batch, BM25 negatives}, then evaluates it
in-domain (SciFact test) and out-of-domain (Vaswani, Cranfield, NFCorpus test) against the frozen MiniLM. Each
cell is cached in ``--out`` (trained encoder + its scores), so an interrupted run resumes where it stopped.
Out-of-domain corpora can be subsampled (``--ood-docs``: all judged documents plus a fixed random sample) to fit a
CPU budget; the same subset serves every model. Writes a markdown table, JSON and a PNG chart. Usage::

    python examples/lora_vs_full.py --data-root ../shared/data --out out/lora_vs_full --epochs 3
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

CELLS = [("lora", "in-batch"), ("full", "in-batch"), ("lora", "bm25"), ("full", "bm25")]
OOD = ("vaswani", "cranfield", "nfcorpus")


def evaluate(encoder, collections: dict) -> dict:
    import pyterrier as pt
    from ir_measures import R, nDCG

    from pt_dense import evaluation

    scores = {}
    for name, data in collections.items():
        index = evaluation.dense_index(data, encoder)  # cached by (collection, encoder fingerprint)
        table = pt.Experiment([encoder.query_encoder() >> index.retriever(k=1000)], data.topics("test"),
                              data.qrels("test"), [nDCG @ 10, R @ 100], names=[name])
        scores[name] = {"nDCG@10": float(table["nDCG@10"][0]), "R@100": float(table["R@100"][0])}
        print(f"  {name}: {scores[name]}", flush=True)
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default="../shared/data", type=Path)
    parser.add_argument("--out", default="out/lora_vs_full", type=Path)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--doc-max-length", type=int, default=256)
    parser.add_argument("--ood-docs", type=int, default=4000, help="subsample out-of-domain corpora (0: all)")
    parser.add_argument("--cells", default=",".join(f"{a}/{n}" for a, n in CELLS))
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--json")
    args = parser.parse_args()

    from pt_dense import datasets
    from pt_dense.encoders.biencoder import BiEncoder
    from pt_dense.report import bench_payload, markdown_table, write_json

    args.out.mkdir(parents=True, exist_ok=True)
    scifact = datasets.load(args.data_root / "scifact")
    collections = {"scifact": scifact}
    for name in OOD:
        data = datasets.load(args.data_root / name)
        collections[name] = data.subsample(args.ood_docs) if args.ood_docs else data

    results = {}
    frozen_file = args.out / "frozen.json"
    if not frozen_file.exists():
        print("frozen MiniLM", flush=True)
        frozen_file.write_text(json.dumps({"scores": evaluate(BiEncoder.from_pretrained("minilm"), collections)}))
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
            scores = evaluate(encoder, collections)
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
    chart(rows, names, args.out / "lora_vs_full.png")
    frozen = results["frozen"]["scores"]["scifact"]["nDCG@10"]
    headline = {f"{cell}_scifact_gain": results[cell]["scores"]["scifact"]["nDCG@10"] - frozen
                for cell in results if cell != "frozen"}
    config = vars(args) | {"out": str(args.out), "data_root": str(args.data_root)}
    write_json(args.json or args.out / "lora_vs_full.json", bench_payload(rows, config, **headline))


def chart(rows: list[dict], names: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(9, 4.5))
    width = 0.8 / len(rows)
    for i, row in enumerate(rows):
        values = [row[f"{n} nDCG@10"] for n in names]
        bars = ax.bar(np.arange(len(names)) + (i - (len(rows) - 1) / 2) * width, values, width, label=row["system"])
        ax.bar_label(bars, fmt="%.3f", fontsize=6, rotation=90, padding=1)
    ax.set_xticks(np.arange(len(names)), names)
    ax.set_ylabel("nDCG@10 (test)")
    ax.set_title("Trained on SciFact train: in-domain (scifact) and out-of-domain")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
