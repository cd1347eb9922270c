"""Speed of every path, side by side in one run, on the same texts, vectors and threads.

1. Document encoding (docs/s, and % of this CPU's measured matmul peak): pt_dense's default precision, its fp32,
   ONNX fp32 and int8, sentence-transformers, pyterrier-dr's SBertBiEncoder.
2. One query per call (p50/p95 ms): the same encoders, and pt_dense's query-encoder stage.
3. Retrieval on the same SciFact vectors (q/s in batch, p50 ms one query at a time, k=100 and k=1000): raw FAISS
   (``faiss.knn``), pt_dense's retriever stage and the exact search it wraps, pyterrier-dr's FlexIndex retrievers,
   Pyserini's FaissSearcher; and on synthetic vectors (100,000 x 384) the stage against raw FAISS.
4. Stage overhead (ms per one-query call) over the library call each stage wraps: retriever over its exact search,
   scorer over its dot products, query encoder over ``encode``; each the median of paired differences (the stage
   and the library call timed back to back on the same input).
5. With ``--java``: the deployed path, Lucene HNSW with queries encoded in Java by the bridge (fp32 and int8
   exports), p50 at k=100 and k=1000, broken down into Java encoding, HNSW search, docid lookup and the Python side,
   with its nDCG@10 against FAISS + PyTorch.

Threads: torch, FAISS and onnxruntime all use this machine's cores (``--threads``). Usage::

    python bench/speed.py --data ../shared/data/scifact --java --json out/speed.json
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from pt_dense.report import bench_payload, peak_rss_mb, print_table, write_json


def per_call_ms(call, inputs: list, warmup: int = 3) -> tuple[float, float]:
    """(p50, p95) milliseconds of ``call(x)`` over ``inputs``, one at a time, after a warm-up."""
    for x in inputs[:warmup]:
        call(x)
    times = []
    for x in inputs:
        started = time.perf_counter()
        call(x)
        times.append(1000 * (time.perf_counter() - started))
    return float(np.percentile(times, 50)), float(np.percentile(times, 95))


def paired_overhead_ms(stage, library, inputs: list[tuple]) -> float:
    """Median over inputs of (stage call - library call) ms, the two timed back to back on each (stage input,
    library input) pair, so that drift and noise common to both cancel; after a warm-up."""
    for stage_input, library_input in inputs[:3]:
        stage(stage_input)
        library(library_input)
    differences = []
    for stage_input, library_input in inputs:
        started = time.perf_counter()
        library(library_input)
        middle = time.perf_counter()
        stage(stage_input)
        differences.append(1000 * ((time.perf_counter() - middle) - (middle - started)))
    return float(np.median(differences))


def rate(call, count: int, rounds: int) -> float:
    """Items per second of ``call()`` (which handles ``count`` items), the median of ``rounds`` runs."""
    seconds = []
    for _ in range(rounds):
        started = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - started)
    return count / statistics.median(seconds)


def matmul_peak_gflops(dtype) -> float:
    """This CPU's measured matmul rate (2048^2 GEMMs in torch, best of 5) in GFLOP/s."""
    import torch

    a, b = torch.randn(2048, 2048, dtype=dtype), torch.randn(2048, 2048, dtype=dtype)
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - started)
    return 2 * 2048**3 / best / 1e9


def flops_per_doc(model, tokens: float) -> float:
    """Forward FLOPs of a transformer encoder on one text of ``tokens`` tokens: 2 per weight of every linear layer
    per token, plus attention's two (tokens x tokens x hidden) products per layer."""
    import torch

    linear = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    layers, hidden = model.config.num_hidden_layers, model.config.hidden_size
    return 2 * linear * tokens + 4 * layers * tokens * tokens * hidden


def encoding_rows(args, data, texts, queries, work: Path) -> tuple[list[dict], list[dict], dict]:
    import pandas as pd
    import torch
    from pyterrier_dr import SBertBiEncoder
    from sentence_transformers import SentenceTransformer

    from pt_dense import BiEncoder, export
    from pt_dense.encoders.onnx_encoder import OnnxEncoder
    from pt_dense.models import resolve_model

    default = BiEncoder.from_pretrained(args.model, batch_size=32)
    fp32 = default.with_model(default.model, precision="fp32")
    export.onnx(fp32, work / "onnx-fp32", overwrite=True)
    export.onnx(fp32, work / "onnx-int8", quantize="int8", overwrite=True)
    st = SentenceTransformer(resolve_model(args.model), device="cpu")
    st.max_seq_length = default.doc_max_length
    ptdr = SBertBiEncoder(resolve_model(args.model), batch_size=32)
    encoders = {f"pt_dense default ({default.precision})": default, "pt_dense fp32": fp32,
                "onnx fp32": OnnxEncoder(work / "onnx-fp32"), "onnx int8": OnnxEncoder(work / "onnx-int8")}
    doc_runs = {name: (lambda e=e: e.encode(texts, "doc", progress=False)) for name, e in encoders.items()}
    doc_runs["sentence-transformers"] = lambda: st.encode(texts, batch_size=32, normalize_embeddings=True,
                                                          show_progress_bar=False)
    frame = pd.DataFrame({"docno": [str(i) for i in range(len(texts))], "text": texts})
    doc_runs["pyterrier-dr"] = lambda: ptdr.doc_encoder()(frame)
    for run in doc_runs.values():
        run()  # warm-up: int8 copies, ONNX sessions, thread pools
    tokens = float(np.mean([len(t) for t in fp32.tokenize(texts, "doc")]))
    flops = flops_per_doc(fp32.model, tokens)
    peaks = {"fp32": matmul_peak_gflops(torch.float32), "bf16": matmul_peak_gflops(torch.bfloat16)}
    st_rate = None
    docs = []
    for name, run in doc_runs.items():
        docs_per_s = rate(run, len(texts), args.rounds)
        st_rate = docs_per_s if name == "sentence-transformers" else st_rate
        peak = peaks["bf16"] if "bf16" in name else peaks["fp32"]
        docs.append({"path": name, "docs/s": docs_per_s, "% of matmul peak": 100 * docs_per_s * flops / 1e9 / peak})
    for row in docs:
        row["x sentence-transformers"] = row["docs/s"] / st_rate
    one = [[q] for q in queries]
    query_frames = [pd.DataFrame({"qid": ["q"], "query": q}) for q in one]
    query_runs = {name: (lambda x, e=e: e.encode(x, "query", progress=False)) for name, e in encoders.items()}
    query_runs["sentence-transformers"] = lambda x: st.encode(x, normalize_embeddings=True, show_progress_bar=False)
    latency = []
    for name, call in query_runs.items():
        p50, p95 = per_call_ms(call, one)
        latency.append({"path": name, "p50 ms": p50, "p95 ms": p95})
    stage = default.query_encoder()
    latency.append(dict(zip(("path", "p50 ms", "p95 ms"), ("pt_dense query stage (default)",
                                                          *per_call_ms(stage, query_frames)), strict=True)))
    latency.append(dict(zip(("path", "p50 ms", "p95 ms"), ("pyterrier-dr query stage",
                                                          *per_call_ms(ptdr.query_encoder(), query_frames)),
                            strict=True)))
    overhead = {"query encoder stage": paired_overhead_ms(stage, query_runs[next(iter(encoders))],
                                                          list(zip(query_frames, one, strict=True)))}
    context = {"tokens_per_doc": tokens, "gflop_per_doc": flops / 1e9, "matmul_peak_gflops": peaks,
               "default_precision": default.precision}
    return docs, latency, context | {"overhead_ms": overhead}


def compare(systems: dict, frame, rounds: int) -> list[dict]:
    """Batch q/s and one-query p50 of each system on ``frame``; the first system is the raw library call the
    others are measured against."""
    singles = [frame.iloc[[i]] for i in range(len(frame))]
    rows, raw = [], None
    for name, system in systems.items():
        qps = rate(lambda system=system: system(frame), len(frame), rounds)
        p50, _ = per_call_ms(system, singles)
        raw = raw or (qps, p50, system)
        overhead = paired_overhead_ms(system, raw[2], [(x, x) for x in singles]) if rows else 0.0
        rows.append({"path": name, "batch q/s": qps, "batch ratio to raw": qps / raw[0], "one-query p50 ms": p50,
                     "overhead vs raw ms": overhead})
    return rows


def raw_knn(vectors: np.ndarray, k: int):
    """``faiss.knn`` on a frame's query vectors: the raw library search every peer is compared with."""
    import faiss

    def search(frame):
        return faiss.knn(np.stack(frame["query_vec"].to_numpy()), vectors, k, metric=faiss.METRIC_INNER_PRODUCT)

    return search


def wrapped_search(index, k: int):
    """The exact search the pt_dense retriever stage wraps (``DenseRetriever.search``) on a frame's query vectors:
    the stage's overhead is measured against this call."""
    retriever = index.retriever(k=k)

    def search(frame):
        return retriever.search(np.stack(frame["query_vec"].to_numpy()), k)

    return search


def retriever_rows(systems: dict, frame, rounds: int, index, k: int) -> tuple[list[dict], float]:
    """:func:`compare`'s rows for ``systems`` (raw FAISS first) plus pt_dense's wrapped search, and the retriever
    stage's overhead over that search (paired, one query per call); the stage row also gets its batch ratio to it."""
    search = wrapped_search(index, k)
    rows = compare({**systems, "pt_dense search (the call the stage wraps)": search}, frame, rounds)
    stage, wrapped = rows[1], rows[-1]
    stage["batch ratio to wrapped call"] = stage["batch q/s"] / wrapped["batch q/s"]
    singles = [frame.iloc[[i]] for i in range(len(frame))]
    return rows, paired_overhead_ms(systems["pt_dense retriever"], search, [(x, x) for x in singles])


def retrieval_rows(args, data, queries) -> tuple[list[dict], dict]:
    import pandas as pd
    from pyserini.search.faiss import FaissSearcher
    from pyterrier_dr import FlexIndex

    from pt_dense import BiEncoder, export
    from pt_dense.index import DenseIndex, cached_index

    fp32 = BiEncoder.from_pretrained(args.model, precision="fp32")
    index = cached_index(data, fp32)
    query_vecs = fp32.encode(queries, "query", progress=False)
    frame = pd.DataFrame({"qid": [str(i) for i in range(len(queries))], "query": queries,
                          "query_vec": list(query_vecs)})
    rows, overhead = [], {}
    with tempfile.TemporaryDirectory() as work:
        flex = FlexIndex(str(export.flex(index, Path(work) / "scifact.flex")))
        synthetic = DenseIndex(Path(work) / "synthetic")
        draws = np.random.default_rng(0).normal(size=(100_000, index.dim)).astype(np.float32)
        draws /= np.linalg.norm(draws, axis=1, keepdims=True)
        synthetic.indexer(progress=False).index({"docno": f"s{i}", "doc_vec": v} for i, v in enumerate(draws))
        synth_frame = pd.DataFrame({"qid": [str(i) for i in range(200)], "query_vec": list(draws[:200])})
        pyserini = FaissSearcher(str(export.pyserini_faiss(index, Path(work) / "pyserini-faiss")), None)
        for k in (100, 1000):
            found, overhead[f"retriever k={k}"] = retriever_rows(
                {"raw faiss.knn": raw_knn(np.asarray(index.vectors), k), "pt_dense retriever": index.retriever(k=k),
                 "pyterrier-dr np_retriever": flex.np_retriever(num_results=k),
                 "pyterrier-dr faiss_flat_retriever": flex.faiss_flat_retriever() >> _cut(k)},
                frame, args.rounds, index, k)
            found.append(_pyserini_row(pyserini, query_vecs, k, args, found[0]))
            rows += [{"vectors": "SciFact 5,183", "k": k} | row for row in found]
            synth, overhead[f"retriever k={k}, synthetic"] = retriever_rows(
                {"raw faiss.knn": raw_knn(np.asarray(synthetic.vectors), k),
                 "pt_dense retriever": synthetic.retriever(k=k)}, synth_frame, args.rounds, synthetic, k)
            rows += [{"vectors": "synthetic 100,000", "k": k} | row for row in synth]
        overhead["scorer (100 candidates)"] = _scorer_overhead(index, query_vecs)
    return rows, overhead


def _cut(k: int):
    import pyterrier as pt

    return pt.apply.generic(lambda frame: frame[frame["rank"] < k])


def _pyserini_row(searcher, query_vecs, k, args, raw: dict) -> dict:
    qids = [str(i) for i in range(len(query_vecs))]
    qps = rate(lambda: searcher.batch_search(query_vecs, qids, k=k, threads=args.threads), len(qids), args.rounds)
    p50, _ = per_call_ms(lambda v: searcher.search(v[None], k=k, threads=args.threads), list(query_vecs))
    return {"path": "Pyserini FaissSearcher", "batch q/s": qps, "batch ratio to raw": qps / raw["batch q/s"],
            "one-query p50 ms": p50, "overhead vs raw ms": p50 - raw["one-query p50 ms"]}


def _scorer_overhead(index, query_vecs) -> float:
    """One query's 100 candidates: the scorer stage against the dot products it computes."""
    import pandas as pd

    from pt_dense.index.scorer import dot_rows

    frames, calls = [], []
    for i, vector in enumerate(query_vecs[:100]):
        rows = np.random.default_rng(i).choice(len(index), 100, replace=False)
        frames.append(pd.DataFrame({"qid": ["q"] * 100, "query_vec": [vector] * 100,
                                    "docno": index.docnos[rows]}))
        calls.append((vector[None], rows))
    return paired_overhead_ms(index.scorer(), lambda c: dot_rows(index.vectors, c[0], np.zeros(100, int), c[1]),
                              list(zip(frames, calls, strict=True)))


def java_rows(args, data, topics, qrels) -> tuple[list[dict], dict]:
    """Lucene HNSW + Java encoding with the fp32 and the int8 export: p50 per query at k=100 and 1000, where the
    time goes, and nDCG@10 against FAISS + PyTorch."""
    import pyterrier as pt
    from ir_measures import nDCG

    from pt_dense import BiEncoder, export
    from pt_dense.deploy import LuceneDense
    from pt_dense.index import cached_index

    fp32 = BiEncoder.from_pretrained(args.model, precision="fp32")
    index = cached_index(data, fp32)
    rows, parts = [], {}
    with tempfile.TemporaryDirectory() as work:
        exports = {"fp32": export.onnx(fp32, Path(work) / "onnx", overwrite=True),
                   "int8": export.onnx(fp32, Path(work) / "onnx-int8", quantize="int8", overwrite=True)}
        lucene_dir = export.lucene(index, Path(work) / "lucene", kind="hnsw", M=16, ef_construction=100)
        singles = [topics.iloc[[i]] for i in range(min(args.queries, len(topics)))]
        queries = list(topics["query"][: args.queries])
        faiss_system = fp32.query_encoder() >> index.retriever(k=1000)
        faiss_ndcg = float(pt.Experiment([faiss_system], topics, qrels, [nDCG @ 10])["nDCG@10"][0])
        for (precision, onnx_dir), k in itertools.product(exports.items(), (100, 1000)):
            stage = LuceneDense(lucene_dir, onnx_dir, k=k, encoder_threads=args.java_encoder_threads)
            p50, p95 = per_call_ms(stage, singles, warmup=20)
            ndcg = float(pt.Experiment([stage], topics, qrels, [nDCG @ 10])["nDCG@10"][0])
            name = f"Lucene HNSW + Java encoding ({precision}), k={k} (efSearch {stage.ef_search})"
            rows.append({"path": name, "p50 ms": p50, "p95 ms": p95, "nDCG@10": ndcg,
                         "nDCG@10 - FAISS+PyTorch": ndcg - faiss_ndcg})
            parts[f"{precision}, k={k}"] = java_parts(stage, queries, k) | {"stage p50 ms": p50}
    return rows, parts


def java_parts(stage, queries: list[str], k: int) -> dict:
    """Medians per query of the deployed path's parts, as Java timed them inside each call (encoding: tokeniser +
    ONNX Runtime; the HNSW search; the docid lookup), the Java call as Python sees it, and the rest of the stage
    (JNI, splitting the hit strings, the result frame) as the stage's p50 less the call's."""
    found = []
    call = per_call_ms(lambda q: found.append(stage.searcher.search(q, k)), queries)[0]
    found = found[-len(queries):]  # without the warm-up calls
    return {"encode ms": statistics.median(h.encodeMillis for h in found),
            "search ms": statistics.median(h.searchMillis for h in found),
            "docid lookup ms": statistics.median(h.lookupMillis for h in found), "Java call p50 ms": call}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/scifact")
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--docs", type=int, default=500, help="documents timed per encoding path")
    parser.add_argument("--queries", type=int, default=300, help="queries timed one at a time")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="threads for every library (default: all cores)")
    parser.add_argument("--java", action="store_true", help="also time the Lucene + Java serving path")
    parser.add_argument("--java-encoder-threads", type=int, default=None,
                        help="ONNX Runtime threads of the Java encoder (default: one per core)")
    parser.add_argument("--json")
    args = parser.parse_args()

    import os

    import faiss
    import torch

    from pt_dense import datasets
    from pt_dense.io.jvm import start_jvm

    start_jvm()  # Java 21 for Anserini, before any library (PyTerrier, pyterrier-dr) starts an older one
    args.threads = args.threads or os.cpu_count() or 1
    torch.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)
    data = datasets.load(args.data)
    topics, qrels = data.topics("test"), data.qrels("test")
    texts = [d["text"] for d in itertools.islice(data.corpus_iter(), args.docs)]
    queries = list(topics["query"][: args.queries])
    with tempfile.TemporaryDirectory() as work:
        docs, latency, context = encoding_rows(args, data, texts, queries, Path(work))
    retrieval, overhead = retrieval_rows(args, data, queries)
    context["overhead_ms"] |= overhead
    print("1. Document encoding (same texts, batch 32, max length 256):")
    print_table(docs, digits=2)
    print("\n2. One query per call:")
    print_table(latency, digits=2)
    print("\n3. Retrieval (same vectors; ratio and overhead against raw FAISS):")
    print_table(retrieval, ["vectors", "k", "path", "batch q/s", "batch ratio to raw", "batch ratio to wrapped call",
                            "one-query p50 ms", "overhead vs raw ms"], digits=2)
    print("\n4. Stage overhead per one-query call (ms):", {k: round(v, 3) for k, v in context["overhead_ms"].items()})
    java, parts = java_rows(args, data, topics, qrels) if args.java else ([], {})
    if java:
        print("\n5. Deployed path (one query per call):")
        print_table(java, digits=4)
        print("where the time goes (median ms per query):")
        print_table([{"path": name, **values} for name, values in parts.items()], digits=3)
    print(f"\nthreads {args.threads}, matmul peak {context['matmul_peak_gflops']}, peak RSS {peak_rss_mb():.0f} MiB")
    write_json(args.json, bench_payload(docs + latency + retrieval + java, vars(args) | context,
                                        java_parts=parts, peak_rss_mb=peak_rss_mb()))


if __name__ == "__main__":
    main()
