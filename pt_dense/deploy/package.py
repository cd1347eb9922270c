"""PyTerrier artifact packages (``build_package``: one ``.tar.lz4`` and its ``.json``) of what pt_dense builds:
a DenseIndex (its current generation, see :mod:`pt_dense.index.package`), a FlexIndex view (the folder as it is),
an encoder (saved first) or a saved encoder folder. ``pt.Artifact.from_url`` (``file://``, ``http(s)://``, ``hf:``)
unpacks one into PyTerrier's artifact cache and opens it: a DenseIndex, a pyterrier_dr FlexIndex, or an
:class:`~pt_dense.encoders.artifact.EncoderArtifact`.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pyterrier as pt

from pt_dense.encoders.artifact import EncoderArtifact
from pt_dense.encoders.loading import CONFIG_FILE
from pt_dense.encoders.torch_encoder import TorchEncoder
from pt_dense.errors import IndexExistsError, InputError
from pt_dense.index.dense_index import DenseIndex
from pt_dense.index.flex import is_flex, open_flex


def package(source, out: str | Path, *, max_file_size: float | None = None, overwrite: bool = False) -> Path:
    """Write the artifact package of ``source`` to ``out`` (e.g. ``scifact.ptd.tar.lz4``; ``out.json`` beside it
    holds its sha256 and contents) and return ``out``.

    Args:
        source: A DenseIndex, an encoder, a saved encoder folder, or a FlexIndex folder.
        out: The package file to write.
        max_file_size: Split the package into segments of at most this many bytes.
        overwrite: Replace an existing package.

    Returns:
        ``out``.

    Raises:
        IndexExistsError: ``out`` exists and ``overwrite`` is False.
        InputError: A source that cannot be packaged.
    """
    out = Path(out).expanduser()
    if not overwrite and (out.exists() or Path(f"{out}.json").exists()):
        raise IndexExistsError(f"{out} already exists; pass overwrite=True to replace it (or choose another path)")
    out.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(source, TorchEncoder):
        with tempfile.TemporaryDirectory(dir=out.parent, prefix=".encoder-") as tmp:
            folder = source.save(Path(tmp) / "encoder")
            return _build(EncoderArtifact(folder), out, max_file_size)
    return _build(_artifact(source), out, max_file_size)


def _artifact(source) -> pt.Artifact:
    if isinstance(source, pt.Artifact):  # ours, pyterrier_dr's FlexIndex, any other with a folder
        return source
    if not isinstance(source, (str, Path)):
        raise InputError(f"cannot package a {type(source).__name__}: give a DenseIndex, an encoder, a saved encoder "
                         "folder or a FlexIndex folder")
    folder = Path(source).expanduser()
    if (folder / CONFIG_FILE).is_file():
        return EncoderArtifact(folder)
    if is_flex(folder):
        return open_flex(folder)
    index = DenseIndex(folder)
    if not index.built():
        raise InputError(f"{folder} is neither a pt_dense index, a saved encoder nor a FlexIndex: nothing to package")
    return index


def _build(artifact: pt.Artifact, out: Path, max_file_size: float | None) -> Path:
    for stale in (out, Path(f"{out}.json"), *out.parent.glob(f"{out.name}.[0-9]*")):
        stale.unlink(missing_ok=True)
    artifact.build_package(str(out), max_file_size=max_file_size, verbose=False)
    return out


__all__ = ["package"]
