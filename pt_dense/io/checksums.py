"""Content checksums of files written once and read many times (index generations): recorded when a generation is
published, verified on the first read of each file in a process, so damage that keeps a file's size (a swapped
docno, a NaN written over a vector) is an error instead of wrong results.

SHA-256 reads about 1 GB/s on one core here; a file is hashed once per process (keyed by its inode, size and
modification time), and a hard link of a file whose checksum is already known is never hashed again.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable
from pathlib import Path

from tqdm.auto import tqdm

from pt_dense.errors import PtDenseError

BLOCK = 1 << 22
#: files larger than this show a progress bar while they are verified
BAR_BYTES = 1 << 30
_VERIFIED: set[tuple] = set()
_LOCK = threading.Lock()


def file_key(path: Path) -> tuple:
    """What identifies a file's content without reading it: device, inode, size, modification time."""
    stat = path.stat()
    return stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path, *, desc: str | None = None) -> str:
    """The SHA-256 of ``path``, streamed (a progress bar for files over :data:`BAR_BYTES` when ``desc`` is given)."""
    digest = hashlib.sha256()
    size = path.stat().st_size
    with open(path, "rb") as file, tqdm(total=size, unit="B", unit_scale=True, desc=desc,
                                        disable=desc is None or size < BAR_BYTES) as bar:
        while block := file.read(BLOCK):
            digest.update(block)
            bar.update(len(block))
    return digest.hexdigest()


def checksums(folder: Path, names: Iterable[str], known: dict[tuple, str] | None = None) -> dict[str, str]:
    """{relative name: sha256} of the files ``names`` under ``folder``; a file whose :func:`file_key` is in
    ``known`` (a hard link of an already recorded file) takes its checksum from there."""
    known = known or {}
    return {name: known.get(file_key(folder / name)) or sha256_file(folder / name) for name in names}


def verify(path: Path, expected: str | None, error: type[PtDenseError], fix: str, data: bytes | None = None, *,
           again: bool = False) -> None:
    """Raise ``error`` if ``path`` (or ``data``, its bytes already read) does not hash to ``expected``; None expects
    nothing (files of older indexes). A file that passed is not hashed again in this process unless ``again``."""
    if expected is None:
        return
    try:
        key = file_key(path)
    except FileNotFoundError as err:
        raise error(f"{path} is missing: {fix}") from err
    with _LOCK:
        if key in _VERIFIED and not again:
            return
    actual = sha256_bytes(data) if data is not None else sha256_file(path, desc=f"verifying {path.name}")
    if actual != expected:
        raise error(f"{path} does not hold what its writer wrote (its SHA-256 differs from the one recorded at "
                    f"publish time, though its size may be the same): {fix}")
    with _LOCK:
        _VERIFIED.add(key)


def forget_verified() -> None:
    """Hash every file again on its next read (tests, or after restoring files in place)."""
    with _LOCK:
        _VERIFIED.clear()


def relative_files(folder: Path, skip_suffixes: tuple[str, ...] = ()) -> list[str]:
    """Every file under ``folder`` (relative POSIX names, sorted) except hidden ones and ``skip_suffixes``."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                  if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
                  and not p.name.endswith(skip_suffixes))


__all__ = ["checksums", "file_key", "forget_verified", "relative_files", "sha256_bytes", "sha256_file", "verify"]
