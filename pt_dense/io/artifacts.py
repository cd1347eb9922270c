"""``file://`` URLs for ``pt.Artifact.from_url``: PyTerrier 1.1 downloads ``http(s)`` URLs and resolves its own
schemes (``hf:``, ``zenodo:``), but a package on a local or mounted disk (``build_package``'s ``.tar.lz4``) has no
URL it reads. This resolver, registered under ``pyterrier.artifact.url_protocol_resolver`` (pyproject.toml), serves
``file://`` URLs for every artifact type:

    pt.Artifact.from_url("file:///data/scifact.ptd.tar.lz4")   # unpacked once into PyTerrier's artifact cache
    pt.Artifact.from_url("file:///data/scifact.ptd")            # a folder: opened in place

A package is unpacked as PyTerrier unpacks a downloaded one: into ``<pyterrier home>/artifacts/<sha256 of the URL>``,
checked against the ``expected_sha256`` of the ``.json`` file ``build_package`` writes beside it, segments
(``max_file_size``) joined, members outside the folder refused; a second call opens the unpacked folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import tarfile
from hashlib import sha256
from pathlib import Path
from urllib.parse import ParseResult, unquote, urlunparse

from pt_dense.errors import IndexExistsError, InputError
from pt_dense.io.atomic import atomic_dir
from pt_dense.io.files import read_json

#: derived search structures (FAISS files and their sidecars) a package may carry but that are never unpacked
DERIVED_SUFFIXES = (".faiss", ".faiss.json")
#: group and other write permission bits: an unpacked artifact carries neither
SHARED_WRITE = 0o022


def file_url_resolver(parsed_url: ParseResult) -> str:
    """The local path ``pt.Artifact.from_url`` loads for a ``file://`` URL: the folder itself, or the folder a
    package was unpacked into."""
    if parsed_url.netloc not in ("", "localhost"):
        raise InputError(f"{urlunparse(parsed_url)}: a file:// URL names a path on this machine "
                         f"(file:///path), not on host {parsed_url.netloc!r}")
    path = Path(unquote(parsed_url.path))
    if path.is_dir():
        return str(path)
    return str(unpack_package(path, urlunparse(parsed_url)))


def unpack_package(package: Path, url: str | None = None) -> Path:
    """Unpack the artifact package ``package`` (one ``.tar.lz4`` file, or the segments ``<package>.0``, ``.1``...
    that ``build_package(max_file_size=...)`` writes) into PyTerrier's artifact cache; return the folder."""
    import pyterrier as pt

    info_file = Path(f"{package}.json")
    info = read_json(info_file, InputError, "rebuild the package") if info_file.exists() else {}
    segments = [Path(f"{package}.{s['idx']}") for s in info.get("segments", [])]
    if not (segments or package.is_file()):
        raise InputError(f"{package} is neither an artifact folder nor a package file (nor the segments "
                         f"{package.name}.0, .1, ... of one): check the path")
    missing = [str(s) for s in segments if not s.is_file()]
    if missing:
        raise InputError(f"the package {package} lacks its segments {missing}: copy every segment beside it")
    key = sha256((url or package.absolute().as_uri()).encode()).hexdigest()  # as PyTerrier keys a download
    dest = Path(pt.io.pyterrier_home()) / "artifacts" / key
    if dest.exists():
        return check_unpacked(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        _extract(package, segments, info.get("expected_sha256"), dest)
    except IndexExistsError:  # another process unpacked the same package meanwhile
        return check_unpacked(dest)
    except InputError:
        raise
    except ValueError as err:  # PyTerrier's HashReader: the bytes are not those the package was built with
        raise InputError(f"{package} is damaged or incomplete ({err}): copy it again, or rebuild it with "
                         "artifact.build_package()") from err
    Path(f"{dest}.json").write_text(json.dumps({"path": str(package)}) + "\n")
    return dest


def check_unpacked(folder: Path) -> Path:
    """``folder`` if only this user can change it; an unpacked artifact that another user owns or may write (they
    could have replaced its files) is refused."""
    for path in (folder, *folder.rglob("*")):
        stat = path.lstat()
        if stat.st_uid != os.geteuid() or stat.st_mode & SHARED_WRITE or path.is_symlink():
            raise InputError(f"{path} (in the unpacked artifact {folder}) is owned by another user, writable by "
                             "others or a link: it is not trusted. Remove the folder and load the package again")
    return folder


def _protect(folder: Path) -> None:
    """Make what was unpacked writable by this user alone, whatever the umask (PyTerrier leaves it 0777)."""
    for path in (folder, *folder.rglob("*")):
        os.chmod(path, path.stat().st_mode & ~SHARED_WRITE)


def _extract(package: Path, segments: list[Path], expected_sha256: str | None, dest: Path) -> None:
    """Stream the package's tar (lz4-compressed when named so) into ``dest``, which appears only when complete and
    writable by this user alone."""
    import pyterrier as pt
    from lz4.frame import LZ4FrameFile

    with contextlib.ExitStack() as stack:
        out = str(stack.enter_context(atomic_dir(dest)))
        if segments:
            raw = stack.enter_context(pt.io.MultiReader(open(s, "rb") for s in segments))  # noqa: SIM115
        else:
            raw = stack.enter_context(open(package, "rb"))
        if expected_sha256:
            raw = stack.enter_context(pt.io.HashReader(raw, expected=expected_sha256.lower()))
        stream = stack.enter_context(LZ4FrameFile(raw)) if package.name.endswith(".lz4") else raw
        try:
            with tarfile.open(fileobj=stream, mode="r|") as tar:
                for member in tar:
                    if member.name.endswith(DERIVED_SUFFIXES):
                        continue  # search structures are rebuilt from the vectors, never taken from a package
                    if (member.isfile() or member.isdir()) and pt.io.path_is_under_base(member.path, out):
                        tar.extract(member, out, set_attrs=False, filter="data")
            while stream.read(1 << 20):  # to the end, so the hash covers every byte
                pass
            _protect(Path(out))
        except (tarfile.TarError, RuntimeError, EOFError) as err:
            raise InputError(f"{package} is not a readable artifact package ({err}): rebuild it with "
                             "artifact.build_package()") from err


__all__ = ["check_unpacked", "file_url_resolver", "unpack_package"]
