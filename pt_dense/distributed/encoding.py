"""Encoding a corpus on Ray: Ray Data reads the corpus in blocks, a pool of encoder actors encodes them, each block
lands through the shard code of :mod:`pt_dense.index.shards` (block ``i`` of ``B`` is shard ``i`` of ``B`` in
``<out>.shards/``), and one merge makes the index.

- **Equal to the one-process build**: blocks are contiguous ranges of corpus positions and the merge streams them in
  order, so the index holds the same docnos in corpus order and (at ``precision="fp32"``) the same vectors to about
  1e-7.
- **Lost workers**: Ray Data restarts a dead actor and retries its block; a block is written whole into its own
  folder (a write is published by one rename) or not at all, so a retry never doubles or drops a document.
- **A killed driver** leaves the destination as it was (only the merge writes there, atomically); the blocks
  written so far stay in ``<out>.shards/`` and a rerun encodes only the others (a block is reused when it is
  complete and of the same encoder, corpus, dtype and block plan).
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pt_dense import datasets, errors
from pt_dense.distributed.cluster import WorkerError, connect, require_ray, user_error
from pt_dense.distributed.reading import corpus_blocks
from pt_dense.encoders.precision import PRECISION_ENV
from pt_dense.encoders.torch_encoder import TorchEncoder
from pt_dense.errors import InputError, PtDenseError
from pt_dense.index.dense_index import DenseIndex
from pt_dense.index.publish import refuse_existing
from pt_dense.index.shards import SHARD, merge_shards, shard_folder, shard_range, write_shard

#: documents a block (a block is the unit of work, of retry and of resumption)
DEFAULT_BLOCK_SIZE = 2048


@dataclass(frozen=True)
class BlockPlan:
    """How a corpus is cut into blocks for ``out``: what a block written earlier must match to be reused."""

    out: Path
    blocks: int
    count: int
    corpus: str | None
    dtype: str
    fingerprint: str

    def range(self, block: int) -> tuple[int, int]:
        """The corpus positions ``[first, stop)`` of ``block``."""
        return shard_range(block, self.blocks, self.count)

    def complete(self, block: int) -> bool:
        """Whether ``block`` was written whole already, by this encoder, for this corpus, dtype and plan."""
        index = DenseIndex(shard_folder(self.out, block, self.blocks))
        first, stop = self.range(block)
        try:
            if not index.built():
                return False
            expected = {"shard": block, "shards": self.blocks, "first": first, "corpus_docs": self.count}
            return (index.meta.get("shard") == expected and index.meta.get("corpus") == self.corpus
                    and index.fingerprint == self.fingerprint and index.dtype.name == self.dtype
                    and len(index) == stop - first)
        except PtDenseError:
            return False  # damaged (e.g. a file cut short): encoded again

    def pending(self) -> list[int]:
        """The blocks still to encode; leftovers of other blocks' unusable attempts are removed.

        Raises:
            InputError: ``<out>.shards`` holds shards of another plan (another block count), e.g. of a job array.
        """
        folder = shard_folder(self.out, 0, self.blocks).parent
        others = sorted({int(m.group(2)) for p in folder.glob("*-of-*") if (m := SHARD.fullmatch(p.name))}
                        - {self.blocks})
        if others:
            raise InputError(f"{folder} holds shards of another run (of {others} shards, this run cuts the corpus "
                             f"into {self.blocks} blocks): merge them with `pt-dense merge --out {self.out}`, or "
                             "remove the folder")
        pending = [b for b in range(self.blocks) if not self.complete(b)]
        for block in pending:
            shutil.rmtree(shard_folder(self.out, block, self.blocks), ignore_errors=True)
        return pending


def encode_on_ray(data, encoder, out: str | Path, *, actors: int = 2, block_size: int = DEFAULT_BLOCK_SIZE,
                  cpus_per_actor: float = 1, gpus_per_actor: float = 0, readers: int = 1, overwrite: bool = False,
                  dtype: str = "float32", batch_size: int | None = None, address: str | None = "auto",
                  keep_blocks: bool = False, progress: bool = True) -> DenseIndex:
    """Encode ``data``'s corpus on a Ray cluster into one DenseIndex at ``out`` (what ``pt-dense index --ray`` runs).

    Args:
        data: A collection (or what :func:`pt_dense.datasets.load` opens); its corpus must be readable at the same
            path on every node that runs a Ray Data read task.
        encoder: A pt_dense encoder, or a model name or folder (loaded here and shipped to the actors).
        out: The index to create; ``<out>.shards/`` holds the blocks until the merge (a path every node sees).
        actors: Encoder actors in the pool.
        block_size: Documents a block: the unit of work, retry and resumption.
        cpus_per_actor: CPUs each actor reserves (its PyTorch threads).
        gpus_per_actor: GPUs each actor reserves (1: each encodes on its own GPU).
        readers: Ray Data read tasks, each one pass over part of the corpus (one keeps up with many CPU actors).
        overwrite: Replace an index at ``out`` (refused otherwise, before anything is encoded).
        dtype: How the vectors are stored (``"float32"`` or ``"float16"``).
        batch_size: Documents a model batch when ``encoder`` is a name.
        address: The Ray cluster (see :func:`pt_dense.distributed.connect`); unused if Ray is running already.
        keep_blocks: Keep ``<out>.shards/`` after the merge (removed by default).
        progress: Show documents encoded across the cluster, with an ETA.

    Returns:
        The merged index.

    Raises:
        RayMissingError: Ray is not installed.
        IndexExistsError: ``out`` exists and ``overwrite`` is False.
        InputError: an empty corpus, bad settings, or bad documents (raised as the workers raised them).
        WorkerError: the cluster failed in another way.
    """
    if min(actors, block_size, readers) < 1 or min(cpus_per_actor, gpus_per_actor) < 0:
        raise InputError(f"actors ({actors}), readers ({readers}) and block_size ({block_size}) must be at least 1, "
                         f"cpus_per_actor and gpus_per_actor ({cpus_per_actor}, {gpus_per_actor}) at least 0")
    require_ray()
    out = Path(out)
    refuse_existing(DenseIndex(out), overwrite)
    data = datasets.load(data) if isinstance(data, (str, Path)) else data
    if isinstance(encoder, (str, Path)):
        encoder = TorchEncoder.from_pretrained(str(encoder), **({"batch_size": batch_size} if batch_size else {}))
    corpus = data.corpus_iter()
    count = len(corpus) if hasattr(corpus, "__len__") else sum(1 for _ in data.corpus_iter())
    if count == 0:
        raise InputError("the corpus is empty: there is nothing to index")
    plan = BlockPlan(out, -(-count // block_size), count, getattr(data, "source", None), dtype, encoder.fingerprint)
    pending = plan.pending()
    if pending:
        pool = {"actors": actors, "readers": readers, "num_cpus": cpus_per_actor, "num_gpus": gpus_per_actor}
        _encode_blocks(connect(address), data, encoder, plan, pending, pool, progress)
    index = merge_shards(out, overwrite=overwrite)
    if not keep_blocks:
        shutil.rmtree(shard_folder(out, 0, plan.blocks).parent, ignore_errors=True)
    return index


def _encode_blocks(ray, data, encoder, plan: BlockPlan, pending: list[int], pool: dict, progress: bool) -> None:
    """Run the pending blocks through a Ray Data pipeline (read tasks -> an actor pool), showing documents encoded
    as their blocks land."""
    context = ray.data.DataContext.get_current()
    before = context.target_max_block_size, context.enable_progress_bars, context.print_on_execution_start
    context.enable_progress_bars = context.print_on_execution_start = False
    context.target_max_block_size = 1  # each row (a whole corpus block) its own Ray block: spread over the actors
    try:
        _run_pipeline(ray, data, encoder, plan, pending, pool, progress)
    finally:
        context.target_max_block_size, context.enable_progress_bars, context.print_on_execution_start = before


def _run_pipeline(ray, data, encoder, plan: BlockPlan, pending: list[int], pool: dict, progress: bool) -> None:
    from tqdm.auto import tqdm

    blocks = ray.data.read_datasource(corpus_blocks(data, [(b, *plan.range(b)) for b in pending]),
                                      override_num_blocks=min(pool["readers"], len(pending)), num_cpus=0)
    device = "cuda" if pool["num_gpus"] else None
    encoded = blocks.map_batches(_BlockEncoder, batch_size=1, num_cpus=pool["num_cpus"], num_gpus=pool["num_gpus"],
                                 fn_constructor_args=(encoder, plan, os.environ.get(PRECISION_ENV), device),
                                 compute=ray.data.ActorPoolStrategy(size=pool["actors"]))
    waiting = set(pending)
    done = sum(plan.range(b)[1] - plan.range(b)[0] for b in range(plan.blocks) if b not in waiting)
    bar = tqdm(total=plan.count, initial=done, desc=f"encoding on {pool['actors']} Ray actors", unit="doc",
               disable=not progress, smoothing=0.1)
    try:
        with bar:
            for row in encoded.iter_rows():
                if row["error"]:  # a user error in an actor: raised here as itself
                    raise _error_class(row["error_type"])(row["error"])
                bar.update(int(row["docs"]))
    except PtDenseError:
        raise
    except Exception as err:
        found = user_error(err)
        if found is not None:
            raise found from err
        raise WorkerError(f"encoding on Ray failed: {err}. The blocks written so far are kept in "
                          f"{shard_folder(plan.out, 0, plan.blocks).parent}: run the same command again to "
                          "encode the others") from err


def _error_class(name: str) -> type[PtDenseError]:
    found = getattr(errors, name, None)
    return found if isinstance(found, type) and issubclass(found, PtDenseError) else PtDenseError


class _BlockEncoder:
    """A Ray Data actor: encodes whole blocks, each through :func:`pt_dense.index.shards.write_shard`; a user error
    (a pt_dense error) comes back as a row, for the driver to raise, rather than as a failed task."""

    def __init__(self, encoder, plan: BlockPlan, precision: str | None, device: str | None):
        if precision:  # the driver's setting (e.g. `--precision fp32`) holds in every actor
            os.environ[PRECISION_ENV] = precision
        if device:
            encoder.device = device
        self.encoder, self.plan = encoder, plan

    def __call__(self, batch: dict) -> dict:
        rows: dict[str, list] = {"block": [], "docs": [], "seconds": [], "error": [], "error_type": []}
        for block, docnos, texts in zip(batch["block"], batch["docnos"], batch["texts"], strict=True):
            started, (first, stop) = time.perf_counter(), self.plan.range(int(block))
            records = ({"docno": str(d), "text": str(t)} for d, t in zip(docnos, texts, strict=True))
            try:
                write_shard(records, self.encoder, self.plan.out, int(block), self.plan.blocks, first=first,
                            size=stop - first, corpus_docs=self.plan.count, corpus=self.plan.corpus,
                            overwrite=True, dtype=self.plan.dtype, progress=False)
                error, kind = "", ""
            except PtDenseError as err:
                error, kind = str(err), type(err).__name__
            for name, value in zip(rows, (int(block), stop - first if not error else 0,
                                          time.perf_counter() - started, error, kind), strict=True):
                rows[name].append(value)
        return {name: np.asarray(values) for name, values in rows.items()} | {"pid": np.full(len(rows["block"]),
                                                                                               os.getpid())}
