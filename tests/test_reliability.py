"""Nothing silent, nothing lost: damaged indexes, refreshes any number of times, resumed and seeded runs, leftovers
of killed writers, read-only indexes, real BEIR downloads and bad input of every kind."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import WORDS, tiny_bert, write_beir
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pt_dense import BiEncoder, EncoderMismatchError, IndexExistsError, IndexFormatError, InputError, datasets
from pt_dense.cli import main
from pt_dense.corrector import Corrector
from pt_dense.index import DenseIndex
from pt_dense.index.generations import CURRENT_FILE
from pt_dense.io.atomic import atomic_dir
from pt_dense.io.cache import cache_dir
from pt_dense.training.run import train_collection

RNG = np.random.default_rng(0)
DOCS = {f"d{i}": " ".join(RNG.choice(WORDS, 8)) for i in range(60)}
TOPICS = pd.DataFrame({"qid": [f"q{i}" for i in range(8)], "query": [" ".join(WORDS[i : i + 3]) for i in range(8)]})
QRELS = pd.DataFrame({"qid": [f"q{i}" for i in range(8)], "docno": [f"d{i}" for i in range(8)], "label": 1})
SETTLE = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def encoder(seed: int) -> BiEncoder:
    return BiEncoder(*tiny_bert(seed), query_max_length=16, doc_max_length=16, batch_size=32)


def vectors_index(path: Path, count: int = 40, dim: int = 8) -> DenseIndex:
    vectors = np.random.default_rng(1).normal(size=(count, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = DenseIndex(path)
    index.indexer(progress=False).index({"docno": f"d{i}", "doc_vec": v} for i, v in enumerate(vectors))
    return index


def search(index: DenseIndex, k: int = 5) -> pd.DataFrame:
    query = np.zeros(index.dim, np.float32)
    query[0] = 1
    return index.retriever(k=k)(pd.DataFrame({"qid": ["1"], "query_vec": [query]}))


# ---------------------------------------------------------------------- an index follows its encoder
def test_an_index_is_refreshed_any_number_of_times_and_follows_its_encoder(tmp_path):
    base, first, second = encoder(0), encoder(1), encoder(2)
    index = DenseIndex(tmp_path / "idx")
    (base.doc_encoder() >> index.indexer(progress=False)).index([{"docno": d, "text": t} for d, t in DOCS.items()])
    query = pd.DataFrame({"qid": ["1"], "query": ["cat dog"]})
    for target in (first, first, second, base):  # again to the same, to a newer one, and back to the base encoder
        corrector = Corrector.fit(index, target, DOCS, sample=20, width=16, epochs=3, progress=False)
        index.refresh(corrector)
        assert index.fingerprint == target.fingerprint and index.base_fingerprint == base.fingerprint
        assert len((target.query_encoder() >> index.retriever(k=3))(query)) == 3
    with pytest.raises(EncoderMismatchError, match="refresh the index with a corrector"):
        (first.query_encoder() >> index.retriever(k=3))(query)
    assert len(list((tmp_path / "idx").glob("gen-*"))) == 1  # old generations went once nothing held them


# ---------------------------------------------------------------------- damaged indexes are never served
def damage_cases():
    def shrink_count(folder):
        meta = json.loads((folder / "meta.json").read_text())
        (folder / "meta.json").write_text(json.dumps(meta | {"count": meta["count"] - 5}))

    def drop_docno(folder):
        lines = (folder / "docnos.txt").read_text().splitlines()
        (folder / "docnos.txt").write_text("\n".join(lines[:-1]) + "\n")

    def extra_rows(folder):
        with open(folder / "vectors.f32", "ab") as f:
            f.write(np.ones((3, 8), np.float32).tobytes())

    def truncate(folder):
        data = (folder / "vectors.f32").read_bytes()
        (folder / "vectors.f32").write_bytes(data[: len(data) // 2 + 3])

    return {
        "meta count smaller than the vectors": (shrink_count, "vectors.f32"),
        "docnos.txt one line short": (drop_docno, "docnos.txt"),
        "extra rows in vectors.f32": (extra_rows, "vectors.f32"),
        "truncated vectors.f32": (truncate, "vectors.f32"),
        "invalid meta.json": (lambda folder: (folder / "meta.json").write_text("{not json"), "meta.json"),
        "meta.json without a dimension": (lambda folder: (folder / "meta.json").write_text('{"format": '
                                          '"pt_dense.dense_index", "count": 3}'), "meta.json"),
    }


@pytest.mark.parametrize("case", list(damage_cases()))
def test_damaged_indexes_are_refused_naming_the_file(tmp_path, case):
    damage, file = damage_cases()[case]
    folder = vectors_index(tmp_path / "idx").folder
    damage(folder)
    with pytest.raises(IndexFormatError, match=file) as raised:
        search(DenseIndex(tmp_path / "idx"))
    assert "rebuild" in str(raised.value) or "not a pt_dense" in str(raised.value)


def test_a_current_pointer_altered_by_hand_is_a_clear_error(tmp_path):
    vectors_index(tmp_path / "idx")
    (tmp_path / "idx" / CURRENT_FILE).write_text("../../etc\n")
    with pytest.raises(IndexFormatError, match="not a generation"):
        len(DenseIndex(tmp_path / "idx"))


@SETTLE
@given(garbage=st.binary(max_size=200))
def test_any_bytes_in_place_of_the_metadata_are_an_index_format_error(tmp_path_factory, garbage):
    folder = tmp_path_factory.mktemp("idx")
    vectors_index(folder / "idx")
    (DenseIndex(folder / "idx").folder / "meta.json").write_bytes(garbage)
    with pytest.raises(IndexFormatError):
        search(DenseIndex(folder / "idx"))


# ---------------------------------------------------------------------- writers: nothing lost, nothing left
def test_readers_keep_their_generation_while_new_ones_are_published(tmp_path):
    old = vectors_index(tmp_path / "idx")
    before = search(old)
    with pytest.raises(IndexExistsError):
        DenseIndex(tmp_path / "idx").indexer(progress=False).index([{"docno": "x", "doc_vec": np.ones(8)}])
    new = DenseIndex(tmp_path / "idx")
    new.indexer(overwrite=True, progress=False).index([{"docno": "x", "doc_vec": np.ones(8, np.float32)}])
    pd.testing.assert_frame_equal(search(old), before)  # the open reader still answers from its generation
    assert search(DenseIndex(tmp_path / "idx"))["docno"].tolist() == ["x"]
    assert old.reload() and search(old)["docno"].tolist() == ["x"]


def test_a_failed_write_changes_nothing_and_leftovers_of_dead_writers_are_cleaned(tmp_path):
    index = vectors_index(tmp_path / "idx")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    (tmp_path / "idx" / f".tmp-{pid}-abc").mkdir()  # what a writer killed mid-generation leaves
    (tmp_path / f".other.tmp-{pid}-xyz").mkdir()  # what a writer killed in atomic_dir leaves

    def crashing():
        yield {"docno": "a", "doc_vec": np.ones(8, np.float32)}
        raise RuntimeError("the encoder died")

    with pytest.raises(RuntimeError):
        DenseIndex(tmp_path / "idx").indexer(overwrite=True, progress=False).index(crashing())
    assert search(DenseIndex(tmp_path / "idx")).equals(search(index))
    assert not list((tmp_path / "idx").glob(".tmp-*"))
    with atomic_dir(tmp_path / "other"):
        pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx", "other"]


def test_atomic_dir_replaces_a_folder_without_a_gap(tmp_path):
    (tmp_path / "dest").mkdir()
    missing, stop = [], threading.Event()

    def watch():
        while not stop.is_set():
            if not (tmp_path / "dest").exists():
                missing.append(1)

    watcher = threading.Thread(target=watch)
    watcher.start()
    for i in range(200):
        with atomic_dir(tmp_path / "dest", overwrite=True) as tmp:
            (tmp / "n").write_text(str(i))
    stop.set()
    watcher.join()
    assert not missing and (tmp_path / "dest" / "n").read_text() == "199"


def test_hnsw_on_a_read_only_index_caches_its_graph_elsewhere(tmp_path, monkeypatch):
    index = vectors_index(tmp_path / "idx", count=300)
    monkeypatch.setattr("pt_dense.index.structures.writable", lambda folder: False)
    found = index.retriever(k=5, kind="hnsw", M=8, ef_construction=40)(search(index).head(1)[["qid", "query_vec"]])
    assert len(found) == 5 and not list(index.folder.glob("*.faiss"))
    assert list((cache_dir() / "faiss").glob(f"{index.meta['build_id']}/*.faiss"))


# ---------------------------------------------------------------------- runs: recorded, refused, reproducible
@pytest.fixture
def tiny_collection(tmp_path):
    docs = [{"docno": d, "title": "", "text": t} for d, t in DOCS.items()]
    queries = TOPICS.to_dict("records")
    data = write_beir(tmp_path / "data", docs, queries, {"train": list(QRELS.itertuples(index=False, name=None))})
    encoder(0).save(tmp_path / "model")
    return tmp_path, data


def test_a_recipe_sets_adapter_negatives_and_settings_and_explicit_flags_win(tiny_collection, capsys):
    from pt_dense.training.recipes import RECIPES, Recipe, register_recipe

    tmp, data = tiny_collection
    register_recipe(Recipe("tiny-test", "LoRA r=2 on every linear layer, two epochs", adapter="lora",
                           settings={"epochs": 2, "batch_size": 4, "lr": 1e-3}, lora={"r": 2, "targets": "all-linear"}))
    try:
        assert main(["train", "--data", str(data), "--model", str(tmp / "model"), "--recipe", "tiny-test",
                     "--out", str(tmp / "run"), "--epochs", "1", "--interpolate", "0.5"]) == 0
        record = json.loads((tmp / "run" / "training.json").read_text())
        assert record["recipe"] == "tiny-test" and record["negatives"] == "in-batch"
        assert record["settings"]["epochs"] == 1 and record["settings"]["lr"] == 1e-3  # the flag wins, the rest holds
        assert record["settings"]["interpolate"] == 0.5
        assert len(record["history"]["loss"]) == 2  # 8 queries in batches of 4, one epoch
        trained = BiEncoder.from_pretrained(tmp / "run")
        assert trained.adapter.config() == {"name": "lora", "r": 2, "alpha": 32, "dropout": 0.1,
                                            "targets": "all-linear"}
        names = [n for n, _ in trained.model.named_parameters() if "lora_A" in n]
        layers = {n.split(".lora_A")[0].rsplit(".", 1)[-1] for n in names}
        assert layers == {"query", "key", "value", "dense"}  # every linear layer, not the default query/value
        plain = encoder(0)
        with pytest.raises(InputError, match=r"recipe 'tiny-test' trains lora, but this encoder is full.*with_lora"):
            plain.fit(TOPICS, QRELS, corpus=DOCS, recipe="tiny-test")
        with pytest.raises(InputError, match=r"unknown recipe 'nope'; registered: .*tiny-test"):
            plain.fit(TOPICS, QRELS, corpus=DOCS, recipe="nope")
        history = plain.with_lora(r=2).fit(TOPICS, QRELS, corpus=DOCS, recipe="tiny-test", progress=False)
        assert len(history["loss"]) == 4  # the recipe's two epochs
    finally:
        RECIPES.unregister("tiny-test")


def test_resume_under_other_settings_is_refused_naming_the_difference(tiny_collection):
    tmp, data = tiny_collection
    common = {"model": str(tmp / "model"), "batch_size": 4, "progress": False}
    train_collection(data, tmp / "run", epochs=2, **common)
    with pytest.raises(InputError, match="already exists"):
        train_collection(data, tmp / "run", epochs=1, **common)
    saved = (tmp / "run" / "adapter_model.safetensors").read_bytes()
    with pytest.raises(InputError, match=r"settings\.epochs: 2 then, 1 now"):
        train_collection(data, tmp / "run", epochs=1, resume=True, **common)
    with pytest.raises(InputError, match=r"settings\.batch_size: 4 then, 8 now"):
        train_collection(data, tmp / "run", epochs=2, resume=True, **common | {"batch_size": 8})
    with pytest.raises(InputError, match=r"encoder\.adapter: 'Lora\(.*\)' then, 'Prompts\(length=32"):
        train_collection(data, tmp / "run", epochs=2, resume=True, adapter="prompts", **common)
    assert (tmp / "run" / "adapter_model.safetensors").read_bytes() == saved  # nothing lost
    train_collection(data, tmp / "run", epochs=2, resume=True, **common)  # the same settings: resumes (done)
    assert (tmp / "run" / "adapter_model.safetensors").read_bytes() == saved


def test_one_seed_gives_bit_identical_adapters(tiny_collection):
    tmp, data = tiny_collection
    for name in ("a", "b"):
        assert main(["train", "--data", str(data), "--model", str(tmp / "model"), "--epochs", "1", "--batch-size",
                     "4", "--seed", "42", "--out", str(tmp / name)]) == 0
    assert (tmp / "a" / "adapter_model.safetensors").read_bytes() == (tmp / "b" / "adapter_model.safetensors"
                                                                       ).read_bytes()
    assert main(["train", "--data", str(data), "--model", str(tmp / "model"), "--epochs", "1", "--batch-size", "4",
                 "--seed", "7", "--out", str(tmp / "c")]) == 0
    assert (tmp / "c" / "adapter_model.safetensors").read_bytes() != (tmp / "a" / "adapter_model.safetensors"
                                                                       ).read_bytes()


# ---------------------------------------------------------------------- bad input: a clear error, not a traceback
def test_command_line_bad_input_is_a_clear_error(tiny_collection, capsys):
    tmp, data = tiny_collection
    cases = [
        (["eval", "--data", str(data), "--split", "train", "--systems", ""], "no system given"),
        (["index", "--data", str(data), "--model", str(tmp / "model"), "--out", str(tmp / "i"), "--batch-size",
          "0"], "must be a whole number of at least 1"),
        (["refresh", "--index", str(tmp / "i"), "--encoder", str(tmp / "model"), "--sample", "nan"],
         "must be a share of the corpus"),
        (["train", "--data", str(data), "--out", str(tmp / "t"), "--interpolate", "0"], "must be a fraction in (0, 1]"),
        (["refresh", "--index", str(tmp / "i"), "--encoder", str(tmp / "model"), "--features", "tf-idf"],
         "invalid choice: 'tf-idf'"),
        (["eval", "--data", str(data), "--split", "dev", "--systems", "bm25"], "has no split 'dev'"),
    ]
    for argv, message in cases:
        try:
            code = main(argv)
        except SystemExit as stop:  # argparse refuses bad values itself
            code = stop.code
        assert code == 2, argv
        assert message in capsys.readouterr().err, argv
    assert not (cache_dir() / "bm25-lucene").exists() or not any(
        data.name in p.name for p in (cache_dir() / "bm25-lucene").iterdir())  # the unknown split built nothing


def test_library_bad_input_is_a_clear_error(tmp_path, tiny_encoder):
    with pytest.raises(InputError, match="not text"):
        tiny_encoder.query_encoder()(pd.DataFrame({"qid": ["1"], "query": [17]}))
    with pytest.raises(InputError, match="not a number"):
        Corrector.fit(vectors_index(tmp_path / "idx"), tiny_encoder, DOCS, sample=float("nan"))
    with pytest.raises(InputError, match="batch_size"):
        BiEncoder(*tiny_bert(), batch_size=0).encode(["cat"], "query")


def test_a_broken_json_line_is_named_by_file_and_line(tmp_path):
    data = write_beir(tmp_path, [{"docno": "1", "title": "", "text": "a b"}], [{"qid": "q", "query": "a"}],
                      {"test": [("q", "1", 1)]})
    with open(data / "queries.jsonl", "a") as f:
        f.write('{"qid": "r", "query": "broken\n')
    with pytest.raises(InputError, match=r"queries\.jsonl, line 2: not valid JSON"):
        datasets.load(data).topics("test")


def test_a_real_beir_download_loads(tmp_path):
    """BEIR's own files: _id/title/text documents, _id/text queries, qrels with a header and three columns."""
    (tmp_path / "qrels").mkdir()
    (tmp_path / "corpus.jsonl").write_text(json.dumps({"_id": "d1", "title": "T", "text": "body one"}) + "\n" +
                                           json.dumps({"_id": "d2", "title": "", "text": "body two"}) + "\n")
    (tmp_path / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "what is one", "metadata": {}}) + "\n")
    (tmp_path / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    data = datasets.load(tmp_path)
    assert data.topics("test").to_dict("records") == [{"qid": "q1", "query": "what is one"}]
    assert data.qrels("test").to_dict("records") == [{"qid": "q1", "docno": "d1", "label": 1}]
    assert list(data.corpus_iter()) == [{"docno": "d1", "text": "T body one"}, {"docno": "d2", "text": "body two"}]
    (tmp_path / "qrels" / "bad.tsv").write_text("q1 d1\n")
    with pytest.raises(InputError, match=r"bad\.tsv: line 1"):
        data.qrels("bad")


@SETTLE
@given(texts=st.lists(st.one_of(st.text(max_size=30), st.none(), st.integers(), st.floats()), min_size=1,
                      max_size=6))
def test_any_query_column_gives_vectors_or_an_input_error(tiny_encoder, texts):
    frame = pd.DataFrame({"qid": [str(i) for i in range(len(texts))], "query": texts})
    try:
        out = tiny_encoder.query_encoder()(frame)
    except InputError:
        assert any(not isinstance(t, str) or not t.strip() for t in texts)
    else:
        assert len(out) == len(texts) and all(np.isfinite(v).all() for v in out["query_vec"])


@SETTLE
@given(docnos=st.lists(st.one_of(st.text(max_size=8), st.none(), st.integers()), min_size=1, max_size=6))
def test_any_docnos_index_cleanly_or_leave_the_index_as_it_was(tmp_path_factory, docnos):
    folder = tmp_path_factory.mktemp("idx")
    index = vectors_index(folder / "idx", count=5)
    before = search(index)
    records = [{"docno": d, "doc_vec": np.ones(8, np.float32)} for d in docnos]
    try:
        DenseIndex(folder / "idx").indexer(overwrite=True, progress=False).index(records)
    except InputError:
        assert search(DenseIndex(folder / "idx")).equals(before)
    else:
        assert DenseIndex(folder / "idx").docnos.tolist() == docnos
    assert not list((folder / "idx").glob(".tmp-*"))


@SETTLE
@given(columns=st.lists(st.sampled_from(["qid", "query", "docno", "text", "score", "x"]), unique=True, max_size=4))
def test_any_frame_missing_a_needed_column_is_named(tiny_encoder, columns):
    frame = pd.DataFrame({c: ["cat"] for c in columns})
    for stage, needed in ((tiny_encoder.query_encoder(), {"qid", "query"}),
                          (tiny_encoder.doc_encoder(), {"docno", "text"})):
        if needed <= set(columns):
            continue
        with pytest.raises(InputError, match=sorted(needed - set(columns))[0]):
            stage(frame)


def test_the_cli_names_a_broken_corpus_line(tiny_collection, capsys):
    tmp, data = tiny_collection
    import gzip

    with gzip.open(data / "corpus.jsonl.gz", "at") as f:
        f.write("{broken\n")
    assert main(["index", "--data", str(data), "--model", str(tmp / "model"), "--out", str(tmp / "i")]) == 2
    assert "corpus.jsonl.gz, line 61: not valid JSON" in capsys.readouterr().err
    assert not (tmp / "i").exists()
