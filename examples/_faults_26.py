"""The cases of issue 26 for examples/faults.py: concurrent writers, shared run folders and artifacts, same-size
damage, permissions, bad FAISS kinds, vectors that lost their encoder's stamp, docnos of any text.

Each case is (name, action, nothing-lost check), fed for real on tiny random models and synthetic vectors.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import pickle
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from pt_dense import DenseIndex
from pt_dense.io.artifacts import unpack_package
from pt_dense.io.atomic import recover
from pt_dense.io.checksums import forget_verified
from pt_dense.training.checkpoints import load as load_checkpoint

Case = tuple[str, Callable[[], object], Callable[[], bool]]


def unit(count: int, seed: int, dim: int = 8) -> np.ndarray:
    rows = np.random.default_rng(seed).normal(size=(count, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def build(path: Path, count: int = 40) -> DenseIndex:
    index = DenseIndex(path)
    index.indexer(progress=False).index({"docno": f"d{i}", "doc_vec": v} for i, v in enumerate(unit(count, 1)))
    return index


def live(path: Path) -> set[str]:
    return {d for docnos, _ in DenseIndex(path).chunks() for d in docnos}


def _adder(path: str, prefix: str, start) -> None:
    index = DenseIndex(path)
    index.meta  # noqa: B018  (read before the other writer publishes)
    start.wait()
    for batch in range(5):
        docnos = [f"{prefix}{batch}-{i}" for i in range(4)]
        index.add(pd.DataFrame({"docno": docnos, "doc_vec": list(unit(4, hash(prefix) % 1000 + batch))}))


def two_processes_add(root: Path) -> Case:
    path = root / "two-adders"
    build(path)
    expected = {f"d{i}" for i in range(40)} | {f"{p}{b}-{i}" for p in "AB" for b in range(5) for i in range(4)}

    def run():
        context = multiprocessing.get_context("spawn")
        start = context.Barrier(2)
        writers = [context.Process(target=_adder, args=(str(path), p, start)) for p in "AB"]
        for writer in writers:
            writer.start()
        for writer in writers:
            writer.join()
        return f"both exit {[w.exitcode for w in writers]}; {len(live(path))} documents of {len(expected)} expected"

    return "two processes adding to one index at once (5 adds each)", run, lambda: live(path) == expected


def delete_during_add(root: Path) -> Case:
    path = root / "delete-during-add"
    build(path)

    def run():
        adder = DenseIndex(path)
        adder.meta  # noqa: B018  (the add read the index, then encodes...)
        DenseIndex(path).delete(["d3"])  # ...while a delete lands
        adder.add(pd.DataFrame({"docno": ["new"], "doc_vec": list(unit(1, 9))}))
        now = live(path)
        return f"d3 {'stays deleted' if 'd3' not in now else 'LIVE AGAIN'}; 'new' {'added' if 'new' in now else 'LOST'}"

    return "a delete landing while an add encodes", run, lambda: "d3" not in live(path) and "new" in live(path)


def two_objects(root: Path) -> Case:
    path = root / "two-objects"
    build(path)

    def run():
        a, b = DenseIndex(path), DenseIndex(path)
        a.meta, b.meta  # noqa: B018
        a.add(pd.DataFrame({"docno": ["A"], "doc_vec": list(unit(1, 5))}))
        b.add(pd.DataFrame({"docno": ["B"], "doc_vec": list(unit(1, 6))}))
        return f"a.add(A); b.add(B) leaves {sorted({'A', 'B'} & live(path))}"

    return "two DenseIndex objects on one path", run, lambda: {"A", "B"} <= live(path)


class _Trap:
    def __reduce__(self):
        return (Path.write_text, (Path(os.environ["PT_DENSE_TRAP"]), "code ran"))


def pickled_optimizer(root: Path) -> Case:
    trap = root / "trap.txt"
    step = root / "handed-run" / "step-00000001"

    def run():
        os.environ["PT_DENSE_TRAP"] = str(trap)
        step.mkdir(parents=True)
        (step / "optimizer.pt").write_bytes(pickle.dumps({"optimizer": _Trap()}))
        (step / "state.json").write_text(json.dumps({"step": 1}))
        return load_checkpoint(step, encoder=None, optimizer=None, scheduler=None)

    return "`train --resume` on a run folder whose optimizer.pt is a hostile pickle", run, lambda: not trap.exists()


def unpacked_modes(root: Path) -> Case:
    index = build(root / "packed")
    package = root / "packed.tar.lz4"

    def run():
        os.environ["PYTERRIER_HOME"] = str(root / "pyterrier")  # PyTerrier's artifact cache, in the temporary folder
        index.build_package(str(package), verbose=False)
        old = os.umask(0)
        try:
            folder = unpack_package(package)
        finally:
            os.umask(old)
        writable = [p for p in (folder, *folder.rglob("*")) if p.stat().st_mode & 0o022]
        os.chmod(folder / "CURRENT", 0o666)  # another user could now replace it: the next load refuses
        try:
            unpack_package(package)
        except Exception as err:
            refused = f"{type(err).__name__}: ...{str(err).split(')', 1)[-1]}"
        return f"unpacked under umask 0: {len(writable)} entries writable by others; if one becomes so: {refused}"

    return "`pt.Artifact.from_url('file://...')` unpacking an index", run, lambda: True


def same_size_damage(root: Path, name: str, damage: Callable[[Path], None]) -> Case:
    path = root / name.replace(" ", "-")

    def run():
        index = build(path)
        damage(index.folder)
        forget_verified()
        query = pd.DataFrame({"qid": ["1"], "query_vec": [unit(1, 0)[0]]})
        return DenseIndex(path).retriever(k=5)(query)["docno"].tolist()

    return name, run, lambda: True


def swap_docnos(folder: Path) -> None:
    lines = (folder / "docnos.txt").read_text().split("\n")
    lines[0], lines[1] = lines[1], lines[0]
    (folder / "docnos.txt").write_text("\n".join(lines))


def nan_row(folder: Path) -> None:
    vectors = np.memmap(folder / "vectors.f32", dtype=np.float32, mode="r+").reshape(-1, 8)
    vectors[3] = np.nan
    vectors.flush()


def modes(root: Path) -> Case:
    path = root / "modes"

    def run():
        old = os.umask(0o022)
        try:
            index = build(path)
        finally:
            os.umask(old)
        shown = {p.name: oct(p.stat().st_mode & 0o777) for p in (index.path, index.folder, index.path / "CURRENT")}
        return f"under umask 022: {shown}"

    return "index modes (were always 0700 / CURRENT 0600)", run, lambda: True


def read_only(root: Path) -> Case:
    path = root / "read-only"
    build(path)

    def run():
        real_open = os.open

        def no_write(file, flags, *args):
            if str(file).endswith((".lock", ".readers")):
                raise PermissionError(13, "Permission denied", str(file))
            return real_open(file, flags, *args)

        os.open = no_write  # what another user meets on a read-only index
        try:
            index = DenseIndex(path)
            hits = len(index.retriever(k=3)(pd.DataFrame({"qid": ["1"], "query_vec": [unit(1, 0)[0]]})))
            index.delete(["d0"])
        except Exception as err:
            return f"searchable ({hits} hits); add/delete: {type(err).__name__}: {str(err).split(';')[0]}"
        finally:
            os.open = real_open
        return "delete went through"

    return "another user's read-only index (searched, then changed)", run, lambda: "d0" in live(path)


def current_leftover(root: Path) -> Case:
    path = root / "current-leftover"
    build(path)
    pid = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                             text=True).stdout)
    leftover = path / f".CURRENT.tmp-{pid}-x1y2"

    def run():
        leftover.write_text("gen-000009\n")
        DenseIndex(path).delete(["d1"])
        return f"removed by the next write ({int(leftover.exists())} left)"

    return "a `.CURRENT.tmp-*` left by a killed writer", run, lambda: True


def missing_meta(root: Path) -> Case:
    path = root / "missing-meta"

    def run():
        (build(path).folder / "meta.json").unlink()
        return DenseIndex(path).meta

    return "a deleted meta.json", run, lambda: True


def killed_fallback_replace(root: Path) -> Case:
    dest = root / "saved-folder"

    def run():
        dest.mkdir()
        (dest / "weights").write_text("old")
        moved = root / f".saved-folder.tmp-{_dead_pid()}-old"
        os.rename(dest, moved)  # the state a save killed between the fallback's two renames leaves
        shutil.copytree(moved, root / f".saved-folder.tmp-{_dead_pid()}-new")
        recover(dest)
        return f"the old folder is back: {(dest / 'weights').read_text()!r}"

    return "a save killed between the two renames of the fallback path (no RENAME_EXCHANGE)", run, \
        lambda: (dest / "weights").exists()


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def cases_26(root: Path) -> list[Case]:
    """Every case of issue 26 handled in the index, run-folder and artifact layers."""
    return [
        two_processes_add(root), delete_during_add(root), two_objects(root), killed_fallback_replace(root),
        pickled_optimizer(root), unpacked_modes(root),
        same_size_damage(root, "two docnos swapped (sizes kept)", swap_docnos),
        same_size_damage(root, "a NaN row written over a vector (sizes kept)", nan_row),
        modes(root), read_only(root), current_leftover(root), missing_meta(root),
    ]
