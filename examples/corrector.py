"""Corrector networks on SciFact: refresh a stale index, and train with negatives from a corrected cache.

Part A (refresh). The cache is the frozen MiniLM's index of the collection; the current encoder is MiniLM after LoRA
training on its train split (``--encoder``, or trained here). Queries are encoded by the current encoder; the
documents come from (a) the stale index, (b) the index refreshed by a corrector fitted on 1%, 5%, 10% re-encoded
samples (the regression loss, with and without the documents' token-embedding means as input, and the contrastive
loss at 10%), (c) a full re-encode. Each sample size is fitted on
``--seeds`` random samples (mean, sd, min and max: with a small stale -> fresh gap the choice of sample moves
nDCG@10 as much as the corrector does). Reported: nDCG@10, R@100 on the test split, mean cosine to the fresh
vectors, documents re-encoded, wall time, and the share of the stale -> fresh nDCG@10 gap recovered.

Part C (approaches, ``--parts C``): other ways to spend a 10% budget, measured beside the library's correctors
(see :func:`approaches`).

Part B (training). LoRA (or, ``--adapter none``, full fine-tuning) on SciFact train (3 epochs) with hard negatives
sampled from a cache of the corpus that is (a) stale, (b) corrected each epoch from a sample (``corrected:0.05``: 5%
re-encoded per refresh; ``corrected:0.05:mapped``: the sample's documents are corrected too, not given their exact
vectors), (c) re-encoded each epoch (``--policies``); ``--lr`` higher than the adapter's default makes
the encoder drift further from its cache. Reported: nDCG@10 on SciFact test, the documents each policy re-encoded for
its negatives, the stale -> fresh cosine at each refresh (how far the encoder has drifted), the share of the
stale -> re-encoded gap each corrected cache closes, and a plot of quality against re-encoding budget. Cells are
cached in ``--out``. Usage::

    python examples/corrector.py --data ../shared/data/scifact --out out/corrector \
        [--encoder out/lora_vs_full/lora-in-batch/encoder]
    python examples/corrector.py --parts B --adapter none --lr 1e-4 --out out/corrector-drift \
        --policies stale,corrected:0.01,corrected:0.05,corrected:0.1,reencode
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

SAMPLES = ((0.01, "regression", None), (0.05, "regression", None), (0.10, "regression", None),
           (0.10, "contrastive", None), (0.01, "regression", "token-mean"), (0.05, "regression", "token-mean"),
           (0.10, "regression", "token-mean"))
POLICIES = "stale,corrected:0.05,reencode"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/scifact")
    parser.add_argument("--out", default="out/corrector", type=Path)
    parser.add_argument("--encoder", help="the current (trained) encoder; default: LoRA-train MiniLM here")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--doc-max-length", type=int, default=128, help="document tokens kept in training")
    parser.add_argument("--seeds", type=int, default=3, help="part A: random samples per sample size")
    parser.add_argument("--parts", default="A,B", help="A (refresh), B (training), C (other refresh approaches)")
    parser.add_argument("--adapter", choices=["lora", "none"], default="lora",
                        help="part B: train a LoRA adapter, or every weight (none: the encoder drifts further)")
    parser.add_argument("--lr", type=float, help="part B: learning rate (default: the adapter's)")
    parser.add_argument("--n-negatives", type=int, default=1, help="part B: hard negatives a query")
    parser.add_argument("--policies", default=POLICIES, help="part B: the cells, stale, corrected:SHARE and reencode "
                        "(run several processes with some each to use more cores; the table shows the cells done)")
    parser.add_argument("--json")
    args = parser.parse_args()

    from pt_dense import BiEncoder, datasets, evaluation
    from pt_dense.corrector import Corrector
    from pt_dense.index import DenseIndex, cached_index, cached_index_path
    from pt_dense.metrics import exact_scores
    from pt_dense.report import bench_payload, markdown_table, write_json
    from pt_dense.training.cached import CachedNegatives

    args.out.mkdir(parents=True, exist_ok=True)
    data = datasets.load(args.data)
    topics, qrels = data.topics("test"), data.qrels("test")
    texts = {d["docno"]: d["text"] for d in data.corpus_iter()}
    frozen = BiEncoder.from_pretrained("minilm")
    stale_index = cached_index(data, frozen)  # the cache: built once by the encoder before training
    train = {"epochs": args.epochs, "batch_size": 32, "doc_max_length": args.doc_max_length, "seed": 42}
    payload: dict = {}

    if "A" in args.parts or "C" in args.parts:
        if args.encoder:
            current = BiEncoder.from_pretrained(args.encoder)
        else:
            current = frozen.with_lora()
            current.fit(data.topics("train"), data.qrels("train"), corpus=data, **train)
            current.save(args.out / "encoder")
        queries = current.encode(list(topics["query"]), "query")
        docnos = stale_index.docnos
        stale = np.asarray(stale_index.vectors)
        was_cached = DenseIndex(cached_index_path(data, current)).built()
        started = time.perf_counter()
        fresh_index = cached_index(data, current)  # the full re-encode (cached by encoder fingerprint)
        full_seconds = float("nan") if was_cached else time.perf_counter() - started  # cached: see bench/refresh.py
        fresh = np.asarray(fresh_index.vectors)[fresh_index.docno_lookup.get_indexer(docnos)]

        def row(name: str, vectors: np.ndarray, reencoded: int, seconds: float) -> dict:
            scores = exact_scores(queries, topics["qid"], vectors, docnos, qrels)
            return {"index": name, "re-encoded docs": reencoded, **scores, "nDCG@10 sd": 0.0,
                    "nDCG@10 min": scores["nDCG@10"], "nDCG@10 max": scores["nDCG@10"],
                    "cos to fresh": float((vectors * fresh).sum(1).mean()), "wall s": seconds}

    if "A" in args.parts:
        rows = [row("stale (frozen MiniLM vectors)", stale, 0, 0.0)]
        for fraction, loss, features in SAMPLES:  # each over --seeds random samples: the spread is the noise
            runs = []
            kind = loss + (f", {features}" if features else "")
            for seed in range(args.seeds):
                started = time.perf_counter()
                corrector = Corrector.fit(stale_index, current, texts, fraction, loss=loss, seed=seed,
                                          features=features, progress=False)
                target = args.out / f"refreshed-{int(fraction * 100)}pct-{kind.replace(', ', '-')}"
                refreshed = stale_index.refresh(corrector, target, overwrite=True)
                runs.append(row("", np.asarray(refreshed.vectors), corrector.report.reencoded,
                                time.perf_counter() - started))
            ndcg = [r["nDCG@10"] for r in runs]
            rows.append({k: float(np.mean([r[k] for r in runs])) for k in runs[0] if k != "index"}
                        | {"index": f"corrected, {fraction:.0%} sample ({kind})",
                           "re-encoded docs": runs[0]["re-encoded docs"], "nDCG@10 sd": float(np.std(ndcg)),
                           "nDCG@10 min": min(ndcg), "nDCG@10 max": max(ndcg)})
            print(f"  {rows[-1]}", flush=True)
        rows.append(row("fully re-encoded", fresh, len(docnos), full_seconds))
        gap = rows[-1]["nDCG@10"] - rows[0]["nDCG@10"]
        for r in rows:
            r["gap recovered"] = (r["nDCG@10"] - rows[0]["nDCG@10"]) / gap if gap else float("nan")
        rows = [{"index": r.pop("index")} | r for r in rows]
        print(markdown_table(rows))
        payload["refresh"] = rows
        best10 = max(r["gap recovered"] for r in rows[1:-1] if "10%" in r["index"])
        payload["gap_recovered_at_10pct"] = best10
        payload["refresh_speedup_10pct"] = full_seconds / min(r["wall s"] for r in rows[1:-1] if "10%" in r["index"])
        (args.out / "refresh.md").write_text(markdown_table(rows) + "\n")
        plot_refresh(rows, args.out / "refresh.png", f"{data.name} test: corrected index vs share re-encoded")

    if "C" in args.parts:  # approaches measured and not kept in the library, beside the library's best
        payload["approaches"] = approaches(stale_index, current, texts, stale, fresh, row, args)
        print(markdown_table(payload["approaches"]))
        (args.out / "approaches.md").write_text(markdown_table(payload["approaches"]) + "\n")

    if "B" in args.parts:
        settings = train | {"n_negatives": args.n_negatives} | ({"lr": args.lr} if args.lr else {})
        rows = []
        for policy in args.policies.split(","):
            kind, share, option = [*policy.split(":"), "", ""][:3]
            cell = args.out / f"train-{policy.replace(':', '-')}.json"
            if not cell.exists():
                print(f"training with {policy} cache negatives", flush=True)
                source = CachedNegatives(stale_index, texts, kind, sample=float(share or 0.05), n=args.n_negatives,
                                         exact_sample=option != "mapped")
                encoder = frozen.with_lora() if args.adapter == "lora" else BiEncoder.from_pretrained("minilm")
                started = time.perf_counter()
                encoder.fit(data.topics("train"), data.qrels("train"), corpus=texts, negatives=source, **settings)
                train_seconds = time.perf_counter() - started
                scores = evaluation.dense_scores(encoder, {"scifact": data})["scifact"]
                cell.write_text(json.dumps({"policy": policy, "re-encoded docs": source.reencoded, **scores,
                                            "train s": round(train_seconds, 1), "refreshes": source.refreshes}))
            result = json.loads(cell.read_text())
            drift = ", ".join(f"{r['cosine_before']:.3f}" for r in result["refreshes"] if "cosine_before" in r)
            rows.append({k: result[k] for k in ("policy", "re-encoded docs", "nDCG@10", "R@100")}
                        | {"stale->fresh cos": drift or "-", "train s": result["train s"]})
        by = {r["policy"]: r for r in rows}
        if "stale" in by and "reencode" in by:
            gap = by["reencode"]["nDCG@10"] - by["stale"]["nDCG@10"]
            for r in rows:
                r["vs stale"] = r["nDCG@10"] - by["stale"]["nDCG@10"]
                # a share of a gap within the noise of one run (about 0.005 here) would only be noise
                r["gap closed"] = r["vs stale"] / gap if abs(gap) >= 0.005 else float("nan")
            mode = "LoRA" if args.adapter == "lora" else "full fine-tuning"
            plot_budget(rows, args.out / "training.png", f"{data.name} test: training with cached negatives "
                        f"({mode}, lr {settings.get('lr', 'default')})")
        print(markdown_table(rows))
        payload["training"] = rows
        (args.out / "training.md").write_text(markdown_table(rows) + "\n")

    rows = payload.get("refresh", []) + payload.get("training", [])
    write_json(args.json or args.out / "corrector.json",
               bench_payload(rows, vars(args) | {"out": str(args.out)},
                             **{k: v for k, v in payload.items() if k not in ("refresh", "training")},
                             refresh=payload.get("refresh"), training=payload.get("training")))


def approaches(stale_index, current, texts: dict, stale: np.ndarray, fresh: np.ndarray, row, args) -> list[dict]:
    """Part C: other ways to spend a 10% re-encoding budget, each over --seeds samples (nDCG@10 mean and sd):
    a nearest-neighbour spread of the sample's residuals, the token-mean corrector followed by that spread, a sample
    chosen by k-means over the stale vectors instead of at random, and the new encoder's short forward pass (first 32
    tokens of every document, its cost measured) as the corrector's input with a 5% sample."""
    import faiss

    from pt_dense.corrector import Corrector, sample_rows

    docnos, count = stale_index.docnos, len(stale)

    def spread(rows: np.ndarray, base: np.ndarray, k: int = 10, temperature: float = 0.05) -> np.ndarray:
        """base + the softmax-weighted residuals (fresh - base) of the k nearest re-encoded documents."""
        residuals, scores = fresh[rows] - base[rows], stale @ stale[rows].T
        nearest = np.argpartition(-scores, k, axis=1)[:, :k]
        weights = np.exp((np.take_along_axis(scores, nearest, 1) - 1) / temperature)
        moved = base + (weights[..., None] * residuals[nearest]).sum(1) / weights.sum(1, keepdims=True)
        return moved / np.linalg.norm(moved, axis=1, keepdims=True)

    def finished(vectors: np.ndarray, rows: np.ndarray) -> np.ndarray:
        vectors = vectors.copy()
        vectors[rows] = fresh[rows]  # the re-encoded documents keep their exact vectors
        return vectors

    current.doc_max_length, full_length = 32, current.doc_max_length
    started = time.perf_counter()
    short = current.encode([texts[d] for d in docnos], "doc", progress=False)
    short_seconds = time.perf_counter() - started
    current.doc_max_length = full_length
    started = time.perf_counter()
    current.encode([texts[d] for d in docnos[: count // 10]], "doc", progress=False)
    tenth_seconds = time.perf_counter() - started

    cells: dict[str, list[float]] = {}
    for seed in range(args.seeds):
        rows = sample_rows(count, 0.10, seed)
        plain = Corrector.fit(stale_index, current, texts, 0.10, seed=seed, progress=False)
        reading = Corrector.fit(stale_index, current, texts, 0.10, seed=seed, features="token-mean", progress=False)
        by_reading = reading.correct(stale, docnos)
        kmeans = faiss.Kmeans(stale.shape[1], len(rows), niter=20, seed=seed, spherical=True)
        kmeans.train(stale)
        flat = faiss.IndexFlatIP(stale.shape[1])
        flat.add(stale)
        chosen = np.unique(flat.search(kmeans.centroids, 1)[1][:, 0])
        by_chosen = Corrector(stale.shape[1])
        by_chosen.train_on(stale[chosen], fresh[chosen], seed=seed)
        half = sample_rows(count, 0.05, seed)
        by_short = Corrector(stale.shape[1], feature_dim=short.shape[1])
        by_short.train_on(stale[half], fresh[half], short[half], seed=seed)
        results = {
            "corrector (library default)": finished(plain.apply(stale), rows),
            "corrector, token-mean (library)": finished(by_reading, rows),
            "nearest-neighbour residuals": finished(spread(rows, stale), rows),
            "corrector, token-mean, then neighbour residuals": finished(spread(rows, by_reading), rows),
            "corrector on a k-means-chosen sample": finished(by_chosen.apply(stale), chosen),
            "corrector + 32-token pass of every doc, 5% sample": finished(by_short.apply(stale, short), half),
        }
        for name, vectors in results.items():
            cells.setdefault(name, []).append(row(name, vectors, 0, 0.0)["nDCG@10"])
    base, top = row("", stale, 0, 0.0)["nDCG@10"], row("", fresh, 0, 0.0)["nDCG@10"]
    print(f"32-token pass of every document: {short_seconds:.1f} s; a tenth of the corpus at full length: "
          f"{tenth_seconds:.1f} s")
    return [{"approach": name, "nDCG@10": float(np.mean(v)), "nDCG@10 sd": float(np.std(v)),
             "gap recovered": (float(np.mean(v)) - base) / (top - base)} for name, v in cells.items()]


def plot_budget(rows: list[dict], path: Path, title: str) -> Path:
    """Final nDCG@10 of each cache policy against the documents it re-encoded for negatives (symlog x axis)."""
    import matplotlib.pyplot as plt

    from pt_dense.report import save_figure

    fig, ax = plt.subplots(figsize=(6, 4))
    for r in rows:
        ax.scatter(r["re-encoded docs"], r["nDCG@10"], marker="o" if r["policy"].startswith("corrected") else "s")
        ax.annotate(r["policy"], (r["re-encoded docs"], r["nDCG@10"]), textcoords="offset points", xytext=(4, 4),
                    fontsize=8)
    ax.set_xscale("symlog", linthresh=100)
    ax.set_xlabel("documents re-encoded for negatives")
    ax.set_ylabel("nDCG@10")
    ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)


def plot_refresh(rows: list[dict], path: Path, title: str) -> Path:
    """nDCG@10 (min-max over samples) and cosine to the fresh vectors against the share of the corpus re-encoded,
    between the stale (0%) and fully re-encoded (100%) indexes."""
    import matplotlib.pyplot as plt

    from pt_dense.report import save_figure

    total = rows[-1]["re-encoded docs"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key in zip(axes, ("nDCG@10", "cos to fresh"), strict=True):
        for end, style, label in ((rows[0], ":", "stale"), (rows[-1], "--", "fully re-encoded")):
            ax.axhline(end[key], linestyle=style, color="grey", label=label)
        for kind, marker in (("regression", "o-"), ("contrastive", "s"), ("regression, token-mean", "^-")):
            points = [r for r in rows if f"({kind})" in r["index"]]
            if not points:
                continue
            share = [100 * r["re-encoded docs"] / total for r in points]
            value = [r[key] for r in points]
            spread = None
            if key == "nDCG@10":
                spread = [[v - r["nDCG@10 min"] for v, r in zip(value, points, strict=True)],
                          [r["nDCG@10 max"] - v for v, r in zip(value, points, strict=True)]]
            ax.errorbar(share, value, yerr=spread, fmt=marker, capsize=3, label=f"corrected ({kind})")
        ax.set_xlabel("% of the corpus re-encoded")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(title)
    return save_figure(fig, path)


if __name__ == "__main__":
    main()
