"""Sphinx configuration for pt_dense's documentation (``make docs``).

The pages live in the package, ``pt_dense/pt_docs/``, the way PyTerrier's extensions keep theirs: PyTerrier's own
documentation site copies each installed extension's ``pt_docs/`` folder and builds it with its configuration. This
file is the configuration for building those pages on their own, here and in CI:

    sphinx-build -W -n -c docs pt_dense/pt_docs docs/_build/html

It uses the extensions of PyTerrier's site that install from PyPI (the furo theme, tabs, design, toggle buttons) and
plain Sphinx otherwise (autodoc, napoleon for Google-style docstrings). PyTerrier's own directives (``related``,
``schematic``, ``cite.dblp``, ``how-to``) do not install from PyPI: the pages do not use them. No extension reaches
the network: intersphinx is off, so names of other libraries stay plain text (see ``nitpick_ignore_regex``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the working tree's pt_dense, installed or not
os.environ.setdefault("OPENAI_API_KEY", "unused")  # Pyserini 1.6.0 asks for one at import (see DESIGN.md)

import logging  # noqa: E402

logging.getLogger("faiss.loader").setLevel(logging.WARNING)  # which CPU build FAISS loads: not the docs' news

import pt_dense  # noqa: E402

project = "pt_dense"
author = "the pt_dense authors"
copyright = "the pt_dense authors"  # noqa: A001 (Sphinx's name)
release = pt_dense.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx_tabs.tabs",
    "sphinx_design",
    "sphinx_togglebutton",
]

root_doc = "index"
source_suffix = {".rst": "restructuredtext"}
exclude_patterns = ["_build"]
language = "en"
html_theme = "furo"
html_title = f"pt_dense {release}"
toc_object_entries_show_parents = "hide"  # as PyTerrier's site: `retriever()`, not `DenseIndex.retriever()`

# Every warning fails the build (-W) and every cross-reference must resolve (-n).
nitpicky = True

# -- autodoc and napoleon (Google-style docstrings) ------------------------------------------------------------------
autodoc_default_options = {"member-order": "bysource"}
autodoc_typehints = "signature"
autodoc_typehints_format = "short"
autodoc_inherit_docstrings = False
autodoc_class_signature = "mixed"
autoclass_content = "both"  # the class docstring, then __init__'s (its Args:), as PyTerrier's site does
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
napoleon_use_ivar = True

# -- cross-references that cannot resolve ----------------------------------------------------------------------------
# Intersphinx is off (the build runs offline), so a type from another library in a signature (pandas.DataFrame,
# numpy.ndarray, torch.nn.Module, pyterrier.Transformer...) has no target here. Those libraries are matched by their
# top-level name; pt_dense's own names must all resolve.
_OTHER_LIBRARIES = (
    "collections", "concurrent", "faiss", "json", "np", "numpy", "onnx", "onnxruntime", "os", "pandas", "pathlib", "pd",
    "peft", "pt", "pta", "pyterrier", "pyterrier_alpha", "random", "scipy", "threading", "tokenizers", "torch",
    "transformers", "types", "typing", "ir_measures", "argparse", "datetime", "io", "logging", "contextlib",
)
nitpick_ignore_regex = [(r"py:.*", rf"({'|'.join(_OTHER_LIBRARIES)})(\..*)?")]
