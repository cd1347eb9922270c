"""Writing a DenseIndex: a new index is built whole beside its destination and renamed into place; an existing one
gets a new generation (see :mod:`.generations`) while its current one goes on serving readers."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from pt_dense.errors import IndexExistsError, IndexFormatError, IndexReadOnlyError
from pt_dense.index.generations import current_name, new_generation, remove_unheld, write_lock
from pt_dense.index.layout import ARTIFACT, ARTIFACT_FILE, BASE_FILE, DOCNOS_FILE, META_FILE, VECTORS_FILE
from pt_dense.io.atomic import atomic_dir
from pt_dense.io.checksums import checksums, file_key, relative_files

if TYPE_CHECKING:
    from pt_dense.index.dense_index import DenseIndex

#: derived structures, verified by their own sidecar (see index/structures.py), not by the generation's checksums
UNCHECKED_SUFFIXES = (".faiss", ".faiss.json")
#: what a format-1 index kept in its folder itself (always float32); removed once the folder holds generations
FORMAT1_FILES = (META_FILE, VECTORS_FILE, DOCNOS_FILE, BASE_FILE)


def publish(index: DenseIndex, write: Callable[[Path], dict], *, overwrite: bool = False) -> DenseIndex:
    """Run ``write(folder) -> meta`` into a new generation of ``index`` and make it current; ``index`` then reads it.

    Writers serialise on the index's lock, and ``index`` is moved to the generation that is current *under* the lock
    before ``write`` runs: a change computes from ``index`` inside ``write`` (never from what it read before), so two
    writers in any processes, or two objects on one path, each build on the other's result and nothing is lost.
    An index that exists already is an :class:`IndexExistsError` unless ``overwrite`` (checked before any work and
    again under the writer lock). If ``write`` raises, nothing changes.

    Raises:
        IndexExistsError: the index exists and ``overwrite`` is False.
        IndexReadOnlyError: this user may not write the index's folder.
    """
    try:
        return _publish(index, write, overwrite)
    except PermissionError as err:
        if isinstance(err, IndexReadOnlyError):
            raise
        raise IndexReadOnlyError(f"cannot write {index.path}: {err.strerror} ({err.filename}); write to a folder "
                                 "this user owns") from err


def _publish(index: DenseIndex, write: Callable[[Path], dict], overwrite: bool) -> DenseIndex:
    refuse_existing(index, overwrite)
    if not index.path.exists():
        with atomic_dir(index.path) as tmp:  # a new index appears whole, or not at all
            (tmp / ARTIFACT_FILE).write_text(json.dumps(ARTIFACT))
            _write_generation(tmp, write)
        index.reload()
        return index
    with write_lock(index.path):
        refuse_existing(index, overwrite)
        index.reload()  # build on the generation current now, not the one this object read before the lock
        if not (index.path / ARTIFACT_FILE).exists():
            (index.path / ARTIFACT_FILE).write_text(json.dumps(ARTIFACT))
        _write_generation(index.path, write, _known_checksums(index.path))
        _remove_format1_files(index.path)
        index.reload()  # let go of the generation this object read, so it can be removed
        remove_unheld(index.path)
    return index


def refuse_existing(index: DenseIndex, overwrite: bool) -> None:
    if index.built() and not overwrite:
        raise IndexExistsError(f"{index.path} already exists; pass overwrite=True to replace it (or choose another "
                               "path)")


def _write_generation(index_dir: Path, write: Callable[[Path], dict], known: dict[tuple, str] | None = None) -> None:
    """A new generation from ``write``, its meta.json recording every file's size and SHA-256 (hard links of the
    previous generation's files take their checksum from ``known`` instead of being hashed again)."""
    with new_generation(index_dir) as folder:
        meta = write(folder)
        meta["files"] = {f.name: f.stat().st_size for f in sorted(folder.iterdir())
                         if f.is_file() and not f.name.startswith(".") and not f.name.endswith(UNCHECKED_SUFFIXES)}
        meta["checksums"] = checksums(folder, relative_files(folder, UNCHECKED_SUFFIXES), known)
        (folder / META_FILE).write_text(json.dumps(meta, indent=2))


def _known_checksums(index_dir: Path) -> dict[tuple, str]:
    """{file identity: sha256} of the current generation's files (call under the writer lock)."""
    try:
        folder = index_dir / current_name(index_dir)
        recorded = json.loads((folder / META_FILE).read_text()).get("checksums") or {}
        return {file_key(folder / name): value for name, value in recorded.items() if (folder / name).is_file()}
    except (OSError, ValueError, AttributeError, IndexFormatError):
        return {}  # no generation yet, or one from an older pt_dense: everything is hashed


def _remove_format1_files(index_dir: Path) -> None:
    for name in FORMAT1_FILES:
        (index_dir / name).unlink(missing_ok=True)
    for cached in index_dir.glob("*.faiss"):
        cached.unlink(missing_ok=True)
    shutil.rmtree(index_dir / "corrector", ignore_errors=True)
