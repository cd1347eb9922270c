"""PEFA on real collections: the encoder alone (ERM) vs PEFA-XS vs PEFA-XL, first stage and over BM25.

- NFCorpus: PEFA's memory is NFCorpus train; lam and k are tuned on dev (R@100); evaluated on test.
- SciFact: no dev split, so lam and k are tuned on a held-out fifth of train with the other four fifths as memory;
  the final memory is all of train. (64% of SciFact's test judgements point at a training positive: PEFA gains much.)

Training queries whose text also occurs in a tuning or test split are dropped from the memory (never the other way
round). Writes a markdown table, JSON (``--json``) and a PNG chart. Usage::

    python examples/pefa.py --data-root ../shared/data --out out/pefa --json out/pefa/pefa.json
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd
import pyterrier as pt

MEASURES = ("nDCG@10", "R@100", "R@1000")


def measures():
    from ir_measures import R, nDCG

    return [nDCG @ 10, R @ 100, R @ 1000]


def run_collection(name: str, root: Path, encoder, out: Path) -> tuple[list[dict], dict]:
    from pt_dense import BM25, datasets
    from pt_dense.index import cached_index
    from pt_dense.pefa import PEFA, drop_overlap

    data = datasets.load(root / name)
    index = cached_index(data, encoder)
    test = data.topics("test")
    train, train_qrels = data.topics("train"), data.qrels("train")
    if "dev" in data.splits():
        valid, valid_qrels = data.topics("dev"), data.qrels("dev")
        memory = tune_memory = drop_overlap(train, valid, test)
    else:
        shuffled = train.sample(frac=1.0, random_state=0)
        cut = len(shuffled) // 5
        valid = shuffled.iloc[:cut].reset_index(drop=True)
        valid_qrels = train_qrels[train_qrels["qid"].isin(valid["qid"])]
        tune_memory = drop_overlap(shuffled.iloc[cut:], valid, test)
        memory = drop_overlap(train, test)
    info = {"train_queries": len(train), "memory_queries": len(memory), "dropped_for_overlap": len(train) - len(memory),
            "valid_queries": len(valid), "test_queries": len(test)}

    tuned = {}
    for kind in ("xs", "xl"):
        probe = PEFA(index, encoder, tune_memory, train_qrels, kind=kind)
        grid = probe.tune(valid, valid_qrels, lams=(0.1, 0.3, 0.5, 0.7, 0.9), ks=(16, 32, 64), measure="R@100",
                          plot=out / f"{name}-tune-{kind}.png")
        tuned[kind] = grid["best"]
        print(f"{name} PEFA-{kind.upper()} tuned on {len(valid)} queries: {grid['best']}")
    xs = PEFA(index, encoder, memory, train_qrels, kind="xs", lam=tuned["xs"]["lam"])
    xl = PEFA(index, encoder, memory, train_qrels, kind="xl", lam=tuned["xl"]["lam"], k=tuned["xl"]["k"])

    q = encoder.query_encoder()
    bm25 = BM25(data, num_results=1000)
    systems = {
        "ERM (dense)": q >> index.retriever(k=1000),
        "PEFA-XS": q >> xs.retriever(k=1000),
        "PEFA-XL": q >> xl.retriever(k=1000),
        "BM25": bm25,
        "BM25 >> ERM": bm25 >> q >> index.scorer(),
        "BM25 >> PEFA-XS": bm25 >> q >> xs.reranker(),
        "BM25 >> PEFA-XL": bm25 >> q >> xl.reranker(),
    }
    table = pt.Experiment(list(systems.values()), test, data.qrels("test"), measures(), names=list(systems))
    table = table.rename(columns={str(m): n for m, n in zip(measures(), MEASURES, strict=True)})
    rows = [{"collection": name, "system": r["name"], **{m: float(r[m]) for m in MEASURES}}
            for r in table.to_dict("records")]
    info["tuned"] = tuned
    return rows, info


def chart(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    frame = pd.DataFrame(rows)
    collections = list(dict.fromkeys(frame["collection"]))
    fig, axes = plt.subplots(1, len(collections), figsize=(6.5 * len(collections), 4.8), squeeze=False)
    for ax, name in zip(axes[0], collections, strict=True):
        part = frame[frame["collection"] == name]
        width = 0.8 / len(MEASURES)
        for i, m in enumerate(MEASURES):
            bars = ax.bar(np.arange(len(part)) + (i - 1) * width, part[m], width, label=m)
            ax.bar_label(bars, fmt="%.2f", fontsize=6, rotation=90, padding=1)
        ax.set_xticks(np.arange(len(part)), part["system"], rotation=30, ha="right", fontsize=8)
        ax.set_ylim(0, 1.1)
        ax.set_title(f"{name} test, frozen MiniLM")
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default="../shared/data", type=Path)
    parser.add_argument("--collections", default="nfcorpus,scifact")
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--out", default="out/pefa", type=Path)
    parser.add_argument("--json")
    args = parser.parse_args()

    from pt_dense import BiEncoder
    from pt_dense.report import bench_payload, markdown_table, write_json

    started = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    encoder = BiEncoder.from_pretrained(args.model)
    rows, infos = [], {}
    for name in args.collections.split(","):
        part, infos[name] = run_collection(name, args.data_root, encoder, args.out)
        rows += part
    table = markdown_table(rows)
    print(table)
    (args.out / "pefa.md").write_text(table + "\n")
    chart(rows, args.out / "pefa.png")

    headline = {}
    for name in infos:
        by = {r["system"]: r for r in rows if r["collection"] == name}
        headline[f"{name}_xl_minus_erm_R@100"] = by["PEFA-XL"]["R@100"] - by["ERM (dense)"]["R@100"]
        headline[f"{name}_xs_minus_erm_R@100"] = by["PEFA-XS"]["R@100"] - by["ERM (dense)"]["R@100"]
    print({k: round(v, 4) for k, v in headline.items()})
    config = {"model": args.model, "collections": args.collections, "data_root": str(args.data_root),
              "collections_info": infos, "seconds": round(time.perf_counter() - started, 1)}
    write_json(args.json or args.out / "pefa.json", bench_payload(rows, config, **headline))


if __name__ == "__main__":
    main()
