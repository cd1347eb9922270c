"""Shared by the examples that train MiniLM on SciFact train and evaluate it in-domain (SciFact test) and
out-of-domain (Vaswani, Cranfield, NFCorpus test): cached cells, the frozen baseline, and the report."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

OOD = ("vaswani", "cranfield", "nfcorpus")


def transfer_parser(description: str, out: str) -> argparse.ArgumentParser:
    """The arguments every transfer example shares: data root, output folder, the out-of-domain cut, seed, JSON."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default="../shared/data", type=Path)
    parser.add_argument("--out", default=out, type=Path)
    parser.add_argument("--ood-docs", type=int, default=3000, help="subsample out-of-domain corpora (0: all)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--json")
    return parser


def start(args) -> tuple[dict, dict]:
    """The collections (SciFact and the out-of-domain subsets) and the results so far: the frozen MiniLM's."""
    from pt_dense.evaluation import transfer_collections

    args.out.mkdir(parents=True, exist_ok=True)
    collections = transfer_collections(args.data_root, "scifact", OOD, args.ood_docs)
    scifact = collections["scifact"]
    relevant = {split: set(scifact.qrels(split).query("label > 0")["docno"]) for split in ("train", "test")}
    print(f"scifact: {len(relevant['test'] & relevant['train'])} of the {len(relevant['test'])} documents relevant "
          "to a test query are also relevant to a train query (what training can learn about test)", flush=True)
    return collections, {"frozen MiniLM": frozen_cell(args.out, collections)}


def cached(path: Path, compute: Callable[[], dict]) -> dict:
    """``compute()`` once, written atomically to ``path``; later runs read it back (an interrupted run resumes)."""
    from pt_dense.report import write_json

    if not path.exists():
        write_json(path, compute())
    return json.loads(path.read_text())


def frozen_cell(out: Path, collections: dict) -> dict:
    """Scores of the packaged MiniLM as it is."""
    from pt_dense import BiEncoder
    from pt_dense.evaluation import dense_scores

    def compute() -> dict:
        print("frozen MiniLM", flush=True)
        encoder = BiEncoder.from_pretrained("minilm")
        return {"scores": dense_scores(encoder, collections), "trainable": 0,
                "total": encoder.trainable_parameters()[1]}

    return cached(out / "frozen.json", compute)


def trained_cell(folder: Path, make_encoder: Callable, collections: dict, negatives, **train) -> dict:
    """Train ``make_encoder()`` on SciFact train, save it to ``folder/encoder`` and score it on every collection."""
    from pt_dense.evaluation import dense_scores

    def compute() -> dict:
        print(f"training {folder.name}", flush=True)
        scifact = collections["scifact"]
        encoder = make_encoder()
        started = time.perf_counter()
        history = encoder.fit(scifact.topics("train"), scifact.qrels("train"), corpus=scifact, negatives=negatives,
                              **train)
        train_seconds = time.perf_counter() - started
        encoder.save(folder / "encoder")
        trainable, total = encoder.trainable_parameters()
        return {"scores": dense_scores(encoder, collections), "trainable": trainable, "total": total,
                "train_seconds": train_seconds, "final_loss": history["loss"][-1]}

    return cached(folder / "scores.json", compute)


def report(results: dict[str, dict], collections: dict, out: Path, stem: str, title: str, config: dict,
           json_path: str | None = None) -> list[dict]:
    """The table (markdown, printed and saved), a PNG chart and the JSON of ``results`` (system -> cell)."""
    from pt_dense.report import bench_payload, grouped_bars, markdown_table, write_json

    names = list(collections)
    rows = []
    for system, r in results.items():
        trainable = r.get("trainable", 0)
        row = {"system": system, "trainable": trainable,
               "trainable %": 100 * trainable / r["total"] if r.get("total") else 0.0,
               "train minutes": r.get("train_seconds", 0.0) / 60}
        row |= {f"{name} nDCG@10": r["scores"][name]["nDCG@10"] for name in names}
        row["OOD mean nDCG@10"] = sum(r["scores"][n]["nDCG@10"] for n in OOD) / len(OOD)
        rows.append(row)
    table = markdown_table(rows)
    print(table)
    (out / f"{stem}.md").write_text(table + "\n")
    grouped_bars({r["system"]: [r[f"{n} nDCG@10"] for n in names] for r in rows}, names, out / f"{stem}.png",
                 ylabel="nDCG@10 (test)", title=title)
    baseline = rows[0]["scifact nDCG@10"]
    headline = {f"{r['system']} scifact gain": r["scifact nDCG@10"] - baseline for r in rows[1:]}
    write_json(json_path or out / f"{stem}.json", bench_payload(rows, config, **headline))
    return rows
