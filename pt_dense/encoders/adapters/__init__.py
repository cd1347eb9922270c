"""What trains in an encoder, one adapter kind per module: every weight (:mod:`.full`), a LoRA adapter
(:mod:`.lora`, peft) or deep prompts (:mod:`.prompts`).

:data:`ADAPTERS` is the one table of adapter kinds by name: what a saved encoder's ``adapter`` record names, what
``pt-dense train --adapter`` and a recipe's ``adapter`` take. A new kind is one module with an
:class:`~pt_dense.encoders.adapters.full.Adapter` subclass, registered here by reference or, from another package,
with an entry point in the ``pt_dense.adapters`` group. The built-in kinds are named by reference, so that reading
the table (the CLI's help) imports no torch.
"""

from __future__ import annotations

from pathlib import Path

from pt_dense.errors import InputError
from pt_dense.io.lazy import lazy_exports
from pt_dense.registry import GROUPS, Registry

#: adapter kinds by name; "full" trains every weight
ADAPTERS: Registry = Registry("adapter", GROUPS["adapter"])
ADAPTERS.register("full", "pt_dense.encoders.adapters.full:Adapter")
ADAPTERS.register("lora", "pt_dense.encoders.adapters.lora:Lora")
ADAPTERS.register("prompts", "pt_dense.encoders.adapters.prompts:Prompts")

#: older names of adapter kinds (``--adapter none`` and recipes before the one table)
ALIASES = {"none": "full"}


def adapter_kind(name: str) -> str:
    """The registered name of the adapter kind ``name`` (``"none"`` is read as ``"full"``).

    Args:
        name: An adapter kind's name or alias.

    Returns:
        The name :data:`ADAPTERS` holds it under.

    Raises:
        InputError: No such kind.
    """
    name = ALIASES.get(name, name)
    if name not in ADAPTERS:
        raise InputError(f"unknown adapter {name!r}; registered: {ADAPTERS.choices()} (or 'none' for 'full')")
    return name


def adapter_from_config(config: dict, folder: Path):
    """The adapter a saved encoder's settings describe (older folders name it ``mode`` and keep prompts apart).

    Args:
        config: The saved encoder's settings.
        folder: Its folder.

    Returns:
        The adapter object.

    Raises:
        InputError: The folder names an adapter kind that is not registered.
    """
    record = dict(config.get("adapter") or {"name": config.get("mode", "full")})
    name = record.pop("name")
    if name not in ADAPTERS:
        raise InputError(f"{folder} names an unknown adapter {name!r}; known: {ADAPTERS.choices()}")
    return ADAPTERS[name].from_record(record, config, Path(folder))


def is_adapter_folder(path: str | Path) -> bool:
    """A folder saved from an encoder with an adapter: the adapter alone, its base weights stored apart.

    Args:
        path: A folder.

    Returns:
        Whether it holds the marker file of a registered adapter kind.
    """
    return any(kind.marker and (Path(path) / kind.marker).exists() for kind in ADAPTERS.values())


_EXPORTS = {"Adapter": ".full", "Lora": ".lora", "ALL_LINEAR": ".lora", "Prompts": ".prompts",
            "PROMPTS_FILE": ".prompts"}
__getattr__, _dir = lazy_exports(__name__, _EXPORTS)
__all__ = ["ADAPTERS", "ALIASES", "Adapter", "Lora", "Prompts", "adapter_from_config", "adapter_kind",
           "is_adapter_folder"]
