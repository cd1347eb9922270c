"""Corrector networks (Monath et al., "A Fresh Take on Stale Embeddings", ICML 2024).

When the encoder changes, the document vectors cached in an index go stale. A corrector h is a small residual MLP
that maps a stale vector g'(d) to an estimate of what the current encoder g(d) would give, so the index (and
hard-negative sampling from it) follows the encoder while only a small sample of the corpus is re-encoded.

``Corrector.fit(index, encoder, corpus, sample=0.05)`` re-encodes a random sample of the index's documents with the
current encoder and learns stale -> fresh on those pairs; ``index.refresh(corrector)`` then writes h(stale) for the
whole index (the sample keeps its exact fresh vectors) and records that it now stands for the current encoder.

Two losses: ``"regression"`` (1 - cosine to the fresh vector) and ``"contrastive"`` (each corrected vector must pick
its own fresh vector among the batch's, at temperature 0.05: the retrieval task's own view of the error).

The stale vector alone cannot tell how one document's vector moved apart from its neighbours'. ``features=
"token-mean"`` also gives h the mean of the current encoder's input token embeddings over the document's tokens: a
document-specific input that costs a tokenisation and no forward pass (the texts are needed again at refresh time).
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from pt_dense import datasets
from pt_dense.encoders.torch_encoder import TorchEncoder
from pt_dense.errors import InputError
from pt_dense.index.dense_index import DenseIndex
from pt_dense.io.atomic import atomic_dir

LOSSES = ("regression", "contrastive")
WEIGHTS_FILE, CONFIG_FILE = "corrector.pt", "corrector.json"


@dataclass
class CorrectorReport:
    """What a fit cost and achieved."""

    sample: int
    reencoded: int
    encode_seconds: float
    fit_seconds: float
    cosine_before: float  # mean cosine(stale, fresh) on the held-out part of the sample
    cosine_after: float  # mean cosine(h(stale), fresh) on the held-out part of the sample
    best_epoch: int = 0  # the epoch whose weights were kept (0: the identity)
    history: list[float] = field(default_factory=list)


class TokenMeans:
    """The ``"token-mean"`` corrector feature: the mean of ``encoder``'s input token embeddings over each document's
    tokens (truncated as the encoder truncates documents)."""

    name = "token-mean"

    def __init__(self, encoder: TorchEncoder):
        self.encoder = encoder
        self.table = encoder.backbone().get_input_embeddings().weight.detach().float().cpu()
        self.dim = int(self.table.shape[1])

    @torch.inference_mode()
    def __call__(self, texts: list[str], batch_size: int = 4096) -> np.ndarray:
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(texts), batch_size):
            ids = self.encoder.tokenize(texts[start : start + batch_size], "doc")
            offsets = torch.tensor([0, *np.cumsum([len(row) for row in ids[:-1]])], dtype=torch.long)
            flat = torch.tensor([token for row in ids for token in row], dtype=torch.long)
            means = nn.functional.embedding_bag(flat, self.table, offsets, mode="mean")
            out[start : start + len(ids)] = means.numpy()
        return out


FEATURES = {TokenMeans.name: TokenMeans}  # document-specific corrector inputs by name


def feature_kind(features: str | None) -> type[TokenMeans] | None:
    """The feature class named ``features`` (None: no features); an unknown name is refused."""
    if features is not None and features not in FEATURES:
        raise InputError(f"features must be one of {sorted(FEATURES)} or None, not {features!r}")
    return FEATURES.get(features) if features else None


class Corrector(nn.Module):
    """h(x) = normalise(x + MLP(x)), or with ``features``, normalise(x + MLP([x, f(document)])); the MLP's last layer
    starts at zero, so h starts as the identity."""

    def __init__(self, dim: int, width: int = 1024, depth: int = 2, normalize: bool = True,
                 features: str | None = None, feature_dim: int = 0):
        """Build h as the identity; :meth:`fit` (or :meth:`train_on`) learns it.

        Args:
            dim: The dimension of the vectors.
            width: Hidden units of the MLP.
            depth: Layers of the MLP.
            normalize: L2-normalise h's output.
            features: A feature kind h also reads of each document, or None.
            feature_dim: The dimension of those features.

        Raises:
            InputError: ``depth`` or ``width`` below 1, or an unknown feature kind.
        """
        super().__init__()
        if depth < 1 or width < 1:
            raise InputError("a corrector needs depth >= 1 and width >= 1")
        feature_kind(features)
        layers: list[nn.Module] = []
        size = dim + feature_dim
        for _ in range(depth - 1):
            layers += [nn.Linear(size, width), nn.GELU()]
            size = width
        layers.append(nn.Linear(size, dim))
        nn.init.zeros_(layers[-1].weight)
        nn.init.zeros_(layers[-1].bias)
        self.mlp = nn.Sequential(*layers)
        self.dim, self.width, self.depth, self.normalize = dim, width, depth, normalize
        self.features, self.feature_dim = features, feature_dim
        # features enter centred on the re-encoded sample's mean, then normalised (uncentred, the direction all token
        # means share swamps what tells documents apart: measured, the corrector was worse with them than without)
        self.register_buffer("feature_center", torch.zeros(feature_dim))
        self.document_features = None  # docnos -> feature rows; set by fit or bind (features are not saved)
        self.target: dict = {}  # descriptor of the encoder whose vectors h estimates
        self.source: str | None = None  # fingerprint of the encoder that made the stale vectors
        self.fresh_rows: dict[str, np.ndarray] = {}  # the re-encoded sample: docno -> its exact fresh vector
        self.report: CorrectorReport | None = None

    def forward(self, x: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        """h of a batch (torch's module call).

        Args:
            x: Stale vectors, one a row.
            extra: The documents' feature rows, if h reads features.

        Returns:
            The corrected vectors.
        """
        if extra is not None:
            extra = nn.functional.normalize(extra - self.feature_center, dim=-1)
        y = x + self.mlp(x if extra is None else torch.cat([x, extra], dim=1))
        return nn.functional.normalize(y, dim=-1) if self.normalize else y

    @torch.inference_mode()
    def apply(self, vectors: np.ndarray, extra: np.ndarray | None = None, batch_size: int = 65536) -> np.ndarray:
        """h of a float32 matrix, in batches.

        Args:
            vectors: A (count x dim) matrix of stale vectors.
            extra: The documents' feature rows, if h reads features.
            batch_size: Rows a batch.

        Returns:
            The corrected (count x dim) float32 matrix.
        """
        self._check_extra(extra, len(vectors))
        self.eval()
        out = np.empty((len(vectors), self.dim), dtype=np.float32)
        for start in range(0, len(vectors), batch_size):
            chunk = torch.from_numpy(np.array(vectors[start : start + batch_size], dtype=np.float32))
            rows = None if extra is None else torch.from_numpy(np.asarray(extra[start : start + len(chunk)]))
            out[start : start + len(chunk)] = self(chunk, rows).numpy()
        return out

    def _check_extra(self, extra: np.ndarray | None, count: int) -> None:
        """Refuse feature rows that do not match what h reads (none, or ``count`` x ``feature_dim``)."""
        shape = None if extra is None else tuple(np.shape(extra))
        if shape != ((count, self.feature_dim) if self.feature_dim else None):
            wanted = f"give extra= of shape ({count}, {self.feature_dim})" if self.feature_dim else "do not give extra="
            raise InputError(f"this corrector reads {self.feature_dim} feature columns a document "
                             f"({self.features or 'no features'}): {wanted}, not {shape}")

    def correct(self, vectors: np.ndarray, docnos) -> np.ndarray:
        """h of the vectors of documents ``docnos``, their features computed first when h reads features.

        Args:
            vectors: The documents' stale vectors, one a row.
            docnos: The documents' docnos, in the same order.

        Returns:
            The corrected float32 matrix.

        Raises:
            InputError: h reads features and :meth:`bind` was not called.
        """
        if not self.features:
            return self.apply(vectors)
        if self.document_features is None:
            raise InputError(f"this corrector reads {self.features!r} features of the documents: call "
                             "corrector.bind(encoder, corpus) with the encoder it stands for and the collection")
        return self.apply(vectors, self.document_features(list(docnos)))

    def bind(self, encoder: TorchEncoder, corpus) -> Corrector:
        """Compute features from ``encoder`` and ``corpus``'s texts (a loaded corrector has none until bound).

        Args:
            encoder: The encoder the corrector stands for.
            corpus: The collection (a dataset, or ``docno, text`` records).

        Returns:
            This corrector.
        """
        if self.features:
            self._bind(FEATURES[self.features](encoder), datasets.doc_texts(corpus))
        return self

    def _bind(self, featurize: TokenMeans, texts: dict[str, str]) -> None:
        self.document_features = lambda docnos: featurize([texts[d] for d in docnos])

    def fresh_positions(self, lookup) -> tuple[np.ndarray, np.ndarray]:
        """The re-encoded sample's documents that an index holds.

        Args:
            lookup: The index's docno -> row mapping.

        Returns:
            ``(rows in the index, fresh vectors)``.
        """
        if not self.fresh_rows:
            return np.zeros(0, dtype=int), np.zeros((0, self.dim), np.float32)
        rows = lookup.get_indexer(list(self.fresh_rows))
        found = rows >= 0
        return rows[found], np.stack(list(self.fresh_rows.values()))[found]

    # ------------------------------------------------------------------ training
    @classmethod
    def fit(cls, index, encoder, corpus=None, sample: float | int = 0.05, *, loss: str = "regression",
            width: int = 1024, depth: int = 2, epochs: int = 50, lr: float = 1e-3, batch_size: int = 256,
            seed: int = 0, features: str | None = None, progress: bool = True) -> Corrector:
        """Re-encode ``sample`` of ``index`` (a fraction, or a count) with ``encoder`` and fit stale -> fresh.

        ``corpus`` gives the texts (a dataset with ``corpus_iter``, a list of ``{"docno", "text"}`` or a mapping);
        the index only holds vectors, so by default the collection it recorded at indexing time is opened. A tenth
        of the sample is held out to report the cosine before and after. ``features="token-mean"`` adds the
        documents' token-embedding means as input (the corrector stays bound to ``encoder`` and the texts).
        """
        if loss not in LOSSES:
            raise InputError(f"loss must be one of {LOSSES}, not {loss!r}")
        kind = feature_kind(features)
        rows = sample_rows(len(index), sample, seed)
        texts = datasets.doc_texts(corpus if corpus is not None else _recorded_corpus(index))
        docnos = index.docnos[rows]
        missing = [d for d in docnos if d not in texts]
        if missing:
            raise InputError(f"{len(missing)} documents of the index are not in the corpus (e.g. {missing[:3]}): "
                             "give the corpus the index was built from")
        started = time.perf_counter()
        fresh = encoder.encode([texts[d] for d in docnos], "doc", progress=progress)
        encode_seconds = time.perf_counter() - started
        featurize = kind(encoder) if kind else None
        with torch.random.fork_rng():  # the initial weights follow the seed too: a fit is a function of its seed
            torch.manual_seed(seed)
            corrector = cls(index.dim, width=width, depth=depth, features=features,
                            feature_dim=featurize.dim if featurize else 0)
        extra = None
        if featurize:
            corrector._bind(featurize, texts)
            extra = corrector.document_features(list(docnos))
        report = corrector.train_on(np.asarray(index.base_vectors[rows]), fresh, extra, loss=loss, epochs=epochs,
                                    lr=lr, batch_size=batch_size, seed=seed)
        report.encode_seconds = encode_seconds
        corrector.report = report
        corrector.target = encoder.descriptor()
        corrector.source = index.base_fingerprint  # what it maps from: the vectors the index was built with
        corrector.fresh_rows = dict(zip(docnos.tolist(), fresh, strict=True))
        return corrector

    def train_on(self, stale: np.ndarray, fresh: np.ndarray, extra: np.ndarray | None = None, *,
                 loss: str = "regression", epochs: int = 50, lr: float = 1e-3, batch_size: int = 256,
                 seed: int = 0) -> CorrectorReport:
        """Fit h on (stale, fresh) pairs (with the documents' ``extra`` feature rows if h reads features); returns
        the report.

        A tenth of the pairs is held out: h keeps the weights of the epoch with the best held-out cosine to the fresh
        vectors, the identity (epoch 0) included, so a corrector never leaves the vectors further from the fresh ones
        than they were (a small sample, or a drift the stale vectors cannot predict, would otherwise overfit).

        Args:
            stale: Vectors from the old encoder, one a row.
            fresh: The same documents' vectors from the new encoder.
            extra: The documents' feature rows, if h reads features.
            loss: A loss of the training loss registry (``"regression"``: cosine to the fresh vectors).
            epochs: Passes over the pairs.
            lr: The learning rate.
            batch_size: Pairs a step.
            seed: Seeds the split and the shuffling.

        Returns:
            A :class:`~pt_dense.corrector.CorrectorReport` (held-out cosines, best epoch, history).

        Raises:
            InputError: Mismatched shapes, or fewer than two pairs.
        """
        if stale.shape != fresh.shape or stale.ndim != 2 or stale.shape[1] != self.dim:
            raise InputError(f"stale {stale.shape} and fresh {fresh.shape} vectors must both be (n x {self.dim})")
        if len(stale) < 2:
            raise InputError("a corrector needs at least 2 re-encoded documents to learn from")
        self._check_extra(extra, len(stale))
        started = time.perf_counter()
        generator = torch.Generator().manual_seed(seed)
        order = torch.randperm(len(stale), generator=generator)
        held = order[: max(1, len(stale) // 10)] if len(stale) >= 20 else order[:0]
        train = order[len(held) :]
        check = held if len(held) else train
        x, y = torch.from_numpy(np.asarray(stale, np.float32)), torch.from_numpy(np.asarray(fresh, np.float32))
        e = None if extra is None else torch.from_numpy(np.asarray(extra, np.float32))
        if e is not None:
            self.feature_center.copy_(e.mean(0))

        def part(rows):  # the feature rows of ``rows``, or None
            return None if e is None else e[rows]

        torch.manual_seed(seed)
        optimizer = torch.optim.AdamW(self.parameters(), lr=lr, weight_decay=0.01)
        history = []
        before = float(nn.functional.cosine_similarity(x[check], y[check]).mean())
        best = (self._held_out_cosine(x[check], y[check], part(check)), 0, copy.deepcopy(self.state_dict()))
        for epoch in range(1, epochs + 1):
            self.train()
            perm = train[torch.randperm(len(train), generator=generator)]
            total = 0.0
            for start in range(0, len(perm), batch_size):
                batch = perm[start : start + batch_size]
                value = _loss(self(x[batch], part(batch)), y[batch], loss)
                optimizer.zero_grad()
                value.backward()
                optimizer.step()
                total += float(value.detach()) * len(batch)
            history.append(total / len(perm))
            if (cosine := self._held_out_cosine(x[check], y[check], part(check))) > best[0]:
                best = (cosine, epoch, copy.deepcopy(self.state_dict()))
        self.load_state_dict(best[2])
        return CorrectorReport(sample=len(stale), reencoded=len(stale), encode_seconds=0.0,
                               fit_seconds=time.perf_counter() - started, cosine_before=before,
                               cosine_after=best[0], best_epoch=best[1], history=history)

    @torch.inference_mode()
    def _held_out_cosine(self, stale: torch.Tensor, fresh: torch.Tensor, extra: torch.Tensor | None) -> float:
        self.eval()
        return float(nn.functional.cosine_similarity(self(stale, extra), fresh).mean())

    # ------------------------------------------------------------------ persistence
    def config(self) -> dict:
        """The settings :meth:`load` rebuilds h from.

        Returns:
            A JSON-ready dict (shape, features, the encoders it maps between, the fit's report).
        """
        report = None if self.report is None else {k: v for k, v in self.report.__dict__.items() if k != "history"}
        return {"dim": self.dim, "width": self.width, "depth": self.depth, "normalize": self.normalize,
                "features": self.features, "feature_dim": self.feature_dim, "target": self.target,
                "source": self.source, "report": report}

    def save(self, folder: str | Path) -> Path:
        """Write the weights and settings to a folder (replaced atomically).

        Args:
            folder: The folder to write.

        Returns:
            The folder.
        """
        with atomic_dir(folder, overwrite=True) as tmp:
            torch.save(self.state_dict(), tmp / WEIGHTS_FILE)
            (tmp / CONFIG_FILE).write_text(json.dumps(self.config(), indent=1))
        return Path(folder)

    @classmethod
    def load(cls, folder: str | Path) -> Corrector:
        """Read a corrector written by :meth:`save` (call :meth:`bind` before using one that reads features).

        Args:
            folder: The folder.

        Returns:
            The corrector.

        Raises:
            InputError: No corrector in ``folder``.
        """
        folder = Path(folder)
        if not (folder / CONFIG_FILE).exists():
            raise InputError(f"no corrector at {folder} (expected {CONFIG_FILE})")
        config = json.loads((folder / CONFIG_FILE).read_text())
        corrector = cls(config["dim"], width=config["width"], depth=config["depth"], normalize=config["normalize"],
                        features=config.get("features"), feature_dim=config.get("feature_dim", 0))
        state = torch.load(folder / WEIGHTS_FILE, weights_only=True)
        state.setdefault("feature_center", torch.zeros(corrector.feature_dim))  # saved before features existed
        corrector.load_state_dict(state)
        corrector.target, corrector.source = config["target"], config["source"]
        return corrector


def refresh(index: DenseIndex | str | Path, encoder: TorchEncoder | str, corpus=None, sample: float | int = 0.05, *,
            out: str | Path | None = None, overwrite: bool = False, **fit_settings) -> tuple[DenseIndex, Corrector]:
    """Refresh ``index`` for ``encoder`` without re-encoding the corpus (what ``pt-dense refresh`` runs): fit a
    corrector on a re-encoded ``sample`` and write the corrected index in place, or at ``out``.

    ``index`` and ``encoder`` may be given as a folder and a name or folder; ``corpus`` (default: the collection
    the index recorded) as a dataset, a name or a path."""
    index = index if isinstance(index, DenseIndex) else DenseIndex(index)
    encoder = encoder if isinstance(encoder, TorchEncoder) else TorchEncoder.from_pretrained(encoder)
    corpus = datasets.load(corpus) if isinstance(corpus, (str, Path)) else corpus
    corrector = Corrector.fit(index, encoder, corpus, sample, **fit_settings)
    return index.refresh(corrector, out, overwrite=overwrite), corrector


def _recorded_corpus(index):
    source = index.meta.get("corpus")
    if not source:
        raise InputError(f"{index.path} does not record the collection it was built from: pass corpus= (the "
                         "collection, or a mapping docno -> text)")
    return datasets.load(source)


def sample_rows(count: int, sample: float | int, seed: int) -> np.ndarray:
    """Sorted row numbers of a seeded random sample: ``sample`` is a fraction in (0, 1] or a count."""
    if not isinstance(sample, (int, float)) or sample != sample or sample in (float("inf"), float("-inf")):
        raise InputError(f"sample={sample!r} is not a number: give a share of the corpus in (0, 1] or a count")
    size = round(sample * count) if isinstance(sample, float) else int(sample)
    if not 2 <= size <= count:
        raise InputError(f"sample={sample!r} gives {size} of {count} documents; it must give between 2 and {count}")
    return np.sort(np.random.default_rng(seed).choice(count, size=size, replace=False))


def _loss(corrected: torch.Tensor, fresh: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "regression":
        return (1 - nn.functional.cosine_similarity(corrected, fresh)).mean()
    scores = corrected @ nn.functional.normalize(fresh, dim=-1).T / 0.05
    return nn.functional.cross_entropy(scores, torch.arange(len(scores)))
