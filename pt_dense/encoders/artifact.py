"""A saved encoder as a PyTerrier artifact: packaged with ``build_package``, opened with ``pt.Artifact.load`` or
``pt.Artifact.from_url`` (type ``dense_encoder``, format ``pt_dense``; the entry point is in pyproject.toml).

    enc.save("runs/lora/final")
    ptd.export.package(enc, "out/lora.tar.lz4")                      # or EncoderArtifact(folder).build_package(...)
    art = pt.Artifact.from_url("file:///.../lora.tar.lz4")           # an EncoderArtifact, unpacked once
    pipeline = art.query_encoder() >> index.retriever()

A LoRA or deep-prompt folder names its base model by short name (and weight hash), so the package holds the adapter
alone and unpacks on any machine that has the base (the packaged MiniLM, for instance).
"""

from __future__ import annotations

from pathlib import Path

import pyterrier as pt

from pt_dense.encoders.loading import CONFIG_FILE
from pt_dense.encoders.torch_encoder import TorchEncoder
from pt_dense.errors import ModelFolderError

ARTIFACT = {"type": "dense_encoder", "format": "pt_dense", "package_hint": "pt-dense"}


class EncoderArtifact(pt.Artifact):
    """A folder written by ``TorchEncoder.save`` (or ``BiEncoder.save``); a factory for the encoder and its stages."""

    ARTIFACT_TYPE = ARTIFACT["type"]
    ARTIFACT_FORMAT = ARTIFACT["format"]
    ARTIFACT_PACKAGE_HINT = ARTIFACT["package_hint"]

    def __init__(self, path: str | Path):
        super().__init__(Path(path).expanduser())
        if not (self.path / CONFIG_FILE).is_file():
            raise ModelFolderError(f"{self.path} is not an encoder saved by pt_dense (it has no {CONFIG_FILE}): "
                                   "write one with encoder.save(folder)")
        self._encoder: TorchEncoder | None = None

    def __repr__(self) -> str:
        return f"EncoderArtifact({str(self.path)!r})"

    def encoder(self) -> TorchEncoder:
        """The encoder (loaded on first use; ``ptd.BiEncoder.from_pretrained(art.path)`` gives a trainable one)."""
        if self._encoder is None:
            self._encoder = TorchEncoder.from_pretrained(str(self.path))
        return self._encoder

    def query_encoder(self) -> pt.Transformer:
        return self.encoder().query_encoder()

    def doc_encoder(self) -> pt.Transformer:
        return self.encoder().doc_encoder()


__all__ = ["ARTIFACT", "EncoderArtifact"]
