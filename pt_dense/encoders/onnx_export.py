"""Export a TorchEncoder to ONNX (legacy exporter, IR <= 9, dynamic batch and length), optionally int8-quantised.

The folder holds everything a runtime needs: ``model.onnx``, the tokenizer (``tokenizer.json``, read by Python's
``tokenizers`` and by the Java bridge through DJL's HuggingFaceTokenizer, so any family tokenises alike),
``config.json`` (settings, the model family's record, fingerprint) and ``parity.json`` (how far the export is from
PyTorch on a sample). LoRA adapters are merged into the weights before export (``TorchEncoder.export_module``).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import sys
import warnings
from pathlib import Path

import numpy as np

from pt_dense import datasets
from pt_dense.encoders.batching import report_progress_to
from pt_dense.encoders.onnx_encoder import CONFIG_NAME, OnnxEncoder
from pt_dense.errors import DeploymentError, InputError
from pt_dense.io.atomic import atomic_dir
from pt_dense.io.cache import cache_dir

OPSET = 17
TOKENIZER_FILE = "tokenizer.json"
ANSERINI_VOCAB = "special_tokens.txt"
#: ONNX Runtime Java 1.17 (inside the Pyserini fatjar) loads IR version <= 9
MAX_IR_VERSION = 9


def export_onnx(encoder, out_dir: str | Path, *, quantize: str | None = None, overwrite: bool = False,
                sample_docs: list[str] | None = None, sample_queries: list[str] | None = None) -> Path:
    """Write the ONNX export of ``encoder`` to ``out_dir`` (atomically) and return the folder.

    ``quantize="int8"`` applies onnxruntime's dynamic int8 quantisation to the weights. The parity report compares
    the export with PyTorch on ``sample_docs``/``sample_queries`` (default: 128 documents and 64 queries of the
    embedded SciFact).

    Args:
        encoder: A pt_dense encoder (LoRA is merged and prompts baked into the graph).
        out_dir: The folder to write: the model, ``tokenizer.json``, ``config.json`` and the parity report.
        quantize: None, or ``"int8"``.
        overwrite: Replace an existing output folder (refused otherwise).
        sample_docs: Documents for the parity report.
        sample_queries: Queries for the parity report.

    Returns:
        The folder written.

    Raises:
        InputError: A bad ``quantize``, or an export Anserini's runtime cannot load.
        DeploymentError: The tokenizer cannot be exported (a slow tokenizer).

    Example::

        ptd.export.onnx(enc, "out/model")
    """
    import onnx
    import torch

    encoder = encoder.exact()  # trace and compare with fp32 PyTorch, whatever precision the encoder runs in
    if quantize not in (None, "int8"):
        raise InputError(f"quantize must be None or 'int8', not {quantize!r}")
    with atomic_dir(out_dir, overwrite=overwrite) as tmp:
        fp32 = tmp / "model.fp32.onnx"
        example = encoder.collate(encoder.tokenize(["an example text", "and another"], "doc"))
        # the tracer warns about shape-dependent Python branches of the model code; the parity report below checks
        # the export against PyTorch on real texts instead
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                encoder.export_module(), (example["input_ids"].cpu(), example["attention_mask"].cpu()), str(fp32),
                input_names=["input_ids", "attention_mask"], output_names=["last_hidden_state"],
                dynamic_axes={name: {0: "batch", 1: "length"}
                              for name in ("input_ids", "attention_mask", "last_hidden_state")},
                opset_version=OPSET, dynamo=False,
            )
        model = tmp / "model.onnx"
        if quantize == "int8":
            from onnxruntime.quantization import QuantType, quantize_dynamic

            root = logging.getLogger()  # the quantiser advises "pre-processing" on every call; it changed nothing here
            level = root.level
            root.setLevel(logging.ERROR)
            try:
                quantize_dynamic(str(fp32), str(model), weight_type=QuantType.QInt8, per_channel=True)
            finally:
                root.setLevel(level)
            fp32.unlink()
        else:
            fp32.rename(model)
        ir_version = onnx.load(str(model), load_external_data=False).ir_version
        if ir_version > MAX_IR_VERSION:
            raise InputError(f"the export has ONNX IR version {ir_version}; Anserini's runtime loads <= 9")
        encoder.tokenizer.save_pretrained(str(tmp))
        if not (tmp / TOKENIZER_FILE).exists():
            raise DeploymentError(f"the tokenizer of {encoder.name!r} wrote no {TOKENIZER_FILE} (a slow tokenizer); "
                                  "load the model with a fast tokenizer (`tokenizers`) to export it")
        # Anserini's encoder base class insists on reading a vocabulary file; the bridge tokenises with
        # tokenizer.json, so this file only lists the special tokens
        (tmp / ANSERINI_VOCAB).write_text("".join(t + "\n" for t in encoder.tokenizer.all_special_tokens))
        config = {
            "format": "pt_dense.onnx",
            "model": model.name,
            "query_model": model.name,
            "doc_model": model.name,
            "tokenizer": TOKENIZER_FILE,
            "vocab": ANSERINI_VOCAB,
            "precision": quantize or "fp32",
            "name": encoder.name,
            "dim": encoder.dim,
            "fingerprint": encoder.fingerprint,
            "settings": encoder.settings(),
            "family": encoder.family.describe(encoder.model.config),
            "pad_token_id": int(encoder.tokenizer.pad_token_id or 0),
            "ir_version": ir_version,
            "opset": OPSET,
            "model_sha256": _sha256(model),
        }
        (tmp / CONFIG_NAME).write_text(json.dumps(config, indent=2))
        parity = parity_report(encoder, OnnxEncoder(tmp), sample_docs, sample_queries)
        (tmp / "parity.json").write_text(json.dumps(parity, indent=2))
    return Path(out_dir)


def cached_export(encoder, quantize: str | None) -> Path:
    """The export of ``encoder`` (its weights and settings, by fingerprint) with ``quantize``, from the cache, made
    there the first time: what an encoder with an ONNX precision runs."""
    folder = cache_dir() / "onnx" / f"{encoder.fingerprint[:24]}-{quantize or 'fp32'}"
    config = folder / CONFIG_NAME
    if config.exists() and json.loads(config.read_text()).get("fingerprint") == encoder.fingerprint:
        return folder
    print(f"pt_dense: exporting {encoder.name!r} to ONNX ({quantize or 'fp32'}) for inference, once per weights; "
          f"cached in {folder}", file=sys.stderr)
    docs, queries = parity_samples(16, 8)
    with report_progress_to(lambda _texts: None):  # the parity samples are not the documents a caller counts
        return export_onnx(encoder, folder, quantize=quantize, overwrite=True, sample_docs=docs,
                           sample_queries=queries)


def parity_samples(docs: int = 128, queries: int = 64) -> tuple[list[str], list[str]]:
    """The first ``docs`` documents and ``queries`` test queries of the embedded SciFact."""
    data = datasets.load("scifact")
    return [d["text"] for d in itertools.islice(data.corpus_iter(), docs)], list(data.topics("test")["query"][:queries])


def parity_report(encoder, exported, sample_docs: list[str] | None = None,
                  sample_queries: list[str] | None = None) -> dict:
    """Max abs difference of the vectors and top-10 agreement of the rankings, PyTorch vs the export."""
    if sample_docs is None or sample_queries is None:
        default_docs, default_queries = parity_samples()
        sample_docs, sample_queries = sample_docs or default_docs, sample_queries or default_queries
    torch_docs, onnx_docs = encoder.encode(sample_docs, "doc"), exported.encode(sample_docs, "doc")
    torch_q, onnx_q = encoder.encode(sample_queries, "query"), exported.encode(sample_queries, "query")
    k = min(10, len(sample_docs))
    top_torch = np.argsort(-(torch_q @ torch_docs.T), axis=1)[:, :k]
    top_onnx = np.argsort(-(onnx_q @ onnx_docs.T), axis=1)[:, :k]
    agreement = np.mean([len(set(a) & set(b)) / k for a, b in zip(top_torch, top_onnx, strict=True)])
    return {
        "precision": exported.config["precision"],
        "sample_docs": len(sample_docs),
        "sample_queries": len(sample_queries),
        "max_abs_diff_docs": float(np.abs(torch_docs - onnx_docs).max()),
        "max_abs_diff_queries": float(np.abs(torch_q - onnx_q).max()),
        "min_cosine": float(min((torch_docs * onnx_docs).sum(1).min(), (torch_q * onnx_q).sum(1).min())),
        "top10_agreement": float(agreement),
    }


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
