"""Contrastive log-likelihood (Fang et al., SIGIR 2024): the smooth measure that dense retrieval's scaling laws are in.

For a query q with judged positive p+ and K negatives drawn at random from the corpus (fixed by a seed, never one of
q's judged positives)::

    L = -E log( e^{s(q,p+)/t} / (e^{s(q,p+)/t} + sum_k e^{s(q,p-_k)/t}) )

averaged over each query's positives, then over queries (as ir_measures aggregates). Lower is better; a model that
cannot tell documents apart scores log(K + 1). ``t`` is the temperature the scores are read at: with unit vectors
(cosine in [-1, 1]) a raw softmax is nearly uniform, so we use the training temperature (0.05), as the paper's
models score with the temperature they were trained at.

Three ways to use it: :func:`contrastive_loglik` (an encoder or any scoring pipeline), and, inside
``pt.Experiment``, the stage :func:`contrastive_candidates` (each query's positives and sampled negatives, as rows to
score) followed by a scorer, measured with :func:`CLL` beside any ir_measures measure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd
import pyterrier as pt

from pt_dense.datasets import doc_texts, judged_positives
from pt_dense.errors import InputError
from pt_dense.io.hashing import seeded_rng
from pt_dense.io.validation import require_columns

DEFAULT_NEGATIVES = 256
DEFAULT_TEMPERATURE = 0.05


def query_loglik(positive_scores: np.ndarray, negative_scores: np.ndarray, temperature: float) -> float:
    """Mean over the positives of -log softmax(positive | positive + all negatives) at ``temperature``."""
    pos = np.asarray(positive_scores, dtype=np.float64) / temperature
    neg = np.asarray(negative_scores, dtype=np.float64) / temperature
    top = neg.max(initial=-np.inf)
    lse_neg = top + np.log(np.exp(neg - top).sum()) if len(neg) else -np.inf
    return float(np.mean(np.logaddexp(pos, lse_neg) - pos))


def sample_negatives(qid: str, docnos: np.ndarray, positives: set[str], n: int, seed: int) -> list[str]:
    """``n`` distinct docnos drawn uniformly from ``docnos`` minus ``positives`` (the query's judged positives that
    are in ``docnos``); a pure function of (seed, qid)."""
    available = len(docnos) - len(positives)
    if available < n:
        raise InputError(f"query {qid!r}: the corpus has only {available} non-positive documents, fewer than the "
                         f"{n} negatives asked for; lower negatives=")
    rng = seeded_rng(seed, qid)
    drawn = docnos[rng.choice(len(docnos), size=min(len(docnos), n + len(positives)), replace=False)]
    return [d for d in drawn if d not in positives][:n]


class ContrastiveCandidates(pt.Transformer):
    """``qid, query`` -> one row per judged positive and per sampled negative, with ``docno`` and ``text``.

    Follow it with any scorer (``enc.scorer()``, ``enc.query_encoder() >> index.scorer()``, a cross-encoder) and
    measure the run with :func:`CLL`: the run then holds exactly what the definition of L scores. A query without a
    judged positive in the corpus gives no rows.

    Args:
        corpus: A dataset (``corpus_iter``), a list of ``{"docno", "text"}`` dicts or a docno -> text mapping.
        qrels: ``qid, docno, label`` judgements; label > 0 is a positive.
        negatives: Negatives drawn per query, uniformly from the corpus less the query's positives.
        seed: With the qid, fixes each query's negatives.

    Raises:
        InputError: ``negatives`` is below 1; at transform time, the corpus has too few non-positive documents, or
            no input query has a judged positive in the corpus.
        MissingColumnsError: ``qrels`` lacks ``qid``, ``docno`` or ``label``; at transform time, the input lacks
            ``qid`` or ``query``.

    Example:
        ::

            candidates = contrastive_candidates(dataset, dataset.qrels("test"))
            pt.Experiment([candidates >> enc.scorer()], dataset.topics("test"), dataset.qrels("test"),
                          eval_metrics=[CLL()])
    """

    def __init__(self, corpus, qrels: pd.DataFrame, negatives: int = DEFAULT_NEGATIVES, seed: int = 0):
        if negatives < 1:
            raise InputError(f"negatives must be at least 1, not {negatives}")
        self.texts = doc_texts(corpus)
        self.docnos = np.array(sorted(self.texts), dtype=object)
        self.positives = judged_positives(qrels)
        self.negatives, self.seed = negatives, seed

    def __repr__(self) -> str:
        return f"ContrastiveCandidates(docs={len(self.docnos)}, negatives={self.negatives}, seed={self.seed})"

    def transform_inputs(self) -> list[str]:
        return ["qid", "query"]

    def transform_outputs(self, input_columns: list[str]) -> list[str]:
        require_columns(input_columns, ("qid", "query"), self)
        return ["qid", "query", "docno", "text", "label"]

    def candidates(self, qid: str) -> tuple[list[str], list[str]]:
        """The candidates of one query: its judged positives that are in the corpus, and its sampled negatives.

        Args:
            qid: The query's id.

        Returns:
            (positives sorted by docno, negatives); the negatives are a pure function of (seed, qid).

        Raises:
            InputError: The corpus has fewer non-positive documents than ``negatives``.
        """
        positives = sorted(d for d in self.positives.get(qid, ()) if d in self.texts)
        return positives, sample_negatives(qid, self.docnos, set(positives), self.negatives, self.seed)

    def transform(self, inp: pd.DataFrame) -> pd.DataFrame:
        require_columns(inp.columns, ("qid", "query"), self)
        rows = []
        for qid, query in inp[["qid", "query"]].drop_duplicates("qid").itertuples(index=False):
            positives, negatives = self.candidates(str(qid))
            if not positives:
                continue
            rows += [(str(qid), query, d, self.texts[d], 1) for d in positives]
            rows += [(str(qid), query, d, self.texts[d], 0) for d in negatives]
        if not rows:
            raise InputError("no query of the input has a judged positive in the corpus: check the qrels' split")
        return pd.DataFrame(rows, columns=["qid", "query", "docno", "text", "label"])


def contrastive_candidates(corpus, qrels: pd.DataFrame, negatives: int = DEFAULT_NEGATIVES,
                           seed: int = 0) -> ContrastiveCandidates:
    """The stage :class:`ContrastiveCandidates` (for ``pt.Experiment`` with :func:`CLL`).

    Args:
        corpus: A dataset, a list of ``{"docno", "text"}`` dicts or a docno -> text mapping.
        qrels: ``qid, docno, label`` judgements.
        negatives: Negatives drawn per query.
        seed: Fixes the negatives.

    Returns:
        The stage.

    Raises:
        InputError: ``negatives`` is below 1.
        MissingColumnsError: ``qrels`` lacks ``qid``, ``docno`` or ``label``.
    """
    return ContrastiveCandidates(corpus, qrels, negatives=negatives, seed=seed)


def CLL(temperature: float = DEFAULT_TEMPERATURE):
    """An ir_measures measure of L over a run: per query, its judged positives in the run against every other
    document of the run. After :func:`contrastive_candidates` that is the definition of L; over an ordinary
    retrieval run it is L against the retrieved non-relevant documents (hard negatives).

    A query with no judged positive in the run is left out. Lower is better.

    Args:
        temperature: The softmax temperature the run's scores are read at.

    Returns:
        The measure, named ``CLL`` (``CLL(t=...)`` at another temperature), for ``pt.Experiment``'s
        ``eval_metrics`` beside any other.
    """
    import ir_measures

    def impl(qrels: pd.DataFrame, run: pd.DataFrame) -> Iterable[tuple[str, float]]:
        relevant = qrels[qrels["relevance"] > 0].groupby("query_id")["doc_id"].agg(set).to_dict()
        for qid, group in run.groupby("query_id", sort=False):
            is_pos = group["doc_id"].isin(relevant.get(qid, set())).to_numpy()
            if is_pos.any():
                scores = group["score"].to_numpy()
                yield qid, query_loglik(scores[is_pos], scores[~is_pos], temperature)

    name = "CLL" if temperature == DEFAULT_TEMPERATURE else f"CLL(t={temperature:g})"
    return ir_measures.define(impl, name=name, support_cutoff=False)


def contrastive_loglik(
    encoder_or_pipeline,
    topics: pd.DataFrame,
    qrels: pd.DataFrame,
    corpus,
    negatives: int = DEFAULT_NEGATIVES,
    seed: int = 0,
    temperature: float = DEFAULT_TEMPERATURE,
    per_query: bool = False,
    progress: bool | None = None,
) -> float | pd.Series:
    """L of an encoder (anything with ``encode(texts, side)``: each distinct text is encoded once) or of a scoring
    pipeline (given ``qid, query, docno, text`` rows, it adds ``score``) on ``topics``; see the module docstring.

    Args:
        encoder_or_pipeline: An encoder (``encode(texts, side)``) or a PyTerrier stage that scores rows.
        topics: ``qid, query``; queries without a judged positive in the corpus are left out.
        qrels: ``qid, docno, label`` judgements; label > 0 is a positive.
        corpus: A dataset (``corpus_iter``), a list of ``{"docno", "text"}`` dicts or a docno -> text mapping.
        negatives: Random negatives per query (never one of its positives).
        seed: With each qid, fixes that query's negatives.
        temperature: The softmax temperature scores are read at.
        per_query: Return L of each query instead of the mean.
        progress: Passed to the encoder's ``encode`` when given.

    Returns:
        The mean L over queries (lower is better), or with ``per_query=True`` a Series of L by qid.

    Raises:
        InputError: ``temperature`` is not positive, ``negatives`` is below 1 or more than the corpus can give, no
            query has a positive in the corpus, the pipeline did not score every row, or ``encoder_or_pipeline`` is
            neither an encoder nor a stage.
        MissingColumnsError: ``topics`` lacks ``qid`` or ``query``, ``qrels`` lacks ``qid``, ``docno`` or
            ``label``, or the pipeline's output lacks ``qid``, ``docno`` or ``score``.

    Example:
        ::

            from pt_dense import scaling
            L = scaling.contrastive_loglik(enc, dataset.topics("test"), dataset.qrels("test"), dataset)
    """
    require_columns(topics.columns, ("qid", "query"), "topics")
    if temperature <= 0:
        raise InputError(f"temperature must be positive, not {temperature}")
    stage = ContrastiveCandidates(corpus, qrels, negatives=negatives, seed=seed)
    rows = stage.transform(topics.astype({"qid": str}))
    if hasattr(encoder_or_pipeline, "encode"):
        scores = _encoder_scores(encoder_or_pipeline, rows, stage.texts, {} if progress is None else
                                 {"progress": progress})
    elif isinstance(encoder_or_pipeline, pt.Transformer):
        scored = encoder_or_pipeline(rows.drop(columns="label"))
        require_columns(scored.columns, ("qid", "docno", "score"), encoder_or_pipeline)
        keyed = scored.astype({"qid": str, "docno": str}).set_index(["qid", "docno"])["score"]
        scores = keyed.reindex(pd.MultiIndex.from_frame(rows[["qid", "docno"]])).to_numpy()
        if np.isnan(scores).any():
            raise InputError("the pipeline dropped some of the candidate documents: it must score every row it gets")
    else:
        raise InputError("contrastive_loglik needs an encoder (with encode()) or a PyTerrier pipeline that scores "
                         f"(qid, query, docno, text) rows; got {type(encoder_or_pipeline).__name__}")
    rows = rows.assign(score=scores)
    values = {qid: query_loglik(g.loc[g["label"] == 1, "score"].to_numpy(), g.loc[g["label"] == 0, "score"].to_numpy(),
                                temperature)
              for qid, g in rows.groupby("qid", sort=False)}
    series = pd.Series(values, name="L")
    return series if per_query else float(series.mean())


def _encoder_scores(encoder, rows: pd.DataFrame, texts: Mapping[str, str], options: dict) -> np.ndarray:
    """Dot products of each row's query and document, each distinct text encoded once."""
    queries = rows.drop_duplicates("qid")
    docnos = rows["docno"].drop_duplicates().tolist()
    q_vecs = encoder.encode(list(queries["query"]), "query", **options)
    d_vecs = encoder.encode([texts[d] for d in docnos], "doc", **options)
    q_row = pd.Series(np.arange(len(queries)), index=queries["qid"]).loc[rows["qid"]].to_numpy()
    d_row = pd.Series(np.arange(len(docnos)), index=docnos).loc[rows["docno"]].to_numpy()
    return np.einsum("ij,ij->i", q_vecs[q_row], d_vecs[d_row])
