"""How cost grows with corpus size: build time, disk, peak memory, query speed and recall@100 for each index kind,
from 10^4 to 10^7 vectors.

The vectors are synthetic but shaped like real ones: a Gaussian mixture (32 components, diagonal covariances) is
fitted to MiniLM's vectors of the SciFact corpus (the cached index, built once), N vectors are drawn from it and
L2-normalised, 200 queries likewise. Each (N, kind) cell runs in its own process so that its peak RSS is its own;
recall@100 is measured against exact search of the same vectors. Prints a table, writes JSON and a log-log PNG of
cost against N with the slope of each kind. Usage::

    python bench/scale.py --sizes 1e4,1e5,1e6 --json out/scale.json --png out/scale.png
    python bench/scale.py --sizes 1e7 --dtype float16 --kinds "IVF{nlist},SQ8@nprobe=128" --json out/scale-1e7.json

A kind may carry its own search parameters after ``@`` (``IVF{nlist},SQ8@nprobe=128``, ``hnsw@ef_search=1024``);
``--dtype float16`` stores the vectors in half the bytes (about 8 GB at 10^7), and the rows say so.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DIM, QUERIES, K = 384, 200, 100
KINDS = ("flat", "hnsw", "IVF{nlist},SQ8", "IVF{nlist},PQ48")
PARAMS = {"hnsw": {"M": 16, "ef_construction": 64, "ef_search": 256}, "IVF": {"nprobe": 64}}  # defaults per kind


def nlist(size: int) -> int:
    """IVF lists: a power of two near 4 sqrt(N), at most 4096 (trained on up to 100,000 vectors)."""
    return int(min(4096, 2 ** round(math.log2(4 * math.sqrt(size)))))


def mixture(seed: int = 0):
    """A Gaussian mixture fitted to MiniLM's SciFact vectors (their cluster structure, at any size)."""
    from sklearn.mixture import GaussianMixture

    from pt_dense import TorchEncoder, datasets
    from pt_dense.index import cached_index

    real = np.asarray(cached_index(datasets.load("scifact"), TorchEncoder.from_pretrained("minilm")).vectors)
    return GaussianMixture(32, covariance_type="diag", random_state=seed).fit(real)


def draw(model, count: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    parts = rng.choice(len(model.weights_), size=count, p=model.weights_)
    rows = model.means_[parts] + rng.normal(size=(count, DIM)) * np.sqrt(model.covariances_[parts])
    rows = rows.astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def build(folder: Path, size: int, dtype: str) -> None:
    """The DenseIndex of ``size`` vectors (stored as ``dtype``) and the query file, drawn from the mixture in chunks."""
    from pt_dense.index import DenseIndex

    model = mixture()
    np.save(folder / "queries.npy", draw(model, QUERIES, seed=10**9))

    def records():
        for start in range(0, size, 100_000):
            for i, row in enumerate(draw(model, min(100_000, size - start), seed=start), start):
                yield {"docno": f"d{i}", "doc_vec": row}

    DenseIndex(folder / "index").indexer(total=size, chunk_size=65536, dtype=dtype).index(records())


def parse_kind(spec: str) -> tuple[str, dict]:
    """``"IVF4096,SQ8@nprobe=128"`` -> (kind, search parameters): the defaults of PARAMS, then the spec's own."""
    kind, *pairs = spec.split("@")
    params = dict(PARAMS.get(kind.split(",")[0].rstrip("0123456789") if kind != "hnsw" else "hnsw", {}))
    for pair in pairs:
        name, value = pair.split("=")
        params[name] = int(value)
    return kind, params


def label(spec: str, dtype: str) -> str:
    """The row's kind: the spec without ``@`` noise, and the storage dtype when it is not float32."""
    kind, *pairs = spec.split("@")
    return " ".join([kind, *pairs, *([f"({dtype})"] if dtype != "float32" else [])])


def cell(folder: Path, spec: str) -> dict:
    """One (N, kind) measurement, in this process (run by the parent in a fresh one)."""
    import pandas as pd

    from pt_dense.index import DenseIndex

    index, queries = DenseIndex(folder / "index"), np.load(folder / "queries.npy")
    kind, params = parse_kind(spec)
    pattern = "hnsw-*.faiss" if kind == "hnsw" else f"factory-{re.sub(r'[^A-Za-z0-9]+', '_', kind)}-*.faiss"
    for cached in index.folder.glob(pattern) if kind != "flat" else ():
        cached.unlink()  # measure the build, not the load of an earlier run's structure
    retriever = index.retriever(k=K, kind=kind, **params)
    frame = pd.DataFrame({"qid": [str(i) for i in range(len(queries))], "query_vec": list(queries)})
    started = time.perf_counter()
    retriever(frame.head(1))  # builds (or loads) the structure
    build_seconds = time.perf_counter() - started
    started = time.perf_counter()
    batch = retriever(frame)
    batch_qps = len(queries) / (time.perf_counter() - started)
    singles: list[float] = []
    for i in range(min(50, len(queries))):  # 50 one-query calls, or as many as 60 s allow (at least 5)
        started = time.perf_counter()
        retriever(frame.iloc[i : i + 1])
        singles.append(1000 * (time.perf_counter() - started))
        if len(singles) >= 5 and sum(singles) > 60_000:
            break
    rows = batch["docno"].str[1:].astype(int).to_numpy().reshape(len(queries), -1)
    exact_file = folder / "exact.npy"
    if kind == "flat":
        np.save(exact_file, rows)
    exact = np.load(exact_file)
    recall = float(np.mean([len(set(a) & set(b)) / K for a, b in zip(rows, exact, strict=True)]))
    files = [index.folder / f"vectors{'.f32' if index.dtype == np.float32 else '.f16'}"] if kind == "flat" else list(
        index.folder.glob(pattern))
    return {"N": len(index), "kind": label(spec, index.dtype.name), "build s": round(build_seconds, 2),
            "disk MB": round(sum(f.stat().st_size for f in files) / 2**20, 1),
            "peak RSS MB": peak_rss_mb(),
            "batch q/s": round(batch_qps, 1), "p50 ms": round(float(np.median(singles)), 2),
            "recall@100": round(recall, 4)}


def lucene_cell(folder: Path, int8: bool) -> dict:
    """Time the Lucene export (Anserini's HNSW, M=16, efC=100) of the index, in a fresh process."""
    code = ("import json, resource, shutil, time, sys; from pt_dense import export; from pt_dense.index import "
            "DenseIndex; index = DenseIndex(sys.argv[1]); out = sys.argv[2]; shutil.rmtree(out, True); "
            "t = time.perf_counter(); export.lucene(index, out, int8=sys.argv[3] == '1'); "
            "print(json.dumps([time.perf_counter() - t, int(open('/proc/self/status').read().split('VmHWM:')[1]"
            ".split()[0]) / 1024]))")
    out = folder / f"lucene{'-int8' if int8 else ''}"
    done = subprocess.run([sys.executable, "-c", code, str(folder / "index"), str(out), "1" if int8 else "0"],
                          capture_output=True, text=True, check=True)
    seconds, rss = json.loads(done.stdout.strip().splitlines()[-1])
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    return {"N": int(folder.name[1:].split("-")[0]), "kind": f"lucene-hnsw{'-int8' if int8 else ''} export", "build s":
            round(seconds, 1), "disk MB": round(size / 2**20, 1), "peak RSS MB": round(rss, 1)}


def peak_rss_mb() -> float:
    """This process's peak resident memory since it started (VmHWM; ru_maxrss would count the parent's too, as
    Linux carries it across fork and exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def family(kind: str) -> str:
    """A kind without its size-dependent list count (IVF512,SQ8 and IVF4096,SQ8 are one family: IVF,SQ8) and, but
    for exact search (whose cost is the stored vectors), without the dtype the vectors are stored in."""
    kind = re.sub(r"IVF\d+", "IVF", kind)
    return kind if kind.startswith("flat") else kind.replace(" (float16)", "")


def slopes(rows: list[dict], measure: str) -> dict[str, float]:
    """The log-log slope of ``measure`` against N for each kind (1 = linear in N)."""
    out = {}
    for kind in sorted({family(r["kind"]) for r in rows}):
        points = [(r["N"], r[measure]) for r in rows if family(r["kind"]) == kind and r.get(measure, 0) > 0]
        if len({n for n, _ in points}) >= 2:
            out[kind] = round(float(np.polyfit(np.log(points)[:, 0], np.log(points)[:, 1], 1)[0]), 2)
    return out


def plot(rows: list[dict], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pt_dense.report import save_figure

    measures = ("build s", "disk MB", "peak RSS MB", "p50 ms")
    fig, axes = plt.subplots(1, len(measures), figsize=(4.2 * len(measures), 3.8))
    for ax, measure in zip(axes, measures, strict=True):
        fitted = slopes(rows, measure)
        for kind in sorted({family(r["kind"]) for r in rows if measure in r}):
            points = sorted((r["N"], r[measure]) for r in rows if family(r["kind"]) == kind)
            ax.plot(*zip(*points, strict=True), marker="o", label=f"{kind} (slope {fitted.get(kind, float('nan'))})")
        ax.set(xscale="log", yscale="log", xlabel="vectors N (384-d)", title=measure)
        ax.grid(which="both", alpha=0.25)
        ax.legend(fontsize=6)
    return save_figure(fig, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1e4,1e5,1e6", help="comma-separated N (1e7 needs about 16 GB of disk)")
    parser.add_argument("--kinds", default=";".join(KINDS), help="semicolon-separated: flat, hnsw or FAISS factory "
                        "strings ({nlist} is replaced by a list count for N)")
    parser.add_argument("--work", help="folder for the indexes (default: a temporary one, removed after)")
    parser.add_argument("--json")
    parser.add_argument("--png")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16"], help="how the index stores "
                        "its vectors (float16: half the disk; exact search is then exact over float16 vectors)")
    parser.add_argument("--lucene", action="store_true", help="also time the Lucene (Anserini HNSW) export at each "
                        "size, fp32 and int8")
    parser.add_argument("--merge", nargs="+", metavar="JSON", help="only combine the rows of earlier runs' JSON "
                        "files (e.g. one per size) into one table, slopes and plot; a later file's cell replaces an "
                        "earlier one's")
    parser.add_argument("--cell", nargs=2, metavar=("FOLDER", "KIND"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.cell:
        print(json.dumps(cell(Path(args.cell[0]), args.cell[1])))
        return

    from pt_dense.report import bench_payload, print_table, write_json

    merged = {(row["N"], row["kind"]): row for file in args.merge or () for row in json.loads(Path(file).read_text())[
        "rows"]}  # a cell measured again in a later file replaces the earlier one
    rows = list(merged.values())
    work = Path(args.work or (tempfile.mkdtemp(prefix="pt-dense-scale-") if not args.merge else "."))
    for size in () if args.merge else [int(float(s)) for s in args.sizes.split(",")]:
        folder = work / (f"n{size}" + ("" if args.dtype == "float32" else f"-{args.dtype}"))
        folder.mkdir(parents=True, exist_ok=True)
        if not (folder / "queries.npy").exists():
            started = time.perf_counter()
            build(folder, size, args.dtype)
            print(f"N={size:,}: vectors drawn and indexed in {time.perf_counter() - started:.1f} s", flush=True)
        for kind in ["flat", *[k for k in args.kinds.split(";") if k != "flat"]]:
            kind = kind.format(nlist=nlist(size))
            done = subprocess.run([sys.executable, __file__, "--cell", str(folder), kind], capture_output=True,
                                  text=True)
            if done.returncode != 0:
                print(f"N={size:,} {kind}: failed\n{done.stderr[-1500:]}", flush=True)
                continue
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), flush=True)
        if args.lucene:
            for int8 in (False, True):
                rows.append(lucene_cell(folder, int8))
                print(json.dumps(rows[-1]), flush=True)
    print_table(rows, digits=2)
    fitted = {measure: slopes(rows, measure) for measure in ("build s", "disk MB", "peak RSS MB", "p50 ms")}
    print("log-log slopes against N:", json.dumps(fitted))
    if args.png:
        plot(rows, Path(args.png))
    write_json(args.json, bench_payload(rows, {"sizes": args.sizes, "kinds": args.kinds, "dim": DIM,
                                               "queries": QUERIES, "k": K, "params": PARAMS,
                                               "dtype": args.dtype}, slopes=fitted))


if __name__ == "__main__":
    main()
