"""Cost of each training mode (full, LoRA, deep prompts) on the same batches: trainable parameters, optimiser
state, seconds per step, peak RSS.

Each mode runs in its own process (so peak RSS is its own) on the same SciFact training batches with in-batch
negatives; the first step is a warm-up and is not timed. Usage::

    python bench/train.py --data ../shared/data/scifact --steps 4 --json out/bench-train.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from pt_dense.report import bench_payload, peak_rss_mb, print_table, write_json

MODES = ("full", "lora", "prompts")


def worker(args) -> dict:
    from pt_dense import BiEncoder, datasets

    data = datasets.load(args.data)
    encoder = BiEncoder.from_pretrained(args.model)
    if args.mode == "lora":
        encoder = encoder.with_lora()
    elif args.mode == "prompts":
        encoder = encoder.with_prompts(length=32)
    topics = data.topics("train").head(args.batch_size * (args.steps + 1))
    history = encoder.fit(topics, data.qrels("train"), corpus=data, epochs=1, batch_size=args.batch_size,
                          max_steps=args.steps + 1, doc_max_length=args.max_length, progress=False, seed=0)
    trainable, total = encoder.trainable_parameters()
    return {"mode": args.mode, "trainable_params": trainable, "total_params": total,
            "trainable_pct": 100 * trainable / total, "optimizer_state_mb": history["optimizer_state_bytes"] / 2**20,
            "s_per_step": sum(history["step_seconds"][1:]) / args.steps, "peak_rss_mb": peak_rss_mb()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/scifact")
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--json")
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode:
        print(json.dumps(worker(args)))
        return
    rows = []
    for mode in MODES:
        command = [sys.executable, __file__, "--mode", mode, "--data", args.data, "--model", args.model,
                   "--steps", str(args.steps), "--batch-size", str(args.batch_size),
                   "--max-length", str(args.max_length)]
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
    print_table(rows)
    by = {r["mode"]: r for r in rows}
    headline = {}
    for mode in ("lora", "prompts"):
        headline |= {f"{mode}_trainable_pct": by[mode]["trainable_pct"],
                     f"{mode}_optimizer_state_ratio": by[mode]["optimizer_state_mb"] / by["full"]["optimizer_state_mb"],
                     f"{mode}_step_speedup": by["full"]["s_per_step"] / by[mode]["s_per_step"]}
    print({k: round(v, 4) for k, v in headline.items()})
    write_json(args.json, bench_payload(rows, vars(args), **headline))


if __name__ == "__main__":
    main()
