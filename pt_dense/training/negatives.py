"""Where hard negatives come from.

- ``InBatch``: none beyond the other queries' documents in the batch.
- ``RetrieverNegatives``: any PyTerrier retriever (BM25, ``enc.query_encoder() >> index.retriever()``) run once over
  the training topics; each step samples from its top ``depth``, skipping judged positives.
- ``FileNegatives``: a fixed mined file (``qid<TAB>docno`` in rank order), so runs are reproducible; ``mine`` writes
  one from any retriever.
- ``UnifiedNegatives``: DPTDR's unified negative mining: one fixed strong retriever (reciprocal rank fusion of BM25
  and the frozen dense model) mined once per collection and topics, stored in the cache, and shared by every model
  trained on that data, so that models compare on the same negatives.
- ``HybridTeacher``: the same, mined by the linear fusion of BM25 and the frozen dense model (the hybrid system of
  ``pt-dense eval``), whose fused scores also teach: the ``"distill"`` loss reads them through ``teacher_scores``.

Sampling is seeded by (seed, epoch, qid): the same run draws the same negatives, resumed or not. Sources are
chosen by name through the table in :mod:`pt_dense.training.sources`.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from pt_dense.bm25 import BM25
from pt_dense.encoders.torch_encoder import TorchEncoder
from pt_dense.errors import InputError
from pt_dense.fusion import linear_fusion, rrf
from pt_dense.index.cached import cached_index
from pt_dense.io.atomic import atomic_file
from pt_dense.io.cache import cache_dir, collection_key
from pt_dense.io.validation import shown


class NegativeSource:
    """Base: ``prepare`` once per fit, then ``sample`` per query and epoch."""

    n: int = 0

    def prepare(self, topics: pd.DataFrame, positives: Mapping[str, set[str]]) -> None:
        """Called once before training with the training topics and their judged positives."""

    def sample(self, qid: str, positives: set[str], n: int, seed: int, epoch: int) -> list[str]:
        return []

    def update(self, encoder, step: int, epoch: int) -> None:
        """Called before every training step with the encoder as it is (sources that follow the encoder)."""

    def describe(self) -> str:
        return type(self).__name__

    def report(self) -> dict:
        """What the source did during training (recorded in fit's history)."""
        return {"source": self.describe()}


class InBatch(NegativeSource):
    def describe(self) -> str:
        return "in-batch"


class RankedNegatives(NegativeSource):
    """Negatives sampled uniformly from a per-query ranked candidate list, judged positives skipped."""

    def __init__(self, n: int = 1, depth: int = 100, skip: int = 0):
        if n < 1 or depth < 1:
            raise InputError("hard negatives need n >= 1 and depth >= 1")
        self.n, self.depth, self.skip = n, depth, skip
        self.candidates: dict[str, list[str]] = {}

    def sample(self, qid: str, positives: set[str], n: int, seed: int, epoch: int) -> list[str]:
        pool = [d for d in self.candidates.get(qid, [])[self.skip :] if d not in positives][: self.depth]
        if not pool:
            return []
        rng = random.Random(f"{seed}/{epoch}/{qid}")
        return rng.sample(pool, n) if len(pool) >= n else [rng.choice(pool) for _ in range(n)]


class RetrieverNegatives(RankedNegatives):
    """Mine candidates with any PyTerrier retriever over the training topics (once per fit)."""

    def __init__(self, retriever, n: int = 1, depth: int = 100, skip: int = 0):
        super().__init__(n, depth, skip)
        self.retriever = retriever

    def prepare(self, topics: pd.DataFrame, positives: Mapping[str, set[str]]) -> None:
        self.candidates = ranked_lists(self.retriever(topics[["qid", "query"]]))

    def describe(self) -> str:
        return f"retriever({self.retriever!r}, depth={self.depth})"


class FileNegatives(RankedNegatives):
    """Candidates read from a mined file (``qid<TAB>docno`` lines, best first)."""

    def __init__(self, path: str | Path, n: int = 1, depth: int = 100, skip: int = 0):
        super().__init__(n, depth, skip)
        self.path = Path(path)
        if not self.path.exists():
            raise InputError(f"no negatives file at {self.path}; write one with pt_dense.training.negatives.mine")

    def prepare(self, topics: pd.DataFrame, positives: Mapping[str, set[str]]) -> None:
        self.candidates = read_mined(self.path)

    def describe(self) -> str:
        return f"file({self.path})"


class UnifiedNegatives(RankedNegatives):
    """Candidates from RRF(BM25, frozen dense) over ``corpus``, mined once and cached (or written to ``path``)."""

    fusion = "rrf"

    def __init__(self, corpus, encoder=None, n: int = 1, depth: int = 100, skip: int = 0,
                 path: str | Path | None = None):
        super().__init__(n, depth, skip)
        if not hasattr(corpus, "corpus_iter"):
            raise InputError("unified negatives need corpus= a dataset (with corpus_iter) to index")
        self.corpus, self.encoder, self.path = corpus, encoder, Path(path) if path else None

    def prepare(self, topics: pd.DataFrame, positives: Mapping[str, set[str]]) -> None:
        self.path = mine_unified(self.corpus, topics, self.path, encoder=self.encoder, depth=self.depth,
                                 fusion=self.fusion)
        self.candidates = read_mined(self.path)

    def describe(self) -> str:
        return f"unified({self.fusion}(bm25, frozen dense))"


class HybridTeacher(UnifiedNegatives):
    """Unified negatives mined by the linear fusion of BM25 and the frozen dense model, whose per-query min-max fused
    scores (in [0, 1]) are the teacher of the ``"distill"`` loss."""

    fusion = "linear"

    def prepare(self, topics: pd.DataFrame, positives: Mapping[str, set[str]]) -> None:
        super().prepare(topics, positives)
        self.scores = read_scores(self.path)

    def teacher_scores(self, qid: str, docnos: list[str], positives: set[str]) -> list[float]:
        """The teacher's score of each of ``docnos`` for ``qid``: its fused score; a judged positive the teacher did
        not retrieve scores as the teacher's best, any other document outside its list as 0 (the fusion's floor)."""
        scores = self.scores.get(qid, {})
        best = max(scores.values(), default=1.0)
        return [scores.get(d, best if d in positives else 0.0) for d in docnos]

    def describe(self) -> str:
        return "hybrid teacher(linear(bm25, frozen dense))"


FUSIONS = {"rrf": lambda bm25, dense, depth: rrf(bm25, dense, num_results=depth),
           "linear": lambda bm25, dense, depth: linear_fusion(bm25, dense, weight=0.5) % depth}


def mine_unified(corpus, topics: pd.DataFrame, path: str | Path | None = None, *, encoder=None,
                 depth: int = 100, fusion: str = "rrf") -> Path:
    """The unified negatives file of ``topics`` over ``corpus``: mined by ``fusion`` (``"rrf"`` or ``"linear"``) of
    BM25 and ``encoder`` (default: the packaged MiniLM, frozen) unless it exists. Without ``path`` it lives in the
    cache under a name made of the collection, the encoder's fingerprint, the topics and the fusion, so every model
    trained on the same data reads one file."""
    if fusion not in FUSIONS:
        raise InputError(f"fusion must be one of {sorted(FUSIONS)}, not {fusion!r}")
    encoder = encoder or TorchEncoder.from_pretrained("minilm")
    if path is None:
        qids = hashlib.blake2b("\n".join(sorted(topics["qid"].astype(str))).encode(), digest_size=6).hexdigest()
        name = f"{collection_key(corpus)}-{encoder.fingerprint[:12]}-{qids}-{depth}-{fusion}.tsv"
        path = cache_dir() / "negatives" / name
    path = Path(path)
    if not path.exists():
        dense = encoder.query_encoder() >> cached_index(corpus, encoder).retriever(k=depth + 20)
        fused = FUSIONS[fusion](BM25(corpus, num_results=depth + 20), dense, depth + 20)
        mine(fused, topics, path, depth=depth)
    return path


def read_mined(path: str | Path) -> dict[str, list[str]]:
    """qid -> ranked docnos of a mined negatives file."""
    return {qid: list(group["docno"]) for qid, group in _read(path).groupby("qid", sort=False)}


def read_scores(path: str | Path) -> dict[str, dict[str, float]]:
    """qid -> {docno: the mining retriever's score} of a mined file written with scores (a third column)."""
    frame = _read(path)
    if frame["score"].isna().any():
        raise InputError(f"{path} has no scores (a qid<TAB>docno file): mine it again with pt_dense.training."
                         "negatives.mine, which writes the retriever's scores as a third column")
    return {qid: dict(zip(group["docno"], group["score"].astype(float), strict=True))
            for qid, group in frame.groupby("qid", sort=False)}


def _read(path: str | Path) -> pd.DataFrame:
    """``qid, docno, score`` of a negatives file: ``qid<TAB>docno[<TAB>score]`` lines that end at ``"\\n"`` alone
    (``"\\r\\n"`` tolerated), every field taken whole (no quoting, no "NA" read as missing); empty lines skipped."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError as err:
        raise InputError(f"the negatives file {path} does not exist: mine one with pt_dense.training.negatives.mine, "
                         "or give a qid<TAB>docno file") from err
    except UnicodeDecodeError as err:
        raise InputError(f"the negatives file {path} is not UTF-8 text ({err}): save it as UTF-8") from err
    rows = []
    for n, line in enumerate(text.split("\n"), 1):
        fields = (line[:-1] if line.endswith("\r") else line).split("\t")
        if fields == [""]:
            continue
        try:
            score = float(fields[2]) if len(fields) == 3 else float("nan")
        except ValueError:
            score = None
        if len(fields) not in (2, 3) or not fields[0] or not fields[1] or score is None:
            raise InputError(f"{path}, line {n}: {shown(line)} is not qid<TAB>docno or qid<TAB>docno<TAB>score")
        rows.append((fields[0], fields[1], score))
    return pd.DataFrame(rows, columns=["qid", "docno", "score"]).astype({"qid": object, "docno": object})


def mine(retriever, topics: pd.DataFrame, path: str | Path, depth: int = 100) -> Path:
    """Run ``retriever`` over ``topics`` and write its top ``depth`` per query, with their scores, as a negatives
    file (``qid<TAB>docno<TAB>score``, best first; atomically)."""
    top = _best_first(retriever(topics[["qid", "query"]])).groupby("qid", sort=False).head(depth)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as tmp:
        rows = list(zip(top["qid"].astype(str), top["docno"].astype(str), top["score"].astype(float), strict=True))
        tabbed = [(q, d) for q, d, _ in rows if "\t" in q + d or "\n" in q or "\r" in q]
        if tabbed:
            raise InputError(f"a negatives file is qid<TAB>docno<TAB>score lines, but qid {shown(tabbed[0][0])} / "
                             f"docno {shown(tabbed[0][1])} holds a tab or line break: rename it to mine negatives")
        tmp.write_text("".join(f"{q}\t{d}\t{s!r}\n" for q, d, s in rows), encoding="utf-8")
    return path


def ranked_lists(results: pd.DataFrame) -> dict[str, list[str]]:
    groups = _best_first(results).groupby("qid", sort=False)
    return {str(qid): list(group["docno"].astype(str)) for qid, group in groups}


def _best_first(results: pd.DataFrame) -> pd.DataFrame:
    return results.sort_values(["qid", "rank"], kind="stable") if "rank" in results else results
