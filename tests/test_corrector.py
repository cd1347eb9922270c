"""Corrector networks: learning stale -> fresh, refreshing an index (atomic, from base), cached training negatives."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import WORDS, tiny_bert

from pt_dense import BiEncoder, EncoderMismatchError, InputError
from pt_dense.corrector import Corrector, sample_rows
from pt_dense.index.dense_index import DenseIndex

RNG = np.random.default_rng(0)
DOCS = {f"d{i}": " ".join(RNG.choice(WORDS, 8)) for i in range(120)}


def encoder(seed: int) -> BiEncoder:
    return BiEncoder(*tiny_bert(seed), query_max_length=16, doc_max_length=16, batch_size=32)


def build_index(path, enc: BiEncoder) -> DenseIndex:
    index = DenseIndex(path)
    records = [{"docno": d, "text": t} for d, t in DOCS.items()]
    (enc.doc_encoder() >> index.indexer(progress=False)).index(records)
    return index


def drifted(enc: BiEncoder, scale: float = 0.05, seed: int = 1) -> BiEncoder:
    """The same encoder after a small 'training' step: every weight nudged."""
    import copy

    torch.manual_seed(seed)
    model = copy.deepcopy(enc.model)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn_like(p) * p.abs().mean())
    return BiEncoder(model, enc.tokenizer, query_max_length=16, doc_max_length=16, batch_size=32)


def test_a_corrector_starts_as_the_identity_and_learns_a_linear_drift():
    corrector = Corrector(8, width=32, depth=2)
    x = torch.nn.functional.normalize(torch.randn(5, 8), dim=-1)
    torch.testing.assert_close(corrector(x), x)
    rotation = torch.linalg.qr(torch.eye(8) + 0.3 * torch.randn(8, 8, generator=torch.Generator().manual_seed(0)))[0]
    stale = torch.nn.functional.normalize(torch.randn(400, 8, generator=torch.Generator().manual_seed(1)), dim=-1)
    fresh = stale @ rotation
    report = corrector.train_on(stale.numpy(), fresh.numpy(), epochs=200, lr=3e-3, batch_size=64)
    assert report.cosine_before < 0.95 and report.cosine_after > 0.99 > report.cosine_before
    contrastive = Corrector(8, width=32).train_on(stale.numpy(), fresh.numpy(), loss="contrastive", epochs=200,
                                                  lr=3e-3, batch_size=64)
    assert contrastive.cosine_after > report.cosine_before
    assert report.best_epoch > 100  # still improving late


def test_a_corrector_that_cannot_predict_the_drift_keeps_the_identity():
    stale = torch.nn.functional.normalize(torch.randn(200, 32, generator=torch.Generator().manual_seed(2)), dim=-1)
    noise = torch.randn(200, 32, generator=torch.Generator().manual_seed(3)) / 32**0.5
    fresh = torch.nn.functional.normalize(stale + noise, dim=-1)  # a per-document drift the stale vector cannot predict
    corrector = Corrector(32, width=512)
    report = corrector.train_on(stale.numpy(), fresh.numpy(), epochs=200, lr=1e-2, batch_size=16)
    assert report.history[-1] < 0.01 < report.history[0]  # it memorised the training pairs ...
    assert report.best_epoch == 0 and report.cosine_after == report.cosine_before  # ... so the identity is kept
    torch.testing.assert_close(corrector(stale), stale)


def test_fit_on_a_sample_refresh_the_index_and_refresh_again_from_base(tmp_path):
    old = encoder(0)
    new = drifted(old)
    index = build_index(tmp_path / "idx", old)
    stale = np.array(index.vectors)
    fresh = new.encode(list(DOCS.values()), "doc")
    corrector = Corrector.fit(index, new, DOCS, sample=0.5, width=64, epochs=100, lr=3e-3, progress=False)
    assert corrector.report.reencoded == 60 and corrector.target["fingerprint"] == new.fingerprint
    assert corrector.report.cosine_after > corrector.report.cosine_before
    refreshed = index.refresh(corrector)
    assert refreshed.fingerprint == new.fingerprint and refreshed.meta["base_encoder"]["fingerprint"] == \
        old.fingerprint
    np.testing.assert_array_equal(np.array(refreshed.base_vectors), stale)
    cos_stale = (stale * fresh).sum(1).mean()
    cos_corrected = (np.array(refreshed.vectors) * fresh).sum(1).mean()
    assert cos_corrected > cos_stale
    sampled = refreshed.docno_lookup.get_indexer(list(corrector.fresh_rows))
    np.testing.assert_allclose(np.array(refreshed.vectors)[sampled], fresh[sampled], atol=1e-6)  # exact fresh rows
    refreshed.check_encoder(new.fingerprint)
    with pytest.raises(EncoderMismatchError):
        refreshed.check_encoder(old.fingerprint)
    # a second refresh (another corrector for the same base) starts from the base vectors, not the corrected ones
    identity = Corrector(index.dim)
    identity.target, identity.source = new.descriptor(), old.fingerprint
    again = refreshed.refresh(identity)
    np.testing.assert_allclose(np.array(again.vectors), stale, atol=1e-6)  # h = identity (renormalised) of base
    np.testing.assert_array_equal(np.array(again.base_vectors), stale)
    loaded = Corrector.load(again.folder / "corrector")
    assert loaded.target["fingerprint"] == new.fingerprint
    queries = pd.DataFrame({"qid": ["1"], "query": ["cat dog"]})
    assert len((new.query_encoder() >> again.retriever(k=5))(queries)) == 5


def test_refresh_to_another_path_leaves_the_original_and_refuses_bad_correctors(tmp_path):
    old, new = encoder(0), drifted(encoder(0))
    index = build_index(tmp_path / "idx", old)
    before = (index.folder / "vectors.f32").read_bytes()
    corrector = Corrector.fit(index, new, DOCS, sample=20, width=16, epochs=5, progress=False)
    copy = index.refresh(corrector, tmp_path / "copy")
    assert (DenseIndex(tmp_path / "idx").folder / "vectors.f32").read_bytes() == before
    assert index.fingerprint == old.fingerprint
    assert copy.fingerprint == new.fingerprint
    with pytest.raises(Exception, match="already exists"):
        index.refresh(corrector, tmp_path / "copy")
    foreign = build_index(tmp_path / "other", encoder(7))
    with pytest.raises(EncoderMismatchError, match="fit the corrector on this index"):
        foreign.refresh(corrector)
    with pytest.raises(InputError, match="maps 16-d"):
        index.refresh(Corrector(16))
    with pytest.raises(InputError, match="does not say which encoder"):
        index.refresh(Corrector(index.dim))
    with pytest.raises(InputError, match="between 2 and"):
        sample_rows(10, 0.01, seed=0)
    with pytest.raises(InputError, match="depth >= 1"):
        Corrector(index.dim, depth=0)
    with pytest.raises(InputError, match="at least 2 re-encoded"):
        Corrector(index.dim).train_on(np.zeros((1, index.dim), np.float32), np.zeros((1, index.dim), np.float32))
    with pytest.raises(InputError, match="not in the corpus"):
        Corrector.fit(index, new, {"d0": "x"}, sample=10, progress=False)
    with pytest.raises(InputError, match="loss"):
        Corrector.fit(index, new, DOCS, loss="mse", progress=False)
    with pytest.raises(InputError, match="does not record the collection"):
        Corrector.fit(index, new, sample=10, progress=False)
    assert not list(tmp_path.glob(".*tmp*"))  # nothing half-written left behind
    assert DenseIndex(tmp_path / "idx").fingerprint == old.fingerprint


def test_cached_negatives_follow_the_encoder_and_count_what_they_re_encode(tmp_path):
    from pt_dense.training.cached import CachedNegatives

    old = encoder(0)
    index = build_index(tmp_path / "idx", old)
    topics = pd.DataFrame({"qid": [f"q{i}" for i in range(8)], "query": [" ".join(WORDS[i : i + 3]) for i in range(8)]})
    qrels = pd.DataFrame({"qid": topics["qid"], "docno": [f"d{i}" for i in range(8)], "label": 1})
    counts = {}
    for policy in ("stale", "corrected", "reencode"):
        source = CachedNegatives(index, DOCS, policy, sample=0.1, n=2, depth=10,
                                 corrector_settings={"width": 16, "epochs": 3})
        lora = old.with_lora(r=2)
        history = lora.fit(topics, qrels, corpus=DOCS, negatives=source, epochs=3, batch_size=4, lr=1e-2,
                           progress=False)
        assert len(history["loss"]) == 6
        drawn = source.sample("q0", {"d0"}, 2, seed=0, epoch=2)
        assert len(set(drawn)) == 2 and "d0" not in drawn
        assert drawn == source.sample("q0", {"d0"}, 2, seed=0, epoch=2)
        counts[policy] = source.reencoded
        drift = [r["cosine_before"] for r in source.refreshes]  # stale -> fresh, on the sample or the whole cache
        assert len(drift) == {"stale": 0}.get(policy, 2) and all(0 < c < 0.9999 for c in drift), (policy, drift)
    assert counts == {"stale": 0, "corrected": 2 * 12, "reencode": 2 * 120}  # epochs 1 and 2 refresh
    every = CachedNegatives(index, DOCS, "corrected", sample=0.1, depth=10, every=1,
                            corrector_settings={"width": 16, "epochs": 1})
    old.with_lora(r=2).fit(topics, qrels, corpus=DOCS, negatives=every, epochs=3, batch_size=4, progress=False)
    assert every.reencoded == 5 * 12 and [r["period"] for r in every.refreshes] == [1, 2, 3, 4, 5]
    with pytest.raises(InputError, match="every=0"):
        CachedNegatives(index, DOCS, every=0)
    with pytest.raises(InputError, match="refresh must be"):
        CachedNegatives(index, DOCS, "sometimes")
    with pytest.raises(InputError, match="1 documents of the index are missing"):
        CachedNegatives(index, {d: t for d, t in DOCS.items() if d != "d119"})


def test_document_features_let_a_corrector_learn_a_drift_the_stale_vector_cannot_predict():
    gen = torch.Generator().manual_seed(4)
    stale = torch.nn.functional.normalize(torch.randn(600, 16, generator=gen), dim=-1)
    features = torch.randn(600, 8, generator=gen)  # what the documents say, apart from their stale vectors
    fresh = torch.nn.functional.normalize(stale + 0.5 * features @ torch.randn(8, 16, generator=gen) / 8**0.5, dim=-1)
    plain = Corrector(16, width=128).train_on(stale.numpy(), fresh.numpy(), epochs=100, lr=3e-3, batch_size=64)
    reading = Corrector(16, width=128, features="token-mean", feature_dim=8)
    report = reading.train_on(stale.numpy(), fresh.numpy(), features.numpy() + 3.0, epochs=100, lr=3e-3,
                              batch_size=64)  # an offset shared by every document: centred away
    assert report.cosine_after > plain.cosine_after + 0.02 and report.cosine_after > 0.97
    torch.testing.assert_close(reading.feature_center, features.mean(0) + 3.0)
    with pytest.raises(InputError, match="give extra="):
        reading.apply(stale.numpy())
    with pytest.raises(InputError, match="8 feature columns"):
        reading.train_on(stale.numpy(), fresh.numpy(), features[:, :4].numpy())
    with pytest.raises(InputError, match="features must be one of"):
        Corrector(16, features="tf-idf", feature_dim=8)


def test_a_token_mean_corrector_refreshes_an_index_and_must_be_bound_again_after_loading(tmp_path):
    from pt_dense.corrector import TokenMeans

    old = encoder(0)
    new = drifted(old)
    index = build_index(tmp_path / "idx", old)
    corrector = Corrector.fit(index, new, DOCS, sample=0.5, width=64, epochs=50, lr=3e-3, progress=False,
                              features="token-mean")
    means = TokenMeans(new)(list(DOCS.values()))
    table = new.model.get_input_embeddings().weight.detach()
    first = new.tokenize([DOCS["d0"]], "doc")[0]
    np.testing.assert_allclose(means[0], table[first].mean(0).numpy(), atol=1e-6)  # the tokens' embedding mean
    expected = corrector.apply(np.array(index.vectors), means)
    refreshed = index.refresh(corrector, tmp_path / "refreshed")
    rows, fresh = corrector.fresh_positions(refreshed.docno_lookup)
    expected[rows] = fresh
    np.testing.assert_allclose(np.array(refreshed.vectors), expected, atol=1e-6)
    loaded = Corrector.load(refreshed.folder / "corrector")
    assert loaded.features == "token-mean" and loaded.feature_dim == means.shape[1]
    with pytest.raises(InputError, match=r"call corrector.bind\(encoder, corpus\)"):
        index.refresh(loaded, tmp_path / "again")
    again = index.refresh(loaded.bind(new, DOCS), tmp_path / "again")
    moved = np.setdiff1d(np.arange(len(DOCS)), rows)
    np.testing.assert_allclose(np.array(again.vectors)[moved], expected[moved], atol=1e-6)


def test_a_corrected_cache_gives_its_sample_exact_vectors_unless_told_to_map_every_document(tmp_path):
    from pt_dense.training.cached import CachedNegatives

    old = encoder(0)
    new = drifted(old, scale=0.2)
    index = build_index(tmp_path / "idx", old)
    rows = sample_rows(len(index), 0.1, seed=1)  # the sample a refresh of period 1 re-encodes
    exact = new.encode([DOCS[d] for d in index.docnos[rows]], "doc")
    caches = {}
    for keep in (True, False):
        source = CachedNegatives(index, DOCS, "corrected", sample=0.1, exact_sample=keep,
                                 corrector_settings={"width": 16, "epochs": 3})
        source._period = 1
        caches[keep] = source._documents(new, refresh=True)
    np.testing.assert_allclose(caches[True][rows], exact, atol=1e-5)
    assert np.abs(caches[False][rows] - exact).max() > 1e-3  # mapped like every other document
    others = np.setdiff1d(np.arange(len(index)), rows)
    np.testing.assert_allclose(caches[False][others], caches[True][others], atol=1e-6)
