"""The contract of each kind of extension, as a ``typing.Protocol``: what pt_dense calls on a model family, a
retriever kind, a negative source, a loss, an export target and an adapter (each kind has its
:class:`~pt_dense.registry.Registry`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable


@runtime_checkable
class ModelFamily(Protocol):
    """What pt_dense needs of an encoder architecture (see :class:`pt_dense.models.ModelFamily`)."""

    name: str
    model_types: tuple[str, ...]
    lora_targets: tuple[str, ...] | None
    pooling: str
    special_tokens: tuple[str, str]

    def check_prompts(self) -> None:
        """Raise ``PromptsUnsupportedError`` when deep prompts cannot reach this family's attention."""

    def max_length(self, config: Any) -> int | None:
        """The most tokens the model's positions allow."""

    def position_offset(self, config: Any) -> int:
        """The position id of the first real token."""

    def layer_stack(self, model: Any) -> Any:
        """The ``ModuleList`` of transformer layers."""

    def set_layer_stack(self, model: Any, layers: Any) -> None:
        """Replace the layer stack (truncation)."""

    def describe(self, config: Any) -> dict:
        """What an export's ``config.json`` records of the family."""


class RetrieverKind(Protocol):
    """A retriever class: built as ``kind(index, k=k, **params)``, a PyTerrier stage whose ``search(queries, k)``
    returns ``(scores, rows)`` (see :class:`pt_dense.index.retriever.DenseRetriever`)."""

    def __call__(self, index: Any, *, k: int, **params: Any) -> Any:
        """The retriever over ``index``."""


@runtime_checkable
class NegativeSource(Protocol):
    """Hard negatives for training: ``prepare`` once per fit, ``update`` before each step, ``sample`` per query.

    A source that also teaches (for a loss with ``needs_teacher``) implements :class:`TeacherSource`.
    """

    n: int

    def prepare(self, topics: Any, positives: Any) -> None:
        """Called once before training with the topics and their judged positives."""

    def sample(self, qid: str, positives: set[str], n: int, seed: int, epoch: int) -> list[str]:
        """Up to ``n`` negative docnos of ``qid``."""

    def update(self, encoder: Any, step: int, epoch: int) -> None:
        """Called before every training step with the encoder as it is."""

    def describe(self) -> str:
        """A short name for progress bars."""

    def report(self) -> dict:
        """What the source did (recorded in fit's history)."""


@runtime_checkable
class TeacherSource(Protocol):
    """What a negative source adds when its scores teach a distillation loss (a loss with ``needs_teacher``)."""

    def teacher_scores(self, qid: str, docnos: list[str], positives: set[str]) -> list[float]:
        """The teacher's score of each of ``docnos`` for ``qid``."""


#: a negative-source registry entry: ``factory(corpus, encoder, n, depth, **settings) -> NegativeSource``
NegativeSourceFactory = Callable[..., NegativeSource]


class Loss(Protocol):
    """A training loss (an ``nn.Module``), built as ``loss(temperature=..., **settings)`` and called as
    ``loss(queries, docs, doc_ids=..., positives=...)`` (plus ``teacher=`` scores when ``needs_teacher``)."""

    needs_teacher: ClassVar[bool]

    def __call__(self, queries: Any, docs: Any, *, doc_ids: Any, positives: Any, **teacher: Any) -> Any:
        """A scalar loss."""


class ExportTarget(Protocol):
    """An export: ``target(source, out_dir, **settings)`` writes ``source`` and returns what it wrote."""

    def __call__(self, source: Any, out_dir: str | Path, **settings: Any) -> Path:
        """The path written."""


@runtime_checkable
class Adapter(Protocol):
    """What trains in an encoder (see :class:`pt_dense.encoders.adapters.Adapter`, the full fine-tuning one)."""

    name: ClassVar[str]
    default_lr: ClassVar[float]
    plain: ClassVar[bool]

    def config(self) -> dict:
        """Settings that rebuild the adapter (``name`` included)."""

    def wrap(self, model: Any) -> Any:
        """A copy of the plain ``model`` carrying the adapter."""

    def backbone(self, model: Any) -> Any:
        """The base model of a wrapped ``model``."""

    def save(self, model: Any, folder: Path) -> dict:
        """Write what must be kept; returns config additions."""

    def load(self, backbone: Any, folder: Path) -> Any:
        """The ``backbone`` with the adapter saved in ``folder``."""

    def merged(self, model: Any) -> tuple[Any, Any]:
        """(the model with the adapter folded in, the adapter it then carries)."""

    def export_model(self, model: Any) -> Any:
        """A copy of ``model`` with plain weights (for ONNX)."""
