"""Atomic writes: build in a temporary sibling, then rename into place, so a crash never leaves half a result.

Replacing an existing folder swaps the two in one step (Linux ``renameat2(RENAME_EXCHANGE)``), so there is no
instant at which the destination is missing; where the kernel or file system cannot exchange, the old folder is
renamed away first. Temporary names carry the writer's pid: what a killed writer left is removed by the next write
to the same place once that process is gone.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from pt_dense.errors import IndexExistsError

#: the suffix of the folder a replacement moved out of the way (where the kernel cannot exchange two folders)
OLD_SUFFIX = "-old"
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100
_LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


@contextlib.contextmanager
def atomic_dir(dest: str | os.PathLike, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``dest``; on success it replaces ``dest``, on error it is removed.

    An existing ``dest`` is an :class:`IndexExistsError` unless ``overwrite=True``; it is checked before any work and
    again at the end, and is only removed once the new folder is in its place.
    """
    dest = Path(dest).expanduser().absolute()
    recover(dest)
    _refuse_existing(dest, overwrite)
    dest.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(dest)
    tmp = follow_umask(Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-{os.getpid()}-", dir=dest.parent)))
    try:
        yield tmp
        _refuse_existing(dest, overwrite)
        fsync(tmp)
        if dest.exists():
            if exchange(tmp, dest):
                shutil.rmtree(tmp, ignore_errors=True)  # the old folder, now under the temporary name
            else:  # a writer killed between these renames leaves dest missing: recover(dest) puts the old one back
                old = dest.with_name(f".{dest.name}.tmp-{os.getpid()}{OLD_SUFFIX}")
                os.replace(dest, old)
                os.replace(tmp, dest)
                shutil.rmtree(old, ignore_errors=True)
        else:
            _rename_new(tmp, dest)
        fsync(dest.parent)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def atomic_file(dest: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``dest`` to write; it is renamed onto ``dest`` only if the block succeeds."""
    dest = Path(dest)
    fd, name = tempfile.mkstemp(prefix=f".{dest.name}.tmp-{os.getpid()}-", dir=dest.parent)
    os.close(fd)
    tmp = follow_umask(Path(name))
    try:
        yield tmp
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def umask() -> int:
    """This process's umask, read without changing it (Linux reports it in /proc; elsewhere set and restored)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def follow_umask(path: Path) -> Path:
    """Give ``path`` the mode a plain ``mkdir``/``open`` would have (``tempfile`` makes 0700 folders and 0600 files,
    which other users could then not read)."""
    os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~umask())
    return path


def replace_file(dest: Path, text: str) -> None:
    """Write ``text`` to ``dest`` durably and atomically (readers see the old or the new content, never a part)."""
    with atomic_file(dest) as tmp, open(tmp, "w", encoding="utf-8") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
    fsync(dest.parent)


def link_or_copy(source: Path, dest: Path) -> None:
    """A hard link of a file that is never rewritten in place (index generations, exported vectors), or a copy
    where the file system cannot link (another device)."""
    try:
        os.link(source, dest)
    except OSError:
        shutil.copyfile(source, dest)


def exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step; False where the kernel or file system cannot."""
    result = _LIBC.renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    return result == 0


def fsync(path: Path) -> None:
    """Make a file's content, or a folder's entries (renames, new files), durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recover(dest: str | os.PathLike) -> Path:
    """Put back the folder a killed replacement had moved out of ``dest``'s way (only where ``dest`` is missing and
    the writer is gone), so a kill at any point leaves ``dest`` as it was; returns ``dest``. Readers of folders that
    :func:`atomic_dir` writes call it before they look."""
    dest = Path(dest).expanduser()
    if dest.exists() or not dest.parent.is_dir():
        return dest
    pattern = re.compile(rf"\.{re.escape(dest.name)}\.tmp-(?P<pid>\d+){OLD_SUFFIX}$")
    for entry in dest.parent.iterdir():
        match = pattern.match(entry.name)
        if match and entry.is_dir() and not process_alive(int(match.group("pid"))):
            with contextlib.suppress(FileNotFoundError, FileExistsError, OSError):
                os.rename(entry, dest)  # another recovering process may have been first
                fsync(dest.parent)
            break
    return dest


def remove_leftovers(dest: Path) -> None:
    """Remove temporary siblings of ``dest`` that killed writers left behind (their process is gone)."""
    remove_dead(dest.parent, re.compile(rf"\.{re.escape(dest.name)}\.tmp-(?P<pid>\d+)-"))


def remove_dead(folder: Path, pattern: re.Pattern) -> None:
    """Remove the entries of ``folder`` whose name matches ``pattern`` and whose writer (group ``pid``) is gone."""
    for entry in folder.iterdir():
        match = pattern.match(entry.name)
        if match and not process_alive(int(match.group("pid"))):
            shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)


def _rename_new(tmp: Path, dest: Path) -> None:
    """Rename ``tmp`` to a ``dest`` that did not exist a moment ago; another writer that got there first (a folder
    with content at ``dest`` now) is an IndexExistsError, never a merge."""
    try:
        os.rename(tmp, dest)
    except OSError as err:
        if err.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR):
            raise IndexExistsError(f"{dest} was created by another writer while this one worked; pass "
                                   "overwrite=True to replace it (or choose another path)") from err
        raise


def _refuse_existing(dest: Path, overwrite: bool) -> None:
    if dest.exists() and not overwrite:
        raise IndexExistsError(f"{dest} already exists; pass overwrite=True to replace it (or choose another path)")
