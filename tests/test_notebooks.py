"""The course notebooks (examples/tutorial.ipynb, examples/lab.ipynb) run from top to bottom as shipped, so they
never go stale: each is executed by nbclient in a kernel of this test run's Python, in a temporary folder, with
the environment of conftest.py (every library that writes under $HOME pointed at a temporary folder).

A notebook fails here when any cell raises, and the notebooks check their own results with ``assert`` (Lucene
answers as FAISS does, the exercise's system is evaluated, ...).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="pip install -e '.[dev]' (nbclient, nbformat, ipykernel)")
nbclient = pytest.importorskip("nbclient", reason="pip install -e '.[dev]' (nbclient, nbformat, ipykernel)")

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
KERNEL = "pt-dense-tests"
CELL_TIMEOUT_S = 1200  # one cell; the longest (encoding the tutorial's corpus) took 3.5 minutes on 2 shared cores


@pytest.fixture
def kernel_env(tmp_path, monkeypatch):
    """A kernel spec for this Python (whatever `python3` spec the machine has), and Jupyter's, IPython's and
    matplotlib's own files in the temporary folder; the kernel inherits this environment."""
    spec = tmp_path / "jupyter" / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "pt_dense tests", "language": "python"}))
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(home / "jupyter-data"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(home / "jupyter-runtime"))
    monkeypatch.setenv("JUPYTER_CONFIG_DIR", str(home / "jupyter-config"))
    monkeypatch.setenv("IPYTHONDIR", str(home / "ipython"))
    monkeypatch.setenv("MPLCONFIGDIR", str(home / "matplotlib"))
    monkeypatch.setenv("HF_HOME", str(home / "huggingface"))
    work = tmp_path / "work"
    work.mkdir()
    return work


def execute(name: str, work: Path) -> tuple[nbformat.NotebookNode, float]:
    notebook = nbformat.read(EXAMPLES / name, as_version=4)
    assert not any(cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"), \
        f"{name} is shipped with outputs: clear them (they go stale)"
    client = nbclient.NotebookClient(notebook, kernel_name=KERNEL, timeout=CELL_TIMEOUT_S, startup_timeout=120,
                                     resources={"metadata": {"path": str(work)}})
    started = time.perf_counter()
    client.execute()  # raises CellExecutionError, naming the cell, if one fails
    seconds = time.perf_counter() - started
    print(f"{name}: executed in {seconds:.0f} s")
    (work / f"{Path(name).stem}.executed.ipynb").write_text(nbformat.writes(notebook))
    return notebook, seconds


def outputs(notebook, kind: str) -> list:
    return [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs if kind in o.get("data", {})]


def text_of(notebook) -> str:
    return "\n".join(o.get("text", "") + str(o.get("data", {}).get("text/plain", ""))
                     for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs)


@pytest.mark.integration
def test_tutorial_runs_top_to_bottom(kernel_env):
    notebook, _ = execute("tutorial.ipynb", kernel_env)
    assert len(outputs(notebook, "image/png")) >= 1  # the chart, inline
    shown = text_of(notebook)
    for system in ("BM25", "dense (MiniLM)", "BM25 >> PEFA", "LoRA + corrector", "Lucene HNSW"):
        assert system in shown, f"the tutorial no longer shows {system!r}"
    assert (kernel_env / "out" / "tutorial" / "onnx" / "model.onnx").exists()
    assert any((kernel_env / "out" / "tutorial" / "lucene" / "index").glob("segments_*"))


@pytest.mark.integration
def test_lab_runs_as_shipped_with_its_exercise_cell(kernel_env):
    notebook, _ = execute("lab.ipynb", kernel_env)
    exercise = [c for c in notebook.cells if c.cell_type == "code" and "EXERCISE" in c.source]
    assert len(exercise) == 1, "the lab has exactly one exercise cell"
    assert "my system" in text_of(notebook)  # the student's system is evaluated beside the others
    assert len(outputs(notebook, "image/png")) >= 1
