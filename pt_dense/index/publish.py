"""Writing a DenseIndex: a new index is built whole beside its destination and renamed into place; an existing one
gets a new generation (see :mod:`.generations`) while its current one goes on serving readers."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from pt_dense.errors import IndexExistsError
from pt_dense.index.generations import new_generation, remove_unheld, write_lock
from pt_dense.index.layout import ARTIFACT, ARTIFACT_FILE, BASE_FILE, DOCNOS_FILE, META_FILE, VECTORS_FILE
from pt_dense.io.atomic import atomic_dir

if TYPE_CHECKING:
    from pt_dense.index.dense_index import DenseIndex

#: what a format-1 index kept in its folder itself (always float32); removed once the folder holds generations
FORMAT1_FILES = (META_FILE, VECTORS_FILE, DOCNOS_FILE, BASE_FILE)


def publish(index: DenseIndex, write: Callable[[Path], dict], *, overwrite: bool = False) -> DenseIndex:
    """Run ``write(folder) -> meta`` into a new generation of ``index`` and make it current; ``index`` then reads it.

    An index that exists already is an :class:`IndexExistsError` unless ``overwrite`` (checked before any work and
    again under the writer lock). If ``write`` raises, nothing changes.
    """
    refuse_existing(index, overwrite)
    if not index.path.exists():
        with atomic_dir(index.path) as tmp:  # a new index appears whole, or not at all
            (tmp / ARTIFACT_FILE).write_text(json.dumps(ARTIFACT))
            _write_generation(tmp, write)
        index.reload()
        return index
    with write_lock(index.path):
        refuse_existing(index, overwrite)
        if not (index.path / ARTIFACT_FILE).exists():
            (index.path / ARTIFACT_FILE).write_text(json.dumps(ARTIFACT))
        _write_generation(index.path, write)
        _remove_format1_files(index.path)
        index.reload()  # let go of the generation this object read, so it can be removed
        remove_unheld(index.path)
    return index


def refuse_existing(index: DenseIndex, overwrite: bool) -> None:
    if index.built() and not overwrite:
        raise IndexExistsError(f"{index.path} already exists; pass overwrite=True to replace it (or choose another "
                               "path)")


def _write_generation(index_dir: Path, write: Callable[[Path], dict]) -> None:
    with new_generation(index_dir) as folder:
        meta = write(folder)
        meta["files"] = {f.name: f.stat().st_size for f in sorted(folder.iterdir())
                         if f.is_file() and not f.name.startswith(".")}
        (folder / META_FILE).write_text(json.dumps(meta, indent=2))


def _remove_format1_files(index_dir: Path) -> None:
    for name in FORMAT1_FILES:
        (index_dir / name).unlink(missing_ok=True)
    for cached in index_dir.glob("*.faiss"):
        cached.unlink(missing_ok=True)
    shutil.rmtree(index_dir / "corrector", ignore_errors=True)
