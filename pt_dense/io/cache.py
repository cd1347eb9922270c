"""Where pt_dense caches what it builds (BM25 and dense indexes), and how it names a collection there."""

from __future__ import annotations

import functools
import hashlib
import os
import re
from pathlib import Path


def cache_dir() -> Path:
    """``$PT_DENSE_CACHE``, else ``~/.cache/pt_dense``."""
    return Path(os.environ.get("PT_DENSE_CACHE") or Path.home() / ".cache" / "pt_dense").expanduser()


def collection_key(dataset) -> str:
    """A readable, collision-safe name for a collection: its name and a hash of its corpus file's content, so an
    edited corpus gets a fresh cache entry while a copied, moved or re-mounted one keeps its cached indexes."""
    corpus = getattr(dataset, "_corpus_file", lambda: None)()
    if corpus is not None:
        stat = Path(corpus).stat()
        ident = _content_digest(str(Path(corpus).resolve()), stat.st_size, stat.st_mtime_ns)
    else:
        ident = repr(dataset)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(getattr(dataset, "name", "collection")))
    return f"{name}-{hashlib.blake2b(ident.encode(), digest_size=6).hexdigest()}"


@functools.lru_cache(maxsize=64)
def _content_digest(path: str, size: int, mtime_ns: int) -> str:
    """blake2b of a file's bytes (about 1 s a GB), memoised by path, size and modification time."""
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return f"{size}|{digest.hexdigest()}"
