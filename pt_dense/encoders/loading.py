"""Reading model and encoder folders: settings stored beside the weights, the base model a saved adapter names, and
clear errors for folders that hold no loadable model.

A saved adapter records its base as ``{"name": <short name or hub id>, "sha": <hash of the base weights>}``: never
an absolute path, so the folder loads on another machine that has the same base (found by name there), while a
different base under the same name is refused by the hash. A base known only by a local path is stored in the
folder itself (``base/``).
"""

from __future__ import annotations

import json
from pathlib import Path

from pt_dense.errors import BaseModelMismatchError, ModelFolderError, UnknownModelError
from pt_dense.io.files import read_json
from pt_dense.io.hashing import state_hash
from pt_dense.models import resolve

#: our settings file beside the weights (written by TorchEncoder.save)
CONFIG_FILE = "pt_dense_encoder.json"
BASE_FOLDER = "base"


def check_model_folder(folder: Path) -> None:
    """Refuse a folder whose ``config.json`` is missing, unreadable, or names no model (e.g. ``{}``)."""
    config_file = folder / "config.json"
    if not config_file.exists():
        raise ModelFolderError(f"{folder} holds no config.json: not a Hugging Face model folder")
    config = read_json(config_file, ModelFolderError, "restore it from the model's source")
    if not isinstance(config, dict) or not (config.get("model_type") or config.get("architectures")):
        raise ModelFolderError(
            f"{config_file} names no model_type: pt_dense cannot tell which model family it holds. Restore the "
            "config.json saved with the weights (it has \"model_type\", e.g. \"bert\"), or save the encoder again")


def load_pretrained(loader, source: str, what: str = "model"):
    """``loader.from_pretrained(source)``, with a clear error when a local folder or hub id cannot be loaded."""
    if Path(source).is_dir() and what == "model":
        check_model_folder(Path(source))
    try:
        return loader.from_pretrained(source)
    except (OSError, ValueError, KeyError) as err:
        offline = "" if Path(source).is_dir() else " (a hub id needs the network or a copy in the local HF cache)"
        raise UnknownModelError(f"cannot load the {what} of {source!r}{offline}: {err}") from err


def read_folder_settings(folder: Path) -> dict:
    """Settings stored beside a model: ours (from ``TorchEncoder.save``) or sentence-transformers'."""
    ours = folder / CONFIG_FILE
    if ours.exists():
        try:
            settings = json.loads(ours.read_text())
        except json.JSONDecodeError as err:
            raise ModelFolderError(f"{ours} is not valid JSON ({err}); save the encoder again") from err
        if not isinstance(settings, dict):
            raise ModelFolderError(f"{ours} does not hold pt_dense settings; save the encoder again")
        return settings
    settings: dict = {}
    pooling_file = folder / "1_Pooling" / "config.json"
    if pooling_file.exists():
        pooling = json.loads(pooling_file.read_text())
        settings["pooling"] = ("cls" if pooling.get("pooling_mode_cls_token") else
                               "last" if pooling.get("pooling_mode_lasttoken") else "mean")
    modules_file = folder / "modules.json"
    if modules_file.exists():
        modules = json.loads(modules_file.read_text())
        settings["normalize"] = any(m.get("type", "").endswith("Normalize") for m in modules)
    st_file = folder / "sentence_bert_config.json"
    if st_file.exists():
        max_length = json.loads(st_file.read_text()).get("max_seq_length")
        if max_length:
            settings["query_max_length"] = settings["doc_max_length"] = int(max_length)
    return settings


def base_record(portable: str | None, backbone) -> dict | None:
    """What a saved adapter records of its base: its portable name and weight hash (None: store the base)."""
    if portable is None:
        return None
    return {"name": portable, "sha": state_hash(backbone.state_dict())}


def load_base(folder: Path, record, auto_model):
    """The base model of a saved adapter: stored in ``base/``, or found by the name it records and checked by hash.

    Returns (model, portable name or None)."""
    if (folder / BASE_FOLDER).is_dir():
        return load_pretrained(auto_model, str(folder / BASE_FOLDER)), None
    if isinstance(record, str):  # folders saved before names and hashes: a short name, hub id or path
        resolved = resolve(record)
        return load_pretrained(auto_model, resolved.source), resolved.portable
    if not isinstance(record, dict) or not record.get("name"):
        raise ModelFolderError(f"{folder} holds an adapter but names no base model and stores none in base/; "
                               "save the encoder again from a model loaded by name")
    resolved = resolve(record["name"])
    model = load_pretrained(auto_model, resolved.source)
    expected = record.get("sha")
    if expected and state_hash(model.state_dict()) != expected:
        raise BaseModelMismatchError(
            f"{folder} was trained on {record['name']!r} with weights {expected}, but the model found under that "
            f"name here ({resolved.source}) has other weights: install the same version of {record['name']!r}, "
            "or retrain the adapter on this one")
    return model, resolved.portable


def portable_adapter_config(folder: Path, portable: str | None) -> None:
    """Replace the base model path peft writes into ``adapter_config.json`` by the portable name (or nothing), and
    drop the model card peft writes beside it (it repeats the path)."""
    card = folder / "README.md"
    if card.exists() and "library_name: peft" in card.read_text(errors="ignore"):
        card.unlink()
    file = folder / "adapter_config.json"
    if file.exists():
        config = json.loads(file.read_text())
        config["base_model_name_or_path"] = portable
        file.write_text(json.dumps(config, indent=2))
