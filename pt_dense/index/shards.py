"""Encoding a corpus in shards (separate processes, machines, or the ranks of ``torchrun``) and merging them.

Shard ``i`` of ``n`` encodes the documents at positions ``[i*N//n, (i+1)*N//n)`` of the corpus (N documents) into
its own DenseIndex, ``<out>.shards/<i>-of-<n>``; :func:`merge_shards` checks that all ``n`` shards are there, of
one encoder and one corpus, and streams them in order into ``<out>``: the same docnos in the same order as a
one-process build, and the same vectors (up to the order of floating-point sums in differently padded batches).
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from pt_dense import datasets
from pt_dense.encoders.stages import ENCODER_KEY
from pt_dense.errors import InputError
from pt_dense.index.cached import require_encoder
from pt_dense.index.dense_index import DenseIndex

SHARD = re.compile(r"(\d+)-of-(\d+)")


def parse_shard(text: str) -> tuple[int, int]:
    """Read a ``--shard`` option: ``"i/n"`` (0 <= i < n), or ``"auto"`` for this process's rank under ``torchrun``.

    Args:
        text: ``"i/n"``, or ``"auto"`` (the ``RANK`` and ``WORLD_SIZE`` environment variables; 0 and 1 when unset).

    Returns:
        (i, n): this shard and the number of shards.

    Raises:
        InputError: ``text`` is neither ``"auto"`` nor ``i/n`` with 0 <= i < n.
    """
    if text == "auto":
        return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    match = re.fullmatch(r"(\d+)/(\d+)", text.strip())
    if not match or not int(match.group(1)) < int(match.group(2)):
        raise InputError(f"--shard {text!r}: give i/n with 0 <= i < n (e.g. 0/4), or 'auto' under torchrun")
    return int(match.group(1)), int(match.group(2))


def shard_folder(out: str | Path, shard: int, shards: int) -> Path:
    out = Path(out)
    return out.with_name(out.name + ".shards") / f"{shard:05d}-of-{shards:05d}"


def encode_shard(data, encoder, out: str | Path, shard: int, shards: int, *, overwrite: bool = False,
                 dtype: str = "float32") -> DenseIndex:
    """Encode shard ``shard`` of ``shards`` of ``data``'s corpus into ``<out>.shards/<shard>-of-<shards>`` (vectors
    stored as ``dtype``; the merged index keeps it).

    The shard holds the documents at corpus positions ``[shard*N//shards, (shard+1)*N//shards)`` of the N
    documents; run every shard (in any processes or machines that share the folder), then :func:`merge_shards`.

    Args:
        data: A collection, or a name or folder for :func:`pt_dense.datasets.load`.
        encoder: A pt_dense encoder object (``pt-dense index --shard`` loads it by name first).
        out: The merged index's path; the shard goes in the folder ``<out>.shards`` beside it.
        shard: This shard's number, from 0.
        shards: The number of shards.
        overwrite: Replace this shard if it exists already.
        dtype: How the vectors are stored: ``"float32"`` or ``"float16"``.

    Returns:
        The shard's DenseIndex.

    Raises:
        InputError: ``shard`` is not between 0 and ``shards - 1``, or ``encoder`` is a name or path.
        IndexExistsError: The shard exists and ``overwrite`` is False.

    Example:
        ::

            for i in range(4):  # or one process (machine, torchrun rank) each
                encode_shard("scifact", encoder, "scifact.ptd", i, 4)
            merge_shards("scifact.ptd")
    """
    if not 0 <= shard < shards:
        raise InputError(f"shard {shard} of {shards}: it must be between 0 and {shards - 1}")
    data = datasets.load(data) if isinstance(data, (str, Path)) else data
    require_encoder(encoder, "encode_shard")
    corpus = data.corpus_iter()
    count = len(corpus) if hasattr(corpus, "__len__") else sum(1 for _ in data.corpus_iter())
    start, stop = shard * count // shards, (shard + 1) * count // shards
    return write_shard(itertools.islice(data.corpus_iter(), start, stop), encoder, out, shard, shards,
                       first=start, size=stop - start, corpus_docs=count, corpus=getattr(data, "source", None),
                       overwrite=overwrite, dtype=dtype)


def shard_range(shard: int, shards: int, count: int) -> tuple[int, int]:
    """The corpus positions ``[first, stop)`` of shard ``shard`` of ``shards`` of a corpus of ``count`` documents."""
    return shard * count // shards, (shard + 1) * count // shards


def write_shard(documents: Iterable[dict], encoder, out: str | Path, shard: int, shards: int, *, first: int,
                size: int, corpus_docs: int, corpus: str | None = None, overwrite: bool = False,
                dtype: str = "float32", progress: bool = True) -> DenseIndex:
    """Encode ``documents`` (``docno, text`` records: the ``size`` documents at corpus positions ``first`` ..) into
    shard ``shard`` of ``shards`` of ``out``, the one path every shard lands through (``pt-dense index --shard``, a
    block encoded by a Ray actor); :func:`merge_shards` then makes one index of them.

    Returns:
        The shard's DenseIndex (``<out>.shards/<shard>-of-<shards>``).
    """
    index = DenseIndex(shard_folder(out, shard, shards))
    indexer = index.indexer(overwrite=overwrite, total=size, corpus=corpus, progress=progress, dtype=dtype,
                            shard={"shard": shard, "shards": shards, "first": first, "corpus_docs": corpus_docs})
    (encoder.doc_encoder() >> indexer).index(documents)
    return index


def merge_shards(out: str | Path, *, overwrite: bool = False) -> DenseIndex:
    """One DenseIndex at ``out`` from the shards in ``<out>.shards`` (all of them, of one encoder and corpus).

    The shards are streamed in order, so the merged index has the docnos in corpus order, as a one-process build.
    The shard folders are left in place.

    Args:
        out: The merged index's path (the one the shards were encoded for).
        overwrite: Replace an index already at ``out``.

    Returns:
        The merged index.

    Raises:
        InputError: No shards, not one complete set of them, a shard that is not finished, or shards of different
            encoders, dtypes or corpora.
        IndexExistsError: An index exists at ``out`` and ``overwrite`` is False.
    """
    out = Path(out)
    folder = out.with_name(out.name + ".shards")
    found = sorted((int(m.group(1)), int(m.group(2)), p) for p in folder.glob("*-of-*")
                   if (m := SHARD.fullmatch(p.name)))
    if not found:
        raise InputError(f"no shards in {folder}: encode them with `pt-dense index --shard i/n --out {out}`")
    shards = {n for _, n, _ in found}
    parts = [DenseIndex(p) for _, _, p in found]
    missing = sorted(set(range(max(shards))) - {i for i, _, _ in found})
    if len(shards) > 1 or missing:
        raise InputError(f"{folder} does not hold one complete set of shards (counts {sorted(shards)}, missing "
                         f"{missing}): encode the missing ones, or remove shards of another run")
    unfinished = [p.path.name for p in parts if not p.built()]
    if unfinished:
        raise InputError(f"shards {unfinished} in {folder} are not finished: run them (again) to the end")
    identities = {(p.fingerprint, p.dim, p.dtype.name, p.meta.get("corpus"), p.meta["shard"]["corpus_docs"])
                  for p in parts}
    if len(identities) > 1:
        raise InputError(f"the shards in {folder} come from different encoders, dtypes or corpora: "
                         f"{sorted(identities)}")
    total = sum(len(p) for p in parts)
    index = DenseIndex(out)
    indexer = index.indexer(overwrite=overwrite, total=total, corpus=parts[0].meta.get("corpus"),
                            dtype=parts[0].dtype.name)
    return indexer.index(_records(parts))


def _records(parts: list[DenseIndex]) -> Iterator[dict]:
    for part in parts:
        descriptor = part.meta.get("encoder")
        for docnos, vectors in part.chunks():
            for docno, vector in zip(docnos, vectors, strict=True):
                yield {"docno": docno, "doc_vec": vector, ENCODER_KEY: descriptor}
