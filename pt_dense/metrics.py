"""The measures pt_dense reports, by name, and exact dense retrieval scored in memory.

Shared by evaluation (tables), training (validation after each epoch) and examples that score vectors they hold.
"""

from __future__ import annotations

from collections.abc import Sequence

import ir_measures
import numpy as np
import pandas as pd

#: the measures of every results table, in column order
MEASURE_NAMES = ("nDCG@10", "R@100", "AP")


def measures(names: Sequence[str] = MEASURE_NAMES) -> dict[str, object]:
    """ir_measures measures by the names used in tables and JSON.

    Args:
        names: ir_measures names (``"nDCG@10"``, ``"R@100"``, ``"AP"``...).

    Returns:
        Name -> parsed measure, in the order given.
    """
    return {name: ir_measures.parse_measure(name) for name in names}


def trec_qrels(qrels: pd.DataFrame) -> pd.DataFrame:
    """Qrels with the dtypes ``pt.Experiment`` and ir_measures expect (string ids, integer labels).

    Args:
        qrels: ``qid, docno, label`` judgements.

    Returns:
        A converted copy.
    """
    return qrels.astype({"qid": str, "docno": str, "label": int})


def exact_scores(queries: np.ndarray, qids, docs: np.ndarray, docnos, qrels: pd.DataFrame,
                 measure_names: Sequence[str] = ("nDCG@10", "R@100"), depth: int = 1000) -> dict[str, float]:
    """Measures of exact dot-product retrieval (top ``depth``) of query vectors over document vectors in memory.

    No index is involved: the whole query x document score matrix is computed at once, so this suits a validation
    pool or a small collection.

    Args:
        queries: Query vectors, one a row.
        qids: The qid of each query vector.
        docs: Document vectors, one a row.
        docnos: The docno of each document vector.
        qrels: ``qid, docno, label`` judgements.
        measure_names: ir_measures names.
        depth: Documents retrieved per query.

    Returns:
        Name -> the measure's mean over the queries.
    """
    chosen = [ir_measures.parse_measure(name) for name in measure_names]
    scores = queries @ docs.T
    top = np.argsort(-scores, axis=1)[:, :depth]
    run = [ir_measures.ScoredDoc(str(qid), str(docnos[j]), float(scores[i, j]))
           for i, qid in enumerate(qids) for j in top[i]]
    judged = [ir_measures.Qrel(str(r.qid), str(r.docno), int(r.label)) for r in qrels.itertuples()]
    result = ir_measures.calc_aggregate(chosen, judged, run)
    return {name: float(result[m]) for name, m in zip(measure_names, chosen, strict=True)}
