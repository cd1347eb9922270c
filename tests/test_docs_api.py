"""The API reference (pt_dense/pt_docs/api.rst) documents exactly the names in ``pt_dense.__all__``."""

from __future__ import annotations

import re
from pathlib import Path

import pt_dense

API = Path(pt_dense.__file__).parent / "pt_docs" / "api.rst"
DIRECTIVE = re.compile(r"^\.\. auto(?:class|exception|function|module|data)::\s*pt_dense\.(\w+)\s*$", re.M)


def documented() -> list[str]:
    return DIRECTIVE.findall(API.read_text(encoding="utf-8"))


def test_api_page_lists_every_public_name_once():
    names = documented()
    assert len(names) == len(set(names)), f"documented twice: {sorted({n for n in names if names.count(n) > 1})}"
    missing = sorted(set(pt_dense.__all__) - set(names))
    extra = sorted(set(names) - set(pt_dense.__all__))
    assert not missing, f"in pt_dense.__all__ but not in {API.name}: {missing}"
    assert not extra, f"in {API.name} but not in pt_dense.__all__: {extra}"


def test_every_name_of_all_resolves():
    for name in pt_dense.__all__:
        assert getattr(pt_dense, name) is not None

