"""Input checks shared by the stages: missing columns, empty or missing texts, docnos, vector shapes."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from pt_dense.errors import InputError, MissingColumnsError


def require_columns(columns: Iterable[str], required: Sequence[str], stage: object) -> None:
    """Raise :class:`MissingColumnsError` naming the columns of ``required`` that ``columns`` lacks; ``stage`` is the
    stage (or, as a string, the name of the frame) that needs them."""
    present = set(columns)
    missing = [c for c in required if c not in present]
    if missing:
        name = stage if isinstance(stage, str) else type(stage).__name__
        raise MissingColumnsError(
            f"{name} needs the column(s) {missing} but its input has {sorted(present)}; "
            f"put a stage that produces them before it (e.g. a retriever for 'docno', an encoder for '*_vec')"
        )


#: Lucene's limit on one term, in UTF-8 bytes: Anserini indexes a docno as a term (Lucene exports, BM25), and a longer
#: one makes its indexing thread fail, silently losing documents
MAX_DOCNO_BYTES = 32766


def docno_problem(docno: object) -> str | None:
    """Why ``docno`` cannot be a docno, or None when it can.

    A docno is any non-empty text without a line break (``"\\n"``, ``"\\r"``: docnos are stored one a line) or a NUL
    (``"\\x00"``: numpy's fixed-width strings, which FlexIndex docnos come back as, drop a trailing one, and C tools
    end a string there) that UTF-8 can encode (no lone surrogate) in at most :data:`MAX_DOCNO_BYTES` bytes. Every
    other character (commas, spaces, tabs, quotes, ``\\x0c``, ``\\x85``, U+2028, emoji...) is kept exactly by every
    stage and export.
    """
    if not isinstance(docno, str) or not docno:
        return "docnos must be non-empty strings"
    if "\n" in docno or "\r" in docno:
        return "a docno may not hold a line break (\\n or \\r): docnos are stored one a line; replace them"
    if "\x00" in docno:
        return ("a docno may not hold a NUL (\\x00): FlexIndex exports and C tools would cut it; remove or replace "
                "it")
    try:
        size = len(docno.encode("utf-8"))
    except UnicodeEncodeError:
        return "it holds a lone surrogate, which UTF-8 cannot store; give valid Unicode text"
    if size > MAX_DOCNO_BYTES:
        return (f"it is {size:,} bytes long in UTF-8, more than Lucene's {MAX_DOCNO_BYTES:,} (a docno is a Lucene term "
                "in the Lucene exports and BM25); shorten it, e.g. to a hash of the text")
    return None


def shown(docno: object, limit: int = 80) -> str:
    """``repr(docno)``, cut to about ``limit`` characters for an error message."""
    text = repr(docno)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(docno) if isinstance(docno, str) else '?'} chars)"


def clean_texts(values: Sequence[object], ids: Sequence[object], what: str) -> list[str]:
    """Texts as a list of str; a None/NaN/non-string or blank one is an :class:`InputError` that names its id."""
    typed = [(i, v) for i, v in zip(ids, values, strict=True)
             if v is not None and not isinstance(v, str) and not (isinstance(v, float) and v != v)]
    if typed:
        i, v = typed[0]
        raise InputError(f"{len(typed)} {what}(s) are not text (e.g. id {i!r} holds {type(v).__name__} {v!r}); "
                         "convert them to strings first (e.g. with .astype(str))")
    bad = [i for i, v in zip(ids, values, strict=True) if not isinstance(v, str) or not v.strip()]
    if bad:
        raise InputError(
            f"{len(bad)} {what}(s) are empty, None or NaN (ids: {list(bad)[:5]}{'...' if len(bad) > 5 else ''}); "
            f"drop or fill them before encoding"
        )
    return list(values)  # type: ignore[arg-type]


def stack_vectors(column: pd.Series, dim: int | None, what: str) -> np.ndarray:
    """A column of 1-d vectors as one C-contiguous float32 matrix, checked against ``dim``."""
    if len(column) == 0:
        return np.zeros((0, dim or 0), dtype=np.float32)
    try:
        matrix = np.ascontiguousarray(np.stack(column.to_numpy()), dtype=np.float32)
    except (ValueError, TypeError) as err:
        raise InputError(f"{what} holds vectors of different lengths or non-numeric values: {err}") from err
    if matrix.ndim != 2:
        raise InputError(f"{what} must hold 1-d vectors, got shape {matrix.shape[1:]}")
    if dim is not None and matrix.shape[1] != dim:
        raise InputError(
            f"{what} has dimension {matrix.shape[1]} but the index has dimension {dim}: "
            "encode with the encoder that built the index"
        )
    if not np.isfinite(matrix).all():
        raise InputError(f"{what} holds NaN or infinite values")
    return matrix
