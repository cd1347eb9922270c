"""The ``pt-dense`` command line: ``eval``, ``demo``, ``index``, ``add``, ``delete``, ``train``, ``pretrain``,
``refresh``, ``export``, ``scaling``. It parses arguments and calls one library function per command; the library is
imported only by the command that needs it, so ``pt-dense --help`` loads no torch."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from pt_dense.encoders.adapters import ADAPTERS, ALIASES
from pt_dense.encoders.precision import PRECISION_ENV, PRECISIONS
from pt_dense.errors import InputError, PtDenseError
from pt_dense.scaling.config import GridConfig
from pt_dense.training.losses import LOSSES
from pt_dense.training.recipes import RECIPES
from pt_dense.training.source_table import NEGATIVE_SOURCES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pt-dense", description="Parameter-efficient dense retrieval for PyTerrier")
    commands = parser.add_subparsers(dest="command", required=True)

    ev = commands.add_parser("eval", help="evaluate BM25, dense and hybrid systems on a collection")
    _add_eval_args(ev)
    ev.add_argument("--data", required=True, help="BEIR-format folder, embedded name (scifact) or irds:<id>")
    ev.add_argument("--png", help="also save a bar chart of the table here")

    demo = commands.add_parser("demo", help="every system on the embedded SciFact, with a table, JSON and a chart")
    _add_eval_args(demo, default_systems="bm25,dense,bm25>>dense,hybrid,rrf")
    demo.add_argument("--out", default="pt-dense-demo", help="folder for demo.json and demo.png")

    ix = commands.add_parser("index", help="encode a collection into a dense index folder")
    ix.add_argument("--data", required=True)
    ix.add_argument("--model", default="minilm", help="packaged short name, local HF folder or hub id")
    ix.add_argument("--out", required=True, help="index folder to create")
    ix.add_argument("--overwrite", action="store_true")
    ix.add_argument("--batch-size", type=_positive_int, default=32)
    ix.add_argument("--shard", help="encode shard i of n (i/n) into OUT.shards/, or 'auto' (the torchrun rank); "
                                    "then `pt-dense merge --out OUT`")
    _add_precision(ix)
    ix.add_argument("--dtype", default="float32", choices=["float32", "float16"],
                    help="how the vectors are stored (float16: half the disk; the shards' dtype carries to merge)")
    ix.add_argument("--ray", nargs="?", const="auto", metavar="auto|ADDRESS",
                    help="encode on a Ray cluster (pip install 'pt-dense[ray]'): 'auto' joins $RAY_ADDRESS or the "
                         "cluster running here, else starts one on this machine; or a cluster address. A rerun "
                         "resumes from the blocks in OUT.shards/")
    ix.add_argument("--actors", type=_positive_int, default=2, help="--ray: encoder actors in the pool")
    ix.add_argument("--block-size", type=_positive_int, default=2048, help="--ray: documents a block (unit of retry)")
    ix.add_argument("--gpus-per-actor", type=float, default=0, help="--ray: GPUs each actor reserves (e.g. 1)")

    merge = commands.add_parser("merge", help="merge the shards in OUT.shards/ into one dense index at OUT")
    merge.add_argument("--out", required=True)
    merge.add_argument("--overwrite", action="store_true")

    add = commands.add_parser("add", help="encode documents and add them to a dense index (a new generation)")
    add.add_argument("--index", required=True)
    add.add_argument("--docs", required=True, help="a collection (BEIR folder or name) whose documents to add")
    add.add_argument("--encoder", required=True, help="the index's encoder: a saved folder or a model name")
    add.add_argument("--replace", action="store_true", help="replace documents the index holds already")

    rm = commands.add_parser("delete", help="delete documents from a dense index (tombstones; --compact rewrites)",
                             description="Delete documents, given by --docnos and/or --docnos-file, from a dense "
                                         "index. Each docno is taken whole: none is split at commas or spaces.")
    rm.add_argument("--index", required=True)
    rm.add_argument("--docnos", nargs="+", action="extend", default=[], metavar="DOCNO",
                    help="one or more docnos, each argument one whole docno (a docno may hold commas and spaces: "
                         "quote it, e.g. --docnos 'smith, john' d7; one starting with '-': --docnos=-d1); may repeat")
    rm.add_argument("--docnos-file", metavar="FILE",
                    help="a UTF-8 file of docnos, one a line, each line taken whole (lines end at \\n or \\r\\n "
                         "only; empty lines are skipped)")
    rm.add_argument("--compact", action="store_true", help="then rewrite the index without the deleted rows")

    verify = commands.add_parser("verify", help="check every file of a dense index against the SHA-256 recorded "
                                 "when it was published")
    verify.add_argument("index", help="the index folder")

    tr = commands.add_parser("train", help="fine-tune an encoder (LoRA or full) contrastively on a collection")
    tr.add_argument("--data", required=True)
    tr.add_argument("--split", default="train")
    tr.add_argument("--valid-split", help="split for validation nDCG@10 after each epoch (e.g. dev)")
    tr.add_argument("--model", default="minilm", help="base model: packaged short name, local HF folder or hub id")
    tr.add_argument("--recipe", choices=sorted(RECIPES),
                    help="a named recipe (adapter, negatives and settings; flags given explicitly win): "
                         f"{', '.join(sorted(RECIPES))}; see pt_dense.training.recipes")
    _add_adapter_args(tr)
    tr.add_argument("--negatives",
                    help=f"a registered source: {', '.join(NEGATIVE_SOURCES)} (default in-batch; hybrid: BM25 + dense "
                         "fusion, whose scores --loss distill reads; cache:*: the collection's dense index under the "
                         "starting encoder, refreshed each epoch), or a mined negatives file")
    tr.add_argument("--n-negatives", type=_positive_int, help="hard negatives per query (default 1)")
    tr.add_argument("--loss", choices=LOSSES.choices(),
                    help="contrastive (default), distill (contrastive + KL to --negatives hybrid's scores), or "
                         "another registered loss")
    tr.add_argument("--cache-sample", type=_fraction, default=0.05,
                    help="cache:corrected: share re-encoded per refresh")
    tr.add_argument("--cache-every", type=_positive_int, help="cache:*: refresh every N steps (default: each epoch)")
    tr.add_argument("--out", required=True, help="folder for the trained encoder")
    tr.add_argument("--epochs", type=_positive_int, help="default 3")
    tr.add_argument("--batch-size", type=_positive_int, help="default 32")
    tr.add_argument("--lr", type=_positive_float,
                    help="default: the recipe's, else 2e-4 with LoRA, 7e-3 with prompts, 2e-5 for full fine-tuning")
    tr.add_argument("--interpolate", type=_kept,
                    help="keep this fraction of the update at the end (WiSE-FT: halfway to the starting weights at "
                         "0.5; LoRA and full); default 1")
    tr.add_argument("--seed", type=int, default=42)
    tr.add_argument("--doc-max-length", type=int)
    tr.add_argument("--resume", action="store_true", help="continue from the checkpoints in OUT.checkpoints (refused "
                                                          "if they were made under other settings)")
    tr.add_argument("--overwrite", action="store_true", help="replace an existing OUT")

    pre = commands.add_parser("pretrain", help="retrieval-oriented intermediate pretraining on a corpus alone "
                                               "(title -> body and span -> body pairs)")
    pre.add_argument("--data", required=True)
    pre.add_argument("--model", default="minilm")
    _add_adapter_args(pre)
    pre.add_argument("--out", required=True, help="folder for the pretrained encoder (fine-tune it with train --model)")
    pre.add_argument("--kinds", default="title,span", help="pseudo-query kinds: title, span")
    pre.add_argument("--max-docs", type=_positive_int, help="use a fixed random sample of this many documents")
    pre.add_argument("--epochs", type=_positive_int, default=1)
    pre.add_argument("--batch-size", type=_positive_int, default=32)
    pre.add_argument("--lr", type=_positive_float)
    pre.add_argument("--doc-max-length", type=int)
    pre.add_argument("--seed", type=int, default=42)

    rf = commands.add_parser("refresh", help="fit a corrector on a re-encoded sample and refresh a dense index "
                                            "for a new encoder without re-encoding the corpus")
    rf.add_argument("--index", required=True, help="a DenseIndex folder (its base vectors are corrected)")
    rf.add_argument("--encoder", required=True, help="the new encoder: a folder saved by BiEncoder.save, or a name")
    rf.add_argument("--data", help="the collection the index was built from (for the sample's texts); default: "
                                   "the one the index recorded")
    rf.add_argument("--sample", type=_fraction, default=0.05, help="share of the corpus to re-encode")
    rf.add_argument("--loss", choices=["regression", "contrastive"], default="regression")
    rf.add_argument("--features", choices=["token-mean"],
                    help="document-specific corrector input: token-mean (the new encoder's token embeddings "
                         "averaged over each document; costs a tokenisation of the corpus, no forward pass)")
    rf.add_argument("--out", help="write the refreshed index here (default: in place)")
    rf.add_argument("--overwrite", action="store_true")

    ex = commands.add_parser("export", help="ONNX export of an encoder, and optionally its index for Pyserini/Lucene")
    ex.add_argument("--encoder", default="minilm", help="a folder saved by BiEncoder.save, or a model name")
    ex.add_argument("--index", help="a DenseIndex folder built by that encoder")
    ex.add_argument("--data", help="or a collection: its cached index under that encoder (built once if missing)")
    ex.add_argument("--out", required=True, help="output folder (onnx/, and faiss/ and lucene-*/ with --index)")
    ex.add_argument("--lucene", choices=["hnsw", "flat"], help="also build a Lucene index of this kind")
    ex.add_argument("--int8", action="store_true", help="int8 ONNX model (and int8 Lucene vectors)")
    ex.add_argument("--overwrite", action="store_true")

    _add_scaling_args(commands.add_parser("scaling", help="scaling laws: run a grid, fit a law, plan a budget"))

    args = parser.parse_args(argv)
    chosen, before = getattr(args, "precision", None), os.environ.get(PRECISION_ENV)
    if chosen:  # every encoder this command loads (and the caches it reads) uses it
        os.environ[PRECISION_ENV] = chosen
    try:
        handlers = {"eval": _eval, "demo": _demo, "index": _index, "merge": _merge, "add": _add, "delete": _delete,
                    "export": _export, "train": _train, "pretrain": _pretrain, "refresh": _refresh,
                    "scaling": _scaling, "verify": _verify}
        return handlers[args.command](args)
    except PtDenseError as err:
        print(f"pt-dense: error: {err}", file=sys.stderr)
        return 2
    finally:
        if chosen and before is None:
            os.environ.pop(PRECISION_ENV, None)
        elif chosen:
            os.environ[PRECISION_ENV] = before


def _add_eval_args(parser: argparse.ArgumentParser, default_systems: str = "bm25,dense,bm25>>dense") -> None:
    parser.add_argument("--split", default="test")
    parser.add_argument("--systems", default=default_systems,
                        help="comma-separated: bm25, dense, bm25>>dense, hybrid, rrf")
    parser.add_argument("--model", default="minilm", help="packaged short name, local HF folder or hub id")
    parser.add_argument("--encoder", help="a folder saved by BiEncoder.save (overrides --model)")
    parser.add_argument("--bm25-engine", default="lucene", choices=["lucene", "pisa"])
    parser.add_argument("--hybrid-weight", type=_weight, default=0.5, help="BM25's share in the linear fusion")
    parser.add_argument("--json", help="write the results as JSON here")
    _add_precision(parser)


def _add_precision(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--precision", choices=PRECISIONS, default=None,
                        help="the encoder's inference path (default: $PT_DENSE_PRECISION, else auto: ONNX Runtime "
                             "int8 on CPUs, bf16 on GPUs; fp32 is PyTorch's exact reference)")


def _eval_settings(args) -> dict:
    return {"systems": [s.strip() for s in args.systems.split(",") if s.strip()], "split": args.split,
            "encoder": args.encoder or args.model, "bm25_engine": args.bm25_engine,
            "hybrid_weight": args.hybrid_weight, "json_path": args.json}


def _eval(args) -> int:
    from pt_dense import evaluation

    evaluation.run(args.data, **_eval_settings(args), png_path=args.png)
    return 0


def _demo(args) -> int:
    from pt_dense import evaluation

    out = Path(args.out)
    args.json = args.json or str(out / "demo.json")
    evaluation.run("scifact", **_eval_settings(args), png_path=out / "demo.png", title="SciFact test (embedded)")
    print(f"\nwrote {args.json} and {out / 'demo.png'}")
    return 0


def _index(args) -> int:
    from pt_dense.index import build_index, encode_shard, parse_shard

    if args.ray and args.shard:
        raise InputError("give --ray or --shard, not both: --ray cuts the corpus into blocks itself")
    if args.ray:
        from pt_dense.distributed import encode_on_ray

        index = encode_on_ray(args.data, args.model, args.out, actors=args.actors, block_size=args.block_size,
                              gpus_per_actor=args.gpus_per_actor, overwrite=args.overwrite, dtype=args.dtype,
                              batch_size=args.batch_size, address=args.ray)
    elif args.shard:
        index = encode_shard(args.data, _encoder(args.model, args.batch_size), args.out, *parse_shard(args.shard),
                             overwrite=args.overwrite, dtype=args.dtype)
    else:
        index = build_index(args.data, _encoder(args.model, args.batch_size), args.out, overwrite=args.overwrite,
                            dtype=args.dtype)
    print(f"{index.path}: {len(index)} vectors of dimension {index.dim} (encoder {index.fingerprint[:12]})")
    return 0


def _encoder(name: str, batch_size: int | None = None):
    """The encoder a model name or saved folder stands for (the library below the CLI takes objects)."""
    from pt_dense.encoders.torch_encoder import TorchEncoder

    return TorchEncoder.from_pretrained(str(name), **({"batch_size": batch_size} if batch_size else {}))


def _merge(args) -> int:
    from pt_dense.index import merge_shards

    index = merge_shards(args.out, overwrite=args.overwrite)
    print(f"{index.path}: {len(index)} vectors of dimension {index.dim} from {index.meta.get('corpus', '?')}")
    return 0


def _add(args) -> int:
    from pt_dense.index import add_documents

    index = add_documents(args.index, args.docs, _encoder(args.encoder), replace=args.replace)
    print(f"{index.path}: {index.live_count} documents ({index.generation.name})")
    return 0


def _delete(args) -> int:
    from pt_dense.index import delete_documents

    if not args.docnos and args.docnos_file is None:
        raise InputError("nothing to delete: give --docnos DOCNO [DOCNO ...] and/or --docnos-file FILE")
    index = delete_documents(args.index, args.docnos, args.docnos_file, compact=args.compact)
    print(f"{index.path}: {index.live_count} documents ({len(index.deleted)} deleted rows; {index.generation.name})")
    return 0


def _verify(args) -> int:
    from pt_dense.index import DenseIndex

    index = DenseIndex(args.index)
    for name, state in index.verify_files().items():
        print(f"{state:10} {name}")
    print(f"{index.path} ({index.generation.name}): every file as published")
    return 0


def _train(args) -> int:
    from pt_dense.training.run import train_collection

    given = {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "loss": args.loss,
             "doc_max_length": args.doc_max_length, "n_negatives": args.n_negatives,
             "interpolate": args.interpolate}
    settings = {"seed": args.seed, "resume": args.resume, "overwrite": args.overwrite,
                **{name: value for name, value in given.items() if value is not None}}
    if (args.negatives or "").startswith("cache:"):
        settings["negative_settings"] = {"sample": args.cache_sample, "every": args.cache_every}
    encoder, history = train_collection(args.data, args.out, model=args.model, adapter=args.adapter,
                                        prompt_length=args.prompt_length, split=args.split,
                                        valid_split=args.valid_split, negatives=args.negatives, recipe=args.recipe,
                                        **settings)
    trainable, total = encoder.trainable_parameters()
    print(f"saved {args.out} ({encoder.mode}: {trainable:,} of {total:,} parameters trained, "
          f"final loss {history['loss'][-1]:.4f})")
    return 0


def _add_adapter_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--adapter", choices=[*ADAPTERS, *ALIASES],
                        help=f"what trains ({', '.join(ADAPTERS)}; full, or none, trains every weight); default: "
                             "lora, or the adapter --model already has (a folder saved by train or pretrain)")
    parser.add_argument("--prompt-length", type=_positive_int, default=32,
                        help="prompts per layer with --adapter prompts")


def _pretrain(args) -> int:
    from pt_dense.training.run import pretrain_collection

    settings = {"epochs": args.epochs, "batch_size": args.batch_size, **({"lr": args.lr} if args.lr else {}),
                **({"doc_max_length": args.doc_max_length} if args.doc_max_length else {})}
    encoder, history = pretrain_collection(args.data, args.out, model=args.model, adapter=args.adapter,
                                           prompt_length=args.prompt_length,
                                           kinds=tuple(k.strip() for k in args.kinds.split(",")),
                                           max_docs=args.max_docs, seed=args.seed, **settings)
    print(f"saved {args.out} ({encoder.mode}; {len(history['loss'])} steps, final loss {history['loss'][-1]:.4f})")
    return 0


def _refresh(args) -> int:
    from pt_dense.corrector import refresh

    refreshed, corrector = refresh(args.index, args.encoder, args.data, args.sample, loss=args.loss, out=args.out,
                                   overwrite=args.overwrite, features=args.features)
    report = corrector.report
    print(f"{refreshed.path}: {len(refreshed)} vectors now stand for encoder {refreshed.fingerprint[:12]}; "
          f"{report.reencoded} re-encoded ({report.encode_seconds:.1f} s), corrector fitted in "
          f"{report.fit_seconds:.1f} s; held-out cosine to fresh {report.cosine_before:.4f} -> "
          f"{report.cosine_after:.4f}")
    return 0


def _export(args) -> int:
    from pt_dense.export import export_all

    written = export_all(args.encoder, args.out, index=args.index, data=args.data, lucene_kind=args.lucene,
                         int8=args.int8, overwrite=args.overwrite)
    for name, path in written.items():
        print(f"{name}: {path}")
    return 0


def _add_scaling_args(parser: argparse.ArgumentParser) -> None:
    defaults = GridConfig(data="")
    steps = parser.add_subparsers(dest="step", required=True)
    run = steps.add_parser("run", help="train and measure the grid of (model layers, annotations) cells; resumable")
    run.add_argument("--data", required=True, help="BEIR-format folder with train and test qrels")
    run.add_argument("--out", required=True, help="grid folder (cells are cached here)")
    run.add_argument("--model", default=defaults.model)
    run.add_argument("--layers", default=",".join(map(str, defaults.layers)), help="e.g. 1,2,3,4,6")
    run.add_argument("--annotations", default=",".join(map(str, defaults.annotations)), help="e.g. 500,1000,2000")
    for name in ("train_split", "test_split", "min_label", "steps", "patience", "valid_every", "dev_queries",
                 "dev_pool", "batch_size", "lr", "temperature", "query_max_length", "doc_max_length", "negatives",
                 "seed"):
        value = getattr(defaults, name)
        run.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    run.add_argument("--dev-split", help="early stopping's dev split (default: hold --dev-queries training queries "
                                         "out); --patience 0 trains every cell exactly --steps steps")

    measure = steps.add_parser("measure", help="the contrastive entropy L of an encoder on a collection's split")
    measure.add_argument("--data", required=True)
    measure.add_argument("--encoder", default="minilm", help="a saved encoder folder or a model name")
    measure.add_argument("--layers", type=int, help="keep only the encoder's first LAYERS layers (as the grid does)")
    measure.add_argument("--split", default="test")
    measure.add_argument("--min-label", type=int, default=1, help="judgements at or above this label are positives")
    measure.add_argument("--negatives", type=int, default=defaults.negatives)
    measure.add_argument("--temperature", type=float, default=defaults.temperature)
    measure.add_argument("--query-max-length", type=int, default=defaults.query_max_length)
    measure.add_argument("--doc-max-length", type=int, default=defaults.doc_max_length)
    measure.add_argument("--seed", type=int, default=defaults.seed)

    fit = steps.add_parser("fit", help="fit a power law to a grid's cells")
    fit.add_argument("--grid", required=True, help="a folder written by `pt-dense scaling run`")
    fit.add_argument("--kind", choices=["ND", "N", "D"], default="ND")
    fit.add_argument("--holdout", choices=["largest", "none"], default="largest",
                     help="keep the largest-D (N for --kind N) cells out of the fit and report their error")
    fit.add_argument("--at", type=int, help="for --kind N: the annotations D of the cells to fit; --kind D: layers")
    fit.add_argument("--out", help="law JSON (default GRID/law-KIND.json); a PNG is written beside it")

    plan = steps.add_parser("plan", help="the model size and annotation count that minimise L within a budget")
    plan.add_argument("--law", required=True, help="a law JSON written by `pt-dense scaling fit` (kind ND)")
    plan.add_argument("--budget", type=float, required=True)
    plan.add_argument("--annotation-cost", type=float, required=True, help="cost of one judged pair")
    plan.add_argument("--train-cost", type=float, default=0.0, help="cost per parameter per annotation trained on")
    plan.add_argument("--inference-cost", type=float, default=0.0, help="cost per parameter served")
    plan.add_argument("--sizes", help="comma-separated model sizes N to choose from (default: a continuous range)")


def _scaling(args) -> int:
    from pt_dense import scaling
    from pt_dense.report import print_table

    if args.step == "run":
        fields = {k: getattr(args, k) for k in scaling.GridConfig.__dataclass_fields__ if hasattr(args, k)}
        config = scaling.GridConfig(**fields | {"data": str(args.data), "layers": _ints(args.layers),
                                                "annotations": _ints(args.annotations)})
        print_table(scaling.run_grid(config, args.out), ["layers", "N", "D", "L", "steps", "train_seconds"], digits=4)
    elif args.step == "measure":
        loss = scaling.measure_encoder(args.data, args.encoder, layers=args.layers, split=args.split,
                                       min_label=args.min_label, negatives=args.negatives,
                                       temperature=args.temperature, query_max_length=args.query_max_length,
                                       doc_max_length=args.doc_max_length, seed=args.seed)
        print(f"L = {loss:.4f} ({args.encoder}{f', {args.layers} layers' if args.layers else ''}; {args.split}, "
              f"positives labelled >= {args.min_label}, {args.negatives} negatives, t = {args.temperature})")
    elif args.step == "fit":
        law, path, png = scaling.fit_grid(args.grid, args.kind, holdout=None if args.holdout == "none" else "largest",
                                          at=args.at, out=args.out)
        print(law.describe())
        print(f"wrote {path} and {png}")
    else:
        sizes = [float(s) for s in args.sizes.split(",")] if args.sizes else None
        print(scaling.ScalingLaw.load(args.law).plan(args.budget, annotation_cost=args.annotation_cost,
                                                     train_cost=args.train_cost, inference_cost=args.inference_cost,
                                                     sizes=sizes))
    return 0


def _number(kind: type, test, need: str):
    """An argparse type: ``kind`` values that pass ``test`` (NaN and infinities never do)."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or value != value or value in (float("inf"), float("-inf")) or not test(value):
            raise argparse.ArgumentTypeError(f"must be {need}, not {text!r}")
        return value

    return parse


_positive_int = _number(int, lambda v: v >= 1, "a whole number of at least 1")
_positive_float = _number(float, lambda v: v > 0, "a positive number")
_fraction = _number(float, lambda v: 0 < v <= 1, "a share of the corpus in (0, 1]")
_weight = _number(float, lambda v: 0 <= v <= 1, "a weight in [0, 1]")
_kept = _number(float, lambda v: 0 < v <= 1, "a fraction in (0, 1]")


def _ints(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError as err:
        raise InputError(f"expected comma-separated integers, got {text!r}") from err


if __name__ == "__main__":
    sys.exit(main())
