"""Export a DenseIndex as a pyterrier_dr FlexIndex folder (``ptd.export.flex``), which pyterrier_dr opens with
``FlexIndex(path)`` or ``pt.Artifact.load(path)`` and searches with any of its retrievers.

The vectors go to ``vecs.f4`` unchanged (hard-linked from the index's current generation where the file system
allows: generations never change their files, and pyterrier_dr never writes into ``vecs.f4``), the docnos to
``docnos.npids``, the counts to ``pt_meta.json``; ``pt_dense.json`` beside them records the encoder, so
``ptd.index.open_flex`` on the export checks query vectors as the index did (pyterrier_dr ignores the file).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from pt_dense.errors import InputError
from pt_dense.index.dense_index import DenseIndex
from pt_dense.index.flex import FLEX_DOCNOS, FLEX_META, FLEX_VECTORS, PT_DENSE_META, vectors_probe
from pt_dense.io.atomic import atomic_dir, link_or_copy
from pt_dense.io.validation import docno_problem, shown

CHUNK = 65536


def export_flex(index: DenseIndex, out_dir: str | Path, *, overwrite: bool = False) -> Path:
    """Write ``index`` (any DenseIndex, a FlexIndex view included) as a pyterrier-dr FlexIndex (atomically).

    Deleted documents are left out.

    Args:
        index: The index.
        out_dir: The FlexIndex folder to write.
        overwrite: Replace an existing output folder (refused otherwise).

    Returns:
        The folder written.

    Raises:
        InputError: No live vectors, or a docno a FlexIndex cannot hold.
    """
    from npids import Lookup

    if index.live_count == 0:
        raise InputError(f"{index.path} holds no live vectors: a FlexIndex cannot be empty")
    vectors = index.vectors
    with atomic_dir(out_dir, overwrite=overwrite) as tmp:
        source = getattr(vectors, "filename", None)  # the file a memory map reads
        whole = source and Path(source).stat().st_size == len(index) * index.dim * vectors.itemsize
        if whole and vectors.dtype == np.float32 and not len(index.deleted):
            link_or_copy(Path(source), tmp / FLEX_VECTORS)
            docnos = index.docnos
        else:  # deleted documents are left out, float16 vectors become FlexIndex's float32
            docnos = []
            with open(tmp / FLEX_VECTORS, "wb") as out:
                for chunk_docnos, chunk in index.chunks(CHUNK):
                    out.write(np.ascontiguousarray(chunk, dtype=np.float32).tobytes())
                    docnos.extend(chunk_docnos)
        for docno in docnos:  # an index written before docnos were checked, or a FlexIndex view
            if problem := docno_problem(docno):
                raise InputError(f"docno {shown(docno)} cannot go to a FlexIndex: {problem}")
        Lookup.build([str(d) for d in docnos], tmp / FLEX_DOCNOS, return_self=False)
        (tmp / FLEX_META).write_text(json.dumps({"type": "dense_index", "format": "flex", "vec_size": index.dim,
                                                 "doc_count": len(docnos)}))
        meta = index.meta
        (tmp / PT_DENSE_META).write_text(json.dumps({
            "format": "pt_dense.flex_export", "count": len(docnos), "dim": index.dim,
            "encoder": meta.get("encoder"), "accepts": meta.get("accepts") or [],
            "vectors_probe": vectors_probe(tmp / FLEX_VECTORS), "source": str(index.path),
        }, indent=2))
    return Path(out_dir)


__all__ = ["export_flex"]
