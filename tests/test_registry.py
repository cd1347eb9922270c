"""Declared extension points: one Registry type that refuses a duplicate, names its choices on a miss, and reads
third-party entries from package entry points (a dummy distribution written into the test)."""

from __future__ import annotations

import importlib
import sys
import textwrap
import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import WORDS, tiny_bert

from pt_dense import export
from pt_dense.encoders.adapters import ADAPTERS, Adapter, Lora, adapter_kind
from pt_dense.errors import InputError
from pt_dense.index.dense_index import DenseIndex
from pt_dense.index.retriever import RETRIEVER_KINDS
from pt_dense.models import FAMILIES, PRESETS, ModelFamily, Preset, family_for, register_family, register_preset
from pt_dense.registry import Registry
from pt_dense.registry import protocols as contracts
from pt_dense.training import BiEncoder
from pt_dense.training.cached import POLICIES
from pt_dense.training.losses import LOSSES, ContrastiveLoss
from pt_dense.training.negatives import HybridTeacher, InBatch
from pt_dense.training.recipes import RECIPES
from pt_dense.training.source_table import NEGATIVE_SOURCES

#: every registry pt_dense has, with one of its built-in names
REGISTRIES = {"family": (FAMILIES, "bert"), "retriever kind": (RETRIEVER_KINDS, "flat"),
              "loss": (LOSSES, "contrastive"), "negative source": (NEGATIVE_SOURCES, "in-batch"),
              "export target": (export.TARGETS, "onnx"), "adapter": (ADAPTERS, "lora"),
              "recipe": (RECIPES, "full-distill"), "model preset": (PRESETS, "minilm")}

TOPICS = pd.DataFrame({"qid": [f"q{i}" for i in range(4)], "query": [" ".join(WORDS[i : i + 3]) for i in range(4)]})
DOCS = {f"d{i}": " ".join(WORDS[i : i + 6]) for i in range(8)}
QRELS = pd.DataFrame({"qid": [f"q{i}" for i in range(4)], "docno": [f"d{i}" for i in range(4)], "label": 1})


@pytest.mark.parametrize("kind", REGISTRIES)
def test_every_registry_refuses_a_duplicate_naming_both(kind):
    registry, name = REGISTRIES[kind]
    assert isinstance(registry, Registry) and registry.kind == kind
    with pytest.raises(InputError, match=rf"{kind} '{name}' is registered twice: .* and .*intruder"):
        registry.register(name, "intruder:Thing")
    registry[name]  # the first entry is kept


@pytest.mark.parametrize("kind", REGISTRIES)
def test_a_miss_names_the_choices(kind):
    registry, name = REGISTRIES[kind]
    with pytest.raises(InputError, match=rf"unknown {kind} 'nope'; registered: \[.*'{name}'"):
        registry["nope"]
    assert name in registry.choices() and name in list(registry) and registry.get("nope") is None


def test_register_is_a_decorator_and_lazy_references_load_on_lookup():
    registry = Registry("widget")

    @registry.register("a")
    def a():
        return 1

    registry.register("b", "textwrap:dedent")
    assert registry["a"] is a and a() == 1 and registry["b"] is textwrap.dedent and registry.choices() == ["a", "b"]
    registry.register("c", "no_such_module_here:x")
    with pytest.raises(InputError, match="widget 'c' cannot be loaded from no_such_module_here:x"):
        registry["c"]
    registry.unregister("c")
    with pytest.raises(InputError, match="unknown widget 'c'"):
        registry.unregister("c")


def test_a_family_covering_a_taken_model_type_is_refused():
    with pytest.raises(InputError, match=r"model_type \['bert'\], which family 'bert' covers already"):
        register_family(ModelFamily("bert-again", ("bert",), ("query",), "encoder.layer"))


def test_a_preset_whose_alias_is_taken_is_refused_whole():
    with pytest.raises(InputError, match="model preset 'contriever' is registered twice"):
        register_preset(Preset("my-contriever", None, "mean", False, 512, aliases=("Contriever",)))
    assert "my-contriever" not in PRESETS


def test_built_in_entries_follow_their_protocols():
    assert all(isinstance(family, contracts.ModelFamily) for family in FAMILIES.values())
    assert all(isinstance(kind(), contracts.Adapter) for kind in (Adapter, Lora))
    assert isinstance(InBatch(), contracts.NegativeSource) and not isinstance(InBatch(), contracts.TeacherSource)
    assert issubclass(HybridTeacher, contracts.TeacherSource)
    assert {f"cache:{policy}" for policy in POLICIES} <= set(NEGATIVE_SOURCES)  # each cache policy has its source
    assert adapter_kind("none") == "full"  # the one adapter table: recipes' and the CLI's "none" is "full"
    assert {recipe.adapter for recipe in RECIPES.values()} <= set(ADAPTERS)


def test_reading_the_tables_imports_no_torch():
    import subprocess

    code = ("import sys\nfrom pt_dense.training.losses import LOSSES\nfrom pt_dense.encoders.adapters import ADAPTERS"
            "\nfrom pt_dense.training.source_table import NEGATIVE_SOURCES\n"
            "assert 'distill' in LOSSES and 'lora' in ADAPTERS and 'bm25' in NEGATIVE_SOURCES\n"
            "assert 'torch' not in sys.modules and 'pyterrier' not in sys.modules")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


DUMMY_MODULE = '''
from pt_dense.index.retriever import DenseRetriever
from pt_dense.models import ModelFamily
from pt_dense.training.losses.contrastive import ContrastiveLoss

FAMILY = ModelFamily("dummybert", ("dummybert",), ("query",), "encoder.layer", pooling="cls")


class ReversedKind(DenseRetriever):
    """The exact scores, worst first."""

    kind = "dummy-kind"

    def search(self, queries, k):
        import numpy as np

        scores = queries @ np.asarray(self.index.vectors).T
        rows = np.argsort(scores, axis=1)[:, :k]
        return np.take_along_axis(scores, rows, axis=1), rows


class CountingLoss(ContrastiveLoss):
    calls = 0

    def forward(self, *args, **kwargs):
        type(self).calls += 1
        return super().forward(*args, **kwargs)
'''

ENTRY_POINTS = """
[pt_dense.families]
dummybert = dummy_pt_dense_ext:FAMILY

[pt_dense.retriever_kinds]
dummy-kind = dummy_pt_dense_ext:ReversedKind

[pt_dense.losses]
dummy-loss = dummy_pt_dense_ext:CountingLoss
"""


@pytest.fixture
def dummy_distribution(tmp_path, monkeypatch):
    """A distribution ``dummy_pt_dense_ext`` 0.1 'installed' on ``sys.path`` for the test, with three entry points."""
    site = tmp_path / "site"
    info = site / "dummy_pt_dense_ext-0.1.dist-info"
    info.mkdir(parents=True)
    (site / "dummy_pt_dense_ext.py").write_text(DUMMY_MODULE)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: dummy_pt_dense_ext\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    registries = (FAMILIES, RETRIEVER_KINDS, LOSSES)

    def refresh():
        importlib.invalidate_caches()
        for registry in registries:
            registry.refresh()

    monkeypatch.syspath_prepend(str(site))
    refresh()
    yield site
    monkeypatch.undo()  # sys.path as it was, then the tables without the dummy's entries
    sys.modules.pop("dummy_pt_dense_ext", None)
    refresh()


def test_entry_points_of_a_dummy_distribution_work_end_to_end(dummy_distribution, tmp_path):
    assert {"dummybert", "dummy-kind", "dummy-loss"} <= set(FAMILIES) | set(RETRIEVER_KINDS) | set(LOSSES)

    # a retriever kind: index.retriever(kind=...)
    index = DenseIndex(tmp_path / "idx")
    index.indexer(progress=False).index({"docno": f"d{i}", "doc_vec": v} for i, v in enumerate(np.eye(4, dtype="f4")))
    query = pd.DataFrame({"qid": ["1"], "query_vec": [np.array([1, 0.5, 0.25, 0], np.float32)]})
    assert index.retriever(k=2, kind="dummy-kind")(query)["docno"].tolist() == ["d3", "d2"]

    # a model family: a tiny model of a new model_type takes the dummy's spec (CLS pooling, LoRA on query only)
    model, tokenizer = tiny_bert()
    model.config.model_type = "dummybert"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "no ModelFamily for model_type" warning
        family = family_for(model)
    assert family is FAMILIES["dummybert"] and family.pooling == "cls" and family.known
    encoder = BiEncoder(model, tokenizer, name="dummy", query_max_length=16, doc_max_length=32, batch_size=4)
    lora = encoder.with_lora(r=2)
    trainable = {n.split(".lora_")[0].rsplit(".", 1)[-1] for n, p in lora.model.named_parameters() if p.requires_grad}
    assert trainable == {"query"}

    # a loss: fit(loss=...) trains with it
    module = sys.modules["dummy_pt_dense_ext"]
    history = lora.fit(TOPICS, QRELS, corpus=DOCS, loss="dummy-loss", epochs=1, batch_size=2, progress=False)
    assert module.CountingLoss.calls == 2 == len(history["loss"])
    assert LOSSES["dummy-loss"] is module.CountingLoss and issubclass(module.CountingLoss, ContrastiveLoss)


def test_an_entry_point_that_takes_a_built_in_name_is_refused_naming_both(dummy_distribution):
    (dummy_distribution / "dummy_pt_dense_ext-0.1.dist-info" / "entry_points.txt").write_text(
        "[pt_dense.losses]\ncontrastive = dummy_pt_dense_ext:CountingLoss\n")
    importlib.invalidate_caches()
    LOSSES.refresh()
    with pytest.raises(InputError, match=r"loss 'contrastive' is registered twice: .*ContrastiveLoss.* and "
                                         r"dummy_pt_dense_ext:CountingLoss \(entry point of dummy_pt_dense_ext\)"):
        LOSSES.choices()
