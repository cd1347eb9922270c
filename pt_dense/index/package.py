"""What ``index.build_package()`` puts in a PyTerrier artifact package: the generation the index object reads.

A DenseIndex folder may also hold older generations still pinned by readers, a writer lock, leftovers of killed
writers and cached FAISS structures; a package holds ``pt_meta.json``, ``CURRENT`` and the one generation (its
vectors, docnos, meta.json, base vectors and corrector after a refresh, and the empty ``.readers`` file readers lock).
Cached structures (``*.faiss``) are left out: they are rebuilt on first use. Unpacked (``pt.Artifact.from_url``), the
folder is an ordinary DenseIndex, checked against its meta.json on open like any other.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import TYPE_CHECKING

from pt_dense.index.generations import CURRENT_FILE, READERS_FILE
from pt_dense.index.layout import ARTIFACT, ARTIFACT_FILE

if TYPE_CHECKING:
    from pt_dense.index.dense_index import DenseIndex

#: derived structures a package leaves out (rebuilt on first use)
CACHED_SUFFIXES = (".faiss", ".faiss.json")  # a structure and its sidecar


def package_files(index: DenseIndex) -> Iterator[tuple[str, str | io.BytesIO]]:
    """(path in the package, file or bytes) for ``pt.Artifact.build_package``."""
    generation = index.generation  # pinned while the package is written
    index.meta  # noqa: B018  (checks every file against meta.json before anything is packed)
    yield ARTIFACT_FILE, io.BytesIO(json.dumps(ARTIFACT).encode())
    folder = generation.folder
    in_generation = folder != index.path  # format 1 kept its files in the index folder itself
    if in_generation:
        yield CURRENT_FILE, io.BytesIO(f"{generation.name}\n".encode())
    prefix = f"{generation.name}/" if in_generation else ""
    for file in sorted(folder.rglob("*")):
        rel = file.relative_to(folder).as_posix()
        if not file.is_file() or file.name.endswith(CACHED_SUFFIXES) or rel == ARTIFACT_FILE:
            continue
        if file.name.startswith(".") and file.name != READERS_FILE:
            continue  # the writer lock, leftovers of killed writers
        yield prefix + rel, str(file)

