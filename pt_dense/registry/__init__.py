"""One :class:`Registry` type for every extension point, and (from ``pt_dense.registry.protocols``) the
``Protocol`` each kind of extension follows.

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
from collections.abc import Iterator
from typing import Any, Generic, TypeVar

from pt_dense.errors import InputError
from pt_dense.registry.protocols import (
    Adapter,
    ExportTarget,
    Loss,
    ModelFamily,
    NegativeSource,
    NegativeSourceFactory,
    RetrieverKind,
    TeacherSource,
)

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

    Example:
        ::

            LOSSES = Registry("loss", "pt_dense.losses")

            @LOSSES.register("margin")
            class MarginLoss(nn.Module): ...
    """

    def __init__(self, kind: str, group: str | None = None):
        self.kind, self.group = kind, group
        self._entries: dict[str, Any] = {}
        self._from_entry_points: set[str] = set()
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
        if name not in self:
            return default
        return self[name]

    def choices(self) -> list[str]:
        """The registered names, sorted (for CLI choices and help).

        Returns:
            Every name, entry points included.
        """
        self._load_entry_points()
        return sorted(self._entries)

    def _miss(self, name: object) -> InputError:
        return InputError(f"unknown {self.kind} {name!r}; registered: {self.choices()}")

    def refresh(self) -> None:
        """Forget the entries read from entry points; the next lookup reads them again (after a package install).

        Call ``importlib.invalidate_caches()`` first when the distribution appeared on ``sys.path`` in this process.
        """
        for name in self._from_entry_points:
            self._entries.pop(name, None)
        self._from_entry_points.clear()
        self._read_entry_points = self.group is None

    def _load_entry_points(self) -> None:
        if self._read_entry_points:
            return
        self._read_entry_points = True
        for point in importlib.metadata.entry_points(group=self.group):
            origin = point.dist.name if point.dist is not None else "an unnamed distribution"
            self._add(point.name, _Reference(point.value, f"entry point of {origin}"))
            self._from_entry_points.add(point.name)

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

    def values(self) -> list:
        """The registered objects, in the order of their sorted names (every lazy entry is imported).

        Returns:
            Every object.
        """
        return [self[name] for name in self.choices()]

    def items(self) -> list[tuple[str, Any]]:
        """``(name, object)`` pairs, by sorted name.

        Returns:
            Every entry.
        """
        return [(name, self[name]) for name in self.choices()]

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.choices()})"


__all__ = ["GROUPS", "Adapter", "ExportTarget", "Loss", "ModelFamily", "NegativeSource", "NegativeSourceFactory",
           "Registry", "RetrieverKind", "TeacherSource"]
