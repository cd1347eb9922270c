"""The index layer loads without torch: it takes encoder objects and never loads a model by name."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pt_dense.errors import InputError
from pt_dense.index import add_documents, build_index, encode_shard


def test_importing_the_index_loads_no_torch():
    code = "import pt_dense.index, sys; assert 'torch' not in sys.modules"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


def test_importing_the_index_loads_no_transformers():
    code = "import pt_dense.index, sys; assert 'transformers' not in sys.modules"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.parametrize("call", [
    lambda tmp: build_index([], "minilm", tmp / "a.ptd"),
    lambda tmp: encode_shard([], "minilm", tmp / "b.ptd", 0, 2),
])
def test_an_encoder_given_by_name_is_refused_with_the_fix(tmp_path, call):
    with pytest.raises(InputError, match=r"encoder object.*from_pretrained"):
        call(tmp_path)


def test_add_documents_refuses_an_encoder_name_before_opening_anything(tmp_path):
    with pytest.raises(InputError, match="encoder object"):
        add_documents(tmp_path / "absent.ptd", [{"docno": "d", "text": "t"}], "minilm")
