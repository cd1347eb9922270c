"""Scaling laws: the contrastive log-likelihood (hand-computed), power-law fits, budget plans, the grid runner."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pyterrier as pt
import pytest
from conftest import WORDS, tiny_bert, write_beir
from ir_measures import nDCG

from pt_dense import BiEncoder, InputError, datasets
from pt_dense.scaling import (
    CLL,
    GridConfig,
    ScalingLaw,
    contrastive_candidates,
    contrastive_loglik,
    fit_law,
    load_cells,
    non_embedding_parameters,
    run_grid,
    truncated_encoder,
)
from pt_dense.scaling.grid import _dev_split, annotation_pairs, dev_validator, study_encoder, unseen_queries
from pt_dense.scaling.measure import sample_negatives


class TableEncoder:
    """An encoder whose vectors are given by a table (so L can be computed by hand)."""

    def __init__(self, vectors: dict[str, list[float]]):
        self.vectors = vectors

    def encode(self, texts, side="doc"):
        return np.array([self.vectors[t] for t in texts], dtype=np.float32)


CORPUS = {"p": "text-p", "n1": "text-n1", "n2": "text-n2"}
TOY_VECTORS = {"what": [1.0, 0.0], "text-p": [0.8, 0.6], "text-n1": [0.6, 0.8], "text-n2": [0.0, 1.0]}
TOY_TOPICS = pd.DataFrame({"qid": ["q"], "query": ["what"]})
TOY_QRELS = pd.DataFrame({"qid": ["q", "q"], "docno": ["p", "n2"], "label": [1, 0]})


def test_contrastive_loglik_matches_a_hand_computed_value():
    # scores: p 0.8, n1 0.6, n2 0.0; at t = 0.5: -log(e^1.6 / (e^1.6 + e^1.2 + e^0))
    expected = -math.log(math.exp(1.6) / (math.exp(1.6) + math.exp(1.2) + 1.0))
    value = contrastive_loglik(TableEncoder(TOY_VECTORS), TOY_TOPICS, TOY_QRELS, CORPUS, negatives=2,
                               temperature=0.5)
    assert value == pytest.approx(expected, abs=1e-6)
    # one negative: which one is drawn is fixed by the seed, and the value is that of the one drawn
    drawn = sample_negatives("q", np.array(sorted(CORPUS), dtype=object), {"p"}, 1, seed=3)
    score = {"n1": 0.6, "n2": 0.0}[drawn[0]]
    one = contrastive_loglik(TableEncoder(TOY_VECTORS), TOY_TOPICS, TOY_QRELS, CORPUS, negatives=1, seed=3,
                             temperature=0.5)
    assert one == pytest.approx(math.log(1 + math.exp(2 * score - 1.6)), abs=1e-6)


def test_several_positives_are_averaged_and_never_sampled_as_negatives():
    corpus = {f"d{i}": f"t{i}" for i in range(40)}
    qrels = pd.DataFrame({"qid": ["q"] * 3, "docno": ["d0", "d1", "d2"], "label": [1, 2, 1]})
    for seed in range(20):
        negatives = sample_negatives("q", np.array(sorted(corpus), dtype=object), {"d0", "d1", "d2"}, 37, seed)
        assert len(set(negatives)) == 37 and not {"d0", "d1", "d2"} & set(negatives)
    rng = np.random.default_rng(0)
    vectors = {"what": [1.0, 0.0]} | {t: list(rng.normal(size=2)) for t in corpus.values()}
    per_query = contrastive_loglik(TableEncoder(vectors), TOY_TOPICS, qrels, corpus, negatives=37, temperature=1.0,
                                   per_query=True)
    scores = {d: vectors[t][0] for d, t in corpus.items()}
    lse = math.log(sum(math.exp(scores[f"d{i}"]) for i in range(3, 40)))
    expected = np.mean([np.logaddexp(scores[p], lse) - scores[p] for p in ("d0", "d1", "d2")])
    assert per_query["q"] == pytest.approx(expected, abs=1e-6)


def test_a_random_encoder_scores_near_log_k_and_the_same_seed_gives_the_same_value(tiny_encoder):
    corpus = {f"d{i}": " ".join(WORDS[i % 20 : i % 20 + 4]) for i in range(30)}
    topics = pd.DataFrame({"qid": ["a", "b"], "query": ["cat dog", "gene cancer"]})
    qrels = pd.DataFrame({"qid": ["a", "b"], "docno": ["d1", "d9"], "label": [1, 1]})
    first = contrastive_loglik(tiny_encoder, topics, qrels, corpus, negatives=16, seed=1, temperature=1.0)
    assert first == contrastive_loglik(tiny_encoder, topics, qrels, corpus, negatives=16, seed=1, temperature=1.0)
    assert abs(first - math.log(17)) < 0.1  # random vectors, no temperature sharpening: close to uniform


def test_the_measure_in_pt_experiment_equals_the_function(tiny_encoder):
    corpus = {f"d{i}": " ".join(WORDS[i % 20 : i % 20 + 4]) for i in range(30)}
    topics = pd.DataFrame({"qid": ["a", "b"], "query": ["cat dog", "gene cancer"]})
    qrels = pd.DataFrame({"qid": ["a", "b", "b"], "docno": ["d1", "d9", "d4"], "label": [1, 1, 0]})
    candidates = contrastive_candidates(corpus, qrels, negatives=12, seed=5)
    table = pt.Experiment([candidates >> tiny_encoder.scorer()], topics, qrels, [CLL(), nDCG @ 10], names=["tiny"])
    expected = contrastive_loglik(tiny_encoder, topics, qrels, corpus, negatives=12, seed=5)
    assert table["CLL"][0] == pytest.approx(expected, abs=1e-5)
    assert 0 <= table["nDCG@10"][0] <= 1
    # a pipeline path through contrastive_loglik gives the same value as the encoder path
    assert contrastive_loglik(tiny_encoder.scorer(), topics, qrels, corpus, negatives=12, seed=5) == \
        pytest.approx(expected, abs=1e-5)


def test_contrastive_loglik_refuses_bad_input(tiny_encoder):
    with pytest.raises(InputError, match="fewer than the 5 negatives"):
        contrastive_loglik(TableEncoder(TOY_VECTORS), TOY_TOPICS, TOY_QRELS, CORPUS, negatives=5)
    with pytest.raises(InputError, match="no query of the input has a judged positive"):
        contrastive_loglik(TableEncoder(TOY_VECTORS), TOY_TOPICS, TOY_QRELS.assign(qid="other"), CORPUS, negatives=1)
    with pytest.raises(InputError, match="query"):
        contrastive_loglik(TableEncoder(TOY_VECTORS), TOY_TOPICS.drop(columns="query"), TOY_QRELS, CORPUS)
    with pytest.raises(InputError, match="temperature"):
        contrastive_loglik(TableEncoder(TOY_VECTORS), TOY_TOPICS, TOY_QRELS, CORPUS, negatives=1, temperature=0)
    with pytest.raises(InputError, match="needs an encoder"):
        contrastive_loglik(object(), TOY_TOPICS, TOY_QRELS, CORPUS, negatives=1)


# ---------------------------------------------------------------------- laws
TRUE = {"A": 2e5, "B": 300.0, "alpha": 0.5, "beta": 1.2, "delta": 0.8}
SIZES, COUNTS = [1.7e6, 3.5e6, 5.3e6, 7.1e6, 10.6e6], [250, 500, 1000, 2000, 4000]


def synthetic_points(noise: float = 0.005, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    points = []
    for n in SIZES:
        for d in COUNTS:
            value = ((TRUE["A"] / n) ** (TRUE["alpha"] / TRUE["beta"]) + TRUE["B"] / d) ** TRUE["beta"] + TRUE["delta"]
            points.append({"N": n, "D": d, "L": value * (1 + noise * rng.standard_normal())})
    return points


def test_joint_fit_recovers_the_law_and_predicts_the_held_out_cells():
    law = fit_law(synthetic_points(), "ND", bootstrap=30)
    assert law.r2 > 0.99
    assert law.params["beta"] == pytest.approx(TRUE["beta"], rel=0.15)
    assert law.params["delta"] == pytest.approx(TRUE["delta"], rel=0.15)
    assert law.ci["beta"][0] <= law.params["beta"] <= law.ci["beta"][1]
    assert [p["D"] for p in law.points if p["held_out"]] == [4000] * len(SIZES)
    assert law.max_holdout_error < 0.03 < law.holdout_baseline_error  # the law extrapolates; a constant does not


def test_single_variable_fits_and_the_floor_stays_below_every_point():
    points = synthetic_points(noise=0.0)
    by_d = fit_law([p for p in points if p["N"] == SIZES[-1]], "D", holdout=None, bootstrap=10)
    assert by_d.r2 > 0.999 and by_d.params["delta"] < min(p["L"] for p in points)
    by_n = fit_law([p for p in points if p["D"] == COUNTS[-1]], "N", bootstrap=10)
    assert by_n.r2 > 0.99 and by_n.holdout_errors and by_n.max_holdout_error < 0.05
    assert by_n.predict(N=1e9) < by_n.predict(N=1e6)


def test_a_law_saves_loads_and_plots(tmp_path):
    law = fit_law(synthetic_points(), "ND", bootstrap=5)
    law.save(tmp_path / "law.json")
    loaded = ScalingLaw.load(tmp_path / "law.json")
    np.testing.assert_allclose(loaded.predict(N=[2e6, 8e6], D=[300, 3000]), law.predict(N=[2e6, 8e6], D=[300, 3000]))
    png = law.plot(tmp_path / "law.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_budget_plan_spends_within_budget_and_beats_every_affordable_alternative():
    law = fit_law(synthetic_points(noise=0.0), "ND", holdout=None, bootstrap=0)
    costs = {"annotation_cost": 1.0, "train_cost": 1e-7, "inference_cost": 1e-4}
    plan = law.plan(10_000, **costs)
    assert sum(plan.cost.values()) == pytest.approx(10_000, rel=1e-6)
    for n in np.geomspace(2e5, 1e8, 50):  # brute force over sizes, each with the annotations it can afford
        d = (10_000 - costs["inference_cost"] * n) / (costs["annotation_cost"] + costs["train_cost"] * n)
        if d >= 1 and 1.7e5 <= n <= 1.06e8:
            assert law.predict(N=n, D=d) + 1e-9 >= plan.L
    assert law.plan(40_000, **costs).L < plan.L  # more money, lower loss
    assert law.plan(10_000, **costs, sizes=SIZES).N in SIZES


def test_fits_and_plans_refuse_bad_input():
    with pytest.raises(InputError, match="needs N, D and L"):
        fit_law([{"N": 1, "L": 2}] * 8, "ND")
    with pytest.raises(InputError, match="at least 6 points"):
        fit_law(synthetic_points()[:5], "ND", holdout=None)
    with pytest.raises(InputError, match="positive"):
        fit_law([{"D": d, "L": -1.0} for d in COUNTS], "D", holdout=None)
    with pytest.raises(InputError, match="kind"):
        fit_law(synthetic_points(), "X")  # type: ignore[arg-type]
    by_d = fit_law([p for p in synthetic_points() if p["N"] == SIZES[0]], "D", holdout=None, bootstrap=0)
    with pytest.raises(InputError, match="joint law"):
        by_d.plan(100, annotation_cost=1)
    with pytest.raises(InputError, match="needs N and D"):
        fit_law(synthetic_points(), "ND", bootstrap=0).predict(D=100)
    with pytest.raises(InputError, match="buys no annotation"):
        fit_law(synthetic_points(), "ND", bootstrap=0).plan(1, annotation_cost=10)


# ---------------------------------------------------------------------- grid
def test_truncated_encoder_keeps_the_first_layers_and_counts_non_embedding_parameters(tiny_encoder):
    model, _ = tiny_bert(layers=3)
    base = BiEncoder(model, tiny_encoder.tokenizer, query_max_length=16, doc_max_length=16)
    one = truncated_encoder(base, 1)
    per_layer = sum(p.numel() for p in model.encoder.layer[0].parameters())
    assert len(base.model.encoder.layer) == 3 and len(one.model.encoder.layer) == 1
    assert non_embedding_parameters(one.model) == per_layer
    assert non_embedding_parameters(base.model) == 3 * per_layer
    with pytest.raises(InputError, match="between 1 and 3"):
        truncated_encoder(base, 4)


@pytest.fixture
def tiny_collection(tmp_path):
    rng = np.random.default_rng(0)
    docs = [{"docno": f"d{i}", "title": "", "text": " ".join(rng.choice(WORDS, 6))} for i in range(80)]
    queries = [{"qid": f"q{i}", "query": " ".join(rng.choice(WORDS, 3))} for i in range(40)]
    train = [(f"q{i}", f"d{(i * 3 + j) % 80}", 1) for i in range(30) for j in range(2)]
    test = [(f"q{i}", f"d{(i * 5) % 80}", 1) for i in range(30, 40)]
    return write_beir(tmp_path / "tiny", docs, queries, {"train": train, "test": test})


def test_grid_caches_each_cell_resumes_and_refuses_other_settings(tmp_path, tiny_collection):
    model, tok = tiny_bert(layers=2)
    model.save_pretrained(tmp_path / "model")
    tok.save_pretrained(tmp_path / "model")
    config = GridConfig(data=str(tiny_collection), model=str(tmp_path / "model"), layers=[1, 2],
                        annotations=[8, 16], batch_size=4, negatives=20, lr=1e-3, steps=5, patience=0)
    cells = run_grid(config, tmp_path / "grid", progress=False)
    assert [(c["layers"], c["D"]) for c in cells] == [(1, 8), (1, 16), (2, 8), (2, 16)]
    assert all(0 < c["L"] < 2 * math.log(21) and c["steps"] == 5 for c in cells)  # 8 pairs: 2 steps an epoch
    assert cells[2]["N"] == 2 * cells[0]["N"]
    killed = tmp_path / "grid" / "cells" / "layers2-annotations16.json"
    killed.unlink()  # as if the run was killed during the last cell
    stamps = {f.name: f.stat().st_mtime_ns for f in (tmp_path / "grid" / "cells").glob("*.json")}
    again = run_grid(config, tmp_path / "grid", progress=False)
    assert again[:3] == cells[:3] and again[3]["L"] == pytest.approx(cells[3]["L"], abs=1e-5)
    assert all((tmp_path / "grid" / "cells" / n).stat().st_mtime_ns == t for n, t in stamps.items())
    assert len(load_cells(tmp_path / "grid")) == 4
    with pytest.raises(InputError, match="other settings"):
        run_grid(GridConfig(**{**config.__dict__, "lr": 1e-2}), tmp_path / "grid", progress=False)
    with pytest.raises(InputError, match="ask for more"):
        run_grid(GridConfig(**{**config.__dict__, "annotations": [10_000]}), tmp_path / "grid", progress=False)


def test_grid_cells_stop_early_on_dev_and_never_end_worse_than_their_start(tmp_path, tiny_collection):
    model, tok = tiny_bert(layers=2)
    model.save_pretrained(tmp_path / "model")
    tok.save_pretrained(tmp_path / "model")
    config = GridConfig(data=str(tiny_collection), model=str(tmp_path / "model"), layers=[2], annotations=[8, 40],
                        batch_size=4, negatives=20, lr=1e-3, steps=30, patience=2, valid_every=2, dev_queries=10,
                        dev_pool=30)
    small, large = run_grid(config, tmp_path / "grid", progress=False)
    data = datasets.load(tiny_collection)
    texts = datasets.doc_texts(data)
    train_topics = data.topics("train")
    pairs = annotation_pairs(data.qrels("train"), train_topics, set(texts), config.seed)
    dev_topics, dev_qrels, kept = _dev_split(data, config, pairs, train_topics)
    assert len(kept) == len(pairs) - 2 * 10 == 40  # 30 queries x 2 pairs, 10 queries held out
    assert 5 <= len(dev_topics) <= 10 and not set(dev_topics["qid"]) & set(kept["qid"])
    assert set(dev_qrels["qid"]) == set(dev_topics["qid"]) and not set(dev_qrels["docno"]) & set(kept["docno"])
    test_qrels = data.qrels("test")
    unseen = unseen_queries(test_qrels, set(pairs["docno"]))
    assert 0 < len(unseen) < 10 and not set(test_qrels[test_qrels["qid"].isin(unseen)]["docno"]) & set(pairs["docno"])
    start = study_encoder(str(tmp_path / "model"), 32, 128, precision="fp32")  # as the grid makes its base
    start_dev_L = -dev_validator(dev_topics, dev_qrels, texts, config)(truncated_encoder(start, 2))
    for cell in (small, large):
        assert cell["dev_L"] <= start_dev_L + 1e-6 and cell["best_step"] % 2 == 0 and cell["steps"] <= 30
        assert cell["steps"] == 30 or cell["steps"] - cell["best_step"] == 2 * 2  # stopped once patience ran out
        by_qid = cell["L_by_qid"]
        assert cell["L"] == pytest.approx(np.mean(list(by_qid.values())), abs=1e-4)
        assert cell["unseen_queries"] == len(unseen)
        assert cell["L_unseen"] == pytest.approx(np.mean([by_qid[q] for q in unseen]), abs=1e-4)
    with pytest.raises(InputError, match="dev_queries"):
        run_grid(GridConfig(**{**config.__dict__, "dev_queries": 30}), tmp_path / "other", progress=False)
    with pytest.raises(InputError, match="dev queries have positives"):
        run_grid(GridConfig(**{**config.__dict__, "dev_queries": 2}), tmp_path / "few", progress=False)


def test_scaling_cli_measures_an_encoder(tmp_path, tiny_collection, capsys):
    from pt_dense.cli import main

    model, tok = tiny_bert(layers=2)
    model.save_pretrained(tmp_path / "model")
    tok.save_pretrained(tmp_path / "model")
    args = ["scaling", "measure", "--data", str(tiny_collection), "--encoder", str(tmp_path / "model"),
            "--negatives", "20", "--doc-max-length", "16"]
    assert main(args) == 0 and main([*args, "--layers", "1"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("L = ")]
    values = [float(line.split()[2]) for line in lines]
    assert len(values) == 2 and all(0 < v < 2 * math.log(21) for v in values) and values[0] != values[1]
    assert main([*args, "--layers", "9"]) == 2
    assert "between 1 and 2" in capsys.readouterr().err


def test_scaling_cli_fits_and_plans(tmp_path, capsys):
    from pt_dense.cli import main

    cells = [{"layers": i + 1, **p} for i, p in enumerate(synthetic_points())]
    (tmp_path / "grid" / "cells").mkdir(parents=True)
    for i, cell in enumerate(cells):
        (tmp_path / "grid" / "cells" / f"{i:02d}.json").write_text(json.dumps(cell))
    assert main(["scaling", "fit", "--grid", str(tmp_path / "grid")]) == 0
    assert "R^2" in capsys.readouterr().out and (tmp_path / "grid" / "law-ND.png").exists()
    assert main(["scaling", "plan", "--law", str(tmp_path / "grid" / "law-ND.json"), "--budget", "10000",
                 "--annotation-cost", "1", "--train-cost", "1e-7"]) == 0
    assert "predicted L" in capsys.readouterr().out
    assert main(["scaling", "fit", "--grid", str(tmp_path / "empty")]) == 2
    assert "no finished cells" in capsys.readouterr().err
