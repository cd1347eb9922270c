"""What an index, a run folder or an artifact holds is what its writer wrote, readable by whom it should be, and never
a way in: checksums, permissions, leftovers, safe training state, recovery of an interrupted replace."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pt_dense import IndexFormatError, InputError, PtDenseError
from pt_dense.errors import IndexReadOnlyError
from pt_dense.index import DenseIndex
from pt_dense.io import checksums as checksums_module
from pt_dense.io.artifacts import check_unpacked, unpack_package
from pt_dense.io.atomic import atomic_dir, recover
from pt_dense.training.checkpoints import load as load_checkpoint
from pt_dense.training.safe_state import load_state, save_state

DIM = 8
TESTS = Path(__file__).parent


def unit(n: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def build(path: Path, count: int = 30) -> DenseIndex:
    index = DenseIndex(path)
    index.indexer(progress=False).index({"docno": f"d{i:03d}", "doc_vec": v} for i, v in enumerate(unit(count, 0)))
    return index


def search(index: DenseIndex, k: int = 5) -> list[str]:
    return index.retriever(k=k)(pd.DataFrame({"qid": ["1"], "query_vec": [unit(1, 99)[0]]}))["docno"].tolist()


@pytest.fixture(autouse=True)
def fresh_verification():
    checksums_module.forget_verified()
    yield
    checksums_module.forget_verified()


# ---------------------------------------------------------------------------------------------------- checksums
def swap_two_docnos(folder: Path) -> None:
    lines = (folder / "docnos.txt").read_text().split("\n")
    lines[0], lines[1] = lines[1], lines[0]
    (folder / "docnos.txt").write_text("\n".join(lines))


def nan_row(folder: Path) -> None:
    vectors = np.memmap(folder / "vectors.f32", dtype=np.float32, mode="r+").reshape(-1, DIM)
    vectors[3] = np.nan
    vectors.flush()


@pytest.mark.parametrize("damage", [swap_two_docnos, nan_row])
def test_same_size_damage_is_an_index_format_error_and_verify_false_trusts(tmp_path, damage):
    index = build(tmp_path / "idx")
    before = {f.name: f.stat().st_size for f in index.folder.iterdir()}
    damage(index.folder)
    assert {f.name: f.stat().st_size for f in index.folder.iterdir()} == before  # every size as recorded
    with pytest.raises(IndexFormatError, match="SHA-256"):
        search(DenseIndex(index.path))
    with pytest.raises(IndexFormatError, match="SHA-256"):
        DenseIndex(index.path).verify_files()
    assert len(search(DenseIndex(index.path, verify=False))) == 5


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_same_size_byte_change_is_found_by_verify(tmp_path_factory, data):
    index = build(tmp_path_factory.mktemp("idx") / "idx", count=10)
    names = sorted(json.loads((index.folder / "meta.json").read_text())["checksums"])
    name = data.draw(st.sampled_from(names))
    raw = bytearray((index.folder / name).read_bytes())
    offset = data.draw(st.integers(0, len(raw) - 1))
    raw[offset] ^= data.draw(st.integers(1, 255))
    (index.folder / name).write_bytes(bytes(raw))
    checksums_module.forget_verified()
    with pytest.raises(IndexFormatError, match=name.replace(".", r"\.")):
        DenseIndex(index.path).verify_files()


def test_a_delete_reuses_the_checksums_of_the_files_it_links(tmp_path, monkeypatch):
    index = build(tmp_path / "idx")
    first = dict(index.meta["checksums"])
    hashed: list[str] = []
    real = checksums_module.sha256_file
    monkeypatch.setattr(checksums_module, "sha256_file", lambda path, **kw: hashed.append(path.name) or real(path))
    index.delete(["d001"])
    assert "vectors.f32" not in hashed and "docnos.txt" not in hashed  # hard links of recorded files
    assert index.meta["checksums"]["vectors.f32"] == first["vectors.f32"]
    assert "deleted.i64" in index.meta["checksums"] and index.verify_files()


def test_the_cli_verify_command_names_a_damaged_file(tmp_path, capsys):
    from pt_dense.cli import main

    index = build(tmp_path / "idx")
    assert main(["verify", str(index.path)]) == 0
    assert "ok" in capsys.readouterr().out
    nan_row(index.folder)
    checksums_module.forget_verified()
    assert main(["verify", str(index.path)]) != 0
    assert "vectors.f32" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------------- leftovers
def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_killed_writers_current_tmp_file_is_removed_by_the_next_writer(tmp_path):
    index = build(tmp_path / "idx")
    leftover = index.path / f".CURRENT.tmp-{dead_pid()}-abcd"
    leftover.write_text("gen-000009\n")
    index.delete(["d000"])
    assert not leftover.exists()


def test_a_deleted_meta_json_is_named(tmp_path):
    index = build(tmp_path / "idx")
    (index.folder / "meta.json").unlink()
    with pytest.raises(IndexFormatError, match=r"meta\.json is missing"):
        DenseIndex(index.path).meta  # noqa: B018


# ---------------------------------------------------------------------------------------------------- permissions
@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_modes_follow_the_umask(tmp_path, mask):
    old = os.umask(mask)
    try:
        index = build(tmp_path / "idx")
        index.delete(["d000"])
    finally:
        os.umask(old)
    for path in (index.path, index.folder, index.path / "CURRENT", index.folder / ".readers",
                 index.folder / "meta.json", index.path / ".lock"):
        expected = (0o777 if path.is_dir() else 0o666) & ~mask
        assert path.stat().st_mode & 0o777 == expected, path


def as_nobody(code: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a process of the user nobody (root can switch; nobody has no rights on tmp_path's files)."""
    home = Path(tempfile.mkdtemp(prefix="pt-dense-nobody-"))
    os.chown(home, 65534, 65534)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=home,
                          env=os.environ | {"PYTHONPATH": os.pathsep.join(sys.path), "HOME": str(home),
                                            "PT_DENSE_CACHE": str(home / "cache")},
                          user=65534, group=65534, extra_groups=[])


def reachable_by_others(path: Path) -> bool:
    """Whether a user with no rights of its own can run ``path`` (every folder above it searchable by others)."""
    path = path.resolve()
    return bool(path.stat().st_mode & 0o001) and all(p.stat().st_mode & 0o001 for p in path.parents)


needs_root = pytest.mark.skipif(os.geteuid() != 0 or not reachable_by_others(Path(sys.executable)),
                                reason="needs root, and a Python that another user may run")


def test_an_index_made_under_umask_022_is_readable_by_others_and_read_unpinned_if_it_cannot_be_locked(
        tmp_path, monkeypatch):
    old = os.umask(0o022)
    try:
        index = build(tmp_path / "idx")
    finally:
        os.umask(old)
    for path in (index.path, *index.path.rglob("*")):
        assert path.stat().st_mode & (0o005 if path.is_dir() else 0o004), path  # others may read (and enter)
    expected = search(index)
    real_open = os.open

    def no_lock(path, flags, *args):
        if str(path).endswith((".readers", ".lock")):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", no_lock)  # what another user meets on an index made before modes followed umask
    reader = DenseIndex(index.path)
    assert search(reader) == expected
    with pytest.raises(IndexReadOnlyError, match="may not write"):
        reader.delete(["d000"])


@needs_root
def test_another_users_index_is_searchable_and_refuses_changes_by_name():
    shared = Path(tempfile.mkdtemp(prefix="pt-dense-shared-"))
    os.chmod(shared, 0o755)  # the index's owner lets others read it (and nothing more)
    index = build(shared / "idx")
    expected = search(index)
    code = f"""
import numpy as np, pandas as pd
from pt_dense.index import DenseIndex
from pt_dense.errors import IndexReadOnlyError
index = DenseIndex({str(index.path)!r})
query = np.random.default_rng(99).normal(size=(1, {DIM})).astype(np.float32)
query /= np.linalg.norm(query)
print(",".join(index.retriever(k=5)(pd.DataFrame({{"qid": ["1"], "query_vec": [query[0]]}}))["docno"]))
try:
    index.delete(["d000"])
except IndexReadOnlyError as err:
    print("refused:", err)
"""
    result = as_nobody(code)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0].split(",") == expected
    assert lines[1].startswith("refused:") and "may not write" in lines[1]


# ---------------------------------------------------------------------------------------------------- artifacts
def test_an_unpacked_artifact_is_writable_by_its_owner_alone(tmp_path, monkeypatch):
    import pyterrier as pt

    monkeypatch.setenv("PYTERRIER_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(pt.io, "pyterrier_home", lambda: str(tmp_path / "home"))
    index = build(tmp_path / "idx")
    package = tmp_path / "idx.tar.lz4"
    index.build_package(str(package))
    old = os.umask(0)
    try:
        folder = unpack_package(package)
    finally:
        os.umask(old)
    modes = [p.stat().st_mode for p in (folder, *folder.rglob("*"))]
    assert all(mode & 0o022 == 0 for mode in modes)
    assert search(DenseIndex(folder)) == search(index)
    os.chmod(folder / "CURRENT", 0o666)  # as a folder PyTerrier unpacked (0777) would let another user do
    with pytest.raises(InputError, match="not trusted"):
        unpack_package(package)
    with pytest.raises(InputError, match="not trusted"):
        check_unpacked(folder)


# ---------------------------------------------------------------------------------------------------- run folders
class Trap:
    def __reduce__(self):
        return (Path.write_text, (Path(os.environ["PT_DENSE_TRAP"]), "code ran"))


def test_resuming_from_a_pickled_optimiser_state_runs_no_code(tmp_path, monkeypatch):
    trap = tmp_path / "trap.txt"
    monkeypatch.setenv("PT_DENSE_TRAP", str(trap))
    step = tmp_path / "run" / "step-00000001"
    step.mkdir(parents=True)
    (step / "optimizer.pt").write_bytes(pickle.dumps({"optimizer": Trap()}))
    (step / "state.json").write_text(json.dumps({"step": 1}))
    with pytest.raises(InputError, match="pickle that can run code"):
        load_checkpoint(step, encoder=None, optimizer=None, scheduler=None)
    assert not trap.exists()


def test_training_state_round_trips_as_data(tmp_path):
    import random

    import torch

    state = {"rng": {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()},
             "groups": [{"betas": (0.9, 0.999), "lr": 1e-3, "params": [0, 1]}], 3: torch.ones(2), "none": None}
    save_state(state, tmp_path / "state")
    loaded = load_state(tmp_path / "state")
    assert loaded["rng"]["python"] == state["rng"]["python"]
    assert np.array_equal(loaded["rng"]["numpy"][1], state["rng"]["numpy"][1])
    assert torch.equal(loaded["rng"]["torch"], state["rng"]["torch"]) and torch.equal(loaded[3], torch.ones(2))
    assert loaded["groups"][0]["betas"] == (0.9, 0.999) and loaded["none"] is None
    (tmp_path / "state.json").write_text("{not json")
    with pytest.raises(InputError, match="damaged"):
        load_state(tmp_path / "state")
    with pytest.raises(TypeError):
        save_state({"f": Trap()}, tmp_path / "other")


# ---------------------------------------------------------------------------------------------------- replace
KILLED_SAVE = """
import os, signal, sys
sys.path.insert(0, {tests!r})
import pt_dense.io.atomic as atomic
from conftest import tiny_bert
from pt_dense import BiEncoder
atomic.exchange = lambda a, b: False  # a file system without RENAME_EXCHANGE: the fallback path
real = os.replace
def replace(a, b):
    real(a, b)
    if str(b).endswith("-old"):  # dest moved out of the way, the new folder not yet in its place
        os.kill(os.getpid(), signal.SIGKILL)
atomic.os.replace = replace
model, tokenizer = tiny_bert(seed=1)
BiEncoder(model, tokenizer, name="second").save({dest!r})
"""


def test_a_save_killed_between_the_fallback_renames_leaves_the_old_folder(tmp_path):
    from conftest import tiny_bert

    from pt_dense import BiEncoder

    dest = tmp_path / "encoder"
    model, tokenizer = tiny_bert(seed=0)
    first = BiEncoder(model, tokenizer, name="first")
    first.save(dest)
    result = subprocess.run([sys.executable, "-c", KILLED_SAVE.format(tests=str(TESTS), dest=str(dest))],
                            timeout=300)
    assert result.returncode == -signal.SIGKILL
    assert not dest.exists()  # the state the kill left
    loaded = BiEncoder.from_pretrained(str(dest))
    assert loaded.fingerprint == BiEncoder.from_pretrained(str(dest)).fingerprint
    assert np.allclose(loaded.encode(["cat dog"], "query"), first.encode(["cat dog"], "query"), atol=1e-6)


def test_recover_leaves_a_live_writers_folder_alone(tmp_path):
    dest = tmp_path / "out"
    moved = tmp_path / f".out.tmp-{os.getpid()}-old"
    moved.mkdir()
    assert not recover(dest).exists() and moved.exists()  # its writer (this process) may still finish
    with atomic_dir(dest) as tmp:
        (tmp / "file").write_text("new")
    assert (dest / "file").read_text() == "new"


def test_every_failure_here_is_a_pt_dense_error():
    assert issubclass(IndexReadOnlyError, PtDenseError) and issubclass(IndexReadOnlyError, PermissionError)


def test_an_index_of_stamped_rows_without_an_encoder_stage_knows_its_encoder(tmp_path, tiny_encoder):
    from pt_dense import EncoderMismatchError

    texts = ["cat dog", "gene protein", "blood brain"]
    index = DenseIndex(tmp_path / "idx")
    index.indexer(progress=False).index(
        {"docno": f"d{i}", "doc_vec": v} for i, v in enumerate(tiny_encoder.encode(texts, "doc")))
    assert index.fingerprint == tiny_encoder.fingerprint
    with pytest.raises(EncoderMismatchError):
        index.retriever(k=2)(pd.DataFrame({"qid": ["1"], "query_vec": [np.ones(index.dim, np.float32)]}))


def test_search_structures_in_a_package_are_never_unpacked(tmp_path, monkeypatch):
    import io
    import tarfile

    from lz4.frame import LZ4FrameFile

    monkeypatch.setenv("PYTERRIER_HOME", str(tmp_path / "home"))
    index = build(tmp_path / "idx")
    package = tmp_path / "hostile.tar.lz4"
    with LZ4FrameFile(package, "wb") as raw, tarfile.open(fileobj=raw, mode="w|") as tar:
        for file in sorted(index.path.rglob("*")):
            if file.is_file() and file.name != ".lock":
                tar.add(file, arcname=file.relative_to(index.path).as_posix())
        for name in ("hnsw-M32-efc200.faiss", "hnsw-M32-efc200.faiss.json"):
            data = b"not a structure of these vectors"
            info = tarfile.TarInfo(f"{index.folder.name}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    folder = unpack_package(package)
    assert not list(folder.rglob("*.faiss*"))
    assert search(DenseIndex(folder)) == search(index)
