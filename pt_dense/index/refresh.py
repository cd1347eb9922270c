"""Refreshing a DenseIndex with a corrector: h(base vectors) for every document, without re-encoding the corpus.

The first refresh keeps the vectors the index was built with as ``base.f32`` (``.f16`` in a float16 index); every
refresh starts from them (never from an earlier correction), writes the corrected ``vectors.f32`` (documents the
corrector's sample re-encoded keep their exact fresh vectors), saves the corrector in ``corrector/``, and records in
``meta.json`` the encoder the index now stands for (queries from it are accepted) beside the encoder of its base
vectors; so an index follows its encoder through any number of refreshes. A refresh is a new generation: readers keep
the old one until they reload, a crash leaves it current, and cached FAISS structures are not carried over (they
indexed the old vectors). Base vectors and docnos are hard links to the previous generation's files where the file
system allows.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pt_dense.errors import EncoderMismatchError, InputError
from pt_dense.index.layout import DELETED_FILE, DOCNOS_FILE, as_float32, vector_files
from pt_dense.index.publish import publish
from pt_dense.io.atomic import link_or_copy

if TYPE_CHECKING:
    from pt_dense.index.dense_index import DenseIndex

CHUNK = 65536


def refresh_index(index: DenseIndex, corrector, path: str | Path | None = None, *, overwrite: bool = False,
                  keep_fresh_sample: bool = True) -> DenseIndex:
    """Write the refreshed version of ``index`` at ``path`` (default: in place, as a new generation); return it.

    In place, everything is read from the generation current under the writer lock (a change published while the
    corrector was fitted is refreshed too, never lost)."""
    if corrector.dim != index.dim:
        raise InputError(f"the corrector maps {corrector.dim}-d vectors but the index holds {index.dim}-d ones")
    if not corrector.target.get("fingerprint"):
        raise InputError("the corrector does not say which encoder it stands for: build it with Corrector.fit")
    dest = Path(path).expanduser() if path else index.path
    in_place = dest.absolute() == index.path.absolute()
    target = index if in_place else type(index)(dest)

    def write(folder: Path) -> dict:
        started = time.perf_counter()
        meta = index.meta
        if corrector.source and index.base_fingerprint and corrector.source != index.base_fingerprint:
            raise EncoderMismatchError(
                f"the corrector maps vectors of encoder {corrector.source[:12]}, but the base vectors of "
                f"{index.path} come from {index.base_fingerprint[:12]}: fit the corrector on this index "
                "(Corrector.fit(index, ...))")
        base_encoder = meta.get("base_encoder") or meta.get("encoder") or {}
        base_file, base, docnos_file = index.base_file, index.base_vectors, index.folder / DOCNOS_FILE
        rows, fresh = corrector.fresh_positions(index.docno_lookup)
        if not keep_fresh_sample:
            rows, fresh = rows[:0], fresh[:0]
        vectors_name, base_name = vector_files(meta)
        link_or_copy(base_file, folder / base_name)
        link_or_copy(docnos_file, folder / DOCNOS_FILE)
        if (docnos_file.parent / DELETED_FILE).exists():  # the tombstones stay
            link_or_copy(docnos_file.parent / DELETED_FILE, folder / DELETED_FILE)
        normalized = True
        with open(folder / vectors_name, "wb") as out:
            for start in range(0, len(index), CHUNK):
                chunk = corrector.correct(as_float32(base[start : start + CHUNK]), index.docnos[start : start + CHUNK])
                inside = (rows >= start) & (rows < start + len(chunk))
                chunk[rows[inside] - start] = fresh[inside]
                normalized = normalized and bool(np.all(np.abs(np.linalg.norm(chunk, axis=1) - 1) < 1e-3))
                out.write(chunk.astype(index.dtype, copy=False).tobytes())
        corrector.save(folder / "corrector")
        return {k: v for k, v in meta.items() if k not in ("files", "checksums")} | {
            "encoder": corrector.target, "accepts": [corrector.target["fingerprint"]], "base_encoder": base_encoder,
            "normalized": normalized, "build_id": uuid.uuid4().hex,
            "refreshed": {"corrector": corrector.config(), "fresh_rows_kept": len(rows),
                          "seconds": round(time.perf_counter() - started, 3)},
        }

    return publish(target, write, overwrite=overwrite or in_place)
