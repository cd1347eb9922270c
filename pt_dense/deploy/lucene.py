"""Deployment targets for a DenseIndex: Pyserini's FAISS layout and Lucene (HNSW or flat) through Anserini, plus
the PyTerrier stages that search them.

Lucene's DOT_PRODUCT similarity needs unit vectors and scores ``(1 + dot) / 2``; the stages turn scores back into
dot products so they mix with every other pt_dense stage.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pyterrier as pt

from pt_dense.encoders.onnx_encoder import OnnxEncoder
from pt_dense.errors import DeploymentError, EncoderMismatchError, InputError
from pt_dense.index.dense_index import DenseIndex
from pt_dense.io.atomic import atomic_dir
from pt_dense.io.frames import take_rows
from pt_dense.io.jvm import autoclass, start_jvm
from pt_dense.io.validation import clean_texts, docno_problem, require_columns, shown

META_NAME = "pt_dense.json"
LUCENE_SUBDIR = "index"


def pyserini_faiss(index: DenseIndex, out_dir: str | Path, *, overwrite: bool = False) -> Path:
    """Write ``index`` in the layout Pyserini's ``FaissSearcher`` reads: ``index`` (faiss IndexFlatIP) + ``docid``.

    Args:
        index: The index.
        out_dir: The folder to write.
        overwrite: Replace an existing output folder (refused otherwise).

    Returns:
        The folder written.
    """
    import faiss

    stripped: list[str] = []
    with atomic_dir(out_dir, overwrite=overwrite) as tmp:
        flat = faiss.IndexFlatIP(index.dim)
        with open(tmp / "docid", "w", encoding="utf-8") as docids:
            for docnos, vectors in index.chunks():  # live documents only
                flat.add(np.ascontiguousarray(vectors))
                docids.write("".join(d + "\n" for d in docnos))
                stripped += [d for d in docnos if d != d.rstrip()]
        faiss.write_index(flat, str(tmp / "index"))
        (tmp / META_NAME).write_text(json.dumps(_meta(index, "pyserini-faiss"), indent=2))
    if stripped:
        warnings.warn(f"{len(stripped)} docno(s) end with whitespace (e.g. {stripped[:3]}): PyseriniFaiss returns "
                      "them whole, but Pyserini's own FaissSearcher strips each docid line's trailing whitespace",
                      stacklevel=2)
    return Path(out_dir)


def lucene(index: DenseIndex, out_dir: str | Path, *, kind: str = "hnsw", M: int = 16, ef_construction: int = 100,
           int8: bool = False, threads: int | None = None, overwrite: bool = False) -> Path:
    """Build a Lucene dense index of ``index``'s vectors with Anserini (``IndexHnswDenseVectors`` or
    ``IndexFlatDenseVectors``); the Lucene folder is ``out_dir/index``, our metadata ``out_dir/pt_dense.json``.

    Args:
        index: An L2-normalised index (Lucene's DOT_PRODUCT needs unit vectors).
        out_dir: The folder to write.
        kind: ``"hnsw"`` or ``"flat"``.
        M: HNSW's links a node.
        ef_construction: HNSW's candidates while building.
        int8: Quantise the vectors to int8 in Lucene.
        threads: Indexing threads (default: all).
        overwrite: Replace an existing output folder (refused otherwise).

    Returns:
        The folder written.

    Raises:
        InputError: A bad ``kind``, vectors that are not unit length, or a docno Lucene cannot hold.
        DeploymentError: Anserini wrote no index, or not every document.

    Example::

        ptd.export.lucene(index, "out/lucene-hnsw")
    """
    from tqdm.auto import tqdm

    if kind not in ("hnsw", "flat"):
        raise InputError(f"kind must be 'hnsw' or 'flat', not {kind!r}")
    if not index.meta.get("normalized"):
        raise InputError("Lucene's DOT_PRODUCT needs unit vectors; this index is not L2-normalised")
    with atomic_dir(out_dir, overwrite=overwrite) as tmp, tempfile.TemporaryDirectory() as collection:
        with open(Path(collection) / "vectors.jsonl", "w", encoding="utf-8") as out:
            for docnos, rows in tqdm(index.chunks(4096), desc="writing vectors for Anserini", unit="chunk",
                                     total=-(-len(index) // 4096), disable=len(index) <= 4096):
                for docno in docnos:  # an index written before docnos were checked, or a FlexIndex view
                    if problem := docno_problem(docno):
                        raise InputError(f"docno {shown(docno)} cannot go to Lucene: {problem}")
                out.writelines(json.dumps({"docid": d, "vector": v.tolist()}) + "\n"
                               for d, v in zip(docnos, rows, strict=True))
        args = ["-collection", "JsonDenseVectorCollection", "-input", collection, "-index", str(tmp / LUCENE_SUBDIR),
                "-generator", "DenseVectorDocumentGenerator", "-threads", str(threads or os.cpu_count() or 1)]
        if kind == "hnsw":
            args += ["-M", str(M), "-efC", str(ef_construction)]
        if int8:
            args += ["-quantize.int8"]
        main = autoclass(f"io.anserini.index.Index{'Hnsw' if kind == 'hnsw' else 'Flat'}DenseVectors")
        main.main(args)
        if not any((tmp / LUCENE_SUBDIR).glob("segments_*")):
            raise DeploymentError(f"Anserini wrote no Lucene index (arguments: {' '.join(args)})")
        written = _lucene_count(tmp / LUCENE_SUBDIR)
        if written != index.live_count:  # Anserini logs a failed document and goes on
            raise DeploymentError(f"Anserini indexed {written:,} of {index.live_count:,} documents (its log above "
                                  f"says why); nothing was written to {out_dir}")
        meta = {**_meta(index, f"lucene-{kind}"), "M": M, "ef_construction": ef_construction, "int8": int8}
        (tmp / META_NAME).write_text(json.dumps(meta, indent=2))
    return Path(out_dir)


def _lucene_count(folder: Path) -> int:
    """The number of documents in the Lucene index in ``folder``."""
    directory = autoclass("org.apache.lucene.store.FSDirectory").open(autoclass("java.io.File")(str(folder)).toPath())
    reader = autoclass("org.apache.lucene.index.DirectoryReader").open(directory)
    try:
        return reader.numDocs()
    finally:
        reader.close()
        directory.close()


def _meta(index: DenseIndex, kind: str) -> dict:
    return {"kind": kind, "dim": index.dim, "count": index.live_count, "encoder": index.meta.get("encoder"),
            "source": str(index.path)}


class _DeployedStage(pt.Transformer):
    """Shared checks: the ONNX export belongs to the encoder that built the deployed index."""

    def __init__(self, folder: str | Path, onnx_dir: str | Path, k: int):
        # absolute: Java resolves a relative path against the folder the JVM started in, not this process's now
        self.folder, self.onnx_dir = Path(folder).expanduser().absolute(), Path(onnx_dir).expanduser().absolute()
        self.k = k
        meta_file = self.folder / META_NAME
        if not meta_file.exists():
            raise InputError(f"{self.folder} is not a pt_dense deployment (no {META_NAME})")
        self.meta = json.loads(meta_file.read_text())
        onnx_config = json.loads((self.onnx_dir / "config.json").read_text())
        built_by = (self.meta.get("encoder") or {}).get("fingerprint")
        if built_by and onnx_config.get("fingerprint") != built_by:
            raise EncoderMismatchError(f"{self.onnx_dir} exports encoder {onnx_config.get('fingerprint', '?')[:12]} "
                                       f"but {self.folder} was built by {built_by[:12]}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.folder)!r}, {str(self.onnx_dir)!r}, k={self.k})"

    def transform_inputs(self) -> list[str]:
        return ["qid", "query"]

    def _frame(self, inp: pd.DataFrame, hits: list[tuple[list[str], np.ndarray]]) -> pd.DataFrame:
        """``inp`` with each query's (docnos, scores) as rows ``docno, score, rank``, in input order."""
        counts = [len(docnos) for docnos, _ in hits]
        return take_rows(inp, np.repeat(np.arange(len(inp)), counts), {
            "docno": np.array([d for docnos, _ in hits for d in docnos], dtype=object),
            "score": self._scores(np.concatenate([s for _, s in hits]) if hits else np.zeros(0, np.float32)),
            "rank": np.concatenate([np.arange(c) for c in counts]) if counts else np.zeros(0, int)})

    def _scores(self, scores: np.ndarray) -> np.ndarray:
        return scores.astype(np.float32)


class LuceneDense(_DeployedStage):
    """``qid, query -> docno, score, rank`` in a Lucene dense index, queries encoded in Java by the bridge.

    The bridge's ``io.ptdense.DenseSearcher`` opens the index with Lucene directly (no Pyserini searcher): it
    encodes the query, asks for the top k by score (HNSW with ``ef_search`` candidates, default ``max(k, 100)``; a
    flat index is searched exactly), reads the docids from doc values, and hands the hits to Python as two strings.
    ``threads`` searches a batch of queries in parallel; ``encoder_threads`` sets ONNX Runtime's threads for one
    encoding (default: one per core).

    Args:
        lucene_dir: A folder written by :func:`pt_dense.export.lucene`.
        onnx_dir: The ONNX export of the encoder that built the index.
        k: Documents returned a query.
        ef_search: HNSW's candidates a query (default ``max(k, 100)``).
        threads: Queries searched in parallel.
        encoder_threads: ONNX Runtime's threads for one encoding.

    Raises:
        InputError: ``lucene_dir`` is not a pt_dense deployment.
        DeploymentError: Java could not be started.

    Example::

        deployed = ptd.deploy.LuceneDense("out/lucene-hnsw", "out/model", k=100)
    """

    def __init__(self, lucene_dir: str | Path, onnx_dir: str | Path, k: int = 1000, ef_search: int | None = None,
                 threads: int | None = None, encoder_threads: int | None = None):
        super().__init__(lucene_dir, onnx_dir, k)
        self.ef_search, self.threads = max(ef_search or 100, k), threads or os.cpu_count() or 1
        start_jvm()
        system = autoclass("java.lang.System")
        system.setProperty("ptdense.onnx.dir", str(self.onnx_dir.absolute()))
        system.setProperty("ptdense.onnx.threads", str(encoder_threads or 0))
        self.searcher = autoclass("io.ptdense.DenseSearcher")(str(self.folder / LUCENE_SUBDIR), self.ef_search)
        self._array_list = autoclass("java.util.ArrayList")

    def transform(self, inp: pd.DataFrame) -> pd.DataFrame:
        require_columns(inp.columns, ["qid", "query"], self)
        return self._frame(inp, self._search(clean_texts(inp["query"].to_numpy(), inp["qid"].to_numpy(), "query")))

    def _search(self, queries: list[str]) -> list[tuple[list[str], np.ndarray]]:
        if len(queries) == 1:
            found = [self.searcher.search(queries[0], self.k)]
        else:
            java_queries = self._array_list()
            for query in queries:
                java_queries.add(query)
            found = self.searcher.batch(java_queries, self.k, self.threads) if queries else []
        return [(split_docids(h.docids, h.count), np.array(h.scores.split(), dtype=np.float32)) for h in found]

    def _scores(self, scores: np.ndarray) -> np.ndarray:
        return (2.0 * scores - 1.0).astype(np.float32)  # Lucene DOT_PRODUCT scores (1 + dot) / 2


def read_docids(path: Path) -> list[str]:
    """The docids of a Pyserini FAISS folder exactly as :func:`pyserini_faiss` wrote them, one per ``"\\n"``."""
    docids = path.read_text(encoding="utf-8").split("\n")
    if docids.pop() != "":
        raise InputError(f"{path} does not end with a line break: it was not written whole; export it again")
    return docids


def split_docids(text: str, count: int) -> list[str]:
    """The docids the bridge's ``Hits`` sends as one string, each followed by ``"\\n"``: split on that character
    alone (``str.splitlines`` would also split a docid at ``\\x0c``, ``\\x85``, U+2028 and seven others a docid may
    hold; no pt_dense docno holds a ``"\\n"``), and checked against the hit count Java gave."""
    docids = text.split("\n")
    if docids.pop() != "" or len(docids) != count:
        raise DeploymentError(f"the Java bridge sent {count} hits but {len(docids)} docids: a docid in the Lucene "
                              "index holds a line break; rebuild it with export.lucene from a pt_dense index (whose "
                              "docnos never hold one)")
    return docids


class PyseriniFaiss(_DeployedStage):
    """``qid, query -> docno, score, rank`` with Pyserini's FaissSearcher, queries encoded by onnxruntime.

    Args:
        faiss_dir: A folder written by :func:`pt_dense.export.pyserini_faiss`.
        onnx_dir: The ONNX export of the encoder that built the index.
        k: Documents returned a query.
        threads: Search threads (default: one per core).

    Raises:
        InputError: ``faiss_dir`` is not a pt_dense deployment, or its docids do not match.
        DeploymentError: Java or Pyserini could not be started.
    """

    def __init__(self, faiss_dir: str | Path, onnx_dir: str | Path, k: int = 1000, threads: int | None = None):
        super().__init__(faiss_dir, onnx_dir, k)
        start_jvm()  # pyserini's package import starts Java
        from pyserini.search.faiss import FaissSearcher

        self.encoder = OnnxEncoder(self.onnx_dir)
        self.threads = threads or os.cpu_count() or 1
        self.searcher = FaissSearcher(str(self.folder), None)
        self.searcher.docids = read_docids(self.folder / "docid")  # Pyserini strips each line's trailing whitespace
        if len(self.searcher.docids) != self.searcher.num_docs:
            raise InputError(f"{self.folder / 'docid'} lists {len(self.searcher.docids)} docids for "
                             f"{self.searcher.num_docs} vectors: export it again")

    def transform(self, inp: pd.DataFrame) -> pd.DataFrame:
        require_columns(inp.columns, ["qid", "query"], self)
        queries = clean_texts(inp["query"].to_numpy(), inp["qid"].to_numpy(), "query")
        vectors = self.encoder.encode(queries, "query")
        if len(queries) == 1:
            hits = [self.searcher.search(vectors[:1], k=self.k, threads=self.threads)]
        else:
            qids = [str(i) for i in range(len(queries))]  # positions: qids may repeat
            found = self.searcher.batch_search(vectors, qids, k=self.k, threads=self.threads)
            hits = [found.get(q, []) for q in qids]
        return self._frame(inp, [([h.docid for h in one], np.array([h.score for h in one], dtype=np.float32))
                                 for one in hits])
