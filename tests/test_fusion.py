"""Linear (min-max normalised) fusion and reciprocal rank fusion on hand-made runs."""

from __future__ import annotations

import pandas as pd
import pyterrier as pt
import pytest

from pt_dense import InputError, linear_fusion, rrf

TOPICS = pd.DataFrame({"qid": ["1"], "query": ["q"]})


def run(scores: dict[str, float]) -> pt.Transformer:
    frame = pd.DataFrame({"qid": "1", "query": "q", "docno": list(scores), "score": list(scores.values())})
    return pt.Transformer.from_df(pt.model.add_ranks(frame))


def test_linear_fusion_mixes_normalised_scores():
    a = run({"x": 10.0, "y": 5.0, "z": 0.0})
    b = run({"y": 0.9, "z": 0.5, "w": 0.1})
    out = linear_fusion(a, b, weight=0.25)(TOPICS).set_index("docno")["score"]
    assert out["x"] == pytest.approx(0.25 * 1.0)
    assert out["y"] == pytest.approx(0.25 * 0.5 + 0.75 * 1.0)
    assert out["z"] == pytest.approx(0.75 * 0.5)
    assert out["w"] == pytest.approx(0.0)
    with pytest.raises(InputError, match="weight"):
        linear_fusion(a, b, weight=1.5)


def test_rrf_sums_reciprocal_ranks():
    a = run({"x": 3.0, "y": 2.0})
    b = run({"y": 3.0, "z": 2.0})
    out = rrf(a, b, k=60)(TOPICS).set_index("docno")["score"]
    assert out["y"] == pytest.approx(1 / 61 + 1 / 60)
    assert out["x"] == pytest.approx(1 / 60)
    assert out.idxmax() == "y"
    with pytest.raises(InputError, match="two systems"):
        rrf(a)
