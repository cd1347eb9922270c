"""An index knows its encoder, and the check does not depend on an ndarray subclass surviving.

Every case a tester found is fed for real, with tiny random models: vectors that lost their stamp (``.map(np.array)``,
a parquet round trip, a plain array) are refused by an index that knows its encoder unless a stage is told the
encoder, another encoder's ``encode()`` output is refused by ``add``, weights changed in place move the fingerprint
and the ONNX path, and settings set in place are checked.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyterrier as pt
import pytest
import torch
from conftest import WORDS, tiny_bert
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tiny_families import tiny_model

from pt_dense import BiEncoder, EncoderMismatchError, InputError
from pt_dense.encoders.stages import EncodedVector, fingerprint_of
from pt_dense.index.dense_index import DenseIndex
from pt_dense.pefa import PEFA

DOCS = [{"docno": f"d{i}", "text": " ".join(WORDS[i : i + 6])} for i in range(12)]
QUERIES = pd.DataFrame({"qid": ["q1", "q2", "q3"], "query": ["the cat sat", "protein gene cell", "blood drug trial"]})
NEW_DOCS = [{"docno": f"n{i}", "text": " ".join(WORDS[i + 3 : i + 8])} for i in range(3)]


def encoder(seed: int = 0, **settings) -> BiEncoder:
    return BiEncoder(*tiny_bert(seed=seed), name=f"tiny-{seed}", query_max_length=16, doc_max_length=32,
                     **settings)


@pytest.fixture
def enc() -> BiEncoder:
    return encoder(0)


@pytest.fixture
def enc2() -> BiEncoder:
    return encoder(1)


@pytest.fixture
def index(tmp_path, enc) -> DenseIndex:
    built = DenseIndex(tmp_path / "index")
    (enc.doc_encoder() >> built.indexer(progress=False)).index(DOCS)
    return built


def ranking(frame: pd.DataFrame) -> list:
    return list(frame.sort_values(["qid", "rank"])[["qid", "docno"]].itertuples(index=False, name=None))


def unstamped(frame: pd.DataFrame, column: str = "query_vec") -> pd.DataFrame:
    """What the tester did: the vectors rebuilt by np.array, as plain arrays."""
    return frame.assign(**{column: frame[column].map(np.array)})


class PlainVectors(pt.Transformer):
    """A pyterrier_dr-style encoder stage: ``enc``'s vectors as plain float32 rows (no fingerprint)."""

    def __init__(self, enc: BiEncoder):
        self.enc = enc

    def transform(self, inp: pd.DataFrame) -> pd.DataFrame:
        return inp.assign(query_vec=list(np.asarray(self.enc.encode(inp["query"].tolist(), "query"))))


# ---------------------------------------------------------------------------------------------- stamps
def test_encode_returns_stamped_rows_and_arithmetic_makes_an_unstamped_vector(enc):
    matrix = enc.encode(["the cat", "a dog"], "doc")
    assert isinstance(matrix, EncodedVector) and fingerprint_of(matrix) == enc.fingerprint
    rows = list(matrix)
    assert all(fingerprint_of(r) == enc.fingerprint for r in rows)
    assert fingerprint_of(enc.encode([], "query")) == enc.fingerprint  # an empty matrix too
    assert fingerprint_of(matrix[[1, 0]]) == enc.fingerprint and fingerprint_of(rows[0].copy()) == enc.fingerprint
    for derived in (rows[0] * 2, rows[0] / np.linalg.norm(rows[0]), rows[0] + rows[1], np.array(rows[0])):
        assert type(derived) is np.ndarray and fingerprint_of(derived) is None  # no encoder made it
    assert isinstance(float(rows[0].sum()), float)


# ---------------------------------------------------------------------------------------------- query side
def test_query_vectors_rebuilt_by_np_array_are_refused_until_a_stage_is_told_the_encoder(index, enc, enc2):
    stamped_queries = enc.query_encoder()(QUERIES)
    expected = ranking(index.retriever(k=5)(stamped_queries))
    plain = unstamped(stamped_queries)
    assert fingerprint_of(plain["query_vec"].iloc[0]) is None
    with pytest.raises(EncoderMismatchError, match=r"cannot tell which encoder made them.*encoder=enc"):
        index.retriever(k=5)(plain)
    with pytest.raises(EncoderMismatchError, match="cannot tell"):
        index.scorer()(plain.merge(pd.DataFrame({"docno": ["d1", "d2"]}), how="cross"))
    # told the encoder (itself, one of its stages, or its fingerprint), the stage takes them: same results
    for vouch in (enc, enc.query_encoder(), enc.fingerprint):
        assert ranking(index.retriever(k=5, encoder=vouch)(plain)) == expected
    candidates = plain.merge(pd.DataFrame({"docno": ["d1", "d2"]}), how="cross")
    assert len(index.scorer(encoder=enc)(candidates)) == 6
    # another encoder's plain vectors: the tester's case is refused either way
    other = unstamped(enc2.query_encoder()(QUERIES))
    with pytest.raises(EncoderMismatchError, match="cannot tell"):
        index.retriever(k=5)(other)
    with pytest.raises(EncoderMismatchError, match="the encoder given to the retriever"):
        index.retriever(k=5, encoder=enc2)
    with pytest.raises(EncoderMismatchError, match="the encoder given to the scorer"):
        index.scorer(encoder=enc2)
    with pytest.raises(InputError, match="encoder= takes"):
        index.retriever(encoder=object())
    # stamped vectors of another encoder are refused even by a stage told the right encoder
    with pytest.raises(EncoderMismatchError, match="come from encoder"):
        index.retriever(k=5, encoder=enc)(enc2.query_encoder()(QUERIES))


def test_a_parquet_round_trip_loses_the_stamp_and_is_refused(tmp_path, index, enc, enc2):
    for source, vouch in ((enc, enc), (enc2, None)):
        path = tmp_path / f"queries-{source.name}.parquet"
        source.query_encoder()(QUERIES).to_parquet(path, engine="pyarrow")
        back = pd.read_parquet(path, engine="pyarrow")
        assert fingerprint_of(back["query_vec"].iloc[0]) is None
        with pytest.raises(EncoderMismatchError, match="cannot tell"):
            index.retriever(k=5)(back)
        if vouch is not None:
            assert len(index.retriever(k=5, encoder=vouch)(back)) == 15


def test_a_column_mixing_stamped_and_unstamped_vectors_is_refused(index, enc):
    stamped_queries = enc.query_encoder()(QUERIES)
    mixed = pd.concat([stamped_queries.iloc[:2], unstamped(stamped_queries.iloc[2:])], ignore_index=True)
    with pytest.raises(EncoderMismatchError, match=r"1 of the query vectors carry no encoder fingerprint \(and "):
        index.retriever(k=5)(mixed)
    assert len(index.retriever(k=5, encoder=enc)(mixed)) == 15  # the encoder vouches for the plain one


def test_a_plain_pyterrier_stage_over_an_index_that_knows_its_encoder_is_refused(index, enc):
    with pytest.raises(EncoderMismatchError, match="cannot tell"):
        (PlainVectors(enc) >> index.retriever(k=3))(QUERIES)
    assert len((PlainVectors(enc) >> index.retriever(k=3, encoder=enc))(QUERIES)) == 9


def test_an_index_of_foreign_vectors_takes_any_vector(tmp_path, enc):
    foreign = DenseIndex(tmp_path / "foreign")
    rng = np.random.default_rng(0)
    foreign.indexer(progress=False).index({"docno": f"d{i}", "doc_vec": v}
                                          for i, v in enumerate(rng.normal(size=(10, 32)).astype(np.float32)))
    assert foreign.fingerprint is None
    stamped_queries = enc.query_encoder()(QUERIES)
    for frame in (stamped_queries, unstamped(stamped_queries)):
        assert len(foreign.retriever(k=3)(frame)) == 9


def test_pefa_stages_refuse_unstamped_queries_unless_told_the_encoder(index, enc):
    train = pd.DataFrame({"qid": ["t1", "t2"], "query": ["dog on the mat", "cancer risk study"]})
    qrels = pd.DataFrame({"qid": ["t1", "t2"], "docno": ["d2", "d7"], "label": [1, 1]})
    pefa = PEFA(index, enc, train, qrels, kind="xl")
    plain = unstamped(enc.query_encoder()(QUERIES))
    with pytest.raises(EncoderMismatchError, match="cannot tell"):
        pefa.retriever(k=3)(plain)
    assert len(pefa.retriever(k=3, encoder=enc)(plain)) == 9
    xs = PEFA(index, enc, train, qrels, kind="xs")
    with pytest.raises(EncoderMismatchError, match="cannot tell"):
        xs.retriever(k=3)(plain)
    assert len(xs.retriever(k=3, encoder=enc)(plain)) == 9


# ---------------------------------------------------------------------------------------------- documents
def test_add_refuses_another_encoders_encode_output_and_plain_vectors(index, enc, enc2):
    texts = [d["text"] for d in NEW_DOCS]
    docnos = [d["docno"] for d in NEW_DOCS]
    with pytest.raises(EncoderMismatchError, match="added documents' vectors come from encoder"):
        index.add(pd.DataFrame({"docno": docnos, "doc_vec": list(enc2.encode(texts, "doc"))}))
    with pytest.raises(EncoderMismatchError, match="cannot tell"):
        index.add(pd.DataFrame({"docno": docnos, "doc_vec": [np.array(v) for v in enc.encode(texts, "doc")]}))
    with pytest.raises(EncoderMismatchError, match="the encoder given to add"):
        index.add(pd.DataFrame({"docno": docnos, "doc_vec": [np.array(v) for v in enc2.encode(texts, "doc")]}),
                  encoder=enc2)
    assert len(index) == len(DOCS)  # nothing was published
    index.add(pd.DataFrame({"docno": docnos[:1], "doc_vec": list(enc.encode(texts[:1], "doc"))}))
    index.add(pd.DataFrame({"docno": docnos[1:], "doc_vec": [np.array(v) for v in enc.encode(texts[1:], "doc")]}),
              encoder=enc)
    assert len(index) == len(DOCS) + 3
    index.update(pd.DataFrame({"docno": docnos[:1], "doc_vec": [np.array(enc.encode(texts[:1], "doc")[0])]}),
                 encoder=enc.fingerprint)
    assert index.live_count == len(DOCS) + 3


# ---------------------------------------------------------------------------------------------- weights
def test_weights_changed_in_place_move_the_fingerprint_and_the_index_refuses_them(index, enc):
    before = enc.fingerprint
    vouched = index.retriever(k=3, encoder=enc)
    assert len((PlainVectors(enc) >> vouched)(QUERIES)) == 9
    parameter = next(enc.model.parameters())
    original = parameter.detach().clone()
    with torch.no_grad():
        parameter.add_(0.5)
    assert enc.fingerprint != before  # no weights_changed() call
    with pytest.raises(EncoderMismatchError, match="come from encoder"):
        (enc.query_encoder() >> index.retriever(k=3))(QUERIES)
    with pytest.raises(EncoderMismatchError, match="the encoder given for the query vectors is encoder"):
        (PlainVectors(enc) >> vouched)(QUERIES)  # the encoder that vouches is read again on every call
    with torch.no_grad():
        parameter.copy_(original)
    assert enc.fingerprint == before  # the same weights again: the same identity
    other = encoder(1)
    enc.model.load_state_dict(other.model.state_dict())
    assert enc.fingerprint == other.fingerprint
    changed = enc.fingerprint
    enc.model.embeddings.word_embeddings.weight = torch.nn.Parameter(
        enc.model.embeddings.word_embeddings.weight.detach() * 2)  # a parameter replaced
    assert enc.fingerprint != changed
    changed = enc.fingerprint
    layer_norm = enc.model.embeddings.LayerNorm
    layer_norm.bias.data = layer_norm.bias.detach() + 1  # a new tensor under .data
    assert enc.fingerprint != changed


def test_the_onnx_path_follows_weights_changed_in_place():
    fast = encoder(4, precision="onnx")
    texts = [d["text"] for d in DOCS[:4]]
    old, old_fingerprint = fast.encode(texts, "doc"), fast.fingerprint
    runtime = fast.runtime()
    with torch.no_grad():
        for p in fast.model.encoder.layer[0].parameters():
            p.mul_(1.5)
    new = fast.encode(texts, "doc")
    assert fast.fingerprint != old_fingerprint and fast.runtime() is not runtime
    assert fingerprint_of(new) == fast.fingerprint and fingerprint_of(old) == old_fingerprint
    assert not np.allclose(old, new, atol=1e-3)
    np.testing.assert_allclose(new, fast.exact().encode(texts, "doc"), atol=1e-5)  # the new weights, not stale
    onnx = fast.runtime()  # the OnnxEncoder itself stamps its vectors with the exported encoder's fingerprint
    assert fingerprint_of(onnx.encode(texts, "doc")) == fast.fingerprint == onnx.fingerprint
    with pytest.raises(InputError, match="batch_size must be a whole number of at least 1"):
        onnx.batch_size = 0
    fast.precision = "int8"  # another quantisation of the same weights: a runtime of its own
    assert fast.runtime() is not runtime and fast.runtime().config.get("precision") != "onnx"


def test_the_fingerprint_hashes_the_weights_only_when_they_moved(enc):
    """Not a timed assertion: reading the fingerprint again, or encoding, looks at counters and hashes nothing."""
    calls = []
    original = enc.model.state_dict
    enc.model.state_dict = lambda *a, **k: calls.append(1) or original(*a, **k)
    enc.fingerprint, enc.fingerprint  # noqa: B018
    enc.encode(["the cat"], "query")
    assert len(calls) <= 1


# ---------------------------------------------------------------------------------------------- settings
def test_max_lengths_are_checked_against_the_models_positions(enc):
    assert enc.position_limit == 64
    enc.doc_max_length = 64
    assert enc.encode([" ".join(WORDS * 5)], "doc").shape == (1, 32)  # the longest the model takes works
    fingerprint = enc.fingerprint
    for bad in (0, 1, 65, 10_000, -3):
        with pytest.raises(InputError, match="doc_max_length must be a whole number of tokens from 2 to 64"):
            enc.doc_max_length = bad
    assert enc.doc_max_length == 64 and enc.fingerprint == fingerprint  # unchanged by a refused value
    with pytest.raises(InputError, match=r"query_max_length .* from 2 to 64"):
        BiEncoder(*tiny_bert(), query_max_length=100)
    assert BiEncoder(*tiny_bert()).doc_max_length == 64  # no length given: the default, capped at the positions
    enc.doc_max_length = 16
    assert enc.fingerprint != fingerprint  # a valid change is followed


def test_a_roberta_max_length_leaves_room_for_its_padding_offset():
    model, tokenizer = tiny_model("roberta")  # 66 positions, numbered from pad_token_id + 1 = 2
    roberta = BiEncoder(model, tokenizer, name="tiny-roberta")
    assert roberta.position_limit == 64 and roberta.doc_max_length == 64
    assert roberta.encode([" ".join(WORDS * 5)], "doc").shape == (1, 32)  # no error from deep inside torch
    with pytest.raises(InputError, match=r"from 2 to 64 .*66 positions, less 2 for its padding offset"):
        roberta.doc_max_length = 65
    with pytest.raises(InputError, match="from 2 to 64"):
        BiEncoder(model, tokenizer, doc_max_length=66)


MALFORMED = {
    "query_max_length": st.one_of(st.integers(max_value=1), st.integers(min_value=65), st.floats(), st.booleans(),
                                  st.text(), st.none()),
    "doc_max_length": st.one_of(st.integers(max_value=1), st.integers(min_value=65), st.floats(), st.booleans(),
                                st.text(), st.none()),
    "batch_size": st.one_of(st.integers(max_value=0), st.floats(), st.booleans(), st.text(), st.none()),
    "pooling": st.one_of(st.text().filter(lambda t: t not in ("mean", "cls", "last")), st.integers(), st.none()),
    "normalize": st.one_of(st.integers(), st.text(), st.none(), st.floats()),
    "query_prefix": st.one_of(st.integers(), st.none(), st.floats(), st.binary()),
    "doc_prefix": st.one_of(st.integers(), st.none(), st.floats(), st.binary()),
    "precision": st.one_of(st.text().filter(lambda t: t not in ("auto", "fp32", "bf16", "onnx", "int8", "")),
                           st.integers(), st.floats()),
    "device": st.one_of(st.text().filter(lambda t: not t.strip().lower().startswith(("cpu", "meta", "cuda"))),
                        st.floats(), st.integers(max_value=-1)),
}


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_malformed_settings_set_in_place_are_refused_and_change_nothing(data, enc):
    name = data.draw(st.sampled_from(sorted(MALFORMED)))
    value = data.draw(MALFORMED[name])
    before, fingerprint = getattr(enc, name), enc.fingerprint
    with pytest.raises(InputError, match=name if name != "device" else "device must be"):
        setattr(enc, name, value)
    assert getattr(enc, name) == before and enc.fingerprint == fingerprint


def test_valid_settings_set_in_place_are_taken_and_followed(enc):
    fingerprint = enc.fingerprint
    enc.batch_size = np.int64(3)
    assert enc.batch_size == 3 and type(enc.batch_size) is int
    enc.normalize = np.bool_(False)
    assert enc.normalize is False and enc.fingerprint != fingerprint
    enc.normalize = True
    enc.pooling = "cls"
    enc.query_prefix = "query: "
    assert enc.settings()["query_prefix"] == "query: " and enc.fingerprint != fingerprint
    assert fingerprint_of(enc.encode(["x"], "query")) == enc.fingerprint
