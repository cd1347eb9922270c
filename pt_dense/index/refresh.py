"""Refreshing a DenseIndex with a corrector: h(base vectors) for every document, without re-encoding the corpus.

The first refresh keeps the vectors the index was built with as ``base.f32``; every refresh starts from them (never
from an earlier correction), writes the corrected ``vectors.f32`` (documents the corrector's sample re-encoded keep
their exact fresh vectors), saves the corrector in ``corrector/``, and records in ``meta.json`` the encoder the index
now stands for (queries from it are accepted) beside the encoder of its base vectors. Like every index write it
happens in a temporary folder renamed into place; cached FAISS structures are dropped, as they indexed old vectors.
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pt_dense.errors import EncoderMismatchError, InputError
from pt_dense.index.layout import ARTIFACT_FILE, BASE_FILE, DOCNOS_FILE, META_FILE, VECTORS_FILE
from pt_dense.io.atomic import atomic_dir

if TYPE_CHECKING:
    from pt_dense.index.dense_index import DenseIndex

CHUNK = 65536


def refresh_index(index: DenseIndex, corrector, path: str | Path | None = None, *, overwrite: bool = False,
                  keep_fresh_sample: bool = True) -> DenseIndex:
    """Write the refreshed version of ``index`` at ``path`` (default: in place) and return it."""
    meta = index.meta
    base_encoder = meta.get("base_encoder") or meta.get("encoder") or {}
    if corrector.dim != index.dim:
        raise InputError(f"the corrector maps {corrector.dim}-d vectors but the index holds {index.dim}-d ones")
    if corrector.source and base_encoder.get("fingerprint") and corrector.source != base_encoder["fingerprint"]:
        raise EncoderMismatchError(
            f"the corrector was fitted on vectors of encoder {corrector.source[:12]}, but the base vectors of "
            f"{index.path} come from {base_encoder['fingerprint'][:12]}: fit it on this index")
    if not corrector.target.get("fingerprint"):
        raise InputError("the corrector does not say which encoder it stands for: build it with Corrector.fit")
    dest = Path(path).expanduser() if path else index.path
    in_place = dest.absolute() == index.path.absolute()
    base_file, base = index.base_file, index.base_vectors
    started = time.perf_counter()
    with atomic_dir(dest, overwrite=overwrite or in_place) as tmp:
        shutil.copyfile(base_file, tmp / BASE_FILE)
        shutil.copyfile(index.path / DOCNOS_FILE, tmp / DOCNOS_FILE)
        shutil.copyfile(index.path / ARTIFACT_FILE, tmp / ARTIFACT_FILE)
        rows, fresh = corrector.fresh_positions(index.docno_lookup)
        if not keep_fresh_sample:
            rows, fresh = rows[:0], fresh[:0]
        normalized = True
        with open(tmp / VECTORS_FILE, "wb") as out:
            for start in range(0, len(index), CHUNK):
                chunk = corrector.apply(np.asarray(base[start : start + CHUNK]))
                inside = (rows >= start) & (rows < start + len(chunk))
                chunk[rows[inside] - start] = fresh[inside]
                normalized = normalized and bool(np.all(np.abs(np.linalg.norm(chunk, axis=1) - 1) < 1e-3))
                out.write(chunk.tobytes())
        corrector.save(tmp / "corrector")
        new_meta = dict(meta) | {
            "encoder": corrector.target, "accepts": [corrector.target["fingerprint"]], "base_encoder": base_encoder,
            "normalized": normalized, "build_id": uuid.uuid4().hex,
            "refreshed": {"corrector": corrector.config(), "fresh_rows_kept": len(rows),
                          "seconds": round(time.perf_counter() - started, 3)},
        }
        (tmp / META_FILE).write_text(json.dumps(new_meta, indent=2))
        del base
    refreshed = index if in_place else type(index)(dest)
    for attr in ("meta", "vectors", "docnos", "docno_lookup"):
        refreshed.__dict__.pop(attr, None)
    return refreshed
