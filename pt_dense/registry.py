"""One :class:`Registry` type for every extension point, and the ``Protocol`` each kind of extension follows.

A registry maps names to objects: model families, retriever kinds, losses, negative sources, export targets and
adapters. It refuses a second object under a name it holds, names its choices when a lookup misses, and reads the
entries third parties declare as package entry points (the way PyTerrier finds artifact types), so nobody edits
pt_dense to extend it::

    # a third party's pyproject.toml
    [project.entry-points."pt_dense.losses"]
    margin = "my_package.losses:MarginLoss"

An entry may also be a ``"module:attribute"`` reference, imported on first lookup: a registry then lists its names
(for the CLI's help) without importing torch.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar, Generic, Protocol, TypeVar, runtime_checkable

from pt_dense.errors import InputError

T = TypeVar("T")

#: the entry-point group of each extension kind
GROUPS = {"family": "pt_dense.families", "retriever kind": "pt_dense.retriever_kinds", "loss": "pt_dense.losses",
          "negative source": "pt_dense.negative_sources", "export target": "pt_dense.export_targets",
          "adapter": "pt_dense.adapters"}


class _Reference:
    """A ``"module:attribute"`` entry, imported on first lookup."""

    def __init__(self, target: str, origin: str):
        self.target, self.origin = target, origin

    def load(self) -> Any:
        module, _, attr = self.target.partition(":")
        value = importlib.import_module(module)
        for part in filter(None, attr.split(".")):
            value = getattr(value, part)
        return value


def _describe(value: Any) -> str:
    if isinstance(value, _Reference):
        return f"{value.target} ({value.origin})"
    name = getattr(value, "__qualname__", None) or type(value).__qualname__
    return f"{getattr(value, '__module__', None) or type(value).__module__}.{name}"


class Registry(Generic[T]):
    """Objects of one extension kind by name; third-party entries come from the entry-point group ``group``.

    Args:
        kind: What the entries are (``"loss"``...), used in error messages.
        group: The entry-point group read on first lookup or iteration (None: none).

    Example::

        LOSSES = Registry("loss", "pt_dense.losses")

        @LOSSES.register("margin")
        class MarginLoss(nn.Module): ...
    """

    def __init__(self, kind: str, group: str | None = None):
        self.kind, self.group = kind, group
        self._entries: dict[str, Any] = {}
        self._read_entry_points = group is None

    def register(self, name: str, obj: Any = None) -> Any:
        """Make ``obj`` the entry ``name``; without ``obj``, a decorator that registers what it decorates.

        Args:
            name: The entry's name.
            obj: The object, or a ``"module:attribute"`` string imported on first lookup.

        Returns:
            ``obj`` (or the decorator, which returns what it decorates).

        Raises:
            InputError: ``name`` is taken already (both entries are named); unregister the old one first.
        """
        if obj is None:
            return lambda decorated: self.register(name, decorated)
        self._add(name, _Reference(obj, "pt_dense") if isinstance(obj, str) else obj)
        return obj

    def _add(self, name: str, value: Any) -> None:
        if not isinstance(name, str) or not name:
            raise InputError(f"a {self.kind} needs a non-empty string name, not {name!r}")
        if name in self._entries:
            raise InputError(f"{self.kind} {name!r} is registered twice: {_describe(self._entries[name])} and "
                             f"{_describe(value)}; rename one of them (or unregister the first)")
        self._entries[name] = value

    def unregister(self, name: str) -> None:
        """Forget the entry ``name`` (a test's clean-up, or to replace a built-in on purpose).

        Args:
            name: The entry's name.

        Raises:
            InputError: No entry has that name.
        """
        self._load_entry_points()
        if name not in self._entries:
            raise self._miss(name)
        del self._entries[name]

    def get(self, name: str, default: Any = None) -> Any:
        """The entry ``name``, or ``default`` when there is none.

        Args:
            name: The entry's name.
            default: What a miss returns.

        Returns:
            The registered object (a ``"module:attribute"`` entry is imported now).
        """
        return self[name] if name in self else default

    def choices(self) -> list[str]:
        """The registered names, sorted (for CLI choices and help).

        Returns:
            Every name, entry points included.
        """
        self._load_entry_points()
        return sorted(self._entries)

    def _miss(self, name: object) -> InputError:
        return InputError(f"unknown {self.kind} {name!r}; registered: {self.choices()}")

    def _load_entry_points(self) -> None:
        if self._read_entry_points:
            return
        self._read_entry_points = True
        for point in importlib.metadata.entry_points(group=self.group):
            origin = point.dist.name if point.dist is not None else "an entry point"
            self._add(point.name, _Reference(point.value, f"entry point of {origin}"))

    def __getitem__(self, name: str) -> T:
        self._load_entry_points()
        if name not in self._entries:
            raise self._miss(name)
        value = self._entries[name]
        if isinstance(value, _Reference):
            try:
                value = self._entries[name] = value.load()
            except (ImportError, AttributeError) as err:
                raise InputError(f"{self.kind} {name!r} cannot be loaded from {_describe(value)}: {err}") from err
        return value

    def __setitem__(self, name: str, obj: Any) -> None:
        self.register(name, obj)

    def __delitem__(self, name: str) -> None:
        self.unregister(name)

    def __contains__(self, name: object) -> bool:
        self._load_entry_points()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.choices())

    def __len__(self) -> int:
        return len(self.choices())

    def keys(self) -> list[str]:
        """The registered names, sorted (as :meth:`choices`).

        Returns:
            Every name.
        """
        return self.choices()

    def values(self) -> list[T]:
        """The registered objects, in the order of their sorted names (every lazy entry is imported).

        Returns:
            Every object.
        """
        return [self[name] for name in self.choices()]

    def items(self) -> list[tuple[str, T]]:
        """``(name, object)`` pairs, by sorted name.

        Returns:
            Every entry.
        """
        return [(name, self[name]) for name in self.choices()]

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.choices()})"


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
class TeacherSource(NegativeSource, Protocol):
    """A negative source whose scores teach a distillation loss."""

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


__all__ = ["GROUPS", "Adapter", "ExportTarget", "Loss", "ModelFamily", "NegativeSource", "NegativeSourceFactory",
           "Registry", "RetrieverKind", "TeacherSource"]
