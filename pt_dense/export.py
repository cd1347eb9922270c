"""Export targets, registered by name: ``onnx`` (an encoder), ``pyserini_faiss``, ``lucene`` and ``flex`` (a
DenseIndex), ``package`` (either, as a PyTerrier artifact package).

    ptd.export.onnx(enc, "out/model")                 # model.onnx + tokenizer + config.json + parity.json
    ptd.export.onnx(enc, "out/model-int8", quantize="int8")
    ptd.export.pyserini_faiss(index, "out/faiss")     # Pyserini FaissSearcher layout
    ptd.export.lucene(index, "out/lucene-hnsw")       # Anserini HNSW index (queries encoded by java_bridge)
    ptd.export.flex(index, "out/scifact.flex")        # a pyterrier_dr FlexIndex (vecs.f4, docnos.npids)
    ptd.export.package(index, "out/scifact.ptd.tar.lz4")   # pt.Artifact.from_url("file:///.../scifact.ptd.tar.lz4")
    ptd.export.to("lucene", index, "out/lucene-flat", kind="flat")   # any registered target by name
"""

from __future__ import annotations

from pathlib import Path

from pt_dense import datasets
from pt_dense.deploy.flex import export_flex as flex
from pt_dense.deploy.lucene import lucene, pyserini_faiss
from pt_dense.deploy.package import package
from pt_dense.encoders.onnx_export import export_onnx as onnx
from pt_dense.encoders.torch_encoder import TorchEncoder
from pt_dense.errors import InputError
from pt_dense.index.cached import cached_index
from pt_dense.index.dense_index import DenseIndex
from pt_dense.registry import GROUPS, ExportTarget, Registry

#: Export targets by name, each called as ``target(source, out_dir, **settings)`` and returning the output folder;
#: another package adds one with an entry point in the ``pt_dense.export_targets`` group.
TARGETS: Registry[ExportTarget] = Registry("export target", GROUPS["export target"])
for _name, _target in {"onnx": onnx, "pyserini_faiss": pyserini_faiss, "lucene": lucene, "flex": flex,
                       "package": package}.items():
    TARGETS.register(_name, _target)


def register_target(name: str, target: ExportTarget) -> None:
    """Make ``export.to(name, ...)`` call ``target(source, out_dir, **settings)``.

    Args:
        name: The target's name.
        target: The export function; it returns the path it wrote.

    Raises:
        InputError: ``name`` is registered already.
    """
    TARGETS.register(name, target)


def to(target: str, source, out_dir: str | Path, **settings) -> Path:
    """Export ``source`` with the target named ``target``.

    Args:
        target: A registered target (``"onnx"``, ``"pyserini_faiss"``, ``"lucene"``, ``"flex"``, ``"package"``...).
        source: An encoder for ``onnx``, a DenseIndex for the index targets, either for ``package``.
        out_dir: The output folder (or file, for ``package``).
        **settings: The target's settings.

    Returns:
        What the target wrote.

    Raises:
        InputError: An unknown target.

    Example::

        ptd.export.to("onnx", enc, "out/model", quantize="int8")
    """
    return TARGETS[target](source, out_dir, **settings)


def export_all(encoder: TorchEncoder | str, out: str | Path, *, index: DenseIndex | str | Path | None = None,
               data=None, lucene_kind: str | None = None, int8: bool = False,
               overwrite: bool = False) -> dict[str, Path]:
    """What ``pt-dense export`` writes under ``out``: ``onnx/`` always; with an index (given, or ``data``'s cached
    index under ``encoder``) also ``faiss/`` and, with ``lucene_kind``, ``lucene-<kind>/``.

    Args:
        encoder: An encoder, or a model name or folder.
        out: The output folder.
        index: A DenseIndex (or its path) to export.
        data: A collection whose cached index under ``encoder`` is exported (when ``index`` is not given).
        lucene_kind: ``"hnsw"`` or ``"flat"`` for a Lucene export too; None for none.
        int8: Quantise the ONNX model and the Lucene vectors to int8.
        overwrite: Replace existing output folders.

    Returns:
        Part name (``onnx``, ``faiss``, ``lucene-<kind>``) -> folder.

    Raises:
        InputError: A Lucene export without an index or a collection.
    """
    if lucene_kind and index is None and data is None:
        raise InputError("a Lucene export needs an index or a collection (--index or --data)")
    encoder = encoder if isinstance(encoder, TorchEncoder) else TorchEncoder.from_pretrained(encoder)
    out = Path(out)
    written = {"onnx": to("onnx", encoder, out / "onnx", quantize="int8" if int8 else None, overwrite=overwrite)}
    if index is not None:
        index = index if isinstance(index, DenseIndex) else DenseIndex(index)
        index.check_encoder(encoder.fingerprint, what="the exported encoder's vectors")
    elif data is not None:
        index = cached_index(datasets.load(data) if isinstance(data, (str, Path)) else data, encoder)
    if index is not None:
        written["faiss"] = to("pyserini_faiss", index, out / "faiss", overwrite=overwrite)
        if lucene_kind:
            written["lucene"] = to("lucene", index, out / f"lucene-{lucene_kind}", kind=lucene_kind, int8=int8,
                                   overwrite=overwrite)
    return written


__all__ = ["TARGETS", "export_all", "flex", "lucene", "onnx", "package", "pyserini_faiss", "register_target", "to"]
