"""The input cases of issue 26 for examples/faults.py: bad FAISS kinds and parameters, shipped structures, vectors
that lost their encoder's stamp, settings changed in place, docnos of any text, the indexing bar.

Each case is (name, action, nothing-lost check), fed for real on tiny random models and synthetic vectors. The
FAISS cases run in a subprocess each, so a process abort would show as a return code instead of ending the run.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from contextlib import redirect_stderr
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from _faults_26 import Case, build, unit

from pt_dense import BiEncoder, DenseIndex
from pt_dense.cli import main as cli

KIND_CASE = """
import numpy as np, pandas as pd
from pt_dense import DenseIndex, PtDenseError
rows = np.random.default_rng(0).normal(size=(300, {dim})).astype(np.float32)
rows /= np.linalg.norm(rows, axis=1, keepdims=True)
index = DenseIndex({path!r})
if not index.built():
    index.indexer(progress=False).index({{"docno": f"d{{i}}", "doc_vec": v}} for i, v in enumerate(rows))
try:
    hits = index.retriever(k=10, {arguments})(pd.DataFrame({{"qid": ["1"], "query_vec": [rows[0]]}}))
    print(f"{{len(hits)}} hits of 10")
except PtDenseError as err:
    print(f"{{type(err).__name__}}: {{str(err).splitlines()[0][:150]}}")
"""


def kind_case(root: Path, arguments: str, dim: int = 384) -> Case:
    path = root / f"kinds-{dim}"

    def run():
        result = subprocess.run([sys.executable, "-c", KIND_CASE.format(dim=dim, path=str(path),
                                                                         arguments=arguments)],
                                capture_output=True, text=True, timeout=600)
        said = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
        return said if result.returncode == 0 else f"PROCESS ENDED rc {result.returncode}: {said}"

    return f"`retriever({arguments})` on 300 documents ({dim}-d)", run, lambda: True


def foreign_structure(root: Path) -> Case:
    def run():
        source, target = build(root / "structure-source", 300), DenseIndex(root / "structure-target")
        rows = unit(300, 7)
        target.indexer(progress=False).index({"docno": f"t{i}", "doc_vec": v} for i, v in enumerate(rows))
        query = pd.DataFrame({"qid": ["1"], "query_vec": [rows[0]]})
        source.retriever(k=5, kind="hnsw")(query)
        for file in source.folder.glob("hnsw-*.faiss*"):
            shutil.copyfile(file, target.folder / file.name)
        hits = DenseIndex(target.path).retriever(k=5, kind="hnsw")(query)["docno"].tolist()
        exact = DenseIndex(target.path).retriever(k=5)(query)["docno"].tolist()
        return f"not used: rebuilt, top 5 {'equal to' if hits == exact else 'DIFFERENT FROM'} exact search"

    return "an HNSW graph of another index shipped in a generation folder", run, lambda: True


SEARCH_HNSW = """
import numpy as np, pandas as pd
from pt_dense import DenseIndex, PtDenseError
query = pd.DataFrame({{"qid": ["1"], "query_vec": [np.eye(8, dtype=np.float32)[0]]}})
try:
    print(len(DenseIndex({path!r}).retriever(k=5, kind="hnsw")(query)), "hits")
except PtDenseError as err:
    print(f"{{type(err).__name__}}: {{str(err).splitlines()[0][:200]}}")
"""


def garbage_structure(root: Path) -> Case:
    def run():
        index = build(root / "garbage-structure", 300)
        index.retriever(k=5, kind="hnsw")(pd.DataFrame({"qid": ["1"], "query_vec": [unit(1, 3)[0]]}))
        graph = next(index.folder.glob("hnsw-*.faiss"))
        graph.write_bytes(b"\0garbage" * 64)
        result = subprocess.run([sys.executable, "-c", SEARCH_HNSW.format(path=str(index.path))],
                                capture_output=True, text=True, timeout=600)  # a process that never read it
        return result.stdout.strip().splitlines()[-1] if result.returncode == 0 else f"rc {result.returncode}"

    return "a garbage .faiss file beside its sidecar (a process opening it)", run, lambda: True


def _two_encoders() -> tuple[BiEncoder, BiEncoder]:
    from transformers import BertConfig, BertModel, BertTokenizer

    words = "the cat dog sat on mat protein cell gene cancer".split()
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]
    encoders = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                            intermediate_size=64, max_position_embeddings=64)
        encoders.append(BiEncoder(BertModel(config), BertTokenizer(vocab={w: i for i, w in enumerate(vocab)}),
                                  name=f"tiny-{seed}", query_max_length=16, doc_max_length=16, precision="fp32"))
    return encoders[0], encoders[1]


def identity_cases(root: Path) -> list[Case]:
    enc, enc2 = _two_encoders()
    docs = pd.DataFrame({"docno": ["a", "b", "c"], "text": ["the cat sat", "gene protein cell", "dog on mat"]})
    index = DenseIndex(root / "identity")
    (enc.doc_encoder() >> index.indexer(progress=False)).index(docs.to_dict("records"))
    queries = enc2.query_encoder()(pd.DataFrame({"qid": ["1"], "query": ["cat gene"]}))

    def mapped():
        return index.retriever(k=2)(queries.assign(query_vec=queries["query_vec"].map(np.array)))

    def parquet():
        file = root / "queries.parquet"
        queries.to_parquet(file)
        return index.retriever(k=2)(pd.read_parquet(file).assign(query_vec=lambda f: f["query_vec"].map(np.asarray)))

    def added():
        return index.add(pd.DataFrame({"docno": ["x"], "doc_vec": list(enc2.encode(["cat"], "doc"))}))

    def in_place():
        before = enc.fingerprint
        with torch.no_grad():
            next(enc.model.parameters()).add_(0.5)
        return f"fingerprint {before[:8]} -> {enc.fingerprint[:8]} with no weights_changed() call"

    def max_length():
        enc.doc_max_length = 0

    return [
        ("another encoder's query vectors after `.map(np.array)`", mapped, lambda: True),
        ("another encoder's query vectors after a parquet round trip", parquet, lambda: True),
        ("`idx.add(DataFrame(doc_vec=list(enc2.encode(...))))`", added, lambda: len(DenseIndex(index.path)) == 3),
        ("weights changed in place", in_place, lambda: True),
        ("`enc.doc_max_length = 0` in place", max_length, lambda: enc.doc_max_length == 16),
    ]


def cli_says(argv: list[str]) -> Callable[[], object]:
    def run():
        err = io.StringIO()
        with redirect_stderr(err):
            code = cli(argv)
        return f"exit {code}: {err.getvalue().strip().splitlines()[-1] if err.getvalue().strip() else ''}"

    return run


def docno_cases(root: Path) -> list[Case]:
    path = root / "docnos"
    index = DenseIndex(path)
    nasty = ["smith, john", "smith", "john", "form\x0cfeed", "next\x85line", "line\u2028sep"]
    index.indexer(progress=False).index({"docno": d, "doc_vec": v} for d, v in zip(nasty, unit(6, 2), strict=True))
    listed = root / "docnos.txt"
    listed.write_text("line\u2028sep\n", encoding="utf-8")

    def live() -> set[str]:
        return {d for docnos, _ in DenseIndex(path).chunks() for d in docnos}

    def delete_comma():
        cli(["delete", "--index", str(path), "--docnos", "smith, john"])
        return f"deleted one docno; live: {sorted(live() & {'smith', 'john', 'smith, john'})}"

    def delete_file():
        cli(["delete", "--index", str(path), "--docnos-file", str(listed)])
        return f"deleted 'line\\u2028sep' whole; 'line' or 'sep' were never looked up ({len(live())} live)"

    return [
        ("`pt-dense delete --docnos \"smith, john\"`", delete_comma, lambda: {"smith", "john"} <= live()),
        ("a `--docnos-file` line holding U+2028", delete_file, lambda: "form\x0cfeed" in live()),
        ("`delete --docnos-file` on a missing file", cli_says(["delete", "--index", str(path), "--docnos-file",
                                                               str(root / "absent.txt")]), lambda: True),
    ]


def lucene_docnos(root: Path) -> Case:
    def run():
        from pt_dense import export
        from pt_dense.deploy import LuceneDense

        enc, _ = _two_encoders()
        nasty = ["form\x0cfeed", "next\x85line", "line\u2028sep", "para\u2029sep", "plain"]
        index = DenseIndex(root / "lucene-docnos")
        texts = ["the cat sat", "gene protein cell", "dog on mat", "cancer cell", "the mat"]
        (enc.doc_encoder() >> index.indexer(progress=False)).index(
            {"docno": d, "text": t} for d, t in zip(nasty, texts, strict=True))
        onnx = export.onnx(enc, root / "lucene-onnx", sample_docs=["cat sat"], sample_queries=["cat"])
        stage = LuceneDense(export.lucene(index, root / "lucene-flat", kind="flat"), onnx, k=5)
        hits = stage(pd.DataFrame({"qid": ["1"], "query": ["the cat"]}))["docno"].tolist()
        return f"{len(hits)} hits, every docno exact: {sorted(hits) == sorted(nasty)}"

    return "`LuceneDense` on docnos holding \\x0c, \\x85, U+2028, U+2029", run, lambda: True


def indexing_bar(root: Path) -> Case:
    def run():
        import tqdm.auto

        enc, _ = _two_encoders()
        enc.precision = "int8"  # the one-off ONNX export (and its parity run) happens inside the indexing
        shown: list[tuple[int, int | None]] = []

        class Recording(tqdm.auto.tqdm):
            def update(self, n=1):
                result = super().update(n)
                shown.append((self.n, self.total))
                return result

        real, tqdm.auto.tqdm = tqdm.auto.tqdm, Recording
        try:
            docs = [{"docno": f"d{i}", "text": "the cat sat on the mat"[: 6 + i % 15]} for i in range(300)]
            (enc.doc_encoder() >> DenseIndex(root / "bar").indexer(total=300)).index(docs)
        finally:
            tqdm.auto.tqdm = real
        return f"the bar ends at {shown[-1][0]} of {shown[-1][1]}, never past it: {all(n <= t for n, t in shown)}"

    return "the indexing bar at the default int8 precision (was 348 of 300)", run, lambda: True


def cases_26_inputs(root: Path) -> list[Case]:
    """Every input case of issue 26: FAISS kinds, structures, encoder identity, settings, docnos."""
    root.mkdir(parents=True, exist_ok=True)
    kinds = [kind_case(root, arguments) for arguments in (
        'kind="OPQ16,IVF8,PQ16"', 'kind="hnsw", M=0', 'kind="IDMap,Flat"', "kind=None", 'kind="hnsw", ef_search=-1')]
    return [*kinds, foreign_structure(root), garbage_structure(root), *identity_cases(root), *docno_cases(root),
            lucene_docnos(root), indexing_bar(root)]


if __name__ == "__main__":  # a quick look at these rows alone
    from faults import outcome

    with tempfile.TemporaryDirectory() as tmp:
        for name, action, kept in cases_26_inputs(Path(tmp)):
            print(f"- {name}: {outcome(action).replace(tmp, '<tmp>')} | nothing lost: {kept()}")
