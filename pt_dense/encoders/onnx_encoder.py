"""OnnxEncoder: an exported encoder on onnxruntime, with the same PyTerrier stages as BiEncoder and no torch.

An export folder (see :func:`pt_dense.encoders.onnx_export.export_onnx`) holds ``model.onnx`` (token ids ->
last hidden states), ``tokenizer.json`` and ``config.json`` (pooling, normalisation, max lengths, prefixes, the
model family, fingerprint). Pooling and normalisation run here in numpy, as the Java bridge does them in Java; what
they are comes from the export's settings, which the encoder's :class:`~pt_dense.models.ModelFamily` and preset
chose.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pt_dense.encoders.batching import SIDE_NAMES, check_batch_size, check_side, encode_sorted, pad
from pt_dense.encoders.stages import StageFactory, stamped
from pt_dense.errors import InputError

CONFIG_NAME = "config.json"


class OnnxEncoder(StageFactory):
    """Encodes texts with an exported ONNX model; ``query_encoder()``, ``doc_encoder()``, ``scorer()`` as BiEncoder."""

    def __init__(self, folder: str | Path, *, batch_size: int = 32, threads: int | None = None):
        """Open an export of :func:`pt_dense.export.onnx`.

        Args:
            folder: The export's folder (model, tokenizer.json, config.json).
            batch_size: Texts a batch.
            threads: ONNX Runtime's intra-op threads (default: its own choice).

        Raises:
            InputError: ``folder`` holds no pt_dense ONNX export.
        """
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.folder = Path(folder)
        config_file = self.folder / CONFIG_NAME
        if not config_file.exists():
            raise InputError(f"{self.folder} is not a pt_dense ONNX export (no {CONFIG_NAME}); "
                             "create one with pt_dense.export.onnx(encoder, folder)")
        self.config = json.loads(config_file.read_text())
        if self.config.get("format") != "pt_dense.onnx":
            raise InputError(f"{config_file} is not a pt_dense ONNX config")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or os.cpu_count() or 1
        self.session = ort.InferenceSession(str(self.folder / self.config["model"]), options,
                                            providers=["CPUExecutionProvider"])
        self.input_names = {i.name for i in self.session.get_inputs()}
        self.tokenizer = Tokenizer.from_file(str(self.folder / self.config.get("tokenizer", "tokenizer.json")))
        self.tokenizer.no_padding()
        self.batch_size = batch_size
        self.name = self.config.get("name", self.folder.name)
        self.pad_id = int(self.config.get("pad_token_id", 0))

    def __setattr__(self, name: str, value) -> None:
        if name == "batch_size":  # the one setting that is not the export's: checked whenever it is set
            value = check_batch_size(value)
        object.__setattr__(self, name, value)

    @classmethod
    def from_dir(cls, folder: str | Path, **kwargs) -> OnnxEncoder:
        """Open an export; the same as the constructor.

        Args:
            folder: The export's folder.
            **kwargs: ``batch_size``, ``threads``.

        Returns:
            The encoder.
        """
        return cls(folder, **kwargs)

    def __repr__(self) -> str:
        return f"OnnxEncoder({str(self.folder)!r}, precision={self.config.get('precision')!r})"

    @property
    def dim(self) -> int:
        """The dimension of the vectors."""
        return int(self.config["dim"])

    @property
    def fingerprint(self) -> str:
        """The fingerprint of the encoder that was exported (an index it built accepts these vectors)."""
        return self.config["fingerprint"]

    def settings(self) -> dict:
        """The exported encoder's settings.

        Returns:
            Setting name -> value, as :meth:`TorchEncoder.settings <pt_dense.TorchEncoder.settings>`.
        """
        return dict(self.config["settings"])

    def descriptor(self) -> dict:
        """What an index records about the encoder that made its vectors.

        Returns:
            A JSON-ready dict: fingerprint, name, dim, settings, precision.
        """
        return {"fingerprint": self.fingerprint, "name": self.name, "dim": self.dim, "settings": self.settings(),
                "precision": self.config.get("precision")}

    def tokenize(self, texts: Sequence[str], side: str) -> list[list[int]]:
        """Tokenise texts with the exported ``tokenizer.json``, prefix included, without padding.

        Args:
            texts: The texts.
            side: ``"query"`` or ``"doc"``.

        Returns:
            Token ids of each text, truncated to the side's max length.
        """
        settings = self.config["settings"]
        prefix = settings["query_prefix"] if side == "query" else settings["doc_prefix"]
        max_length = settings["query_max_length"] if side == "query" else settings["doc_max_length"]
        self.tokenizer.enable_truncation(max_length)
        return [e.ids for e in self.tokenizer.encode_batch([prefix + t for t in texts])]

    def encode(self, texts: Sequence[str], side: str = "doc", *, batch_size: int | None = None,
               progress: bool | None = None) -> np.ndarray:
        """float32 vectors in input order; length-sorted batches, as BiEncoder.encode. The matrix (and each of its
        rows) carries the exported encoder's fingerprint (an :class:`~pt_dense.encoders.stages.EncodedVector`).

        Args:
            texts: The texts.
            side: ``"query"`` or ``"doc"``.
            batch_size: Texts a batch (default: the encoder's).
            progress: Show a progress bar (default: on long work only).

        Returns:
            A ``(len(texts), dim)`` float32 matrix.
        """
        check_side(side)
        if len(texts) == 0:
            return stamped(np.zeros((0, self.dim), dtype=np.float32), self.fingerprint)
        vectors = encode_sorted(self.tokenize(texts, side), self._run, self.dim, batch_size or self.batch_size,
                                progress=progress, desc=f"encoding {SIDE_NAMES[side]} (onnx)")
        return stamped(vectors, self.fingerprint)

    def _run(self, ids: list[list[int]]) -> np.ndarray:
        input_ids, mask = pad(ids, self.pad_id)
        feeds = {"input_ids": input_ids, "attention_mask": mask}
        hidden = self.session.run(["last_hidden_state"], {k: v for k, v in feeds.items() if k in self.input_names})[0]
        return pool(hidden, mask, self.config["settings"]["pooling"], self.config["settings"]["normalize"])


def pool(hidden: np.ndarray, mask: np.ndarray, pooling: str, normalize: bool) -> np.ndarray:
    """Mean (over real tokens), CLS or last-token pooling, then optional L2 normalisation: as BiEncoder.pool."""
    if pooling == "cls":
        pooled = hidden[:, 0]
    elif pooling == "last":  # the last real token (right padding)
        pooled = hidden[np.arange(hidden.shape[0]), mask.sum(1) - 1]
    else:
        weights = mask[..., None].astype(hidden.dtype)
        pooled = (hidden * weights).sum(1) / np.maximum(weights.sum(1), 1e-9)
    if normalize:
        pooled = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
    return pooled.astype(np.float32)
