"""pt_dense: parameter-efficient dense retrieval for PyTerrier.

Public names are imported lazily so that ``import pt_dense`` stays fast (torch, transformers and the JVM load only
when first used).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pt_dense.io.lazy import lazy_exports

__version__ = "0.2.0"

_EXPORTS = {
    "BiEncoder": "pt_dense.training.biencoder",
    "TorchEncoder": "pt_dense.encoders.torch_encoder",
    "DenseIndex": "pt_dense.index.dense_index",
    "BM25": "pt_dense.bm25",
    "OnnxEncoder": "pt_dense.encoders.onnx_encoder",
    "PEFA": "pt_dense.pefa.api",
    "Corrector": "pt_dense.corrector",
    "CachedNegatives": "pt_dense.training.cached",
    "CorrectedNegatives": "pt_dense.training.cached",
    "PromptBank": "pt_dense.encoders.bank",
    "linear_fusion": "pt_dense.fusion",
    "rrf": "pt_dense.fusion",
    "PtDenseError": "pt_dense.errors",
    "InputError": "pt_dense.errors",
    "MissingColumnsError": "pt_dense.errors",
    "UnknownModelError": "pt_dense.errors",
    "IndexExistsError": "pt_dense.errors",
    "IndexFormatError": "pt_dense.errors",
    "IndexReadOnlyError": "pt_dense.errors",
    "EncoderMismatchError": "pt_dense.errors",
    "DeploymentError": "pt_dense.errors",
}
_SUBMODULES = ("datasets", "deploy", "evaluation", "export", "fusion", "index", "metrics", "models", "pefa", "registry",
               "report", "scaling", "training")

__all__ = [  # noqa: RUF022 (grouped: classes, functions, errors, modules)
    "BM25", "BiEncoder", "CachedNegatives", "CorrectedNegatives", "Corrector", "DenseIndex", "OnnxEncoder", "PEFA",
    "PromptBank", "TorchEncoder", "linear_fusion", "rrf",
    "DeploymentError", "EncoderMismatchError", "IndexExistsError", "IndexFormatError", "IndexReadOnlyError",
    "InputError", "MissingColumnsError", "PtDenseError", "UnknownModelError",
    "datasets", "deploy", "evaluation", "export", "fusion", "index", "metrics", "models", "pefa", "registry", "report",
    "scaling", "training",
]

if TYPE_CHECKING:
    from pt_dense import (
        datasets,
        deploy,
        evaluation,
        export,
        fusion,
        index,
        metrics,
        models,
        pefa,
        registry,
        report,
        scaling,
        training,
    )
    from pt_dense.bm25 import BM25
    from pt_dense.corrector import Corrector
    from pt_dense.encoders.bank import PromptBank
    from pt_dense.encoders.onnx_encoder import OnnxEncoder
    from pt_dense.encoders.torch_encoder import TorchEncoder
    from pt_dense.errors import (
        DeploymentError,
        EncoderMismatchError,
        IndexExistsError,
        IndexFormatError,
        IndexReadOnlyError,
        InputError,
        MissingColumnsError,
        PtDenseError,
        UnknownModelError,
    )
    from pt_dense.fusion import linear_fusion, rrf
    from pt_dense.index.dense_index import DenseIndex
    from pt_dense.pefa.api import PEFA
    from pt_dense.training.biencoder import BiEncoder
    from pt_dense.training.cached import CachedNegatives, CorrectedNegatives

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS | {name: f".{name}" for name in _SUBMODULES})
