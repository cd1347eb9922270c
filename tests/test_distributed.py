"""pt_dense.distributed on a local Ray cluster (2 CPUs, started once for this module): encoding equal to the
one-process build, a killed actor costing a retry and nothing else, a failed or killed driver resumed, sharded exact
search equal to the single index, sharded IVF within the single index's recall, lost shard actors, and Ray missing."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("ray")

from conftest import WORDS, tiny_bert, write_beir

from pt_dense import BiEncoder, DenseIndex
from pt_dense.cli import main as cli
from pt_dense.distributed import (
    RayMissingError,
    ShardedRetriever,
    ShardLostError,
    connect,
    disconnect,
    encode_on_ray,
    split_index,
)
from pt_dense.errors import InputError
from pt_dense.index import build_index

DOCS = 300


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    from pt_dense.io.jvm import start_jvm
    from pt_dense.io.signals import handler_addresses

    start_jvm()  # as in a full run, a JVM is already there when Ray starts: its fault handlers must survive Ray
    before = handler_addresses()
    # workers import this module (the test encoders below are pickled by reference): put tests/ on their path
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).parent),
                                                             os.environ.get("PYTHONPATH")]))
    ray = connect(num_cpus=2, _temp_dir=str(tmp_path_factory.mktemp("ray")))
    assert handler_addresses() == before  # ray.init installs crash handlers of its own over the JVM's
    yield ray
    disconnect()
    assert handler_addresses() == before  # ray.shutdown resets them to the default


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    rng = random.Random(0)
    docs = [{"docno": f"d{i}", "title": "", "text": " ".join(rng.choices(WORDS, k=rng.randint(3, 24)))}
            for i in range(DOCS)]
    queries = [{"qid": f"q{i}", "query": " ".join(rng.choices(WORDS, k=3))} for i in range(10)]
    qrels = [(q["qid"], f"d{rng.randrange(DOCS)}", 1) for q in queries]
    return write_beir(tmp_path_factory.mktemp("corpus"), docs, queries, {"test": qrels})


def tiny() -> BiEncoder:
    model, tokenizer = tiny_bert()
    return BiEncoder(model, tokenizer, name="tiny", query_max_length=16, doc_max_length=32, batch_size=8)


@pytest.fixture(scope="module")
def plain(corpus, tmp_path_factory) -> DenseIndex:
    return build_index(corpus, tiny(), tmp_path_factory.mktemp("plain") / "plain.ptd")


class KillingEncoder(BiEncoder):
    """Kills its own process (SIGKILL, as the OOM killer or a lost node would) in the middle of its first block
    outside the driver; a marker file makes that happen once, so the restarted actor goes on."""

    def arm(self, marker: Path) -> KillingEncoder:
        self.marker, self.driver = str(marker), os.getpid()
        return self

    def encode(self, texts, side, **kwargs):
        if os.getpid() != self.driver and not os.path.exists(self.marker):
            Path(self.marker).write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
        return super().encode(texts, side, **kwargs)


class FailingEncoder(BiEncoder):
    """Raises a user error on the third block an actor encodes (one encode call per block): the run stops there,
    two blocks written."""

    def encode(self, texts, side, **kwargs):
        if os.getpid() != self.__dict__.setdefault("driver", os.getpid()):
            self.__dict__["calls"] = self.__dict__.get("calls", 0) + 1
            if self.calls == 3:
                raise InputError("a document this encoder refuses")
        return super().encode(texts, side, **kwargs)


def assert_same_index(index: DenseIndex, plain: DenseIndex) -> None:
    assert list(index.docnos) == list(plain.docnos)  # every document once, in corpus order
    np.testing.assert_allclose(index.vectors, plain.vectors, atol=1e-6)
    assert index.fingerprint == plain.fingerprint and index.meta["corpus"] == plain.meta["corpus"]


def test_ray_build_equals_one_process_build(ray_cluster, corpus, plain, tmp_path):
    index = encode_on_ray(corpus, tiny(), tmp_path / "ray.ptd", actors=2, block_size=64, progress=False)
    assert_same_index(index, plain)
    assert not (tmp_path / "ray.ptd.shards").exists()  # the blocks are removed once merged


def test_killed_actor_costs_a_retry_of_its_block(ray_cluster, corpus, plain, tmp_path):
    encoder = KillingEncoder(*tiny_bert(), name="tiny", query_max_length=16, doc_max_length=32, batch_size=8)
    marker = tmp_path / "killed"
    index = encode_on_ray(corpus, encoder.arm(marker), tmp_path / "ray.ptd", actors=1, block_size=64,
                          progress=False)
    assert marker.exists() and int(marker.read_text()) != os.getpid()  # an actor really died mid-encode
    assert_same_index(index, plain)  # ... and no document is missing or doubled


def test_failed_run_leaves_the_destination_and_a_rerun_resumes(ray_cluster, tmp_path):
    rng = random.Random(1)
    docs = [{"docno": f"d{i}", "title": "", "text": " ".join(rng.choices(WORDS, k=8))}
            for i in range(256)]
    folder = write_beir(tmp_path / "c", docs, [{"qid": "q", "query": "cat"}], {"test": [("q", "d1", 1)]})
    out = build_index(folder, tiny(), tmp_path / "out.ptd")  # an index already there, to be replaced
    before = out.meta["build_id"]
    failing = FailingEncoder(*tiny_bert(), name="tiny", query_max_length=16, doc_max_length=32, batch_size=8)
    failing.__dict__["driver"] = os.getpid()
    with pytest.raises(InputError, match="this encoder refuses"):  # the worker's own error, unwrapped
        encode_on_ray(folder, failing, out.path, actors=1, block_size=32, overwrite=True, progress=False)
    assert DenseIndex(out.path).meta["build_id"] == before  # the destination is as it was
    written = {p.name: DenseIndex(p).meta["build_id"] for p in (tmp_path / "out.ptd.shards").iterdir()
               if DenseIndex(p).built()}
    assert len(written) >= 2  # the blocks before the failing one were written ...
    index = encode_on_ray(folder, tiny(), out.path, actors=1, block_size=32, overwrite=True, keep_blocks=True,
                          progress=False)
    for name, build in written.items():  # ... and the rerun kept them instead of encoding them again
        assert DenseIndex(tmp_path / "out.ptd.shards" / name).meta["build_id"] == build
    plain = build_index(folder, tiny(), tmp_path / "plain.ptd")
    assert_same_index(index, plain)


def vector_index(path: Path, count: int = 2000, dim: int = 32, clusters: int = 0, seed: int = 0) -> DenseIndex:
    rng = np.random.default_rng(seed)
    if clusters:
        centres = rng.normal(size=(clusters, dim))
        vectors = centres[rng.integers(clusters, size=count)] + 0.3 * rng.normal(size=(count, dim))
    else:
        vectors = rng.normal(size=(count, dim))
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    index = DenseIndex(path)
    index.indexer(progress=False).index({"docno": f"v{i}", "doc_vec": v} for i, v in enumerate(vectors))
    return index


def queries(count: int = 20, dim: int = 32, seed: int = 1) -> pd.DataFrame:
    vectors = np.random.default_rng(seed).normal(size=(count, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return pd.DataFrame({"qid": [f"q{i}" for i in range(count)], "query_vec": list(vectors), "extra": range(count)})


def test_sharded_exact_search_equals_the_single_index(ray_cluster, tmp_path):
    index = vector_index(tmp_path / "v.ptd")
    index.delete(["v3", "v1500"])  # deleted documents are left out of the shards
    single = index.retriever(k=10)(queries())
    sharded = ShardedRetriever(index, shards=3, k=10, cpus_per_shard=0.5)
    try:
        result = sharded(queries())
        assert list(result.columns) == list(single.columns)  # extra columns kept
        assert (result[["qid", "docno", "rank"]].values == single[["qid", "docno", "rank"]].values).all()
        np.testing.assert_allclose(result["score"], single["score"], atol=1e-6)
        assert len(sharded(queries().iloc[:0])) == 0  # an empty frame
        with pytest.raises(InputError, match="query_vec"):
            sharded(pd.DataFrame({"qid": ["q"]}))
    finally:
        sharded.close()
    assert [len(p) for p in split_index(index, 3)] == [666, 666, 666]  # reused, not rewritten


def recall(result: pd.DataFrame, truth: pd.DataFrame) -> float:
    found = result.groupby("qid")["docno"].apply(set)
    wanted = truth.groupby("qid")["docno"].apply(set)
    return float(np.mean([len(found.get(q, set()) & wanted[q]) / len(wanted[q]) for q in wanted.index]))


def test_sharded_ivf_search_keeps_the_single_index_recall(ray_cluster, tmp_path):
    index = vector_index(tmp_path / "v.ptd", count=3000, clusters=40)
    topics = queries(50)
    truth = index.retriever(k=10)(topics)
    single = recall(index.retriever(k=10, kind="IVF16,Flat", nprobe=2)(topics), truth)
    sharded = ShardedRetriever(index, shards=2, k=10, kind="IVF16,Flat", nprobe=2)
    try:
        assert recall(sharded(topics), truth) >= single - 0.02
    finally:
        sharded.close()


def test_a_lost_shard_actor_is_restarted_then_named(ray_cluster, tmp_path):
    index = vector_index(tmp_path / "v.ptd", count=500)
    expected = index.retriever(k=5)(queries())
    sharded = ShardedRetriever(index, shards=2, k=5, restarts=1)
    try:
        os.kill(sharded.pids()[1], signal.SIGKILL)  # restarted, and the search retried on it
        pd.testing.assert_frame_equal(sharded(queries()).drop(columns="score"), expected.drop(columns="score"))
        os.kill(sharded.pids()[1], signal.SIGKILL)  # its one restart is spent: the stage fails, naming the shard
        with pytest.raises(ShardLostError, match=r"shard 1 of 2 .*00001-of-00002"):
            sharded(queries())
    finally:
        sharded.close()


def test_pt_dense_index_ray_equals_a_plain_build_and_its_ndcg(ray_cluster, corpus, tmp_path):
    from pt_dense.evaluation import evaluate

    model = tiny().save(tmp_path / "model")
    assert cli(["index", "--data", str(corpus), "--model", str(model), "--out", str(tmp_path / "plain.ptd"),
                "--precision", "fp32"]) == 0
    assert cli(["index", "--data", str(corpus), "--model", str(model), "--out", str(tmp_path / "ray.ptd"),
                "--precision", "fp32", "--ray", "auto", "--block-size", "100"]) == 0
    plain, ray_built = DenseIndex(tmp_path / "plain.ptd"), DenseIndex(tmp_path / "ray.ptd")
    assert_same_index(ray_built, plain)
    from pt_dense.datasets import load

    encoder, data = BiEncoder.from_pretrained(str(model)), load(corpus)
    systems = {name: encoder.query_encoder() >> ix.retriever(k=100) for name, ix in [("plain", plain),
                                                                                      ("ray", ray_built)]}
    table = evaluate(systems, data.topics("test"), data.qrels("test"))
    assert table.iloc[0]["nDCG@10"] == pytest.approx(table.iloc[1]["nDCG@10"], abs=1e-9)


def test_without_ray_the_options_say_how_to_install_it(monkeypatch, corpus, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails as if it were not installed
    with pytest.raises(RayMissingError, match=r"pip install 'pt-dense\[ray\]'"):
        encode_on_ray(corpus, "minilm", tmp_path / "x.ptd")
    with pytest.raises(RayMissingError, match="pt-dense"):
        ShardedRetriever(tmp_path / "x.ptd", shards=2)
    assert cli(["index", "--data", str(corpus), "--out", str(tmp_path / "x.ptd"), "--ray", "auto"]) == 2
    assert "pip install 'pt-dense[ray]'" in capsys.readouterr().err
    assert not (tmp_path / "x.ptd").exists()


KILLED_DRIVER = """
import sys, time
sys.path.insert(0, {tests!r})
import ray
ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, _temp_dir={ray_dir!r})
from conftest import tiny_bert
from pt_dense import BiEncoder
from pt_dense.distributed import encode_on_ray

class Slow(BiEncoder):
    def encode(self, texts, side, **kwargs):
        time.sleep(0.3)  # long enough a run for the test to kill it between blocks
        return super().encode(texts, side, **kwargs)

encoder = Slow(*tiny_bert(), name="tiny", query_max_length=16, doc_max_length=32, batch_size=8)
print("ready", flush=True)
encode_on_ray({corpus!r}, encoder, {out!r}, actors=1, block_size=32, overwrite=True, progress=False)
"""


def test_a_killed_driver_leaves_the_destination_and_a_rerun_resumes(ray_cluster, tmp_path):
    rng = random.Random(2)
    docs = [{"docno": f"d{i}", "title": "", "text": " ".join(rng.choices(WORDS, k=8))} for i in range(256)]
    folder = write_beir(tmp_path / "c", docs, [{"qid": "q", "query": "cat"}], {"test": [("q", "d1", 1)]})
    out = build_index(folder, tiny(), tmp_path / "out.ptd")
    before, blocks = out.meta["build_id"], tmp_path / "out.ptd.shards"
    ray_dir = tempfile.mkdtemp(prefix="ptd-ray-")  # short: Ray's socket paths must fit 107 bytes
    script = KILLED_DRIVER.format(tests=str(Path(__file__).parent), ray_dir=ray_dir, corpus=str(folder),
                                  out=str(out.path))
    driver = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                              start_new_session=True)
    try:
        assert driver.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and sum(DenseIndex(p).built() for p in blocks.glob("*-of-*")) < 2:
            time.sleep(0.2)
        os.killpg(driver.pid, signal.SIGKILL)  # the driver (and the local cluster it started) dies mid-run
        driver.wait()
    finally:
        subprocess.run(["pkill", "-9", "-f", ray_dir], check=False)
        shutil.rmtree(ray_dir, ignore_errors=True)
    assert DenseIndex(out.path).meta["build_id"] == before  # the destination is as it was
    written = {p.name: DenseIndex(p).meta["build_id"] for p in blocks.glob("*-of-*") if DenseIndex(p).built()}
    assert 2 <= len(written) < 8
    index = encode_on_ray(folder, tiny(), out.path, actors=1, block_size=32, overwrite=True, keep_blocks=True,
                          progress=False)
    for name, build in written.items():  # the rerun kept the blocks the killed run had written
        assert DenseIndex(blocks / name).meta["build_id"] == build
    assert_same_index(index, build_index(folder, tiny(), tmp_path / "plain.ptd"))
