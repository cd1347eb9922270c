"""Where pt_dense caches what it builds (BM25 and dense indexes), and how it names a collection there."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path


def cache_dir() -> Path:
    """``$PT_DENSE_CACHE``, else ``~/.cache/pt_dense``."""
    return Path(os.environ.get("PT_DENSE_CACHE") or Path.home() / ".cache" / "pt_dense").expanduser()


def collection_key(dataset) -> str:
    """A readable, collision-safe name for a collection: its name and a hash of where its corpus lives and its
    size and modification time, so an edited corpus gets a fresh cache entry."""
    corpus = getattr(dataset, "_corpus_file", lambda: None)()
    if corpus is not None:
        stat = Path(corpus).stat()
        ident = f"{Path(corpus).resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    else:
        ident = repr(dataset)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(getattr(dataset, "name", "collection")))
    return f"{name}-{hashlib.blake2b(ident.encode(), digest_size=6).hexdigest()}"
