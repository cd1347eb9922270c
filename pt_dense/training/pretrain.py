"""Retrieval-oriented intermediate pretraining (DPTDR): contrastive training on pairs built from a corpus alone.

Two kinds of pseudo-queries per document, both pointing at the document's body (its text without the title):

- ``title``: the title (where the collection has titles), as a scientific claim or question would name the topic;
- ``span``: a random window of ``span_words`` words of the body (the Inverse Cloze flavour of "span -> document").

The pairs train through the same :func:`~pt_dense.training.trainer.fit` as labelled data (in-batch negatives; a
document's two queries never count each other's document as a negative), so the prompts or LoRA weights are then
fine-tuned on the labelled split as usual.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence

import pandas as pd

from pt_dense.errors import InputError

KINDS = ("title", "span")


def pseudo_pairs(records: Iterable[dict], kinds: Sequence[str] = KINDS, *, span_words: tuple[int, int] = (8, 24),
                 max_docs: int | None = None, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, str]]:
    """(topics, qrels, docno -> text) of pseudo-queries over ``records`` (``{"docno", "title", "text"}`` dicts)."""
    unknown = set(kinds) - set(KINDS)
    if unknown or not kinds:
        raise InputError(f"pseudo-query kinds must be among {KINDS}, got {list(kinds)}")
    rng = random.Random(seed)
    docs = [r for r in records if (r.get("text") or "").strip()]
    if max_docs is not None and len(docs) > max_docs:
        docs = rng.sample(docs, max_docs)
    topics, qrels, texts = [], [], {}
    for doc in docs:
        docno, title, body = str(doc["docno"]), (doc.get("title") or "").strip(), doc["text"].strip()
        texts[docno] = body
        if "title" in kinds and title:
            topics.append((f"title:{docno}", title))
            qrels.append((f"title:{docno}", docno, 1))
        words = body.split()
        if "span" in kinds and len(words) > span_words[0]:
            size = rng.randint(span_words[0], min(span_words[1], len(words) - 1))
            start = rng.randint(0, len(words) - size)
            topics.append((f"span:{docno}", " ".join(words[start : start + size])))
            qrels.append((f"span:{docno}", docno, 1))
    if not topics:
        raise InputError("no pseudo-query could be built: the corpus has no titles and no body longer than "
                         f"{span_words[0]} words")
    return (pd.DataFrame(topics, columns=["qid", "query"]), pd.DataFrame(qrels, columns=["qid", "docno", "label"]),
            texts)


def pretrain(encoder, corpus, *, kinds: Sequence[str] = KINDS, max_docs: int | None = None, seed: int = 0,
             **settings) -> dict:
    """Train ``encoder`` (its prompts, LoRA or all weights) on the pseudo-pairs of ``corpus`` (a dataset with
    ``records()``, or an iterable of ``{"docno", "title", "text"}``); returns fit's history."""
    records = corpus.records() if hasattr(corpus, "records") else corpus
    topics, qrels, texts = pseudo_pairs(records, kinds, max_docs=max_docs, seed=seed)
    return encoder.fit(topics, qrels, corpus=texts, negatives="in-batch", seed=seed, **settings)
