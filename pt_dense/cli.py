"""The ``pt-dense`` command line: ``eval``, ``demo``, ``index``, ``train``, ``pretrain``, ``refresh``, ``export``,
``scaling``."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from pt_dense.errors import InputError, PtDenseError


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
    ix.add_argument("--batch-size", type=int, default=32)

    tr = commands.add_parser("train", help="fine-tune an encoder (LoRA or full) contrastively on a collection")
    tr.add_argument("--data", required=True)
    tr.add_argument("--split", default="train")
    tr.add_argument("--valid-split", help="split for validation nDCG@10 after each epoch (e.g. dev)")
    tr.add_argument("--model", default="minilm", help="base model: packaged short name, local HF folder or hub id")
    _add_adapter_args(tr)
    tr.add_argument("--negatives", default="in-batch",
                    help="in-batch, bm25, unified, a mined negatives file, or cache:stale|corrected|reencode (from "
                         "the collection's dense index under the starting encoder, refreshed each epoch)")
    tr.add_argument("--cache-sample", type=float, default=0.05, help="cache:corrected: share re-encoded per refresh")
    tr.add_argument("--cache-every", type=int, help="cache:*: refresh every N steps (default: each epoch)")
    tr.add_argument("--out", required=True, help="folder for the trained encoder")
    tr.add_argument("--epochs", type=int, default=3)
    tr.add_argument("--batch-size", type=int, default=32)
    tr.add_argument("--lr", type=float, help="default: 2e-4 with LoRA, 7e-3 with prompts, 2e-5 for full fine-tuning")
    tr.add_argument("--seed", type=int, default=42)
    tr.add_argument("--doc-max-length", type=int)
    tr.add_argument("--resume", action="store_true", help="continue from the checkpoints in OUT/checkpoints")

    pre = commands.add_parser("pretrain", help="retrieval-oriented intermediate pretraining on a corpus alone "
                                               "(title -> body and span -> body pairs)")
    pre.add_argument("--data", required=True)
    pre.add_argument("--model", default="minilm")
    _add_adapter_args(pre)
    pre.add_argument("--out", required=True, help="folder for the pretrained encoder (fine-tune it with train --model)")
    pre.add_argument("--kinds", default="title,span", help="pseudo-query kinds: title, span")
    pre.add_argument("--max-docs", type=int, help="use a fixed random sample of this many documents")
    pre.add_argument("--epochs", type=int, default=1)
    pre.add_argument("--batch-size", type=int, default=32)
    pre.add_argument("--lr", type=float)
    pre.add_argument("--doc-max-length", type=int)
    pre.add_argument("--seed", type=int, default=42)

    rf = commands.add_parser("refresh", help="fit a corrector on a re-encoded sample and refresh a dense index "
                                            "for a new encoder without re-encoding the corpus")
    rf.add_argument("--index", required=True, help="a DenseIndex folder (its base vectors are corrected)")
    rf.add_argument("--encoder", required=True, help="the new encoder: a folder saved by BiEncoder.save, or a name")
    rf.add_argument("--data", help="the collection the index was built from (for the sample's texts); default: "
                                   "the one the index recorded")
    rf.add_argument("--sample", type=float, default=0.05, help="share of the corpus to re-encode")
    rf.add_argument("--loss", choices=["regression", "contrastive"], default="regression")
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
    try:
        handlers = {"eval": _eval, "demo": _demo, "index": _index, "export": _export, "train": _train,
                    "pretrain": _pretrain, "refresh": _refresh, "scaling": _scaling}
        return handlers[args.command](args)
    except PtDenseError as err:
        print(f"pt-dense: error: {err}", file=sys.stderr)
        return 2


def _add_eval_args(parser: argparse.ArgumentParser, default_systems: str = "bm25,dense,bm25>>dense") -> None:
    parser.add_argument("--split", default="test")
    parser.add_argument("--systems", default=default_systems,
                        help="comma-separated: bm25, dense, bm25>>dense, hybrid, rrf")
    parser.add_argument("--model", default="minilm", help="packaged short name, local HF folder or hub id")
    parser.add_argument("--encoder", help="a folder saved by BiEncoder.save (overrides --model)")
    parser.add_argument("--bm25-engine", default="lucene", choices=["lucene", "pisa"])
    parser.add_argument("--hybrid-weight", type=float, default=0.5, help="BM25's share in the linear fusion")
    parser.add_argument("--json", help="write the results as JSON here")


def _run_eval(args, data_name: str) -> tuple:
    from pt_dense import datasets, evaluation
    from pt_dense.report import write_json

    started = time.perf_counter()
    data = datasets.load(data_name)
    names = [s.strip() for s in args.systems.split(",") if s.strip()]
    encoder = None
    if any(n != "bm25" for n in names):
        from pt_dense.encoders.biencoder import BiEncoder

        encoder = BiEncoder.from_pretrained(args.encoder or args.model)
    systems = evaluation.build_systems(data, encoder, names, hybrid_weight=args.hybrid_weight,
                                       bm25_engine=args.bm25_engine)
    table = evaluation.evaluate(systems, data.topics(args.split), data.qrels(args.split))
    config = {"data": str(data_name), "split": args.split, "systems": names, "model": args.encoder or args.model,
              "bm25_engine": args.bm25_engine, "hybrid_weight": args.hybrid_weight,
              "seconds": round(time.perf_counter() - started, 1)}
    print(evaluation.format_table(table))
    payload = evaluation.to_json(table, config)
    write_json(args.json, payload)
    return table, payload


def _eval(args) -> int:
    from pt_dense import evaluation

    table, _ = _run_eval(args, args.data)
    if args.png:
        evaluation.bar_chart(table, args.png, title=f"{Path(args.data).name} {args.split}")
    return 0


def _demo(args) -> int:
    from pt_dense import evaluation

    out = Path(args.out)
    args.json = args.json or str(out / "demo.json")
    table, _ = _run_eval(args, "scifact")
    png = evaluation.bar_chart(table, out / "demo.png", title="SciFact test (embedded)")
    print(f"\nwrote {args.json} and {png}")
    return 0


def _index(args) -> int:
    from pt_dense import datasets
    from pt_dense.encoders.biencoder import BiEncoder
    from pt_dense.index.dense_index import DenseIndex

    encoder = BiEncoder.from_pretrained(args.model, batch_size=args.batch_size)
    data = datasets.load(args.data)
    corpus = data.corpus_iter()
    index = DenseIndex(args.out)
    indexer = index.indexer(overwrite=args.overwrite, total=len(corpus), corpus=getattr(data, "source", None))
    (encoder.doc_encoder() >> indexer).index(corpus)
    print(f"{index.path}: {len(index)} vectors of dimension {index.dim} (encoder {encoder.fingerprint[:12]})")
    return 0


def _train(args) -> int:
    import json

    from pt_dense import datasets

    data = datasets.load(args.data)
    encoder = _adapted_encoder(args)
    out = Path(args.out)
    valid = (data.topics(args.valid_split), data.qrels(args.valid_split)) if args.valid_split else (None, None)
    settings = {"epochs": args.epochs, "batch_size": args.batch_size, "seed": args.seed, "resume": args.resume,
                "checkpoint_dir": str(out.with_name(out.name + ".checkpoints"))}
    if args.lr:
        settings["lr"] = args.lr
    if args.doc_max_length:
        settings["doc_max_length"] = args.doc_max_length
    negatives = args.negatives
    if negatives.startswith("cache:"):
        from pt_dense.evaluation import dense_index
        from pt_dense.training.cached import CachedNegatives

        negatives = CachedNegatives(dense_index(data, encoder), data, negatives.removeprefix("cache:"),
                                    sample=args.cache_sample, every=args.cache_every, progress=True)
    history = encoder.fit(data.topics(args.split), data.qrels(args.split), *valid, corpus=data,
                          negatives=negatives, **settings)
    encoder.save(out)
    record = {"settings": settings, "negatives": args.negatives, "history": history}
    if not isinstance(negatives, str):
        record["cache"] = {"reencoded": negatives.reencoded, "refreshes": negatives.refreshes}
    (out / "training.json").write_text(json.dumps(record, indent=1, default=str))
    trainable, total = encoder.trainable_parameters()
    print(f"saved {out} ({encoder.mode}: {trainable:,} of {total:,} parameters trained, "
          f"final loss {history['loss'][-1]:.4f})")
    return 0


def _add_adapter_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--adapter", choices=["lora", "prompts", "none"],
                        help="what trains: a LoRA adapter, deep prompts, or every weight (none); default: lora, or "
                             "the adapter --model already has (a folder saved by train or pretrain)")
    parser.add_argument("--prompt-length", type=int, default=32, help="prompts per layer with --adapter prompts")


def _adapted_encoder(args):
    """The --model encoder with the --adapter to train (an encoder saved with an adapter keeps training it)."""
    from pt_dense.encoders.biencoder import BiEncoder

    encoder = BiEncoder.from_pretrained(args.model)
    if encoder.mode != "full":
        if args.adapter not in (None, encoder.mode):
            raise InputError(f"{args.model} already carries a {encoder.mode} adapter; drop --adapter {args.adapter} "
                             "to go on training it")
        return encoder
    adapter = args.adapter or "lora"
    if adapter == "lora":
        return encoder.with_lora()
    return encoder.with_prompts(length=args.prompt_length) if adapter == "prompts" else encoder


def _pretrain(args) -> int:
    import json

    from pt_dense import datasets
    from pt_dense.training.pretrain import pretrain

    data = datasets.load(args.data)
    if not hasattr(data, "records"):
        raise InputError("pretrain needs a BEIR-format folder or an embedded collection (titles are read apart)")
    encoder = _adapted_encoder(args)
    settings = {"epochs": args.epochs, "batch_size": args.batch_size, **({"lr": args.lr} if args.lr else {}),
                **({"doc_max_length": args.doc_max_length} if args.doc_max_length else {})}
    history = pretrain(encoder, data, kinds=[k.strip() for k in args.kinds.split(",")], max_docs=args.max_docs,
                       seed=args.seed, **settings)
    out = encoder.save(args.out)
    (out / "pretraining.json").write_text(json.dumps({"settings": settings, "kinds": args.kinds,
                                                      "max_docs": args.max_docs, "history": history}, default=str))
    print(f"saved {out} ({encoder.mode}; {len(history['loss'])} steps, final loss {history['loss'][-1]:.4f})")
    return 0


def _refresh(args) -> int:
    from pt_dense import datasets
    from pt_dense.corrector import Corrector
    from pt_dense.encoders.biencoder import BiEncoder
    from pt_dense.index.dense_index import DenseIndex

    index = DenseIndex(args.index)
    encoder = BiEncoder.from_pretrained(args.encoder)
    corpus = datasets.load(args.data) if args.data else None
    corrector = Corrector.fit(index, encoder, corpus, args.sample, loss=args.loss)
    refreshed = index.refresh(corrector, args.out, overwrite=args.overwrite)
    report = corrector.report
    print(f"{refreshed.path}: {len(refreshed)} vectors now stand for encoder {encoder.fingerprint[:12]}; "
          f"{report.reencoded} re-encoded ({report.encode_seconds:.1f} s), corrector fitted in "
          f"{report.fit_seconds:.1f} s; held-out cosine to fresh {report.cosine_before:.4f} -> "
          f"{report.cosine_after:.4f}")
    return 0


def _export(args) -> int:
    import json

    from pt_dense import export
    from pt_dense.encoders.biencoder import BiEncoder
    from pt_dense.index.dense_index import DenseIndex

    out = Path(args.out)
    encoder = BiEncoder.from_pretrained(args.encoder)
    onnx_dir = export.onnx(encoder, out / "onnx", quantize="int8" if args.int8 else None, overwrite=args.overwrite)
    print(f"{onnx_dir}: {json.loads((onnx_dir / 'parity.json').read_text())}")
    if args.index or args.data:
        if args.index:
            index = DenseIndex(args.index)
            index.check_encoder(encoder.fingerprint, what="the exported encoder's vectors")
        else:
            from pt_dense import datasets
            from pt_dense.evaluation import dense_index

            index = dense_index(datasets.load(args.data), encoder)
        print(export.pyserini_faiss(index, out / "faiss", overwrite=args.overwrite))
        if args.lucene:
            print(export.lucene(index, out / f"lucene-{args.lucene}", kind=args.lucene, int8=args.int8,
                                overwrite=args.overwrite))
    elif args.lucene:
        raise InputError("--lucene needs --index or --data")
    return 0


def _add_scaling_args(parser: argparse.ArgumentParser) -> None:
    from pt_dense.scaling.grid import GridConfig

    defaults = GridConfig(data="")
    steps = parser.add_subparsers(dest="step", required=True)
    run = steps.add_parser("run", help="train and measure the grid of (model layers, annotations) cells; resumable")
    run.add_argument("--data", required=True, help="BEIR-format folder with train and test qrels")
    run.add_argument("--out", required=True, help="grid folder (cells are cached here)")
    run.add_argument("--model", default=defaults.model)
    run.add_argument("--layers", default=",".join(map(str, defaults.layers)), help="e.g. 1,2,3,4,6")
    run.add_argument("--annotations", default=",".join(map(str, defaults.annotations)), help="e.g. 500,1000,2000")
    for name in ("train_split", "test_split", "steps", "batch_size", "lr", "temperature", "query_max_length",
                 "doc_max_length", "negatives", "seed"):
        value = getattr(defaults, name)
        run.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)

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

    if args.step == "run":
        fields = {k: getattr(args, k) for k in scaling.GridConfig.__dataclass_fields__ if hasattr(args, k)}
        config = scaling.GridConfig(**fields | {"data": str(args.data), "layers": _ints(args.layers),
                                                "annotations": _ints(args.annotations)})
        cells = scaling.run_grid(config, args.out)
        from pt_dense.report import print_table

        print_table(cells, ["layers", "N", "D", "L", "steps", "train_seconds"], digits=4)
        return 0
    if args.step == "measure":
        from pt_dense import datasets
        from pt_dense.encoders.biencoder import BiEncoder

        data = datasets.load(args.data)
        encoder = BiEncoder.from_pretrained(args.encoder, query_max_length=args.query_max_length,
                                            doc_max_length=args.doc_max_length)
        encoder = scaling.truncated_encoder(encoder, args.layers) if args.layers else encoder
        qrels = data.qrels(args.split)
        loss = scaling.contrastive_loglik(encoder, data.topics(args.split), qrels[qrels["label"] >= args.min_label],
                                          data, negatives=args.negatives, seed=args.seed,
                                          temperature=args.temperature)
        print(f"L = {loss:.4f} ({args.encoder}{f', {args.layers} layers' if args.layers else ''}; {args.split}, "
              f"positives labelled >= {args.min_label}, {args.negatives} negatives, t = {args.temperature})")
        return 0
    if args.step == "fit":
        cells = scaling.load_cells(args.grid)
        if args.at is not None:
            key = "D" if args.kind == "N" else "layers"
            cells = [c for c in cells if c[key] == args.at]
        law = scaling.fit_law(cells, args.kind, holdout=None if args.holdout == "none" else "largest")
        out = Path(args.out or Path(args.grid) / f"law-{args.kind}.json")
        law.save(out)
        png = law.plot(out.with_suffix(".png"))
        print(law.describe())
        print(f"wrote {out} and {png}")
        return 0
    law = scaling.ScalingLaw.load(args.law)
    sizes = [float(s) for s in args.sizes.split(",")] if args.sizes else None
    print(law.plan(args.budget, annotation_cost=args.annotation_cost, train_cost=args.train_cost,
                   inference_cost=args.inference_cost, sizes=sizes))
    return 0


def _ints(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError as err:
        raise InputError(f"expected comma-separated integers, got {text!r}") from err


if __name__ == "__main__":
    sys.exit(main())
