"""Deep prompt tuning (DPTDR) vs LoRA on SciFact, with and without intermediate pretraining and unified negatives.

Cells (each trained on SciFact train with the same batches, then evaluated in-domain on SciFact test and
out-of-domain on Vaswani, Cranfield and NFCorpus test, against the frozen MiniLM):

- ``dpt``: deep prompts (length 32 in each of the 6 layers, lr 7e-3), in-batch negatives;
- ``dpt+unified``: the same with unified negatives (RRF of BM25 and frozen MiniLM, mined once, shared by every cell);
- ``dpt+pretrain``: prompts first pretrained on SciFact's corpus alone (title -> body, span -> body), then fine-tuned;
- ``dpt+pretrain+unified``: both;
- ``lora`` and ``lora+unified``: LoRA (r=8) on the same data, for reference.

Every cell (and the pretrained prompts) is cached in ``--out``: an interrupted run resumes. Out-of-domain corpora are
cut to ``--ood-docs`` documents (all judged ones plus a fixed sample), the same for every model. Writes a markdown
table, JSON and a PNG chart. Usage::

    python examples/prompts_vs_lora.py --data-root ../shared/data --out out/prompts_vs_lora
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

CELLS = ("dpt", "dpt+unified", "dpt+pretrain", "dpt+pretrain+unified", "lora", "lora+unified")
OOD = ("vaswani", "cranfield", "nfcorpus")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default="../shared/data", type=Path)
    parser.add_argument("--out", default="out/prompts_vs_lora", type=Path)
    parser.add_argument("--cells", default=",".join(CELLS))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--prompt-length", type=int, default=32)
    parser.add_argument("--doc-max-length", type=int, default=128, help="document tokens kept in training")
    parser.add_argument("--pretrain-docs", type=int, default=2000, help="documents sampled for pretraining")
    parser.add_argument("--ood-docs", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--json")
    args = parser.parse_args()

    from pt_dense.encoders.biencoder import BiEncoder
    from pt_dense.evaluation import dense_scores, transfer_collections
    from pt_dense.report import bench_payload, grouped_bars, markdown_table, write_json
    from pt_dense.training.pretrain import pretrain

    args.out.mkdir(parents=True, exist_ok=True)
    collections = transfer_collections(args.data_root, "scifact", OOD, args.ood_docs)
    scifact = collections["scifact"]
    train = {"epochs": args.epochs, "batch_size": args.batch_size, "doc_max_length": args.doc_max_length,
             "seed": args.seed}

    def fresh(adapter: str) -> BiEncoder:
        base = BiEncoder.from_pretrained("minilm")
        return base.with_prompts(length=args.prompt_length) if adapter == "dpt" else base.with_lora()

    def pretrained_prompts() -> BiEncoder:
        folder = args.out / "pretrained-prompts"
        if not (folder / "pt_dense_encoder.json").exists():
            print("pretraining prompts on the SciFact corpus (title -> body, span -> body)", flush=True)
            encoder = fresh("dpt")
            history = pretrain(encoder, scifact, max_docs=args.pretrain_docs, **train | {"epochs": 1})
            encoder.doc_max_length = 256
            encoder.save(folder)
            (folder / "pretraining.json").write_text(json.dumps({"steps": len(history["loss"]),
                                                                 "final_loss": history["loss"][-1]}))
        return BiEncoder.from_pretrained(str(folder))

    results = {}
    frozen_file = args.out / "frozen.json"
    if not frozen_file.exists():
        print("frozen MiniLM", flush=True)
        frozen = BiEncoder.from_pretrained("minilm")
        frozen_file.write_text(json.dumps({"scores": dense_scores(frozen, collections), "trainable": 0,
                                           "total": frozen.trainable_parameters()[1]}))
    results["frozen MiniLM"] = json.loads(frozen_file.read_text())
    for cell in args.cells.split(","):
        if cell not in CELLS:
            raise SystemExit(f"unknown cell {cell!r}; cells: {', '.join(CELLS)}")
        cell_file = args.out / cell.replace("+", "-") / "scores.json"
        if not cell_file.exists():
            print(f"training {cell}", flush=True)
            parts = cell.split("+")
            encoder = pretrained_prompts() if "pretrain" in parts else fresh(parts[0])
            started = time.perf_counter()
            history = encoder.fit(scifact.topics("train"), scifact.qrels("train"), corpus=scifact,
                                  negatives="unified" if "unified" in parts else "in-batch", **train)
            train_seconds = time.perf_counter() - started
            encoder.doc_max_length = 256
            encoder.save(cell_file.parent / "encoder")
            trainable, total = encoder.trainable_parameters()
            cell_file.write_text(json.dumps({"scores": dense_scores(encoder, collections), "trainable": trainable,
                                             "total": total, "train_seconds": train_seconds,
                                             "final_loss": history["loss"][-1]}))
        results[cell] = json.loads(cell_file.read_text())

    names = list(collections)
    frozen_total = results["frozen MiniLM"]["total"]
    rows = []
    for system, r in results.items():
        row = {"system": system, "trainable": r["trainable"], "trainable %": 100 * r["trainable"] / frozen_total}
        row |= {f"{name} nDCG@10": r["scores"][name]["nDCG@10"] for name in names}
        row["OOD mean nDCG@10"] = sum(r["scores"][n]["nDCG@10"] for n in OOD) / len(OOD)
        rows.append(row)
    table = markdown_table(rows)
    print(table)
    (args.out / "prompts_vs_lora.md").write_text(table + "\n")
    grouped_bars({r["system"]: [r[f"{n} nDCG@10"] for n in names] for r in rows}, names,
                 args.out / "prompts_vs_lora.png", ylabel="nDCG@10 (test)",
                 title="Deep prompts vs LoRA, trained on SciFact train")
    frozen = results["frozen MiniLM"]["scores"]["scifact"]["nDCG@10"]
    headline = {f"{cell}_scifact_gain": r["scores"]["scifact"]["nDCG@10"] - frozen
                for cell, r in results.items() if cell != "frozen MiniLM"}
    write_json(args.json or args.out / "prompts_vs_lora.json",
               bench_payload(rows, vars(args) | {"out": str(args.out), "data_root": str(args.data_root)}, **headline))


if __name__ == "__main__":
    main()
