"""A collection's dense index under an encoder: built once into a folder (or the cache) and opened again after.

The cache key is (collection content, encoder fingerprint), so a second run with the same encoder encodes nothing,
and an edited collection or a retrained encoder gets an index of its own.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from pt_dense import datasets
from pt_dense.errors import InputError
from pt_dense.index.dense_index import DenseIndex
from pt_dense.io.cache import cache_dir, collection_key


def build_index(data, encoder, path: str | Path, *, overwrite: bool = False, dtype: str = "float32") -> DenseIndex:
    """Encode ``data``'s corpus with ``encoder`` into a new DenseIndex at ``path`` (refused if one exists there,
    unless ``overwrite``); the index records the collection, so a corrector can fetch the texts it re-encodes.
    ``dtype="float16"`` stores the vectors in half the bytes.

    Args:
        data: A collection, or a name or folder for :func:`pt_dense.datasets.load`.
        encoder: A pt_dense encoder object (the index layer loads no model: ``pt-dense index`` turns a model name
            into an encoder first).
        path: The index folder.
        overwrite: Replace an index already at ``path``.
        dtype: How the vectors are stored: ``"float32"`` or ``"float16"``.

    Returns:
        The new index.

    Raises:
        IndexExistsError: An index exists at ``path`` and ``overwrite`` is False (checked before encoding).
        InputError: ``encoder`` is a name or path instead of an encoder.

    Example:
        ::

            index = build_index("scifact", ptd.BiEncoder.from_pretrained("minilm"), "scifact.ptd")
    """
    data = datasets.load(data) if isinstance(data, (str, Path)) else data
    require_encoder(encoder, "build_index")
    index = DenseIndex(path)
    corpus = data.corpus_iter()
    total = len(corpus) if hasattr(corpus, "__len__") else None
    indexer = index.indexer(overwrite=overwrite, total=total, corpus=getattr(data, "source", None), dtype=dtype)
    (encoder.doc_encoder() >> indexer).index(corpus)
    return index


def add_documents(index: DenseIndex | str | Path, documents, encoder, *, replace: bool = False) -> DenseIndex:
    """Encode ``documents`` (a collection, a name or path ``datasets.load`` opens, or ``{"docno", "text"}``
    records) with ``encoder`` (the index's own, checked) and add them to ``index`` (what ``pt-dense add`` runs).

    Args:
        index: A DenseIndex or its folder.
        documents: A collection, a name or folder for :func:`pt_dense.datasets.load`, or ``{"docno", "text"}``
            records.
        encoder: The encoder the index was built with (an object; ``pt-dense add`` loads it by name first).
        replace: Replace documents the index holds already (an update) instead of refusing them.

    Returns:
        The index, reading the new generation.

    Raises:
        EncoderMismatchError: ``encoder`` is not one the index stands for.
        InputError: No documents, (without ``replace``) a docno the index holds already, or ``encoder`` given as a
            name or path.
    """
    index = index if isinstance(index, DenseIndex) else DenseIndex(index)
    require_encoder(encoder, "add_documents")
    index.check_encoder(encoder.fingerprint, what="the encoder given to add documents")
    documents = datasets.load(documents) if isinstance(documents, (str, Path)) else documents
    records = list(documents.corpus_iter() if hasattr(documents, "corpus_iter") else documents)
    frame = encoder.doc_encoder()(pd.DataFrame(records, columns=["docno", "text"]))
    return index.update(frame) if replace else index.add(frame)


def require_encoder(encoder, where: str) -> None:
    """Refuse a model name or path where an encoder object is needed: the index layer loads no model (and no torch).

    Args:
        encoder: What the caller gave.
        where: The function it was given to, for the message.

    Raises:
        InputError: ``encoder`` is a string or a path, or has no ``doc_encoder``.
    """
    if isinstance(encoder, (str, Path)) or not hasattr(encoder, "doc_encoder"):
        raise InputError(f"{where} takes an encoder object, not {encoder!r}: load it first, e.g. "
                         f"ptd.BiEncoder.from_pretrained({str(encoder)!r})")


def delete_documents(index: DenseIndex | str | Path, docnos: str | Iterable[str] = (),
                     docnos_file: str | Path | None = None, *, compact: bool = False) -> DenseIndex:
    """Delete documents given as docnos and/or a file of docnos, then optionally compact the index (what
    ``pt-dense delete`` runs).

    Each docno is taken whole: a string is one docno (``"smith, john"`` is a single docno, commas and spaces
    included), a list is a list of docnos. ``docnos_file`` holds one docno a line (see ``read_docnos_file``).

    Args:
        index: A DenseIndex or its folder.
        docnos: One docno (a string) or several.
        docnos_file: A UTF-8 text file of docnos, one a line; added to ``docnos``.
        compact: Rewrite the index without the deleted rows afterwards (otherwise they stay as tombstones).

    Returns:
        The index, reading the new generation.

    Raises:
        InputError: No docnos, a docno the index lacks (one that reads like a comma-separated list of docnos it
            holds is named as such), or a docnos file that is missing, unreadable or not UTF-8.
    """
    index = index if isinstance(index, DenseIndex) else DenseIndex(index)
    listed = [docnos] if isinstance(docnos, str) else list(docnos)
    if docnos_file is not None:
        listed += read_docnos_file(docnos_file)
    listed = [d for d in listed if d != ""]
    _refuse_split_lists(index, listed)
    index.delete(listed)
    return index.compact() if compact else index


def read_docnos_file(path: str | Path) -> list[str]:
    """The docnos of a text file (UTF-8), one a line: lines end at ``"\\n"`` alone (a ``"\\r\\n"`` ending is
    tolerated), so a docno may hold any other character (``\\x0c``, ``\\x85``, U+2028...); each line is taken whole,
    spaces included, and empty lines are skipped. A missing or unreadable file is an InputError naming it."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError as err:
        raise InputError(f"the docnos file {path} does not exist: give a text file of docnos, one a line") from err
    except IsADirectoryError as err:
        raise InputError(f"the docnos file {path} is a folder: give a text file of docnos, one a line") from err
    except PermissionError as err:
        raise InputError(f"the docnos file {path} cannot be read ({err.strerror}): check its permissions") from err
    except UnicodeDecodeError as err:
        raise InputError(f"the docnos file {path} is not UTF-8 text ({err}): save it as UTF-8") from err
    lines = (line[:-1] if line.endswith("\r") else line for line in text.split("\n"))
    return [line for line in lines if line]


def _refuse_split_lists(index: DenseIndex, docnos: list[str]) -> None:
    """A docno the index lacks that reads like an old comma-separated list of docnos it holds is an InputError that
    says docnos are taken whole, rather than "not in the index" alone."""
    if not docnos:
        return
    absent = [d for d, row in zip(docnos, index.docno_lookup.get_indexer(docnos), strict=True) if row < 0]
    for docno in absent:
        parts = [p.strip() for p in docno.split(",")]
        if len(parts) > 1 and all(parts) and (index.docno_lookup.get_indexer(parts) >= 0).all():
            raise InputError(f"{docno!r} is not a docno of {index.path}, but {parts} are: each docno is taken whole "
                             f"(a docno may hold commas); give them as separate docnos (pt-dense delete --docnos "
                             f"{shlex.join(parts)})")


def cached_index(data, encoder, *, index_dir: str | Path | None = None, overwrite: bool = False) -> DenseIndex:
    """The dense index of ``data``'s corpus under ``encoder``: opened from ``index_dir`` (default: the cache), or
    built there once.

    In the cache each (collection content, encoder) pair has its own folder (:func:`cached_index_path`), so a second
    run with the same encoder encodes nothing.

    Args:
        data: A collection (an object, not a name).
        encoder: A pt_dense encoder.
        index_dir: The index folder (default: the cache's).
        overwrite: Rebuild the index even if it exists.

    Returns:
        The index.

    Raises:
        EncoderMismatchError: The index at ``index_dir`` was built by another encoder.
    """
    index = DenseIndex(Path(index_dir) if index_dir else cached_index_path(data, encoder))
    if overwrite or not index.built():
        index = build_index(data, encoder, index.path, overwrite=overwrite)
    index.check_encoder(encoder.fingerprint, what="the cached index's encoder")
    return index


def cached_index_path(data, encoder) -> Path:
    """Where :func:`cached_index` keeps ``data``'s index under ``encoder`` (one per precision other than fp32, so
    that queries and documents of one run always come from the same arithmetic).

    Args:
        data: A collection.
        encoder: A pt_dense encoder.

    Returns:
        ``<cache>/dense/<collection key>-<fingerprint[:16]>[-<precision>]``: the collection's name and a hash of its
        corpus file's content, then the encoder's fingerprint.
    """
    precision = getattr(encoder, "precision", None)
    suffix = f"-{precision}" if precision not in (None, "fp32") else ""
    return cache_dir() / "dense" / f"{collection_key(data)}-{encoder.fingerprint[:16]}{suffix}"
