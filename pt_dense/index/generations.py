"""Generations: how a DenseIndex folder changes without any reader ever seeing a gap or half a write.

    <index>/CURRENT        the name of the newest complete generation; replaced atomically (a rename)
    <index>/gen-000003/    meta.json, vectors.f32, docnos.txt, ...: written under a temporary name, renamed when
                           complete, never changed afterwards
    <index>/.lock          writers hold it exclusively: one writer at a time
    <index>/gen-*/.readers readers hold a shared lock on it while the generation is open; a writer removes an old
                           generation only when it can lock it exclusively (no reader holds it)

A reader reads CURRENT and pins that generation; if a writer removed it in between, the reader reads CURRENT again.
A writer killed at any point leaves the previous generation current and intact; what it left half-written
(``.tmp-<pid>-*``) is removed by the next writer once that process is gone. Locks are ``flock`` locks, released by
the kernel when a process dies.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from pt_dense.errors import IndexFormatError, IndexReadOnlyError
from pt_dense.index.layout import META_FILE, REBUILD
from pt_dense.io.atomic import follow_umask, fsync, remove_dead, replace_file

CURRENT_FILE = "CURRENT"
WRITE_LOCK = ".lock"
READERS_FILE = ".readers"
GENERATION = re.compile(r"gen-(\d{6,})")
#: what killed writers leave: generation folders (``.tmp-<pid>-*``, ``.trash-<pid>-*``) and CURRENT's temporary file
LEFTOVER = re.compile(rf"\.(?:{CURRENT_FILE}\.)?(tmp|trash)-(?P<pid>\d+)-")
OPEN_ATTEMPTS = 1000


class Generation:
    """One open generation: its folder, pinned by a shared lock until ``close()`` (or garbage collection)."""

    def __init__(self, folder: Path, lock_fd: int | None = None):
        self.folder, self._lock_fd = folder, lock_fd

    @property
    def name(self) -> str:
        return self.folder.name

    def close(self) -> None:
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            with contextlib.suppress(OSError, TypeError):  # TypeError: os already torn down at interpreter exit
                os.close(fd)  # closing the descriptor releases the shared lock

    def __del__(self) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Generation({str(self.folder)!r})"


def has_generations(index_dir: Path) -> bool:
    return (index_dir / CURRENT_FILE).exists()


def current_name(index_dir: Path) -> str:
    name = (index_dir / CURRENT_FILE).read_text().strip()
    if not GENERATION.fullmatch(name):
        raise IndexFormatError(f"{index_dir / CURRENT_FILE} names {name!r}, not a generation: the file was altered; "
                               f"write the name of a complete gen-* folder of {index_dir} into it")
    return name


def open_newest(index_dir: Path) -> Generation:
    """Pin the newest complete generation of ``index_dir`` (or a format-1 index folder, which has none)."""
    for _ in range(OPEN_ATTEMPTS):
        if not has_generations(index_dir):
            if (index_dir / META_FILE).exists():  # format 1: the folder itself, replaced whole by its writers
                return Generation(index_dir)
            raise IndexFormatError(f"no pt_dense index at {index_dir}: build one with index.indexer().index(...)")
        folder = index_dir / current_name(index_dir)
        try:
            fd = os.open(folder / READERS_FILE, os.O_RDONLY)
        except FileNotFoundError:
            if folder.is_dir() and not (folder / READERS_FILE).exists() and (folder / META_FILE).exists():
                return Generation(folder)  # copied without its hidden files: readable, not pinned
            continue  # removed after CURRENT was read: a newer one is current now
        except PermissionError:
            return Generation(folder)  # another user's index that we may read but not lock: read it unpinned
        fcntl.flock(fd, fcntl.LOCK_SH)
        if (folder / META_FILE).exists():
            return Generation(folder, fd)
        os.close(fd)
        if folder.is_dir():  # still there under its name: not renamed away for removal, its meta.json is gone
            raise IndexFormatError(f"{folder / META_FILE} is missing (CURRENT names {folder.name}): {REBUILD}")
        # renamed away for removal while we waited for the lock: read CURRENT again
    raise IndexFormatError(f"{index_dir}: CURRENT kept naming removed generations; is another program deleting "
                           "them? Check the folder's gen-* entries against CURRENT")


@contextlib.contextmanager
def write_lock(index_dir: Path) -> Iterator[None]:
    """Hold the index's writer lock (blocking until other writers are done).

    Raises:
        IndexReadOnlyError: this user may not write the index (its folder or lock file is read-only).
    """
    try:
        index_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(index_dir / WRITE_LOCK, os.O_RDWR | os.O_CREAT, 0o666)
    except PermissionError as err:
        raise IndexReadOnlyError(f"cannot change {index_dir}: this user may not write it ({err.strerror}: "
                                 f"{err.filename}); search it as it is, or copy it to a folder you own") from err
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def new_generation(index_dir: Path) -> Iterator[Path]:
    """Yield an empty folder to write a generation into; when the block succeeds the folder becomes the next
    generation and CURRENT names it. Call within :func:`write_lock`."""
    remove_leftovers(index_dir)
    tmp = follow_umask(Path(tempfile.mkdtemp(prefix=f".tmp-{os.getpid()}-", dir=index_dir)))
    try:
        yield tmp
        (tmp / READERS_FILE).touch()
        for file in tmp.iterdir():
            if file.is_file():
                fsync(file)
        fsync(tmp)
        name = f"gen-{next_number(index_dir):06d}"
        os.rename(tmp, index_dir / name)
        fsync(index_dir)
        replace_file(index_dir / CURRENT_FILE, name + "\n")
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def next_number(index_dir: Path) -> int:
    numbers = [int(m.group(1)) for p in index_dir.iterdir() if (m := GENERATION.fullmatch(p.name))]
    return max(numbers, default=0) + 1


def remove_unheld(index_dir: Path) -> list[str]:
    """Remove every generation but the current one that no reader holds; returns the names removed."""
    if not has_generations(index_dir):
        return []
    current, removed = current_name(index_dir), []
    for folder in sorted(index_dir.iterdir()):
        if not GENERATION.fullmatch(folder.name) or folder.name == current:
            continue
        try:
            fd = os.open(folder / READERS_FILE, os.O_RDONLY)
        except FileNotFoundError:
            fd = None
        try:
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            trash = index_dir / f".trash-{os.getpid()}-{folder.name}"
            os.rename(folder, trash)  # out of readers' sight before the lock is let go
            removed.append(folder.name)
        except BlockingIOError:
            continue  # a reader holds it: a later write removes it
        finally:
            if fd is not None:
                os.close(fd)
        shutil.rmtree(trash, ignore_errors=True)
    return removed


def remove_leftovers(index_dir: Path) -> None:
    """Remove what killed writers left (``.tmp-<pid>-*``, ``.trash-<pid>-*``) once their process is gone."""
    remove_dead(index_dir, LEFTOVER)
