"""PyTerrier stages around an encoder: query encoder, document encoder, and a text re-ranker.

Every vector an encoder makes (``encode()`` and the stages alike) is an :class:`EncodedVector`: a float32 row (or
matrix) that carries the fingerprint of the encoder that made it, so the identity travels with the vector itself
through merges, concatenation, copies and pickling (a frame's ``attrs`` would be dropped by most pandas
operations), and an index can refuse another encoder's vectors wherever they come from.

A vector can lose its stamp (``np.array(v)``, a parquet or CSV round trip, ``tolist()``, arithmetic on it, vectors
made outside pt_dense): an index that knows its encoder then cannot tell where it came from, and its stages refuse
it unless they are told the encoder (``index.retriever(encoder=enc)``, ``index.scorer(encoder=enc)``,
``index.add(docs, encoder=enc)``; see :meth:`pt_dense.index.DenseIndex.check_vectors`).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
import pyterrier as pt

from pt_dense.errors import InputError
from pt_dense.io.frames import ranked_order, take_rows
from pt_dense.io.validation import clean_texts, require_columns

#: record key under which DocEncoder.transform_iter tells an indexer which encoder made ``doc_vec``
ENCODER_KEY = "_pt_dense_encoder"


class EncodedVector(np.ndarray):
    """A vector (or matrix) that knows the fingerprint of the encoder that made it (``.encoder``).

    Views, slices, row selections, copies and pickling keep it; arithmetic (any numpy ufunc: ``v * 2``,
    ``v / norm``, ``a + b``) makes a new vector that no encoder made, a plain ndarray without a stamp.
    """

    encoder: str | None = None

    def __array_finalize__(self, obj) -> None:
        self.encoder = getattr(obj, "encoder", None)

    def __array_wrap__(self, array, context=None, return_scalar=False):
        plain = np.asarray(array)
        return plain[()] if return_scalar else plain

    def __reduce__(self):
        constructor, args, state = super().__reduce__()[:3]
        return constructor, args, (state, self.encoder)

    def __setstate__(self, state) -> None:
        array_state, self.encoder = state
        super().__setstate__(array_state)


def stamped(vectors: np.ndarray, fingerprint: str) -> EncodedVector:
    """``vectors`` (a matrix, or one row) as an :class:`EncodedVector` made by the encoder ``fingerprint`` (a view:
    nothing is copied); its rows (``list(...)``, iteration, indexing) carry the stamp too."""
    matrix = np.asarray(vectors).view(EncodedVector)
    matrix.encoder = fingerprint
    return matrix


def stamp(vectors: np.ndarray, fingerprint: str) -> list[EncodedVector]:
    """The rows of ``vectors`` as :class:`EncodedVector` s made by the encoder ``fingerprint`` (a frame column)."""
    return list(stamped(vectors, fingerprint))


def fingerprint_of(vector) -> str | None:
    """The fingerprint a vector carries, or None if it carries none (it lost its stamp, or was made elsewhere)."""
    return getattr(vector, "encoder", None)


def encoders_of(vectors: Iterable) -> set[str]:
    """The fingerprints carried by a column (or list) of vectors; vectors made elsewhere carry none."""
    return {encoder for v in vectors if (encoder := getattr(v, "encoder", None))}


def origins(vectors: Iterable) -> tuple[set[str], int]:
    """(the fingerprints a column or list of vectors carries, how many of its vectors carry none), in one pass."""
    fingerprints = [getattr(v, "encoder", None) for v in vectors]
    unstamped = fingerprints.count(None)
    return set(fingerprints) - {None}, unstamped


def fingerprint_for(encoder) -> str | None:
    """The fingerprint of ``encoder``, given as an encoder (anything with ``fingerprint``: TorchEncoder, BiEncoder,
    OnnxEncoder), one of its stages (``enc.query_encoder()``), or a fingerprint string; None for None.

    Raises:
        InputError: ``encoder`` is none of these, or does not know its fingerprint.
    """
    if encoder is None or isinstance(encoder, str):
        return encoder
    fingerprint = getattr(encoder, "fingerprint", None)
    if fingerprint is None:  # a stage of an encoder: the encoder it runs
        fingerprint = getattr(getattr(encoder, "encoder", None), "fingerprint", None)
    if not isinstance(fingerprint, str):
        raise InputError(f"encoder= takes a pt_dense encoder (TorchEncoder, BiEncoder, OnnxEncoder), one of its "
                         f"stages, or an encoder's fingerprint; {type(encoder).__name__} has no fingerprint")
    return fingerprint


class StageFactory:
    """The PyTerrier stages of anything with ``encode(texts, side)``, ``fingerprint`` and ``batch_size``."""

    def query_encoder(self, batch_size: int | None = None) -> QueryEncoder:
        """A stage ``qid, query -> + query_vec`` (each distinct query encoded once).

        Args:
            batch_size: Queries a batch (default: the encoder's).

        Returns:
            A :class:`~pt_dense.encoders.stages.QueryEncoder`.

        Example::

            dense = enc.query_encoder() >> index.retriever(k=1000)
        """
        return QueryEncoder(self, batch_size=batch_size)

    def doc_encoder(self, batch_size: int | None = None) -> DocEncoder:
        """A stage ``docno, text -> + doc_vec``.

        Args:
            batch_size: Documents a batch (default: the encoder's).

        Returns:
            A :class:`~pt_dense.encoders.stages.DocEncoder`.

        Example::

            (enc.doc_encoder() >> index.indexer()).index(data.corpus_iter())
        """
        return DocEncoder(self, batch_size=batch_size)

    def scorer(self, batch_size: int | None = None) -> TextScorer:
        """A stage re-ranking ``qid, query, docno, text`` rows by encoding both sides.

        A :meth:`DenseIndex.scorer() <pt_dense.DenseIndex.scorer>` is the cheaper path: it reads stored document
        vectors.

        Args:
            batch_size: Texts a batch (default: the encoder's).

        Returns:
            A :class:`~pt_dense.encoders.stages.TextScorer`.
        """
        return TextScorer(self, batch_size=batch_size)


class _EncoderStage(pt.Transformer):
    """Shared plumbing: the encoder, a batch size, equality by configuration."""

    required: tuple[str, ...] = ()
    produces: tuple[str, ...] = ()

    def __init__(self, encoder, batch_size: int | None = None):
        self.encoder = encoder
        self.batch_size = batch_size or encoder.batch_size

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.encoder!r}, batch_size={self.batch_size})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.encoder is other.encoder and self.batch_size == other.batch_size

    def __hash__(self) -> int:
        return hash((type(self), id(self.encoder), self.batch_size))

    def transform_inputs(self) -> list[str]:
        return list(self.required)

    def transform_outputs(self, input_columns: list[str]) -> list[str]:
        require_columns(input_columns, self.required, self)
        return list(input_columns) + [c for c in self.produces if c not in input_columns]


class QueryEncoder(_EncoderStage):
    """``qid, query`` -> adds ``query_vec``; on result frames each distinct query is encoded once."""

    required = ("qid", "query")
    produces = ("query_vec",)

    def transform(self, inp: pd.DataFrame) -> pd.DataFrame:
        require_columns(inp.columns, self.required, self)
        queries = inp["query"].to_numpy()
        clean_texts(queries, inp["qid"].to_numpy(), "query")
        unique, inverse = np.unique(queries.astype(str), return_inverse=True)
        vectors = self.encoder.encode(list(unique), "query", batch_size=self.batch_size)  # stamped by the encoder
        return inp.assign(query_vec=list(_stamped_by(vectors, self.encoder)[inverse]))


class DocEncoder(_EncoderStage):
    """``docno, text`` -> adds ``doc_vec``.

    In an indexing pipeline PyTerrier hands this stage ``batch_size`` documents at a time; the encoder then splits
    them into model batches of its own ``batch_size`` after sorting by length, so a larger stage batch pads less.

    Args:
        encoder: A pt_dense encoder.
        batch_size: Documents a stage batch (default: the larger of the encoder's and 1024).
    """

    required = ("docno", "text")
    produces = ("doc_vec",)

    def __init__(self, encoder, batch_size: int | None = None):
        super().__init__(encoder, batch_size or max(encoder.batch_size, 1024))

    def transform(self, inp: pd.DataFrame) -> pd.DataFrame:
        require_columns(inp.columns, self.required, self)
        texts = clean_texts(inp["text"].to_numpy(), inp["docno"].to_numpy(), "document text")
        vectors = self.encoder.encode(texts, "doc")
        return inp.assign(doc_vec=list(_stamped_by(vectors, self.encoder)))

    def transform_iter(self, inp):
        """Records in, records out; each also names the encoder (ENCODER_KEY), which an indexer records."""
        records = list(inp)
        if not records:
            return
        descriptor = self.encoder.descriptor()
        for record in self.transform(pd.DataFrame(records)).to_dict("records"):
            record[ENCODER_KEY] = descriptor
            yield record


class TextScorer(_EncoderStage):
    """Re-ranks ``qid, query, docno, text`` rows by the dot product of freshly encoded query and document.

    Encoding candidate texts costs hundreds of times more than reading stored vectors: when the documents are in a
    DenseIndex, prefer ``index.scorer()``.
    """

    required = ("qid", "query", "docno", "text")
    produces = ("score", "rank")

    def transform(self, inp: pd.DataFrame) -> pd.DataFrame:
        require_columns(inp.columns, self.required, self)
        if len(inp) == 0:
            return inp.assign(score=pd.Series(dtype=np.float32), rank=pd.Series(dtype=np.int64))
        with_q = QueryEncoder(self.encoder, self.batch_size).transform(inp)
        docs = clean_texts(inp["text"].to_numpy(), inp["docno"].to_numpy(), "document text")
        doc_vecs = self.encoder.encode(docs, "doc", batch_size=self.batch_size)
        scores = np.einsum("ij,ij->i", np.stack(with_q["query_vec"].to_numpy()), doc_vecs)
        order, ranks = ranked_order(inp["qid"], scores)
        return take_rows(inp, order, {"score": scores[order], "rank": ranks})


def _stamped_by(vectors: np.ndarray, encoder) -> EncodedVector:
    """``vectors`` as ``encoder.encode`` returned them: stamped already by a pt_dense encoder, stamped here for any
    other object with ``encode`` and ``fingerprint``."""
    return vectors if fingerprint_of(vectors) else stamped(vectors, encoder.fingerprint)
