"""Test collections: BEIR-format folders (as in ../shared/data), the embedded SciFact, and ir_datasets ids.

A BEIR-format folder holds ``corpus.jsonl[.gz]`` (or another ``corpus*.jsonl[.gz]``), ``queries.jsonl`` and
``qrels/<split>.tsv``, in either of two dialects: BEIR's own downloads (``_id``, ``title``, ``text`` documents;
``_id``, ``text`` queries; qrels ``query-id corpus-id score`` with that header line) and the folders of
``../shared/data`` (``docno``/``qid``/``query`` keys; TREC qrels ``qid 0 docno label`` without header). A document's
text is ``title + " " + text``. A damaged line is an error that names the file and the line.

Also the two views of a collection that training, scaling and the corrector share: :func:`judged_positives`
(qid -> relevant docnos) and :func:`doc_texts` (docno -> text).
"""

from __future__ import annotations

import gzip
import json
import random
import re
from collections.abc import Iterator, Mapping
from functools import cached_property
from pathlib import Path

import pandas as pd

from pt_dense.errors import InputError
from pt_dense.io.validation import require_columns

EMBEDDED = Path(__file__).parent / "data"


class BeirDataset:
    """A BEIR-format collection on disk, with PyTerrier's dataset methods.

    Args:
        path: A folder with ``corpus.jsonl(.gz)``, ``queries.jsonl`` and ``qrels/<split>.tsv``.
        name: The collection's name (default: the folder's).
        keep_docnos: Serve only these documents (see :meth:`subsample`).

    Raises:
        InputError: The folder lacks one of those files.
    """

    def __init__(self, path: str | Path, name: str | None = None, keep_docnos: set[str] | None = None):
        self.path = Path(path)
        self.name = name or self.path.name
        self.keep_docnos = keep_docnos
        missing = [f for f in ("queries.jsonl", "qrels") if not (self.path / f).exists()]
        if not self._corpus_file():
            missing.append("corpus.jsonl(.gz)")
        if missing:
            raise InputError(f"{self.path} is not a BEIR-format folder: it lacks {', '.join(missing)}")

    def __repr__(self) -> str:
        return f"BeirDataset({str(self.path)!r})"

    def _corpus_file(self) -> Path | None:
        for pattern in ("corpus.jsonl.gz", "corpus.jsonl", "corpus*.jsonl.gz", "corpus*.jsonl"):
            found = sorted(self.path.glob(pattern))
            if found:
                return found[0]
        return None

    def splits(self) -> list[str]:
        """The splits that have qrels (``train``, ``dev``, ``test``...).

        Returns:
            The split names, sorted.
        """
        return sorted(p.stem for p in (self.path / "qrels").glob("*.tsv"))

    @cached_property
    def _queries(self) -> pd.DataFrame:
        file = self.path / "queries.jsonl"
        rows = [(_field(q, ("qid", "_id"), file, n), _field(q, ("query", "text"), file, n))
                for n, q in _read_jsonl(file)]
        return pd.DataFrame(rows, columns=["qid", "query"]).astype(str)

    def qrels(self, split: str = "test") -> pd.DataFrame:
        """TREC qrels of a split as ``qid, docno, label`` (string ids, integer labels).

        Args:
            split: A split name.

        Returns:
            The qrels frame.

        Raises:
            InputError: No such split.
        """
        file = self.path / "qrels" / f"{split}.tsv"
        if not file.exists():
            raise InputError(f"{self.name} has no split {split!r}; its splits: {self.splits()}")
        return _read_qrels(file)

    def topics(self, split: str = "test") -> pd.DataFrame:
        """The judged queries of a split as ``qid, query``, in qrels order of first appearance.

        Args:
            split: A split name.

        Returns:
            The topics frame.
        """
        qids = self.qrels(split)["qid"].drop_duplicates()
        topics = self._queries.set_index("qid").reindex(qids).reset_index()
        return topics[topics["query"].notna()].reset_index(drop=True)

    def corpus_iter(self) -> Iterator[dict[str, str]]:
        """Documents as ``{"docno", "text"}`` dicts with ``text = title + " " + text``; knows its length.

        Documents with neither title nor text (Cranfield has two) are skipped: no text method can retrieve them,
        and every encoder and indexer refuses empty texts.

        Returns:
            An iterator with a length.
        """
        return _CorpusIter(self._corpus_file(), self.corpus_size, self.keep_docnos)

    def subsample(self, limit: int, split: str = "test", seed: int = 0) -> BeirDataset:
        """The same collection with its corpus cut to ``limit`` documents: every document judged in ``split`` plus a
        fixed random sample of the others (to evaluate many models on a CPU budget; say so when you report).

        Args:
            limit: Documents kept.
            split: The split whose judged documents are all kept.
            seed: Seeds the sample.

        Returns:
            The cut collection.
        """
        if self.corpus_size <= limit:
            return self
        judged = set(self.qrels(split)["docno"])
        others = sorted(d["docno"] for d in self.corpus_iter() if d["docno"] not in judged)
        sample = random.Random(seed).sample(others, max(0, min(len(others), limit - len(judged))))
        return BeirDataset(self.path, name=f"{self.name}-sub{limit}-{seed}", keep_docnos=judged | set(sample))

    get_corpus_iter = corpus_iter  # PyTerrier's dataset name for it

    def records(self) -> Iterator[dict[str, str]]:
        """Documents as stored (for components that use the title apart).

        Yields:
            ``{"docno", "title", "text"}`` dicts.
        """
        file = self._corpus_file()
        for n, doc in _read_jsonl(file):
            docno = _field(doc, ("docno", "_id"), file, n)
            if self.keep_docnos is None or docno in self.keep_docnos:
                yield {"docno": docno, "title": doc.get("title") or "", "text": doc.get("text") or ""}

    @cached_property
    def corpus_size(self) -> int:
        """The number of documents served."""
        return sum(1 for _ in _CorpusIter(self._corpus_file(), 0, self.keep_docnos))

    def info(self) -> dict:
        """Describe the collection.

        Returns:
            Name, path, document count and splits.
        """
        return {"name": self.name, "path": str(self.path), "docs": self.corpus_size, "splits": self.splits()}

    @property
    def source(self) -> str:
        """What :func:`load` takes to open this collection again (an index records it, for its corpus's texts)."""
        return str(self.path.resolve())


class _CorpusIter:
    """An iterator over a corpus file that also knows its length (for progress bars)."""

    def __init__(self, file: Path, size: int, keep: set[str] | None = None):
        self._file, self._size, self._keep = file, size, keep

    def __len__(self) -> int:
        return self._size

    def __iter__(self) -> Iterator[dict[str, str]]:
        for n, doc in _read_jsonl(self._file):
            docno = _field(doc, ("docno", "_id"), self._file, n)
            if self._keep is not None and docno not in self._keep:
                continue
            full = f"{doc.get('title') or ''} {doc.get('text') or ''}".strip()
            if full:
                yield {"docno": docno, "text": full}


class IrdsDataset:
    """An ir_datasets collection (``irds:beir/scifact``) with the same methods as :class:`BeirDataset`.

    Splits are ir_datasets sub-ids (``beir/scifact/test``); a collection without sub-ids serves its own queries as
    ``test``. Needs ir_datasets' download (or its local cache) on first use.
    """

    def __init__(self, irds_id: str):
        """Name the collection; nothing is loaded until first used.

        Args:
            irds_id: An ir_datasets id, with or without the ``irds:`` prefix.
        """
        self.id = irds_id.removeprefix("irds:").rstrip("/")
        self.name = self.id.replace("/", "_")

    def __repr__(self) -> str:
        return f"IrdsDataset({self.id!r})"

    @property
    def source(self) -> str:
        """The name :func:`load` opens this collection by."""
        return f"irds:{self.id}"

    def _load(self, split: str | None = None):
        import ir_datasets

        if split is not None and f"{self.id}/{split}" in ir_datasets.registry:
            return ir_datasets.load(f"{self.id}/{split}")
        if split not in (None, "test"):
            raise InputError(f"ir_datasets has no {self.id}/{split}")
        return ir_datasets.load(self.id)

    def topics(self, split: str = "test") -> pd.DataFrame:
        """The queries of a split as ``qid, query``.

        Args:
            split: A sub-id (``"test"`` for a collection without sub-ids).

        Returns:
            The topics frame.
        """
        rows = [(str(q.query_id), getattr(q, "text", None) or q[1]) for q in self._load(split).queries_iter()]
        return pd.DataFrame(rows, columns=["qid", "query"])

    def qrels(self, split: str = "test") -> pd.DataFrame:
        """The qrels of a split as ``qid, docno, label``.

        Args:
            split: A sub-id.

        Returns:
            The qrels frame.
        """
        rows = [(str(r.query_id), str(r.doc_id), int(r.relevance)) for r in self._load(split).qrels_iter()]
        return pd.DataFrame(rows, columns=["qid", "docno", "label"])

    def corpus_iter(self) -> Iterator[dict[str, str]]:
        """Documents as ``{"docno", "text"}`` dicts, title and text joined.

        Yields:
            One dict a document.
        """
        dataset = self._load()
        for doc in dataset.docs_iter():
            title, text = getattr(doc, "title", "") or "", getattr(doc, "text", "") or ""
            yield {"docno": str(doc.doc_id), "text": f"{title} {text}".strip()}

    get_corpus_iter = corpus_iter


def _open(file: Path):
    return gzip.open(file, "rt", encoding="utf-8") if file.suffix == ".gz" else open(file, encoding="utf-8")


def _read_jsonl(file: Path) -> Iterator[tuple[int, dict]]:
    """(line number, record) of each non-blank line; a line that is not a JSON object is an InputError naming it."""
    with _open(file) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise InputError(f"{file}, line {n}: not valid JSON ({err.msg} at column {err.colno}); fix or "
                                 "remove the line") from err
            if not isinstance(record, dict):
                raise InputError(f"{file}, line {n}: a JSON object was expected, not {type(record).__name__}")
            yield n, record


def _field(record: dict, names: tuple[str, ...], file: Path, line: int) -> str:
    """The first of ``names`` (ours, then BEIR's) that ``record`` has, as a string."""
    for name in names:
        if record.get(name) is not None:
            return str(record[name])
    raise InputError(f"{file}, line {line}: the record has none of the keys {list(names)} (it has {sorted(record)})")


def _read_qrels(file: Path) -> pd.DataFrame:
    """``qid, docno, label`` from TREC qrels (``qid iter docno label``) or BEIR's (``query-id corpus-id score``,
    header line included)."""
    with open(file, encoding="utf-8") as f:
        rows = [(n, _qrels_fields(line)) for n, line in enumerate(f, 1) if line.strip()]
    if rows and rows[0][1][:2] == ["query-id", "corpus-id"]:
        rows = rows[1:]
    parsed = []
    for n, row in rows:
        if len(row) not in (3, 4) or not row[-1].lstrip("-").isdigit():
            raise InputError(f"{file}: line {n} reads {' '.join(row)!r}; qrels lines are 'qid 0 docno label' (TREC) "
                             "or 'query-id corpus-id score' (BEIR) with an integer label")
        parsed.append((row[0], row[-2], int(row[-1])))
    return pd.DataFrame(parsed, columns=["qid", "docno", "label"]).astype({"qid": str, "docno": str, "label": int})


def _qrels_fields(line: str) -> list[str]:
    """A qrels line's fields: split at tabs when that gives 3 or 4 (BEIR's dialect, whose docnos may hold spaces),
    else at runs of spaces and tabs (TREC's); never at other whitespace, which a docno may hold (``\\x0c``, ``\\x85``,
    U+2028...)."""
    line = line.rstrip("\r\n")
    tabbed = line.split("\t")
    if len(tabbed) in (3, 4):
        return [*tabbed[:-1], tabbed[-1].strip(" ")]
    return [field for field in re.split("[ \t]+", line) if field]


def load(name_or_path: str | Path):
    """A BEIR-format folder, an embedded collection (``"scifact"``), or an ir_datasets id (``"irds:beir/scifact"``).

    ``"scifact"`` is the copy that ships inside the package; other BEIR-format folders are given by path.

    Args:
        name_or_path: ``"scifact"``, a folder, or ``"irds:<id>"``.

    Returns:
        A :class:`BeirDataset` or an :class:`IrdsDataset`.

    Raises:
        InputError: Neither an embedded name, a BEIR-format folder nor an ir_datasets id.

    Example::

        data = ptd.datasets.load("scifact")
        topics, qrels = data.topics("test"), data.qrels("test")
    """
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return BeirDataset(path)
    name = str(name_or_path)
    if (EMBEDDED / name).is_dir():
        return BeirDataset(EMBEDDED / name, name=name)
    if name.startswith("irds:"):
        return IrdsDataset(name)
    embedded = sorted(p.name for p in EMBEDDED.iterdir() if p.is_dir()) if EMBEDDED.is_dir() else []
    raise InputError(
        f"no collection {name!r}: give a BEIR-format folder, an embedded name ({', '.join(embedded) or 'none'}) "
        "or an ir_datasets id such as 'irds:beir/scifact/test'"
    )


def judged_positives(qrels: pd.DataFrame) -> dict[str, set[str]]:
    """qid -> docnos judged relevant (label > 0).

    Args:
        qrels: A ``qid, docno, label`` frame.

    Returns:
        qid -> set of docnos.
    """
    require_columns(qrels.columns, ("qid", "docno", "label"), "qrels")
    judged = qrels[qrels["label"] > 0].astype({"qid": str, "docno": str})
    return {qid: set(group["docno"]) for qid, group in judged.groupby("qid", sort=False)}


def doc_texts(corpus) -> dict[str, str]:
    """docno -> text from a dataset (``corpus_iter``), an iterable of dicts, or a mapping.

    Args:
        corpus: A dataset, an iterable of ``{"docno", "text"}`` dicts, or a mapping.

    Returns:
        docno -> text.

    Raises:
        InputError: Something that holds no documents of that shape.
    """
    if isinstance(corpus, Mapping):
        return dict(corpus)
    records = corpus.corpus_iter() if hasattr(corpus, "corpus_iter") else corpus
    if records is None:
        raise InputError("give corpus= (a dataset, a list of {'docno','text'} dicts or a docno->text dict)")
    return {str(r["docno"]): r["text"] for r in records}
