"""Shared fixtures: tiny random BERT encoders for unit tests, the real MiniLM and a SciFact subset for integration.

Every library that writes under $HOME is pointed at a temporary folder first.
"""

from __future__ import annotations

import gzip
import json
import os
import random
import tempfile
from pathlib import Path

import pytest

_HOME = Path(tempfile.mkdtemp(prefix="pt-dense-tests-"))
os.environ["PT_DENSE_CACHE"] = str(_HOME / "pt_dense")
os.environ["IR_DATASETS_HOME"] = str(_HOME / "ir_datasets")
os.environ["PYSERINI_CACHE"] = str(_HOME / "pyserini")
os.environ["DJL_CACHE_DIR"] = str(_HOME / "djl")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["PT_DENSE_JVM_OPTIONS"] = f"-Duser.home={_HOME / 'java-home'}"  # Anserini's encoder cache
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("PT_DENSE_PRECISION", "fp32")  # bit-reproducible vectors; precision tests set their own

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
WORDS = """the cat dog sat on mat protein cell gene cancer risk study blood brain drug trial mouse human
increase decrease effect level patients treatment""".split()


def tiny_bert(seed: int = 0, layers: int = 2):
    """A random 2-layer BERT (hidden 32) and a word-level tokenizer over WORDS."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    tokenizer = BertTokenizer(vocab={w: i for i, w in enumerate(vocab)})
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=layers, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    return BertModel(config), tokenizer


@pytest.fixture
def tiny_encoder():
    from pt_dense import BiEncoder

    model, tokenizer = tiny_bert()
    return BiEncoder(model, tokenizer, name="tiny", query_max_length=16, doc_max_length=32, batch_size=4)


@pytest.fixture(scope="session")
def minilm():
    from pt_dense import BiEncoder

    return BiEncoder.from_pretrained("minilm")


def write_beir(folder: Path, docs: list[dict], queries: list[dict], qrels: dict[str, list[tuple]]) -> Path:
    """Write a BEIR-format collection (as in ../shared/data)."""
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    with gzip.open(folder / "corpus.jsonl.gz", "wt", encoding="utf-8") as f:
        for d in docs:
            f.write(json.dumps(d) + "\n")
    with open(folder / "queries.jsonl", "w", encoding="utf-8") as f:
        for q in queries:
            f.write(json.dumps(q) + "\n")
    for split, rows in qrels.items():
        with open(folder / "qrels" / f"{split}.tsv", "w") as f:
            f.writelines(f"{qid}\t0\t{docno}\t{label}\n" for qid, docno, label in rows)
    return folder


@pytest.fixture(scope="session")
def scifact_subset(tmp_path_factory) -> Path:
    """40 SciFact test queries, their relevant documents and 400 other documents: real text, small enough to
    encode with MiniLM in seconds."""
    from pt_dense.datasets import load

    full = load(SHARED_DATA / "scifact" if (SHARED_DATA / "scifact").exists() else "scifact")
    qrels = full.qrels("test")
    qids = list(qrels["qid"].drop_duplicates())[:40]
    qrels = qrels[qrels["qid"].isin(qids)]
    relevant = set(qrels["docno"])
    docs = list(full.corpus_iter())
    rng = random.Random(0)
    others = rng.sample([d for d in docs if d["docno"] not in relevant], 400)
    keep = [d for d in docs if d["docno"] in relevant] + others
    topics = full.topics("test").set_index("qid").loc[qids].reset_index()
    return write_beir(
        tmp_path_factory.mktemp("scifact-subset"),
        [{"docno": d["docno"], "title": "", "text": d["text"]} for d in keep],
        topics.to_dict("records"),
        {"test": list(qrels.itertuples(index=False, name=None))},
    )


def assert_java_parity(folder, encoder, texts) -> None:
    """The Java bridge, running the export in ``folder``, tokenises and encodes ``texts`` as ``encoder`` does."""
    import numpy as np

    from pt_dense.io.jvm import autoclass

    autoclass("java.lang.System").setProperty("ptdense.onnx.dir", str(folder))
    java = autoclass("io.anserini.encoder.dense.PtDenseEncoder")()
    for text in texts:
        assert list(java.tokenIds(text)) == encoder.tokenize([text], "query")[0]
    vectors = np.array([list(java.encode(t)) for t in texts], dtype=np.float32)
    np.testing.assert_allclose(vectors, encoder.encode(texts, "query"), atol=1e-5)
