"""Training: the loss, negative sources, LoRA, checkpoints and resume, save/load, and 2-process gradients."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from conftest import WORDS, tiny_bert

from pt_dense import BiEncoder, InputError
from pt_dense.training.losses import contrastive_loss
from pt_dense.training.negatives import FileNegatives, RetrieverNegatives, mine

TOPICS = pd.DataFrame({"qid": [f"q{i}" for i in range(8)], "query": [" ".join(WORDS[i : i + 3]) for i in range(8)]})
DOCS = {f"d{i}": " ".join(WORDS[i : i + 6]) for i in range(16)}
QRELS = pd.DataFrame({"qid": [f"q{i}" for i in range(8)] + ["q0"], "docno": [f"d{i}" for i in range(8)] + ["d9"],
                      "label": 1})


def no_dropout_encoder(seed: int = 0) -> BiEncoder:
    model, tok = tiny_bert(seed)
    model.config.hidden_dropout_prob = model.config.attention_probs_dropout_prob = 0.0
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    return BiEncoder(model, tok, query_max_length=16, doc_max_length=16)


def test_loss_matches_a_hand_computed_value():
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    d = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0], [0.8, 0.6]])  # groups: [d0, d1], [d2, d3]
    loss = contrastive_loss(q, d, temperature=1.0)
    s0 = torch.tensor([1.0, 0.6, 0.0, 0.8])
    s1 = torch.tensor([0.0, 0.8, 1.0, 0.6])
    expected = ((torch.logsumexp(s0, 0) - 1.0) + (torch.logsumexp(s1, 0) - 1.0)) / 2
    assert loss.item() == pytest.approx(expected.item(), abs=1e-6)


def test_a_positive_is_never_a_negative():
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    d = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    # d1 is also judged relevant to q0: it must leave q0's denominator
    masked = contrastive_loss(q, d, temperature=1.0, doc_ids=["a", "b"], positives=[{"a", "b"}, {"b"}])
    expected_q0 = 0.0  # only its own positive remains
    expected_q1 = (torch.logsumexp(torch.tensor([0.0, 1.0]), 0) - 1.0).item()
    assert masked.item() == pytest.approx((expected_q0 + expected_q1) / 2, abs=1e-6)


def test_lora_trains_only_the_adapter_and_changes_vectors(tiny_encoder):
    lora = tiny_encoder.with_lora(r=2, alpha=4)
    trainable, total = lora.trainable_parameters()
    assert lora.mode == "lora" and tiny_encoder.mode == "full" and 0 < trainable < total
    before = lora.encode(list(TOPICS["query"]), "query")
    base_before = {k: v.clone() for k, v in lora.model.state_dict().items() if "lora_" not in k}
    history = lora.fit(TOPICS, QRELS, corpus=DOCS, epochs=2, batch_size=4, lr=1e-2, progress=False, seed=1)
    assert all(torch.equal(v, lora.model.state_dict()[k]) for k, v in base_before.items())
    assert len(history["loss"]) == 4 and all(math.isfinite(x) for x in history["loss"])
    assert np.abs(lora.encode(list(TOPICS["query"]), "query") - before).max() > 1e-4
    np.testing.assert_allclose(tiny_encoder.encode(["cat"]), BiEncoder(*tiny_bert()).encode(["cat"]), atol=1e-6)


def test_full_fine_tuning_lowers_the_training_loss():
    enc = no_dropout_encoder()
    history = enc.fit(TOPICS, QRELS, corpus=DOCS, epochs=8, batch_size=8, lr=1e-3, warmup_ratio=0.0,
                      progress=False)
    assert np.mean(history["loss"][-2:]) < history["loss"][0] * 0.7


def test_saved_lora_encoder_round_trips_and_merges(tmp_path, tiny_encoder):
    lora = tiny_encoder.with_lora(r=2, alpha=4)
    lora.fit(TOPICS, QRELS, corpus=DOCS, epochs=1, batch_size=4, lr=1e-2, progress=False)
    lora.save(tmp_path / "enc")
    assert (tmp_path / "enc" / "adapter_config.json").exists()
    loaded = BiEncoder.from_pretrained(str(tmp_path / "enc"))
    assert loaded.mode == "lora" and loaded.fingerprint == lora.fingerprint
    texts = list(TOPICS["query"])
    np.testing.assert_allclose(loaded.encode(texts), lora.encode(texts), atol=1e-6)
    merged = loaded.merge()
    assert merged.mode == "full"
    np.testing.assert_allclose(merged.encode(texts), lora.encode(texts), atol=1e-5)


def test_killed_run_resumes_to_the_same_weights(tmp_path):
    settings = {"epochs": 2, "batch_size": 4, "lr": 1e-3, "progress": False, "seed": 7}
    straight = BiEncoder(*tiny_bert(3)).with_lora(r=2, alpha=4)
    straight.fit(TOPICS, QRELS, corpus=DOCS, **settings)
    resumed = BiEncoder(*tiny_bert(3)).with_lora(r=2, alpha=4)
    ckpt = str(tmp_path / "ckpt")
    resumed.fit(TOPICS, QRELS, corpus=DOCS, checkpoint_dir=ckpt, checkpoint_every=1, max_steps=3, **settings)
    partial = resumed.encode(["cat"]).copy()
    fresh = BiEncoder(*tiny_bert(3)).with_lora(r=2, alpha=4)  # a new process would start from scratch
    fresh.fit(TOPICS, QRELS, corpus=DOCS, checkpoint_dir=ckpt, checkpoint_every=1, resume=True, **settings)
    assert not np.allclose(partial, straight.encode(["cat"]))
    for (name, a), (_, b) in zip(straight.model.state_dict().items(), fresh.model.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


def test_hard_negatives_from_a_retriever_and_a_mined_file(tmp_path, tiny_encoder):
    import pyterrier as pt

    ranked = pd.DataFrame({"qid": ["q0"] * 4, "docno": ["d0", "d9", "d12", "d13"], "rank": [0, 1, 2, 3],
                           "score": [4.0, 3.0, 2.0, 1.0]})
    retriever = pt.Transformer.from_df(ranked)
    source = RetrieverNegatives(retriever, n=2, depth=10)
    source.prepare(TOPICS, {"q0": {"d0", "d9"}})
    drawn = source.sample("q0", {"d0", "d9"}, 2, seed=1, epoch=0)
    assert sorted(drawn) == ["d12", "d13"]  # judged positives d0, d9 skipped
    assert source.sample("q0", {"d0", "d9"}, 2, seed=1, epoch=0) == drawn  # seeded
    path = mine(retriever, TOPICS.head(1), tmp_path / "neg.tsv")
    from_file = FileNegatives(path, n=2)
    from_file.prepare(TOPICS, {})
    assert from_file.sample("q0", {"d0", "d9"}, 2, seed=1, epoch=0) == drawn
    history = tiny_encoder.with_lora(r=2).fit(TOPICS, QRELS, corpus=DOCS, negatives=path, epochs=1, batch_size=4,
                                              progress=False)
    assert len(history["loss"]) == 2


def test_each_positive_makes_every_judged_pair_an_example(tiny_encoder):
    from pt_dense.training.trainer import TrainConfig, epoch_batches

    positives = {"q0": {"d0", "d9"}} | {f"q{i}": {f"d{i}"} for i in range(1, 8)}
    cfg = TrainConfig(batch_size=3, each_positive=True)
    rows = [r for batch in epoch_batches(TOPICS, positives, cfg, epoch=0) for r in batch]
    assert len(rows) == 9 and {("q0", "d0"), ("q0", "d9")} <= {(q, d) for q, _, d in rows}
    assert rows == [r for batch in epoch_batches(TOPICS, positives, cfg, epoch=0) for r in batch]  # seeded
    one_each = [r for batch in epoch_batches(TOPICS, positives, TrainConfig(batch_size=3), epoch=1) for r in batch]
    assert len(one_each) == 6 and ("q0", TOPICS.at[0, "query"], "d9") in one_each  # 8 queries, ragged tail dropped
    history = tiny_encoder.with_lora(r=2).fit(TOPICS, QRELS, corpus=DOCS, each_positive=True, epochs=1,
                                              batch_size=3, progress=False)
    assert len(history["loss"]) == 3  # 9 pairs in batches of 3
    lora = tiny_encoder.with_lora(r=2)
    history = lora.fit(TOPICS, QRELS, corpus=DOCS, steps=5, batch_size=4, doc_max_length=8, progress=False)
    assert len(history["loss"]) == 5  # 2 steps an epoch, repeated: exactly the steps asked for
    assert lora.doc_max_length == 32  # the training length is for training only


def test_validation_keeps_the_best_checkpoint(tmp_path, tiny_encoder):
    lora = tiny_encoder.with_lora(r=2)
    history = lora.fit(TOPICS, QRELS, TOPICS, QRELS, corpus=DOCS, epochs=2, batch_size=4, progress=False,
                       checkpoint_dir=str(tmp_path / "ck"))
    assert [v["epoch"] for v in history["valid"]] == [1, 2]
    assert all(0 <= v["nDCG@10"] <= 1 for v in history["valid"])
    assert (tmp_path / "ck" / "best" / "adapter_config.json").exists()


def test_training_bad_input(tiny_encoder):
    with pytest.raises(InputError, match="unknown training settings"):
        tiny_encoder.fit(TOPICS, QRELS, corpus=DOCS, epoch=3)
    with pytest.raises(InputError, match="judged positive"):
        tiny_encoder.fit(TOPICS, QRELS.assign(qid="zzz"), corpus=DOCS)
    with pytest.raises(InputError, match="negatives"):
        tiny_encoder.fit(TOPICS, QRELS, corpus=DOCS, negatives="colbert")
    with pytest.raises(InputError, match="corpus"):
        tiny_encoder.fit(TOPICS, QRELS)
    with pytest.raises(InputError, match="checkpoint_dir"):
        tiny_encoder.fit(TOPICS, QRELS, corpus=DOCS, resume=True)


def _global_batch():
    return [(f"q{i}", TOPICS.at[i, "query"], f"d{i}") for i in range(8)]


def _gradients(encoder, batch, world):
    from pt_dense.datasets import judged_positives
    from pt_dense.training.negatives import RankedNegatives
    from pt_dense.training.trainer import TrainConfig, batch_loss, sync_gradients

    negatives = RankedNegatives(n=1)
    negatives.candidates = {f"q{i}": [f"d{(i + 5) % 16}", f"d{(i + 9) % 16}"] for i in range(8)}
    cfg = TrainConfig(n_negatives=1)
    params = [p for p in encoder.model.parameters() if p.requires_grad]
    batch_loss(encoder, batch, DOCS, judged_positives(QRELS), negatives, cfg, epoch=0)
    sync_gradients(params, world)
    return {n: p.grad.clone() if p.grad is not None else torch.zeros_like(p)
            for n, p in encoder.model.named_parameters() if p.requires_grad}


def _distributed_worker(rank: int, world: int, port: int, out: str) -> None:
    import os

    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        torch.save(_gradients(no_dropout_encoder(), _global_batch()[rank::world], world), f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.integration
def test_two_processes_give_the_gradients_of_one_process_on_the_global_batch(tmp_path):
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_distributed_worker, args=(2, port, str(tmp_path)), nprocs=2, join=True)
    single = _gradients(no_dropout_encoder(), _global_batch(), world=1)
    for rank in (0, 1):
        distributed = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        assert distributed.keys() == single.keys()
        for name, grad in single.items():
            torch.testing.assert_close(distributed[name], grad, atol=1e-6, rtol=1e-4, msg=name)
    assert max(g.abs().max().item() for g in single.values()) > 1e-4  # the comparison is not between zeros


@pytest.mark.integration
def test_fit_runs_under_torchrun_and_keeps_ranks_in_sync(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).parent / "ddp_fit_script.py"
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", str(script),
                             str(tmp_path)], capture_output=True, text=True, timeout=300)
    errors = [line for line in result.stderr.splitlines() if re.search(r"error|terminate|abort|exception", line, re.I)]
    assert result.returncode == 0, "\n".join(errors[:20]) + "\n...\n" + result.stderr[-1500:]
    reports = [(tmp_path / f"rank{r}.txt").read_text() for r in (0, 1)]
    assert reports == ["steps 4 in_sync True"] * 2


@pytest.mark.integration
def test_unified_negatives_are_mined_once_from_bm25_and_dense_and_shared(scifact_subset, minilm, tmp_path):
    from pt_dense.datasets import load
    from pt_dense.training.negatives import UnifiedNegatives, mine_unified, read_mined
    from pt_dense.training.sources import resolve

    data = load(scifact_subset)
    topics = data.topics("test").head(5)
    path = mine_unified(data, topics, encoder=minilm, depth=20)
    lists = read_mined(path)
    assert set(lists) == set(topics["qid"]) and all(len(v) == 20 for v in lists.values())
    stamp = path.stat().st_mtime_ns
    source = resolve("unified", data, n=2, depth=20)
    assert isinstance(source, UnifiedNegatives)
    source.encoder = minilm
    source.prepare(topics, {})
    assert source.path == path and path.stat().st_mtime_ns == stamp  # the same file, not mined again
    positives = set(data.qrels("test").query("qid == @topics.qid.iloc[0]")["docno"])
    drawn = source.sample(topics["qid"].iloc[0], positives, 2, seed=0, epoch=0)
    assert len(drawn) == 2 and not positives & set(drawn)
    with pytest.raises(InputError, match="unified"):
        resolve("unified", {"d0": "text"})


@pytest.mark.integration
def test_hybrid_teacher_scores_are_the_linear_fusion_of_bm25_and_frozen_dense(scifact_subset, minilm):
    from pt_dense.bm25 import BM25
    from pt_dense.datasets import load
    from pt_dense.fusion import linear_fusion
    from pt_dense.index import cached_index
    from pt_dense.training.negatives import HybridTeacher
    from pt_dense.training.sources import resolve

    data = load(scifact_subset)
    topics = data.topics("test").head(4)
    source = resolve("hybrid", data, n=2, depth=20)
    assert isinstance(source, HybridTeacher)
    source.encoder = minilm
    source.prepare(topics, {})
    qid = topics["qid"].iloc[0]
    fused = linear_fusion(BM25(data, num_results=40), minilm.query_encoder() >> cached_index(data, minilm).retriever(
        k=40))(topics.head(1)).sort_values("rank")
    assert source.candidates[qid] == list(fused["docno"][:20])
    listed = source.candidates[qid][:3]
    expected = fused.set_index("docno")["score"]
    assert source.teacher_scores(qid, listed, set()) == pytest.approx([expected[d] for d in listed])
    best = max(source.scores[qid].values())
    assert source.teacher_scores(qid, ["not-retrieved", "also-not"], {"not-retrieved"}) == [best, 0.0]


def test_distill_loss_is_contrastive_plus_the_kl_to_the_teacher_and_pulls_the_student_to_its_order():
    from pt_dense.training.losses import make_loss

    torch.manual_seed(0)
    queries = F.normalize(torch.randn(3, 8), dim=-1)
    docs = F.normalize(torch.randn(9, 8), dim=-1).requires_grad_()  # 3 groups of [positive, 2 negatives]
    teacher = torch.tensor([[1.0, 0.6, 0.1], [0.9, 0.2, 0.5], [1.0, 0.0, 0.3]])
    off = make_loss("distill", weight=0.0)(queries, docs, teacher=teacher)
    torch.testing.assert_close(off, contrastive_loss(queries, docs, temperature=0.05))
    loss = make_loss("distill", teacher_temperature=0.1)
    kl = loss(queries, docs, teacher=teacher) - off
    assert kl > 0
    kl.backward()  # one step on the documents along the KL alone brings the student's groups nearer the teacher's
    moved = (docs - 0.05 * docs.grad).detach()
    assert loss(queries, moved, teacher=teacher) - make_loss("distill", weight=0.0)(queries, moved,
                                                                                    teacher=teacher) < kl
    groups = docs.detach().view(3, 3, 8)
    student = torch.einsum("bd,bgd->bg", queries, groups)
    exact = make_loss("distill", temperature=0.05, teacher_temperature=0.05)
    assert abs(exact(queries, docs.detach(), teacher=student) - off) < 1e-5  # a teacher equal to the student: KL 0
    with pytest.raises(ValueError, match="teacher scores of shape"):
        loss(queries, docs, teacher=teacher[:, :2])
    with pytest.raises(InputError, match="cannot be built"):
        make_loss("distill", teacher_temperature=0)


class _Teacher(RetrieverNegatives):
    """Negatives from a retriever, with the retriever's scores as the teacher's (HybridTeacher without BM25)."""

    def teacher_scores(self, qid, docnos, positives):
        return [1.0 if d in positives else 1.0 / (2 + int(d[1:])) for d in docnos]


def test_fit_with_distill_reads_the_sources_teacher_scores_and_refuses_a_source_without_them(tmp_path):
    import pyterrier as pt

    ranked = pd.DataFrame({"qid": [q for q in TOPICS["qid"] for _ in range(6)],
                           "docno": [f"d{(i + j) % 16}" for i in range(8) for j in range(6)],
                           "rank": list(range(6)) * 8, "score": [6.0 - j for j in range(6)] * 8})
    encoder = no_dropout_encoder().with_lora(r=2)
    source = _Teacher(pt.Transformer.from_df(ranked), n=3, depth=5)
    history = encoder.fit(TOPICS, QRELS, corpus=DOCS, negatives=source, loss="distill", epochs=1, batch_size=4,
                          loss_settings={"teacher_temperature": 0.2}, progress=False)
    assert len(history["loss"]) == 2 and all(math.isfinite(x) for x in history["loss"])
    with pytest.raises(InputError, match="negatives='hybrid'"):
        encoder.fit(TOPICS, QRELS, corpus=DOCS, loss="distill", progress=False)
    with pytest.raises(InputError, match="cannot be built"):
        encoder.fit(TOPICS, QRELS, corpus=DOCS, negatives=source, loss="distill", loss_settings={"weight": -1},
                    progress=False)


def test_mined_files_carry_scores_and_a_file_without_them_is_named_not_read_as_a_teacher(tmp_path):
    import pyterrier as pt

    from pt_dense.training.negatives import read_mined, read_scores

    ranked = pd.DataFrame({"qid": ["q0"] * 3 + ["q1"], "docno": ["d2", "d1", "d3", "d4"], "rank": [0, 1, 2, 0],
                           "score": [0.9, 0.75, 0.125, 1.0]})
    path = mine(pt.Transformer.from_df(ranked), TOPICS.head(2), tmp_path / "scored.tsv", depth=2)
    assert read_mined(path) == {"q0": ["d2", "d1"], "q1": ["d4"]}
    assert read_scores(path) == {"q0": {"d2": 0.9, "d1": 0.75}, "q1": {"d4": 1.0}}
    plain = tmp_path / "plain.tsv"
    plain.write_text("q0\td2\nq0\td1\n")
    assert read_mined(plain) == {"q0": ["d2", "d1"]}  # files of qid<TAB>docno still read as negatives
    with pytest.raises(InputError, match="has no scores"):
        read_scores(plain)


def test_every_registered_recipe_names_known_settings_negatives_and_loss():
    from pt_dense.training.losses import LOSSES
    from pt_dense.training.recipes import RECIPES
    from pt_dense.training.sources import NEGATIVE_SOURCES
    from pt_dense.training.trainer import TrainConfig

    assert {"full-distill", "lora-all-linear"} <= set(RECIPES)
    for recipe in RECIPES.values():
        assert set(recipe.settings) <= set(TrainConfig.__dataclass_fields__), recipe.name
        assert recipe.negatives in NEGATIVE_SOURCES, recipe.name
        assert recipe.settings.get("loss", "contrastive") in LOSSES, recipe.name
        if recipe.adapter == "lora":
            BiEncoder(*tiny_bert(0)).with_lora(**recipe.lora)  # the LoRA settings build


def test_interpolate_keeps_that_fraction_of_the_update_for_full_and_lora_and_refuses_prompts(tiny_encoder):
    def trained(adapter: str, interpolate: float) -> BiEncoder:
        torch.manual_seed(3)  # the same LoRA initialisation for both runs
        encoder = no_dropout_encoder()
        encoder = encoder.with_lora(r=2, alpha=4, dropout=0.0) if adapter == "lora" else encoder
        encoder.fit(TOPICS, QRELS, corpus=DOCS, epochs=2, batch_size=4, lr=1e-2, progress=False, seed=1,
                    interpolate=interpolate)
        return encoder

    def weights(encoder: BiEncoder) -> dict[str, torch.Tensor]:
        model = encoder.adapter.export_model(encoder.model)  # LoRA merged into the base weights
        return {k: v for k, v in model.state_dict().items() if v.is_floating_point()}

    start = weights(no_dropout_encoder())
    for adapter in ("full", "lora"):
        whole, half = weights(trained(adapter, 1.0)), weights(trained(adapter, 0.5))
        moved = [k for k in start if not torch.allclose(whole[k], start[k], atol=1e-5)]
        assert moved, adapter
        for k in moved:
            torch.testing.assert_close(half[k], start[k] + 0.5 * (whole[k] - start[k]), atol=2e-6, rtol=1e-5)
    with pytest.raises(InputError, match=r"interpolate=1\.0"):
        tiny_encoder.with_prompts(length=2).fit(TOPICS, QRELS, corpus=DOCS, epochs=1, batch_size=4,
                                                 progress=False, interpolate=0.5)
    for bad in (0.0, 1.5):
        with pytest.raises(InputError, match="interpolate must be in"):
            tiny_encoder.fit(TOPICS, QRELS, corpus=DOCS, epochs=1, batch_size=4, progress=False, interpolate=bad)


def _trainable(encoder) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in encoder.model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("scores, best_step, last_step", [([0.5, 0.4, 0.3, 0.9], 0, 2),  # never beats the start
                                                           ([0.1, 0.2, 0.7, 0.6, 0.5, 0.9], 2, 4)])
def test_early_stopping_keeps_the_best_validated_weights(tiny_encoder, scores, best_step, last_step):
    lora, seen = tiny_encoder.with_lora(r=2), []

    def dev_score(encoder):  # a scripted validator; each call also snapshots the weights it scored
        seen.append(_trainable(encoder))
        return scores[len(seen) - 1]

    history = lora.fit(TOPICS, QRELS, corpus=DOCS, steps=10, batch_size=4, lr=1e-2, progress=False,
                       validator=dev_score, valid_every=1, patience=2)
    assert [v["step"] for v in history["valid"]] == list(range(last_step + 1))
    assert len(history["loss"]) == last_step and history["best"]["step"] == best_step
    assert history["best"]["dev_score"] == scores[best_step]
    final = _trainable(lora)
    assert all(torch.equal(final[n], seen[best_step][n]) for n in final)
    assert not all(torch.equal(final[n], seen[last_step][n]) for n in final)  # training did move the weights


def test_validation_settings_are_checked(tiny_encoder):
    with pytest.raises(InputError, match="patience"):
        tiny_encoder.fit(TOPICS, QRELS, corpus=DOCS, patience=2, progress=False)
    with pytest.raises(InputError, match="valid_every"):
        tiny_encoder.fit(TOPICS, QRELS, TOPICS, QRELS, corpus=DOCS, valid_every=-1, progress=False)
    with pytest.raises(InputError, match="both"):
        tiny_encoder.fit(TOPICS, QRELS, TOPICS, corpus=DOCS, progress=False)


def test_early_stopping_survives_a_resume(tmp_path, tiny_encoder):
    scores, seen = [0.1, 0.9, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0], []

    def dev_score(encoder):
        seen.append(_trainable(encoder))
        return scores[len(seen) - 1]

    settings = dict(corpus=DOCS, steps=10, batch_size=4, lr=1e-2, progress=False, validator=dev_score, valid_every=1,
                    patience=4, checkpoint_dir=str(tmp_path / "ck"), checkpoint_every=1)
    first = tiny_encoder.with_lora(r=2)
    first.fit(TOPICS, QRELS, max_steps=3, **settings)  # paused after step 3: the best (step 1) is on disk only
    resumed = first.with_model(first.model, adapter=first.adapter)
    history = resumed.fit(TOPICS, QRELS, resume=True, **settings)
    assert [v["step"] for v in history["valid"]] == [0, 1, 2, 3, 4, 5]  # 4 without a better score after step 1
    assert history["best"]["step"] == 1
    final = _trainable(resumed)
    assert all(torch.equal(final[n], seen[1][n]) for n in final)
