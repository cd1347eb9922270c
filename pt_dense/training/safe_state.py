"""Saving nested training state (optimiser, scheduler, RNG states) in files that cannot run code when loaded.

A pickle (``torch.save``) runs whatever its author put in it when it is loaded, so a run folder handed to someone
would be a way in. Here tensors and numpy arrays go to a safetensors file and everything else (dicts, lists, tuples,
numbers, strings, None) to JSON, with tuples and dict keys that are not strings kept exactly: what is loaded is data,
never code.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from pt_dense.errors import InputError

TENSOR, ARRAY, TUPLE, ITEMS = "__tensor__", "__ndarray__", "__tuple__", "__items__"


def save_state(state: object, stem: Path) -> None:
    """Write ``state`` as ``<stem>.json`` (its structure) and ``<stem>.safetensors`` (its tensors)."""
    tensors: dict[str, torch.Tensor] = {}
    structure = _flatten(state, tensors)
    save_file(tensors, f"{stem}.safetensors")
    Path(f"{stem}.json").write_text(json.dumps(structure))


def load_state(stem: Path) -> object:
    """What :func:`save_state` wrote at ``stem``; an InputError if it is missing or not of that form."""
    json_file, tensor_file = Path(f"{stem}.json"), Path(f"{stem}.safetensors")
    if not (json_file.exists() and tensor_file.exists()):
        raise InputError(f"{stem}: the saved state is incomplete ({json_file.name} and {tensor_file.name} are "
                         "needed); resume from another checkpoint or start the run afresh")
    try:
        return _restore(json.loads(json_file.read_text()), load_file(str(tensor_file)))
    except (ValueError, KeyError, TypeError, OSError) as err:
        raise InputError(f"{stem}: the saved state is damaged ({err}); resume from another checkpoint or start the "
                         "run afresh") from err


def _flatten(value: object, tensors: dict[str, torch.Tensor]) -> object:
    if isinstance(value, torch.Tensor):
        key = str(len(tensors))
        tensors[key] = value.detach().cpu().contiguous()
        return {TENSOR: key}
    if isinstance(value, np.ndarray):
        key = str(len(tensors))
        tensors[key] = torch.from_numpy(np.ascontiguousarray(value))
        return {ARRAY: key}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return {TUPLE: [_flatten(v, tensors) for v in value]}
    if isinstance(value, list):
        return [_flatten(v, tensors) for v in value]
    if isinstance(value, dict):
        return {ITEMS: [[_flatten(k, tensors), _flatten(v, tensors)] for k, v in value.items()]}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot save a {type(value).__name__} as data (only tensors, arrays, numbers, strings and "
                    "containers of them)")


def _restore(value: object, tensors: dict[str, torch.Tensor]) -> object:
    if isinstance(value, list):
        return [_restore(v, tensors) for v in value]
    if not isinstance(value, dict):
        return value
    if TENSOR in value:
        return tensors[value[TENSOR]]
    if ARRAY in value:
        return tensors[value[ARRAY]].numpy()
    if TUPLE in value:
        return tuple(_restore(v, tensors) for v in value[TUPLE])
    return {_restore(k, tensors): _restore(v, tensors) for k, v in value[ITEMS]}
