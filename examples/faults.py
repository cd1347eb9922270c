"""Fault or bad input -> what pt_dense does: each case of issues 13 and 26, fed for real, one row each (README's table).

Each case runs on tiny random models and synthetic vectors in a temporary folder: it records the outcome (the
result, or the error's class and message) and whether everything on disk survived. Usage::

    python examples/faults.py --json out/faults.json
"""

from __future__ import annotations

import argparse
import gzip
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from _faults_26 import cases_26
from _faults_26_inputs import cases_26_inputs
from transformers import BertConfig, BertModel, BertTokenizer

import pt_dense.index.structures as structures_module
from pt_dense import BiEncoder, Corrector, DenseIndex, PtDenseError, datasets
from pt_dense.cli import main as cli
from pt_dense.encoders.stages import stamp
from pt_dense.report import bench_payload, markdown_table, write_json
from pt_dense.training.run import train_collection

WORDS = "the cat dog sat on mat protein cell gene cancer risk study blood brain drug trial mouse human".split()


def tiny_encoder(seed: int = 0) -> BiEncoder:
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    tokenizer = BertTokenizer(vocab={w: i for i, w in enumerate(vocab)})
    return BiEncoder(BertModel(config), tokenizer, query_max_length=16, doc_max_length=16, name=f"tiny-{seed}")


def collection(root: Path) -> Path:
    rng = np.random.default_rng(0)
    (root / "qrels").mkdir(parents=True)
    with gzip.open(root / "corpus.jsonl.gz", "wt") as f:
        f.writelines(json.dumps({"docno": f"d{i}", "title": "", "text": " ".join(rng.choice(WORDS, 8))}) + "\n"
                     for i in range(60))
    (root / "queries.jsonl").write_text("".join(json.dumps({"qid": f"q{i}", "query": " ".join(WORDS[i:i + 3])})
                                                + "\n" for i in range(8)))
    (root / "qrels" / "train.tsv").write_text("".join(f"q{i}\t0\td{i}\t1\n" for i in range(8)))
    (root / "qrels" / "test.tsv").write_text("q0\t0\td0\t1\n")
    return root


def vector_index(path: Path, count: int = 40) -> DenseIndex:
    rows = np.random.default_rng(1).normal(size=(count, 8)).astype(np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    index = DenseIndex(path)
    index.indexer(progress=False).index({"docno": f"d{i}", "doc_vec": v} for i, v in enumerate(rows))
    return index


def search(path: Path) -> list[str]:
    query = np.zeros(8, np.float32)
    query[0] = 1
    return DenseIndex(path).retriever(k=3)(pd.DataFrame({"qid": ["1"], "query_vec": [query]}))["docno"].tolist()


def outcome(action: Callable[[], object]) -> str:
    """What pt_dense did: its result, or the error it raised (class and first line)."""
    try:
        result = action()
    except SystemExit as stop:
        return f"exits {stop.code} (argparse names the argument)"
    except PtDenseError as err:
        return f"{type(err).__name__}: {str(err).splitlines()[0]}"
    except Exception as err:  # a bare traceback is a finding: reported as such
        return f"UNCLEAR {type(err).__name__}: {err}"
    return str(result)


def damaged(root: Path, name: str, damage: Callable[[Path], None]) -> Callable[[], object]:
    path = root / name
    vector_index(path)
    damage(DenseIndex(path).folder)
    return lambda: search(path)


def cli_error(argv: list[str]) -> Callable[[], object]:
    def run():
        from contextlib import redirect_stderr
        from io import StringIO

        err = StringIO()
        with redirect_stderr(err):
            try:
                code = cli(argv)
            except SystemExit as stop:  # argparse refuses a bad value before any work
                code = stop.code
        message = err.getvalue().strip().splitlines()[-1] if err.getvalue().strip() else ""
        return f"exit {code}: {message}"

    return run


def _publisher(path: str, count: int) -> None:
    for generation in range(count):
        rows = np.random.default_rng(generation).normal(size=(500, 8)).astype(np.float32)
        rows /= np.linalg.norm(rows, axis=1, keepdims=True)
        DenseIndex(path).indexer(overwrite=True, progress=False).index(
            {"docno": f"g{generation}-{i}", "doc_vec": v} for i, v in enumerate(rows))


def readers_during_writes(root: Path, reads: int = 1000, generations: int = 50) -> str:
    path = root / "busy"
    vector_index(path)
    writer = multiprocessing.get_context("spawn").Process(target=_publisher, args=(str(path), generations))
    writer.start()
    failures, done, seen = 0, 0, set()
    while writer.is_alive() or done < reads:
        try:
            index = DenseIndex(path)
            assert len(search(path)) == 3
            seen.add(index.generation.name)
            index.close()
        except Exception:  # counted, not hidden
            failures += 1
        done += 1
    writer.join()
    return f"{done} reads while {generations} generations were published: {failures} failures ({len(seen)} seen)"


def cases(root: Path) -> list[tuple[str, Callable[[], object], Callable[[], bool]]]:
    data = collection(root / "data")
    tiny_encoder().save(root / "model")
    base, newer = tiny_encoder(0), tiny_encoder(1)
    docs = datasets.doc_texts(datasets.load(data))
    encoded = DenseIndex(root / "encoded")
    (base.doc_encoder() >> encoded.indexer(progress=False, corpus=str(data))).index(
        [{"docno": d, "text": t} for d, t in docs.items()])

    def refresh_three_times():
        for target in (newer, newer, base):
            encoded.refresh(Corrector.fit(encoded, target, sample=20, width=16, epochs=2, progress=False))
        return f"three refreshes in a row; the index now stands for {encoded.fingerprint[:8]} (the base encoder)"

    common = {"model": str(root / "model"), "batch_size": 4, "progress": False}
    train_collection(data, root / "run", epochs=2, **common)
    run_bytes = (root / "run" / "adapter_model.safetensors").read_bytes()

    def seeded_twice():
        for name in ("s1", "s2"):
            cli(["train", "--data", str(data), "--model", str(root / "model"), "--epochs", "1", "--batch-size", "4",
                 "--seed", "42", "--out", str(root / name)])
        same = (root / "s1" / "adapter_model.safetensors").read_bytes() == (
            root / "s2" / "adapter_model.safetensors").read_bytes()
        return "bit-identical adapters" if same else "adapters DIFFER"

    def merged_frame():
        index = vector_index(root / "foreign")
        meta = DenseIndex(root / "foreign").meta
        frame = pd.DataFrame({"qid": ["1"], "query_vec": stamp(np.ones((1, 8), np.float32), "0" * 32)})
        frame = frame.merge(pd.DataFrame({"qid": ["1"], "x": [1]}), on="qid")  # drops DataFrame.attrs
        index.meta["accepts"] = meta["accepts"] = ["f" * 32]
        return index.retriever(k=3)(frame)

    def read_only_hnsw():
        index = vector_index(root / "readonly", count=300)
        original = structures_module.writable
        structures_module.writable = lambda folder: False
        try:
            query = pd.DataFrame({"qid": ["1"], "query_vec": [np.eye(8, dtype=np.float32)[0]]})
            hits = index.retriever(k=3, kind="hnsw", M=8)(query)
        finally:
            structures_module.writable = original
        return f"{len(hits)} hits; the graph cached outside the index ({len(list(index.folder.glob('*.faiss')))} " \
               "files written into it)"

    def leftovers():
        path = root / "left"
        vector_index(path)
        pid = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                                 text=True).stdout)
        (path / f".tmp-{pid}-killed").mkdir()
        DenseIndex(path).indexer(overwrite=True, progress=False).index([{"docno": "x", "doc_vec": np.ones(8)}])
        return f"removed by the next write ({len(list(path.glob('.tmp-*')))} left)"

    def empty_config():
        folder = root / "empty-config"
        folder.mkdir()
        (folder / "config.json").write_text("{}")
        return BiEncoder.from_pretrained(str(folder))

    def broken_line():
        broken = root / "broken"
        broken.mkdir()
        for item in ("queries.jsonl", "qrels"):
            os.symlink(data / item, broken / item)
        with gzip.open(broken / "corpus.jsonl.gz", "wt") as f:
            f.write(json.dumps({"docno": "a", "text": "x"}) + "\n{broken\n")
        return list(datasets.load(broken).corpus_iter())

    def beir_download():
        folder = root / "beir"
        (folder / "qrels").mkdir(parents=True)
        (folder / "corpus.jsonl").write_text(json.dumps({"_id": "d1", "title": "T", "text": "x y"}) + "\n")
        (folder / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "x"}) + "\n")
        (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
        loaded = datasets.load(folder)
        return f"loads: {len(loaded.topics('test'))} query, {len(loaded.qrels('test'))} judgement, " \
               f"{len(list(loaded.corpus_iter()))} document"

    def count_short(folder):
        meta = json.loads((folder / "meta.json").read_text())
        (folder / "meta.json").write_text(json.dumps(meta | {"count": meta["count"] - 5}))

    def docno_short(folder):
        lines = (folder / "docnos.txt").read_text().splitlines()
        (folder / "docnos.txt").write_text("\n".join(lines[:-1]) + "\n")

    def extra_rows(folder):
        with open(folder / "vectors.f32", "ab") as f:
            f.write(np.ones((3, 8), np.float32).tobytes())

    def truncated(folder):
        (folder / "vectors.f32").write_bytes((folder / "vectors.f32").read_bytes()[:100])

    intact = lambda: True  # noqa: E731 (cases that write nothing)
    run_intact = lambda: (root / "run" / "adapter_model.safetensors").read_bytes() == run_bytes  # noqa: E731
    return [
        ("a refreshed index refreshed again (to a newer encoder, to itself, back)", refresh_three_times, intact),
        ("`--resume` with other epochs", lambda: train_collection(data, root / "run", epochs=1, resume=True,
                                                                   **common), run_intact),
        ("`--resume` with another batch size", lambda: train_collection(
            data, root / "run", epochs=2, resume=True, **common | {"batch_size": 8}), run_intact),
        ("`--resume` with another adapter", lambda: train_collection(
            data, root / "run", epochs=2, resume=True, adapter="prompts", **common), run_intact),
        ("`train` into an existing `--out`", lambda: train_collection(data, root / "run", epochs=2, **common),
         run_intact),
        ("two `pt-dense train --seed 42` runs", seeded_twice, intact),
        ("meta.json count smaller than the vectors", damaged(root, "d1", count_short), intact),
        ("docnos.txt one line short", damaged(root, "d2", docno_short), intact),
        ("extra rows in vectors.f32", damaged(root, "d3", extra_rows), intact),
        ("truncated vectors.f32", damaged(root, "d4", truncated), intact),
        ("invalid meta.json", damaged(root, "d5", lambda f: (f / "meta.json").write_text("{oops")), intact),
        ("readers during refreshes and overwrites", lambda: readers_during_writes(root), intact),
        ("leftovers of a killed writer", leftovers, intact),
        ("another encoder's query vectors after a `merge` (attrs dropped)", merged_frame, intact),
        ("HNSW search on a read-only index", read_only_hnsw, intact),
        ("`pt-dense eval --systems ''`", cli_error(["eval", "--data", str(data), "--systems", ""]), intact),
        ("`pt-dense index --batch-size 0`", cli_error(["index", "--data", str(data), "--out", str(root / "i0"),
                                                       "--batch-size", "0"]), lambda: not (root / "i0").exists()),
        ("`pt-dense refresh --sample nan`", cli_error(["refresh", "--index", str(root / "encoded"), "--encoder",
                                                       str(root / "model"), "--sample", "nan"]), intact),
        ("an encoder folder whose config.json is `{}`", empty_config, intact),
        ("a corpus with a broken JSON line", broken_line, intact),
        ("an integer query", lambda: base.query_encoder()(pd.DataFrame({"qid": ["1"], "query": [5]})), intact),
        ("an unknown split", cli_error(["eval", "--data", str(data), "--split", "dev", "--systems", "bm25"]),
         lambda: not any((Path(os.environ["PT_DENSE_CACHE"]) / "bm25-lucene").glob("*"))),
        ("a real BEIR download (`_id`, qrels header)", beir_download, intact),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the rows as JSON here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.environ["PT_DENSE_CACHE"] = str(root / "cache")  # a fresh cache: nothing built before counts
        rows = []
        for case, action, kept in [*cases(root), *cases_26(root / "writes"), *cases_26_inputs(root / "inputs")]:
            did = outcome(action).replace(tmp, "<tmp>")
            rows.append({"fault or bad input": case, "what pt_dense does": did,
                         "nothing lost": "yes" if kept() else "NO"})
            print(f"- {case}: {did}", flush=True)
    print(markdown_table(rows))
    clear = sum(not r["what pt_dense does"].startswith("UNCLEAR") for r in rows)
    write_json(args.json, bench_payload(rows, {"models": "tiny random BERT", "vectors": "synthetic"},
                                        cases=len(rows), clear=clear, nothing_lost=sum(r["nothing lost"] == "yes"
                                                                                        for r in rows)))


if __name__ == "__main__":
    main()
