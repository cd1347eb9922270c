"""Checkpoints of a training run: the trainable weights, optimiser, scheduler and RNG states of the last two steps,
and ``run.json``, the record of the run's settings, adapter and data that a resume must match.

A fresh run (``resume=False``) writes its record and removes checkpoints of earlier runs in the folder; a resume
compares its record with the saved one and refuses any difference, naming it, so a checkpoint is never continued
under other settings, another adapter or other data.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from pt_dense.errors import InputError
from pt_dense.io.atomic import atomic_dir, replace_file
from pt_dense.training.safe_state import load_state, save_state

RUN_FILE = "run.json"
#: the optimiser, scheduler and RNG states: ``optimizer.json`` + ``optimizer.safetensors`` (data only, see
#: :mod:`.safe_state`); ``optimizer.pt`` was a pickle, refused on resume
STATE_STEM, PICKLED_STATE = "optimizer", "optimizer.pt"
KEEP = 2
#: settings that say how a run is watched or stopped, not what it computes: a resume may change them
UNRECORDED = ("checkpoint_dir", "checkpoint_every", "resume", "progress", "max_steps")


def data_fingerprint(topics: pd.DataFrame, positives: dict[str, set[str]], texts: dict[str, str]) -> str:
    """A hash of the training data: the topics, their judged positives and every document's text."""
    digest = hashlib.blake2b(digest_size=16)
    for qid, query in sorted(zip(topics["qid"].astype(str), topics["query"].astype(str), strict=True)):
        digest.update(f"{qid}\t{query}\t{','.join(sorted(positives.get(qid, ())))}\n".encode())
    for docno in sorted(texts):
        digest.update(f"{docno}\t{texts[docno]}\n".encode())
    return digest.hexdigest()


def run_record(settings: dict, encoder, negatives, data: str) -> dict:
    """What defines a run: its settings, the encoder's name, settings and adapter, the negatives, the data."""
    described = str(negatives) if isinstance(negatives, (str, Path)) or negatives is None else type(negatives).__name__
    return {"settings": {k: v for k, v in settings.items() if k not in UNRECORDED},
            "encoder": {"name": str(encoder.name), "settings": encoder.settings(), "adapter": repr(encoder.adapter)},
            "negatives": described, "data": data}


def start(root: str | Path, record: dict, *, resume: bool, rank: int = 0) -> Path | None:
    """Begin a run in ``root``: the latest checkpoint to resume from (None: start from step 0)."""
    root = Path(root)
    saved_file = root / RUN_FILE
    if resume and saved_file.exists():
        saved = json.loads(saved_file.read_text())
        changed = differences(saved, json.loads(json.dumps(record)))
        if changed:
            listed = "; ".join(f"{key}: {was!r} then, {now!r} now" for key, (was, now) in changed.items())
            raise InputError(f"cannot resume from {root}: the run there differs ({listed}); resume with the same "
                             "settings, or start afresh without resume (its checkpoints are then replaced)")
        return latest(root)
    if rank == 0:
        root.mkdir(parents=True, exist_ok=True)
        for old in root.glob("step-*"):
            shutil.rmtree(old, ignore_errors=True)
        shutil.rmtree(root / "best", ignore_errors=True)
        replace_file(saved_file, json.dumps(record, indent=1, default=str))
    return None


def differences(saved: dict, now: dict, prefix: str = "") -> dict[str, tuple]:
    """Leaf values that differ between two records, by dotted key."""
    changed: dict[str, tuple] = {}
    for key in sorted(set(saved) | set(now)):
        was, new = saved.get(key), now.get(key)
        if isinstance(was, dict) and isinstance(new, dict):
            changed |= differences(was, new, f"{prefix}{key}.")
        elif was != new:
            changed[f"{prefix}{key}"] = (was, new)
    return changed


def save(root: str | Path, encoder, optimizer, scheduler, state: dict, rank: int = 0) -> None:
    """Write the checkpoint of ``state['step']`` (atomically) and keep the last :data:`KEEP`."""
    if rank != 0:
        return
    root = Path(root)
    with atomic_dir(root / f"step-{state['step']:08d}", overwrite=True) as tmp:
        encoder.save_trainable(tmp / "weights.pt")
        save_state({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                    "rng": {"python": random.getstate(), "numpy": np.random.get_state(),
                            "torch": torch.get_rng_state()}}, tmp / STATE_STEM)
        (tmp / "state.json").write_text(json.dumps(state, indent=1))
    for old in sorted(root.glob("step-*"))[:-KEEP]:
        shutil.rmtree(old, ignore_errors=True)


def latest(root: str | Path) -> Path | None:
    found = sorted(p for p in Path(root).glob("step-*") if (p / "state.json").exists())
    return found[-1] if found else None


def load(folder: Path, encoder, optimizer, scheduler) -> dict:
    """Restore weights, optimiser, scheduler and RNG states from a checkpoint; returns the training state."""
    if (folder / PICKLED_STATE).exists() and not Path(f"{folder / STATE_STEM}.json").exists():
        raise InputError(f"{folder} was saved by an older pt_dense, whose optimiser state is a pickle that can run "
                         "code when loaded: it is not loaded. Start the run afresh (without resume)")
    saved = load_state(folder / STATE_STEM)
    encoder.load_trainable(folder / "weights.pt")
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    random.setstate(saved["rng"]["python"])
    np.random.set_state(saved["rng"]["numpy"])
    torch.set_rng_state(saved["rng"]["torch"])
    return json.loads((folder / "state.json").read_text())
