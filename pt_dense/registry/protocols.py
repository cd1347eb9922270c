"""The contract of each kind of extension, as a ``typing.Protocol``: what pt_dense calls on a model family, a
retriever kind, a negative source, a loss, an export target and an adapter (each kind has its
:class:`~pt_dense.registry.Registry`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable


@runtime_checkable
class ModelFamily(Protocol):
    """What pt_dense needs of an encoder architecture (:class:`pt_dense.models.ModelFamily` implements it).

    A family covers its ``model_types`` (``config.model_type`` values) and gives their pooling, special tokens, LoRA
    targets and layer stack; a family that cannot take deep prompts refuses them in :meth:`check_prompts`.
    """

    name: str
    model_types: tuple[str, ...]
    lora_targets: tuple[str, ...] | None
    pooling: str
    special_tokens: tuple[str, str]

    def check_prompts(self) -> None:
        """Refuse deep prompts when they cannot reach this family's attention (``PromptsUnsupportedError``)."""

    def max_length(self, config: Any) -> int | None:
        """The most tokens the model's positions allow.

        Args:
            config: The model's Hugging Face config.

        Returns:
            The limit, or None when the config does not say.
        """

    def position_offset(self, config: Any) -> int:
        """The position id of the first real token.

        Args:
            config: The model's Hugging Face config.

        Returns:
            The offset explicit ``position_ids`` start from.
        """

    def layer_stack(self, model: Any) -> Any:
        """The ``ModuleList`` of transformer layers.

        Args:
            model: A Hugging Face model, or a wrapper around one.

        Returns:
            The model's own layer stack.
        """

    def set_layer_stack(self, model: Any, layers: Any) -> None:
        """Replace the layer stack of ``model`` in place (scaling-law truncation).

        Args:
            model: A Hugging Face model, or a wrapper around one.
            layers: The new ``ModuleList``.
        """

    def describe(self, config: Any) -> dict:
        """What an export's ``config.json`` records of the family (the Java bridge reads it).

        Args:
            config: The model's Hugging Face config.

        Returns:
            A JSON-ready dict.
        """


class RetrieverKind(Protocol):
    """A retriever class: built as ``kind(index, k=k, **params)``, a PyTerrier stage whose ``search(queries, k)``
    returns ``(scores, rows)`` (:class:`pt_dense.index.retriever.DenseRetriever` and its subclasses)."""

    def __call__(self, index: Any, *, k: int, **params: Any) -> Any:
        """The retriever over ``index``.

        Args:
            index: The index to search.
            k: Results per query.
            **params: The kind's own parameters.

        Returns:
            The retriever stage.
        """


@runtime_checkable
class NegativeSource(Protocol):
    """Hard negatives for training: ``prepare`` once per fit, ``update`` before each step, ``sample`` per query
    (:class:`pt_dense.training.negatives.NegativeSource` is the base class). A source that also teaches implements
    :class:`TeacherSource`."""

    n: int

    def prepare(self, topics: Any, positives: Any) -> None:
        """Called once before training.

        Args:
            topics: The training topics (``qid, query``).
            positives: Each qid's judged positive docnos.
        """

    def sample(self, qid: str, positives: set[str], n: int, seed: int, epoch: int) -> list[str]:
        """Negatives of one query for one epoch.

        Args:
            qid: The query.
            positives: Its judged positives (never returned).
            n: How many to return at most.
            seed: The run's seed.
            epoch: The epoch.

        Returns:
            Up to ``n`` docnos.
        """

    def update(self, encoder: Any, step: int, epoch: int) -> None:
        """Called before every training step with the encoder as it is.

        Args:
            encoder: The encoder being trained.
            step: The step about to run.
            epoch: Its epoch.
        """

    def describe(self) -> str:
        """A short name, for progress bars.

        Returns:
            The name.
        """

    def report(self) -> dict:
        """What the source did (recorded in fit's history).

        Returns:
            A JSON-ready dict.
        """


@runtime_checkable
class TeacherSource(Protocol):
    """What a negative source adds when its scores teach a distillation loss (a loss with ``needs_teacher``)."""

    def teacher_scores(self, qid: str, docnos: list[str], positives: set[str]) -> list[float]:
        """The teacher's scores of one query's group.

        Args:
            qid: The query.
            docnos: Its group (positive first, then negatives).
            positives: Its judged positives.

        Returns:
            One score per docno.
        """


#: a negative-source registry entry: ``factory(corpus, encoder, n, depth, **settings) -> NegativeSource``
NegativeSourceFactory = Callable[..., NegativeSource]


class Loss(Protocol):
    """A training loss (an ``nn.Module``), built as ``loss(temperature=..., **settings)``; the registry holds the
    class. A loss that sets ``needs_teacher`` also gets ``teacher=`` scores (B x G)."""

    needs_teacher: ClassVar[bool]

    def __call__(self, queries: Any, docs: Any, *, doc_ids: Any, positives: Any, **teacher: Any) -> Any:
        """The loss of one batch.

        Args:
            queries: Query embeddings (B x d).
            docs: Document embeddings (B*G x d, each query's group is [positive, hard negatives...]).
            doc_ids: The documents' ids.
            positives: Each query's judged positives (masked out of its negatives).
            **teacher: ``teacher``, when the loss sets ``needs_teacher``.

        Returns:
            A scalar tensor.
        """


class ExportTarget(Protocol):
    """An export (a function): ``target(source, out_dir, **settings)`` writes ``source`` under ``out_dir``."""

    def __call__(self, source: Any, out_dir: str | Path, **settings: Any) -> Path:
        """Export ``source``.

        Args:
            source: An encoder or an index.
            out_dir: Where to write.
            **settings: The target's settings.

        Returns:
            The path written.
        """


@runtime_checkable
class Adapter(Protocol):
    """What trains in an encoder (:class:`pt_dense.encoders.adapters.Adapter`, full fine-tuning, is the base).

    The registry holds the class; ``name``, ``default_lr`` and ``plain`` (no adapter weights) are class attributes.
    """

    name: ClassVar[str]
    default_lr: ClassVar[float]
    plain: ClassVar[bool]

    def config(self) -> dict:
        """Settings that rebuild the adapter.

        Returns:
            A JSON-ready dict with ``name``.
        """

    def wrap(self, model: Any) -> Any:
        """Put the adapter on a copy of a plain model.

        Args:
            model: The plain model.

        Returns:
            The wrapped copy, base weights frozen.
        """

    def backbone(self, model: Any) -> Any:
        """The base model of a wrapped model.

        Args:
            model: The wrapped model.

        Returns:
            The model without the adapter.
        """

    def save(self, model: Any, folder: Path) -> dict:
        """Write what must be kept of ``model``.

        Args:
            model: The wrapped model.
            folder: Where to write.

        Returns:
            Additions to the saved config.
        """

    def load(self, backbone: Any, folder: Path) -> Any:
        """The backbone with the adapter saved in ``folder``.

        Args:
            backbone: The base model.
            folder: Where the adapter was saved.

        Returns:
            The wrapped model.
        """

    def merged(self, model: Any) -> tuple[Any, Any]:
        """Fold the adapter into the weights.

        Args:
            model: The wrapped model.

        Returns:
            (the merged model, the adapter it then carries).
        """

    def export_model(self, model: Any) -> Any:
        """A copy of ``model`` with plain weights (for ONNX).

        Args:
            model: The wrapped model.

        Returns:
            The copy.
        """
