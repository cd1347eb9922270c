"""FAISS kinds and their structures: every bad kind or parameter is refused by name before FAISS sees it (a bounded
fuzz in a subprocess shows that no input crashes the process), and a structure is used only for the vectors its
sidecar names."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pt_dense import IndexFormatError, InputError
from pt_dense.index import structures
from pt_dense.index.dense_index import DenseIndex
from pt_dense.index.faiss_kinds import parse_factory
from pt_dense.io.checksums import forget_verified, sha256_file

FUZZ = Path(__file__).with_name("faiss_kinds_fuzz.py")
EXACT_IVF = {"kind": "IVF4,Flat", "nprobe": 4}  # every list probed: the exact top k


def unit_rows(n: int, dim: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def build(path: Path, n: int = 300, dim: int = 16, seed: int = 0) -> DenseIndex:
    index = DenseIndex(path)
    index.indexer(progress=False).index({"docno": f"d{i}", "doc_vec": v} for i, v in enumerate(unit_rows(n, dim, seed)))
    return index


def queries(dim: int = 16) -> pd.DataFrame:
    return pd.DataFrame({"qid": ["q0", "q1", "q2"], "query_vec": list(unit_rows(3, dim, seed=99))})


def top(frame: pd.DataFrame) -> list[tuple[str, str]]:
    return list(zip(frame["qid"], frame["docno"], strict=True))


@pytest.fixture(scope="module")
def index32(tmp_path_factory) -> DenseIndex:
    return build(tmp_path_factory.mktemp("kinds") / "idx", n=300, dim=32)


def test_no_kind_or_parameter_crashes_the_process(tmp_path):
    """The literal cases testers found, then hypothesis draws of real and bogus factory strings and parameters, in a
    subprocess: a FAISS abort there is a failing return code here. Each input ends in results or a PtDenseError."""
    env = os.environ | {"OMP_NUM_THREADS": "2"}
    run = subprocess.run([sys.executable, str(FUZZ), str(tmp_path), "100"], capture_output=True, text=True, env=env,
                         timeout=240, check=False)
    tail = "\n".join(line for line in run.stderr.splitlines() if not line.startswith("WARNING"))[-3000:]
    assert run.returncode == 0, f"the fuzz ended with return code {run.returncode}; its last inputs:\n{tail}"
    outcomes = json.loads(run.stdout.strip().splitlines()[-1])
    assert outcomes["results"] >= 30 and outcomes["refused"] >= 60, outcomes  # both paths exercised


@pytest.mark.parametrize(("kind", "params", "match"), [
    ("hnsw", {"M": 0}, "M must be between 2 and 256, not 0"),
    ("hnsw", {"M": 1}, "M must be between 2 and 256"),
    ("hnsw", {"ef_search": -1}, "ef_search must be between 1 and"),
    ("hnsw", {"ef_search": 0}, "ef_search must be between 1 and"),
    ("hnsw", {"ef_construction": 0}, "ef_construction must be between 1 and"),
    ("hnsw", {"M": 8.0}, "M must be a whole number"),
    ("hnsw", {"ef_search": True}, "ef_search must be a whole number"),
    ("hnsw", {"efSearch": 8}, "does not take"),
    (None, {}, "kind must be a string"),
    ("IDMap,Flat", {}, "IDMap.*add_with_ids"),
    ("Flat,IDMap2", {}, "IDMap.*add_with_ids"),
    ("HNSW0", {}, "HNSW0: its M must be between 2 and 256"),
    ("IVF8_HNSW1,Flat", {}, "its HNSW M must be between 2 and 256"),
    ("HNSW32,PQ8", {}, "L2 distance only"),
    ("IMI2x4,Flat", {}, "L2 distance only"),
    ("PQ4x0", {}, "0-bit codes"),
    ("RR0,Flat", {}, "RR0: its output dimension must be between 1"),
    ("IVF0,Flat", {}, "IVF0: its number of lists must be between 1"),
    ("PQ7", {}, "divisible by 7"),
    ("OPQ10_300,Flat", {}, "outputs 300 dimensions from 32"),
    ("PCA64,Flat", {}, "cannot output 64 dimensions from 32"),
    ("IVF8", {}, "needs a code after it"),
    ("OPQ8", {}, "is a transform: an index must follow it"),
    ("IVF8,Flat,Flat", {}, "cannot follow"),
    ("IVF8,Flat", {"nprobe": 9}, "nprobe must be between 1 and 8, not 9"),
    ("IVF8,Flat", {"nprobe": 0}, "nprobe must be between 1 and 8, not 0"),
    ("IVF8,Flat", {"ef_search": 16}, "ef_search applies to HNSW kinds"),
    ("HNSW16,SQ8", {"nprobe": 2}, "nprobe applies to IVF kinds"),
    ("IVF8,Flat", {"train_size": 0}, "train_size must be at least 1"),
    ("IVF8,Flat", {"seed": -1}, "seed must be at least 0"),
    ("NSG32", {}, "Supported: transforms OPQ"),
    ("IVF8,Flat ", {}, "without spaces"),
])
def test_bad_kinds_and_parameters_are_refused_by_name(index32, kind, params, match):
    with pytest.raises(InputError, match=match):
        index32.retriever(k=10, kind=kind, **params)(queries(32))


@pytest.mark.parametrize("k", [0, -1, "10", 2.5, None, True])
def test_k_must_be_a_positive_whole_number(index32, k):
    with pytest.raises(InputError, match="k must be"):
        index32.retriever(k=k, kind="IVF8,Flat")


def test_a_training_sample_too_small_is_refused_before_training(tmp_path, index32):
    wide = build(tmp_path / "wide", n=300, dim=384)
    with pytest.raises(InputError, match=r"needs more vectors to train.*OPQ16 .*needs at least 384.*holds 300"):
        wide.retriever(k=10, kind="OPQ16,IVF8,PQ16")(queries(384))
    with pytest.raises(InputError, match=r"IVF301 .*needs at least 301"):
        index32.retriever(k=10, kind="IVF301,Flat")(queries(32))
    with pytest.raises(InputError, match=r"PQ4x9 \(512 centroids"):
        index32.retriever(k=10, kind="PQ4x9")(queries(32))
    with pytest.raises(InputError, match=r"IVF8 .*holds 5 \(train_size=5"):
        index32.retriever(k=10, kind="IVF8,Flat", train_size=5)(queries(32))
    served = index32.retriever(k=10, kind="OPQ16,IVF8,PQ16", nprobe=8)(queries(32))  # 32-d: 300 vectors are enough
    assert served.groupby("qid").size().tolist() == [10, 10, 10]


def test_the_grammar_reads_what_faiss_reads():
    kind = parse_factory("OPQ16_64,IVF4k_HNSW16,PQ16x4fs,RFlat")
    assert [s.kind for s in kind.steps] == ["opq", "ivf", "pqfs", "rflat"]
    assert kind.nlist == 4096 and kind.ef_parameter == "quantizer_efSearch"
    assert kind.search_parameters(None, 40) == "nprobe=1,quantizer_efSearch=40"  # FAISS's default for the rest
    assert parse_factory("HNSW32_SQ8").ef_parameter == parse_factory("HNSW,SQ8").ef_parameter == "efSearch"
    assert parse_factory("PCAR16,L2norm,SQfp16").search_parameters(None, None) == ""
    kind.check_dim(32)  # 64 = 4 x 16 dimensions after OPQ; PQ16 divides 64
    with pytest.raises(InputError, match="outputs 64 dimensions from 8"):
        kind.check_dim(8)


# ---------------------------------------------------------------- structures and their sidecars


@pytest.fixture
def two(tmp_path):
    """Two indexes of the same size and dimension, different vectors; A's IVF structure is built."""
    a, b = build(tmp_path / "a", seed=0), build(tmp_path / "b", seed=1)
    a.retriever(k=5, **EXACT_IVF)(queries())
    [file] = a.folder.glob("factory-*.faiss")
    yield a, b, file
    structures.forget_structures()


@pytest.mark.parametrize("with_sidecar", [False, True])
def test_a_structure_copied_from_another_index_is_rebuilt_not_used(two, caplog, with_sidecar):
    a, b, file = two
    shutil.copy(file, b.folder / file.name)
    if with_sidecar:
        shutil.copy(structures.sidecar_path(file), structures.sidecar_path(b.folder / file.name))
    with caplog.at_level(logging.WARNING, logger=structures.__name__):
        got = b.retriever(k=5, **EXACT_IVF)(queries())
    assert top(got) == top(b.retriever(k=5)(queries())) != top(a.retriever(k=5)(queries()))
    assert "is not used" in caplog.text and str(b.folder / file.name) in caplog.text
    sidecar = json.loads(structures.sidecar_path(b.folder / file.name).read_text())
    assert sidecar["vectors"] == structures.vectors_identity(b.meta) != structures.vectors_identity(a.meta)
    assert sidecar["sha256"] == sha256_file(b.folder / file.name)


def test_a_read_only_index_ignores_a_foreign_structure_and_builds_in_the_cache(two, monkeypatch):
    _, b, file = two
    shutil.copy(file, b.folder / file.name)
    shutil.copy(structures.sidecar_path(file), structures.sidecar_path(b.folder / file.name))
    monkeypatch.setattr(structures, "writable", lambda folder: False)
    got = b.retriever(k=5, **EXACT_IVF)(queries())
    assert top(got) == top(b.retriever(k=5)(queries()))
    assert sha256_file(b.folder / file.name) == sha256_file(file)  # left as it was
    cached = structures.cache_dir() / "faiss" / b.meta["build_id"] / file.name
    assert structures.sidecar_path(cached).exists()


def test_a_structure_shipped_with_its_own_sidecar_is_used_as_it_is(two, monkeypatch):
    a, _, _ = two
    structures.forget_structures()
    monkeypatch.setattr(structures, "writable", lambda folder: False)
    monkeypatch.setattr(structures, "save", lambda *args: pytest.fail("a matching structure was rebuilt"))
    assert top(a.retriever(k=5, **EXACT_IVF)(queries())) == top(a.retriever(k=5)(queries()))


@pytest.mark.parametrize("forged", [False, True])
def test_a_damaged_structure_with_a_matching_sidecar_is_an_index_format_error(two, forged):
    a, _, file = two
    file.write_bytes(b"not a FAISS index" * 64)
    if forged:  # a sidecar that also vouches for the garbage: FAISS cannot read it
        sidecar = json.loads(structures.sidecar_path(file).read_text())
        structures.sidecar_path(file).write_text(json.dumps(sidecar | {"sha256": sha256_file(file)}))
    structures.forget_structures()
    forget_verified()
    match = "not a structure FAISS can read" if forged else "does not hold what its writer wrote"
    fix = "remove it; it is rebuilt on first use"
    with pytest.raises(IndexFormatError, match=rf"{re.escape(file.name)}.*{match}.*{fix}"):
        a.retriever(k=5, **EXACT_IVF)(queries())
    file.unlink()  # the fix the message names
    assert top(a.retriever(k=5, **EXACT_IVF)(queries())) == top(a.retriever(k=5)(queries()))


def test_a_garbage_structure_without_a_sidecar_is_rebuilt(two, caplog):
    a, _, file = two
    file.write_bytes(b"garbage")
    structures.sidecar_path(file).unlink()
    structures.forget_structures()
    with caplog.at_level(logging.WARNING, logger=structures.__name__):
        assert top(a.retriever(k=5, **EXACT_IVF)(queries())) == top(a.retriever(k=5)(queries()))
    assert "no readable sidecar" in caplog.text
    assert json.loads(structures.sidecar_path(file).read_text())["sha256"] == sha256_file(file)


def test_delete_links_the_structure_and_its_sidecar_into_the_next_generation(two, caplog):
    a, _, file = two
    inodes = [file.stat().st_ino, structures.sidecar_path(file).stat().st_ino]
    a.delete(["d0"])
    after = DenseIndex(a.path)
    linked = after.folder / file.name
    assert after.folder != file.parent
    assert [linked.stat().st_ino, structures.sidecar_path(linked).stat().st_ino] == inodes
    assert file.name not in after.meta["files"]  # a structure is checked by its sidecar, not by meta.json
    with caplog.at_level(logging.WARNING, logger=structures.__name__):
        got = after.retriever(k=5, **EXACT_IVF)(queries())
    assert "is not used" not in caplog.text and linked.stat().st_ino == inodes[0]  # used, not rebuilt
    assert "d0" not in set(got["docno"]) and top(got) == top(after.retriever(k=5)(queries()))
