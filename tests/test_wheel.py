"""A built wheel, installed into a fresh environment with no checkout in sight, does what a checkout does: it imports
pt_dense from the wheel, finds the Java bridge jar inside the package (compiled when the wheel was built; nothing
is compiled at run time) and encodes queries in Java exactly as in Python."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: what the wheel is built from (a copy, so no build/ or egg-info lands in the working tree)
SOURCES = ("pt_dense", "java_bridge/src", "java_bridge/build.sh", "setup.py", "pyproject.toml", "MANIFEST.in",
           "README.md")

CHECK = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    import numpy as np
    import pt_dense
    from pt_dense.io.bridge import BRIDGE_DIR, PACKAGED_JAR, bridge_jar

    site = Path(sys.argv[1]).resolve()
    assert Path(pt_dense.__file__).resolve().is_relative_to(site), pt_dense.__file__
    assert not BRIDGE_DIR.exists() and bridge_jar() == PACKAGED_JAR and PACKAGED_JAR.is_relative_to(site)

    import torch
    from transformers import BertConfig, BertModel, BertTokenizer
    from pt_dense import BiEncoder, datasets, export
    from pt_dense.io.jvm import autoclass

    words = "the cat dog sat on mat protein cell gene cancer risk study blood brain drug".split()
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]
    torch.manual_seed(0)
    model = BertModel(BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                 intermediate_size=64, max_position_embeddings=64))
    encoder = BiEncoder(model, BertTokenizer(vocab={w: i for i, w in enumerate(vocab)}), name="tiny",
                        query_max_length=16)
    texts = ["the cat sat on the mat", "protein cell gene", "Dog!", "brain drug study risk"]
    folder = export.onnx(encoder, Path(sys.argv[2]) / "onnx", sample_docs=texts, sample_queries=texts)
    autoclass("java.lang.System").setProperty("ptdense.onnx.dir", str(folder))
    java = autoclass("io.anserini.encoder.dense.PtDenseEncoder")()
    vectors = np.array([list(java.encode(t)) for t in texts], dtype=np.float32)
    diff = float(np.abs(vectors - encoder.encode(texts, "query")).max())
    assert diff < 1e-5, diff
    docs = len(datasets.load("scifact").corpus_iter())
    print(json.dumps({"pt_dense": pt_dense.__file__, "jar": str(PACKAGED_JAR), "java_vs_python": diff,
                      "scifact_docs": docs}))
""")


@pytest.mark.slow
def test_an_installed_wheel_runs_the_java_bridge_without_a_checkout(tmp_path):
    import time

    started = time.perf_counter()
    source = tmp_path / "source"
    for name in SOURCES:
        (shutil.copytree if (ROOT / name).is_dir() else shutil.copy2)(
            ROOT / name, source / name, **({"ignore": shutil.ignore_patterns("__pycache__", "java")}
                                           if (ROOT / name).is_dir() else {}))
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist),
                    str(source)], check=True, cwd=tmp_path, capture_output=True, text=True)
    wheel = next(dist.glob("pt_dense-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "pt_dense/java/pt-dense-bridge.jar" in names and "pt_dense/data/scifact/corpus.jsonl.gz" in names
    assert not any(n.startswith(("java_bridge/", "tests/")) for n in names)

    # a fresh environment from this interpreter; its dependencies (torch, Pyserini, ...) are read from the project's
    # environment through a .pth line (a plain path: the checkout's editable install there stays inactive)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    (site / "project-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)], check=True,
                   cwd=tmp_path, capture_output=True, text=True)

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PT_DENSE_BRIDGE_JAR", "PYTHONPATH")}
    done = subprocess.run([str(python), "-c", CHECK, str(site), str(outside)], cwd=outside, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    print(done.stdout.strip().splitlines()[-1], f"{time.perf_counter() - started:.0f} s")
    assert '"scifact_docs": 5183' in done.stdout
    help_text = subprocess.run([str(venv / "bin" / "pt-dense"), "--help"], cwd=outside, env=env, check=True,
                               capture_output=True, text=True).stdout
    assert "demo" in help_text
