"""Run by tests/test_faiss_kinds.py in a subprocess: retrievers over small indexes with FAISS kinds and parameters,
real and bogus (the literal cases testers found, then a bounded hypothesis fuzz). Every input must end in results or
in a PtDenseError; anything else fails the run, and a FAISS abort kills only this process (the test reads its return
code). Each input is printed to stderr before it runs, so the last line names the one that killed the process.

Usage: python tests/faiss_kinds_fuzz.py <folder> <examples>; prints a JSON summary ({"results": n, "refused": n}).
The draws are the same on every run unless PT_DENSE_FUZZ_RANDOM is set (for longer hunts by hand).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pt_dense.errors import PtDenseError
from pt_dense.index.dense_index import DenseIndex

OUTCOMES: Counter = Counter()
#: (documents, dimension) of the indexes fuzzed; small, so that what passes the checks trains in well under a second
SHAPES = [(40, 8), (300, 16), (300, 24)]
LITERAL = [
    ((300, 384), "OPQ16,IVF8,PQ16", {}),
    ((300, 32), "OPQ16,IVF8,PQ16", {}),
    ((300, 32), "hnsw", {"M": 0}),
    ((300, 32), "hnsw", {"M": 1}),
    ((300, 32), "IDMap,Flat", {}),
    ((300, 32), "IDMap2,Flat", {}),
    ((300, 32), "Flat,IDMap", {}),
    ((300, 32), None, {}),
    ((300, 32), "hnsw", {"ef_search": -1}),
    ((300, 32), "hnsw", {"ef_search": 0}),
    ((300, 32), "HNSW0", {}),
    ((300, 32), "HNSW1,Flat", {}),
    ((300, 32), "IVF8_HNSW0,Flat", {}),
    ((300, 32), "PQ4x0np", {}),
    ((300, 32), "RR0,Flat", {}),
    ((300, 32), "OPQ10_300,Flat", {}),
    ((300, 32), "PCA64,Flat", {}),
    ((300, 32), "IVF0,Flat", {}),
    ((300, 32), "IVF8,Flat", {"nprobe": 0}),
    ((300, 32), "IVF8,Flat", {"nprobe": 9}),
    ((300, 32), "IVF99999999999999999999,Flat", {}),
    ((300, 32), "HNSW32,PQ8", {}),
    ((300, 32), "IVF8,Flat", {"ef_search": 8}),
    ((300, 32), "HNSW16,SQ8", {"nprobe": 2}),
]


def build(root: Path, documents: int, dim: int) -> DenseIndex:
    folder = root / f"idx-{documents}x{dim}"
    index = DenseIndex(folder)
    if not index.built():
        rows = np.random.default_rng(dim).normal(size=(documents, dim)).astype(np.float32)
        rows /= np.linalg.norm(rows, axis=1, keepdims=True)
        index.indexer(progress=False).index({"docno": f"d{i}", "doc_vec": v} for i, v in enumerate(rows))
    return index


def attempt(index: DenseIndex, kind: object, params: dict, k: int = 10) -> None:
    """One input: results (checked) or a PtDenseError; anything else propagates and fails the run."""
    print(json.dumps([len(index), index.dim, repr(kind), repr(params), k]), file=sys.stderr, flush=True)
    started = time.perf_counter()
    queries = np.random.default_rng(1).normal(size=(3, index.dim)).astype(np.float32)
    frame = pd.DataFrame({"qid": ["q0", "q1", "q2"], "query_vec": list(queries)})
    try:
        out = index.retriever(k=k, kind=kind, **params)(frame)
    except PtDenseError as err:
        OUTCOMES["refused"] += 1
        print(f"  refused in {time.perf_counter() - started:.2f}s: {type(err).__name__}: {str(err)[:150]}",
              file=sys.stderr, flush=True)
        return
    assert set(out.columns) >= {"qid", "docno", "score", "rank"}, out.columns
    assert out.groupby("qid").size().max() <= k and out["docno"].isin(set(index.docnos)).all()
    assert np.isfinite(out["score"].to_numpy()).all()
    OUTCOMES["results"] += 1
    print(f"  results in {time.perf_counter() - started:.2f}s: {len(out)} hits", file=sys.stderr, flush=True)


def number():
    return st.one_of(st.integers(0, 40), st.integers(-3, 700), st.sampled_from([2**31, 2**40, 10**20]))


def digits(low: int = 0, high: int = 40):
    return st.one_of(st.integers(low, high), st.sampled_from([0, 1, 99999999999])).map(str)


CODE = st.one_of(
    st.just("Flat"),
    st.sampled_from(["SQ4", "SQ6", "SQ8", "SQfp16", "SQbf16", "SQ0", "SQ8_direct", "SQ7"]),
    st.builds("PQ{}{}".format, digits(), st.one_of(st.just(""), st.just("np"), digits(0, 17).map("x{}".format),
                                                   digits(0, 17).map("x{}np".format))),
    st.builds("PQ{}x4fs".format, digits()),
)
TRANSFORM = st.one_of(
    st.builds("OPQ{}{}".format, digits(0, 12), st.one_of(st.just(""), digits(0, 60).map("_{}".format))),
    st.builds("PCA{}{}{}".format, st.sampled_from(["", "W"]), st.sampled_from(["", "R"]), digits(0, 40)),
    st.builds("RR{}".format, st.one_of(st.just(""), digits(0, 80))),
    st.just("L2norm"),
)
BODY = st.one_of(
    CODE,
    st.builds("HNSW{}{}".format, st.one_of(st.just(""), digits(0, 40)),
              st.one_of(st.just(""), st.builds("{}{}".format, st.sampled_from([",", "_"]), CODE))),
    st.builds("IVF{}{}{},{}".format, digits(0, 400), st.sampled_from(["", "", "k"]),
              st.one_of(st.just(""), digits(0, 40).map("_HNSW{}".format)), CODE),
)
BOGUS = st.sampled_from(["IDMap", "IDMap2", "IMI2x4", "Residual8", "LSH", "NSG32", "Refine(Flat)", "MinMax", "",
                         "PQ", "IVF", "OPQ", "HNSWx", "ITQ,SH", "RQ4x8", "LSQ4x8", "RaBitQ", "Pad64", "hnsw", "flat"])
SMALL = st.sampled_from([1, 2, 4, 8]).map(str)  # numbers that fit these shapes, so that many inputs are served
PLAUSIBLE_CODE = st.one_of(st.sampled_from(["Flat", "SQ8", "SQ4", "SQfp16"]), st.builds("PQ{}{}".format, SMALL,
                           st.sampled_from(["", "np", "x2", "x6np"])), st.builds("PQ{}x4fs".format, SMALL))
PLAUSIBLE = st.builds(
    lambda t, b, r: ",".join([*t, b, *r]),
    st.lists(st.one_of(st.builds("OPQ{}_{}".format, SMALL, st.sampled_from(["8", "16", "24"])),
                       st.sampled_from(["PCA8", "PCAR8", "RR16", "L2norm", "OPQ2", "RR"])), max_size=2),
    st.one_of(PLAUSIBLE_CODE,
              st.builds("HNSW{}{}".format, st.sampled_from(["", "4", "16"]),
                        st.sampled_from(["", ",Flat", "_SQ8", ",SQ4"])),
              st.builds("IVF{}{},{}".format, st.sampled_from(["1", "4", "16", "40", "301"]),
                        st.sampled_from(["", "_HNSW8"]), PLAUSIBLE_CODE)),
    st.lists(st.just("RFlat"), max_size=1))
FACTORY = st.one_of(
    st.builds(lambda t, b, r: ",".join([*t, b, *r]), st.lists(TRANSFORM, max_size=2), BODY,
              st.lists(st.just("RFlat"), max_size=1)),
    st.lists(st.one_of(TRANSFORM, BODY, BOGUS), min_size=1, max_size=4).map(",".join),
    st.text(alphabet="IVFPQHNSWSQOxn_,0123456789()k ", max_size=16),
    st.sampled_from([None, 7, b"IVF8,Flat", ["IVF8,Flat"], "ＩＶＦ8,Flat", "IVF٣,Flat", "IVF8,Flat ", "hnsw", "flat"]),
)
VALUE = st.one_of(number(), st.none(), st.booleans(), st.floats(allow_nan=True), st.just("8"), st.just(np.int64(4)))
PLAUSIBLE_PARAMS = st.fixed_dictionaries({}, optional={"nprobe": st.integers(1, 4), "ef_search": st.integers(1, 64),
                                                     "train_size": st.integers(1, 400), "seed": st.integers(0, 9)})
NAMES = st.sampled_from(["nprobe", "ef_search", "train_size", "seed", "M", "ef_construction", "bogus"])
PARAMS = st.one_of(PLAUSIBLE_PARAMS, st.dictionaries(NAMES, VALUE, max_size=3))


def run(root: Path, examples: int) -> None:
    for (documents, dim), kind, params in LITERAL:
        attempt(build(root, documents, dim), kind, params)
    indexes = [build(root, documents, dim) for documents, dim in SHAPES]

    check = settings(max_examples=examples, deadline=None, derandomize=not os.environ.get("PT_DENSE_FUZZ_RANDOM"),
                     database=None,
                     suppress_health_check=list(HealthCheck))

    @check
    @given(st.sampled_from(range(len(indexes))), PLAUSIBLE, PLAUSIBLE_PARAMS)
    def served(which: int, kind: str, params: dict) -> None:  # mostly served: FAISS trains and searches
        attempt(indexes[which], kind, params)

    @check
    @given(st.sampled_from(range(len(indexes))), FACTORY, PARAMS, st.one_of(st.integers(1, 20), VALUE))
    def anything(which: int, kind: object, params: dict, k: object) -> None:  # mostly refused, never a crash
        attempt(indexes[which], kind, params, k if isinstance(k, int) and not isinstance(k, bool) and k > 0 else 10)
        if isinstance(kind, str) and "bogus" not in params:
            with contextlib.suppress(PtDenseError):
                indexes[which].retriever(k=k, kind=kind)

    served()
    anything()


if __name__ == "__main__":
    run(Path(sys.argv[1]), int(sys.argv[2]))
    print(json.dumps(dict(OUTCOMES)))
