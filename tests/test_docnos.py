"""Docnos of any text (issue 26): the CLI and the library take each docno whole, every stage and export keeps it
exactly; "\\n", "\\r" (docnos are stored one a line), NUL, lone surrogates and docnos longer than Lucene's term limit
are refused at indexing by name. Also: the indexing bar ends exactly at the documents indexed."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import pyterrier as pt
import pytest
import tqdm.auto
import tqdm.std
from conftest import WORDS, tiny_bert, write_beir
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pt_dense import BiEncoder, InputError, export
from pt_dense.bm25 import BM25
from pt_dense.cli import main
from pt_dense.deploy.lucene import split_docids
from pt_dense.errors import DeploymentError
from pt_dense.index import DenseIndex, delete_documents, open_flex
from pt_dense.index.cached import read_docnos_file
from pt_dense.io.validation import MAX_DOCNO_BYTES
from pt_dense.pefa import PEFA

DIM = 8
#: every kind of docno that one stage or another used to split, strip or lose
NASTY = ["smith, john", "a b", "tab\there", 'q"uote', "it's", "\\back", "{json}", "\x0c", "form\x0cfeed", "nel\x85",
         "ls\u2028x", "ps\u2029x", "\x0b", "\x1c\x1d\x1e", " lead", "trail ", " ", "\t", "emoji😀🧬",
         "ü", "-d1", "d" * 20000, "é" * (MAX_DOCNO_BYTES // 2)]
#: docnos hypothesis draws: any text but a line break or a NUL (lone surrogates cannot be text in a file)
DOCNO = st.text(st.characters(blacklist_characters="\n\r\x00", blacklist_categories=("Cs",)), min_size=1,
                max_size=30)


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def vector_index(path: Path, docnos: list[str], seed: int = 0) -> tuple[DenseIndex, np.ndarray]:
    """A DenseIndex of random unit vectors (no encoder), one per docno."""
    vectors = unit(np.random.default_rng(seed).normal(size=(len(docnos), DIM)))
    index = DenseIndex(path)
    index.indexer(progress=False).index({"docno": d, "doc_vec": v} for d, v in zip(docnos, vectors, strict=True))
    return index, vectors


def live(path: Path) -> list[str]:
    """The docnos an index at ``path`` returns (deleted ones left out), in row order."""
    return [d for docnos, _ in DenseIndex(path).chunks() for d in docnos]


# ---------------------------------------------------------------------------------------------------- the CLI


def test_cli_delete_takes_each_docno_whole(tmp_path, capsys):
    docnos = ["smith, john", "smith", "john", "a b", "-d1", "d7", "x\u2028y", "f\x0cg", "n\x85o", " pad ", "d8"]
    index, _ = vector_index(tmp_path / "i", docnos)
    path = str(index.path)
    assert main(["delete", "--index", path, "--docnos", "smith, john", "a b"]) == 0
    assert live(index.path) == ["smith", "john", "-d1", "d7", "x\u2028y", "f\x0cg", "n\x85o", " pad ", "d8"]
    assert main(["delete", "--index", path, "--docnos=-d1", "--docnos", "d7"]) == 0  # a leading dash; --docnos repeats
    assert live(index.path) == ["smith", "john", "x\u2028y", "f\x0cg", "n\x85o", " pad ", "d8"]
    listed = tmp_path / "docnos.txt"  # "\r\n" tolerated, empty lines skipped, every other character kept
    listed.write_bytes("x\u2028y\r\n\nf\x0cg\nn\x85o\n pad \n".encode())
    assert main(["delete", "--index", path, "--docnos-file", str(listed)]) == 0
    assert live(index.path) == ["smith", "john", "d8"]
    capsys.readouterr()


def test_cli_delete_errors_are_clean_messages(tmp_path, capsys):
    index, _ = vector_index(tmp_path / "i", ["smith", "john", "d1"])
    path = str(index.path)
    assert main(["delete", "--index", path, "--docnos", "smith,john"]) == 2  # the old comma-separated spelling
    err = capsys.readouterr().err
    assert err.startswith("pt-dense: error:") and "taken whole" in err and "--docnos smith john" in err
    assert main(["delete", "--index", path, "--docnos-file", str(tmp_path / "missing.txt")]) == 2
    err = capsys.readouterr().err
    assert "missing.txt does not exist" in err and "Traceback" not in err
    assert main(["delete", "--index", path, "--docnos-file", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err
    (tmp_path / "latin1.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    assert main(["delete", "--index", path, "--docnos-file", str(tmp_path / "latin1.txt")]) == 2
    assert "not UTF-8" in capsys.readouterr().err
    assert main(["delete", "--index", path]) == 2
    assert "nothing to delete" in capsys.readouterr().err
    assert live(index.path) == ["smith", "john", "d1"]  # nothing was deleted by any of them


def test_docnos_file_lines_end_at_newline_alone(tmp_path):
    file = tmp_path / "d.txt"
    file.write_bytes("a\u2028b\x0bc\x0cd\x1ce\x85f\u2029g\r\n\n\r\nh, i j\n  \nlast".encode())
    assert read_docnos_file(file) == ["a\u2028b\x0bc\x0cd\x1ce\x85f\u2029g", "h, i j", "  ", "last"]
    (tmp_path / "empty.txt").touch()
    assert read_docnos_file(tmp_path / "empty.txt") == []


def test_a_string_is_one_docno_in_the_library(tmp_path):
    index, _ = vector_index(tmp_path / "i", ["smith, john", "smith", "john", "x y"])
    delete_documents(index, "smith, john")
    assert live(index.path) == ["smith", "john", "x y"]
    DenseIndex(index.path).delete("x y")
    assert live(index.path) == ["smith", "john"]


# ----------------------------------------------------------------------------------------- what is refused


@pytest.mark.parametrize(("docno", "says"), [
    ("a\nb", "line break"), ("a\rb", "line break"), ("a\x00", "NUL"), ("\x00b", "NUL"), ("", "non-empty"),
    (7, "non-empty"), (None, "non-empty"),
    ("lone\ud800", "surrogate"), ("x" * (MAX_DOCNO_BYTES + 1), "Lucene"), ("é" * (MAX_DOCNO_BYTES // 2 + 1), "Lucene"),
])
def test_docnos_no_engine_can_hold_are_refused_at_indexing(tmp_path, docno, says):
    with pytest.raises(InputError, match=says):
        vector_index(tmp_path / "i", ["ok", docno])
    assert not (tmp_path / "i").exists()  # nothing half-written
    index, _ = vector_index(tmp_path / "j", ["ok"])
    with pytest.raises(InputError, match=says):
        index.add([{"docno": docno, "doc_vec": unit(np.ones(DIM))}])  # records: pandas refuses a lone surrogate
    assert live(index.path) == ["ok"]


def test_pisa_refuses_docnos_it_would_split_and_lucene_bm25_keeps_them(tmp_path):
    with pytest.raises(InputError, match="engine='lucene'"):
        BM25([{"docno": "smith, john", "text": "cat"}], index_dir=tmp_path / "pisa", engine="pisa")
    with pytest.raises(InputError, match="line break"):
        BM25([{"docno": "a\nb", "text": "cat"}], index_dir=tmp_path / "lucene", engine="lucene")


def test_split_docids_splits_on_newline_alone_and_checks_the_count():
    assert split_docids("a\x0cb\nc\u2028d\n\x85\n", 3) == ["a\x0cb", "c\u2028d", "\x85"]
    assert split_docids("", 0) == []
    with pytest.raises(DeploymentError, match="line break"):
        split_docids("a\nb\n", 1)


def test_qrels_and_negatives_files_keep_every_docno_whole(tmp_path):
    from pt_dense import datasets
    from pt_dense.training.negatives import mine, read_mined, read_scores

    kept = ["smith, john", "x\x0cy", "n\x85o", "ls\u2028x", "NA", "null", '"quoted', "emoji😀"]
    docs = [{"docno": d, "title": "", "text": "cat"} for d in kept]
    data = write_beir(tmp_path / "data", docs, [{"qid": "NA", "query": "cat"}], {"test": [("NA", d, 1) for d in kept]})
    (data / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(
        f"NA\t{d}\t1\n" for d in kept), encoding="utf-8")  # BEIR's dialect: tab-separated, a header line
    loaded = datasets.load(data)
    assert [d["docno"] for d in loaded.corpus_iter()] == kept and list(loaded.qrels("test")["docno"]) == kept

    class Ranked(pt.Transformer):
        def transform(self, inp):
            return pd.DataFrame({"qid": inp["qid"].iloc[0], "docno": kept, "score": np.arange(len(kept), 0, -1.0),
                                 "rank": np.arange(len(kept))})

    mined = mine(Ranked(), pd.DataFrame({"qid": ["NA"], "query": ["cat"]}), tmp_path / "negatives.tsv")
    assert read_mined(mined) == {"NA": kept} and list(read_scores(mined)["NA"]) == kept
    (tmp_path / "plain.tsv").write_text("q\tNA\r\n\nq\t\"x y\n", encoding="utf-8")
    assert read_mined(tmp_path / "plain.tsv") == {"q": ["NA", '"x y']}
    with pytest.raises(InputError, match="holds a tab"):
        mine(Ranked(), pd.DataFrame({"qid": ["a\tb"], "query": ["cat"]}), tmp_path / "bad.tsv")
    with pytest.raises(InputError, match="does not exist"):
        read_mined(tmp_path / "missing.tsv")


# ------------------------------------------------------------------------ any docno, the Python-only stages


class QueryTable(pt.Transformer):
    """A stand-in query encoder: looks each query text up in a table."""

    def __init__(self, table: dict[str, np.ndarray]):
        self.table = table

    def transform(self, inp: pd.DataFrame) -> pd.DataFrame:
        return inp.assign(query_vec=[self.table[q] for q in inp["query"]])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(docnos=st.lists(DOCNO, min_size=4, max_size=9, unique=True))
def test_any_docno_round_trips_through_the_python_stages(docnos):
    import pyterrier_dr

    first, added = docnos[: len(docnos) - 2], docnos[len(docnos) - 2 :]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        index, vectors = vector_index(tmp / "i", first)
        index = DenseIndex(tmp / "i")
        assert list(index.docnos) == first
        n = len(first)
        queries = pd.DataFrame({"qid": [f"q{i}" for i in range(n)], "query_vec": list(vectors)})
        found = index.retriever(k=n)(queries)
        assert list(found[found["rank"] == 0].sort_values("qid", key=lambda q: q.str[1:].astype(int))["docno"]) \
            == first  # each document's own vector finds it first
        pairs = queries.merge(pd.DataFrame({"docno": first}), how="cross")
        scored = index.scorer()(pairs)
        expected = {(q, d): float(v @ w) for (q, v), (d, w) in
                    ((qv, dw) for qv in zip(queries["qid"], vectors, strict=True)
                     for dw in zip(first, vectors, strict=True))}
        assert {(q, d): pytest.approx(s, abs=1e-5) for q, d, s in scored[["qid", "docno", "score"]].itertuples(
            index=False)} == expected

        more = unit(np.random.default_rng(1).normal(size=(2, DIM)))
        index.add(pd.DataFrame({"docno": added, "doc_vec": list(more)}))
        index.update(pd.DataFrame({"docno": [first[0]], "doc_vec": [more[0]]}))
        assert sorted(live(index.path)) == sorted(docnos)
        assert set(DenseIndex(tmp / "i").retriever(k=len(docnos))(queries.head(1))["docno"]) == set(docnos)

        table = QueryTable({"t": vectors[1], "s": unit(vectors[1] * 0.9 + vectors[0] * 0.1)})
        train = pd.DataFrame({"qid": ["t"], "query": ["t"]})
        qrels = pd.DataFrame({"qid": ["t"], "docno": [first[1]], "label": [1]})
        test = pd.DataFrame({"qid": ["x"], "query": ["s"]})
        pefa = PEFA(DenseIndex(tmp / "i"), table, train, qrels, kind="xl", k=1)
        assert set((table >> pefa.retriever(k=len(docnos)))(test)["docno"]) == set(docnos)
        reranked = (table >> DenseIndex(tmp / "i").retriever(k=len(docnos)) >> pefa.reranker())(test)
        assert set(reranked["docno"]) == set(docnos)
        xs = PEFA(DenseIndex(tmp / "i"), table, train, qrels, kind="xs", folded_path=tmp / "folded")
        assert sorted(live(xs.folded_index().path)) == sorted(docnos)
        assert set((table >> xs.retriever(k=len(docnos)))(test)["docno"]) == set(docnos)

        flex = export.flex(DenseIndex(tmp / "i"), tmp / "x.flex")
        assert list(open_flex(flex).docnos) == live(index.path)
        dr = pyterrier_dr.FlexIndex(str(flex), verbose=False).np_retriever(num_results=len(docnos))
        assert set(dr(queries.head(1))["docno"]) == set(docnos)

        file = tmp / "docnos.txt"  # the CLI: one docno from a file, the rest as arguments
        file.write_text(added[0] + "\n", encoding="utf-8")
        assert main(["delete", "--index", str(tmp / "i"), "--docnos-file", str(file)]) == 0
        assert main(["delete", "--index", str(tmp / "i"), *(f"--docnos={d}" for d in first[1:]), "--compact"]) == 0
        assert sorted(live(tmp / "i")) == sorted([first[0], added[1]])


# ----------------------------------------------- the nasty docnos through the JVM exports and the package


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    """One index of the NASTY docnos (tiny encoder) and everything built from it: its package unpacked again, a
    FlexIndex, the ONNX export, Lucene HNSW and flat indexes, a Pyserini FAISS folder, a Lucene BM25 index."""
    tmp = tmp_path_factory.mktemp("docnos")
    model, tokenizer = tiny_bert()
    encoder = BiEncoder(model, tokenizer, name="tiny", query_max_length=16, doc_max_length=32, batch_size=4)
    docs = [{"docno": d, "text": " ".join(WORDS[i % 20 : i % 20 + 5])} for i, d in enumerate(NASTY)]
    index = DenseIndex(tmp / "index")
    (encoder.doc_encoder() >> index.indexer(progress=False)).index(docs)
    topics = pd.DataFrame({"qid": ["1", "2"], "query": ["cat sat on mat", "gene cancer risk"]})
    k = len(NASTY)
    expected = (encoder.query_encoder() >> index.retriever(k=k))(topics)
    index.build_package(str(tmp / "index.tar.lz4"))
    onnx = export.onnx(encoder, tmp / "onnx", sample_docs=["cat sat"], sample_queries=["cat"])
    with pytest.warns(UserWarning, match="strips each docid"):
        faiss = export.pyserini_faiss(index, tmp / "faiss")
    from pt_dense.deploy import LuceneDense, PyseriniFaiss

    results = {"package": list(pt.Artifact.from_url((tmp / "index.tar.lz4").absolute().as_uri()).docnos),
               "flex": list(open_flex(export.flex(index, tmp / "x.flex")).docnos)}
    for kind in ("hnsw", "flat"):
        stage = LuceneDense(export.lucene(index, tmp / f"lucene-{kind}", kind=kind), onnx, k=k)
        results[f"lucene-{kind}"] = stage(topics)  # a batch of queries
        results[f"lucene-{kind}-one"] = stage(topics.head(1))  # one query
    results["pyserini-faiss"] = PyseriniFaiss(faiss, onnx, k=k)(topics)
    bm25 = BM25(docs, index_dir=tmp / "bm25", engine="lucene", num_results=k)
    results["bm25-lucene"] = bm25(pd.DataFrame({"qid": ["1"], "query": [" ".join(WORDS)]}))
    return expected, results


TARGETS = ["package", "flex", "lucene-hnsw", "lucene-hnsw-one", "lucene-flat", "lucene-flat-one", "pyserini-faiss",
           "bm25-lucene"]


@pytest.mark.integration
@pytest.mark.parametrize("docno", NASTY, ids=[ascii(d)[:24] for d in NASTY])
def test_nasty_docnos_round_trip_through_lucene_faiss_bm25_flex_and_the_package(deployed, docno):
    expected, results = deployed
    for target in TARGETS:
        got = results[target]
        docnos = got if isinstance(got, list) else list(got["docno"])
        assert docno in docnos, f"{target} lost {docno!r}"
        assert len(docnos) == len(NASTY) * (2 if target in ("lucene-hnsw", "lucene-flat", "pyserini-faiss") else 1)
        assert set(docnos) <= set(NASTY), f"{target} returned docnos no document has"
    for target in ("lucene-flat", "pyserini-faiss"):  # exact searches: each docno with its own score
        got = results[target].set_index(["qid", "docno"])["score"]
        want = expected.set_index(["qid", "docno"])["score"]
        np.testing.assert_allclose(got.loc[want.index].to_numpy(), want.to_numpy(), atol=1e-5)


# -------------------------------------------------------------------------------------------- the indexing bar


class RecordingBar(tqdm.std.tqdm):
    """A tqdm that remembers every (n, total) it showed."""

    made: ClassVar[list[RecordingBar]] = []

    def __init__(self, *args, **kwargs):
        self.shown: list[tuple[int, int | None]] = []
        super().__init__(*args, **kwargs)
        RecordingBar.made.append(self)

    def update(self, n=1):
        done = super().update(n)
        self.shown.append((self.n, self.total))
        return done

    def refresh(self, *args, **kwargs):
        self.shown.append((self.n, self.total))
        return super().refresh(*args, **kwargs)


class EncodesMore(pt.Transformer):
    """Encodes 48 texts that are not the documents while the indexer counts (as an ONNX export's parity check did)."""

    def __init__(self, encoder):
        self.encoder = encoder

    def transform(self, inp: pd.DataFrame) -> pd.DataFrame:
        self.encoder.encode(["cat sat"] * 48, "doc")
        return inp


def indexing_bar(monkeypatch, run) -> RecordingBar:
    RecordingBar.made = []
    monkeypatch.setattr(tqdm.auto, "tqdm", RecordingBar)
    run()
    return next(bar for bar in RecordingBar.made if bar.desc.startswith("indexing"))


@pytest.mark.parametrize("case", ["int8-export", "extra-encoding", "no-total"])
def test_the_indexing_bar_ends_at_the_documents_indexed_and_never_passes_its_total(tmp_path, monkeypatch, case):
    model, tokenizer = tiny_bert()
    encoder = BiEncoder(model, tokenizer, name="tiny", query_max_length=16, doc_max_length=32, batch_size=16,
                        precision="int8" if case == "int8-export" else "fp32")
    docs = [{"docno": f"d{i}", "text": " ".join(WORDS[i % 20 : i % 20 + 4])} for i in range(300)]
    index = DenseIndex(tmp_path / "i")
    total = None if case == "no-total" else len(docs)
    stages = (EncodesMore(encoder) >> encoder.doc_encoder()) if case == "extra-encoding" else encoder.doc_encoder()
    bar = indexing_bar(monkeypatch, lambda: (stages >> index.indexer(total=total)).index(iter(docs)))
    assert bar.n == len(docs) == len(DenseIndex(index.path))
    assert max(n for n, _ in bar.shown) == len(docs)
    assert all(n <= shown_total for n, shown_total in bar.shown if shown_total is not None)
    assert bar.total == len(docs)


@pytest.mark.integration
def test_lucene_dense_takes_relative_paths_from_any_working_folder(tmp_path, monkeypatch):
    """Java resolves a relative path against the folder the JVM started in: the stage hands it absolute ones."""
    from pt_dense.deploy import LuceneDense

    model, tokenizer = tiny_bert()
    encoder = BiEncoder(model, tokenizer, name="tiny", query_max_length=16, doc_max_length=32, batch_size=4)
    index = DenseIndex(tmp_path / "index")
    (encoder.doc_encoder() >> index.indexer(progress=False)).index(
        [{"docno": f"d{i}", "text": " ".join(WORDS[i : i + 5])} for i in range(6)])
    export.onnx(encoder, tmp_path / "onnx", sample_docs=["cat sat"], sample_queries=["cat"])
    export.lucene(index, tmp_path / "lucene", kind="flat")
    topics = pd.DataFrame({"qid": ["1"], "query": ["cat sat on mat"]})
    monkeypatch.chdir(tmp_path)
    stage = LuceneDense("lucene", "onnx", k=6)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # the process moves on; the stage still finds its folders
    assert stage.folder == tmp_path / "lucene" and stage.onnx_dir == tmp_path / "onnx"
    exact = (encoder.query_encoder() >> index.retriever(k=6))(topics)
    assert stage(topics)["docno"].tolist() == exact["docno"].tolist()
