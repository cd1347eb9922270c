"""The best pipeline from pt_dense stages on SciFact: BM25 fused with PEFA-XS over a trained encoder.

``linear_fusion(bm25, enc.query_encoder() >> pefa_xs.retriever(k=1000), weight=w)``: PEFA-XS folds the encoded
training queries into the trained encoder's document vectors (Tang et al., WSDM 2024), BM25 adds the lexical match,
and per-query min-max scores are mixed with BM25's share ``w``. PEFA's ``lam`` and the fusion weight are tuned on a
held-out fifth of train (nDCG@10; the other four fifths are the memory); the final memory is all of train, and
training queries whose text also occurs in test are dropped from it. The encoder is ``--encoder`` (a folder saved by
``pt-dense train``), trained here with ``--recipe`` if the folder does not exist yet. Prints the table of every stage
and the pipeline on SciFact test, writes JSON and a PNG. Usage::

    python examples/pipeline.py --data ../shared/data/scifact --encoder out/recipes/full-dense-negatives/encoder
"""

from __future__ import annotations

import argparse
from pathlib import Path

MEASURES = ("nDCG@10", "R@100")
LAMS = (0.1, 0.3, 0.5, 0.7, 0.9)
WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/scifact")
    parser.add_argument("--encoder", default="out/recipes/full-dense-negatives/encoder", type=Path)
    parser.add_argument("--recipe", default="full-dense-negatives", help="trains --encoder when it does not exist")
    parser.add_argument("--out", default="out/pipeline", type=Path)
    parser.add_argument("--json")
    args = parser.parse_args()

    import pyterrier as pt
    from ir_measures import R, nDCG

    from pt_dense import BM25, BiEncoder, datasets
    from pt_dense.fusion import linear_fusion
    from pt_dense.index import cached_index
    from pt_dense.pefa import PEFA, drop_overlap
    from pt_dense.report import bench_payload, grouped_bars, markdown_table, write_json
    from pt_dense.training.run import train_collection

    args.out.mkdir(parents=True, exist_ok=True)
    data = datasets.load(args.data)
    if not args.encoder.exists():
        print(f"{args.encoder} not found: training it with recipe {args.recipe}", flush=True)
        train_collection(data, args.encoder, recipe=args.recipe)
    encoder = BiEncoder.from_pretrained(args.encoder)
    index = cached_index(data, encoder)
    test, train, train_qrels = data.topics("test"), data.topics("train"), data.qrels("train")
    shuffled = train.sample(frac=1.0, random_state=0)
    cut = len(shuffled) // 5
    valid = shuffled.iloc[:cut].reset_index(drop=True)
    valid_qrels = train_qrels[train_qrels["qid"].isin(valid["qid"])]
    tune_memory = drop_overlap(shuffled.iloc[cut:], valid, test)
    measures = [nDCG @ 10, R @ 100]
    query = encoder.query_encoder()
    bm25 = BM25(data, num_results=1000)

    probe = PEFA(index, encoder, tune_memory, train_qrels, kind="xs")
    lam = probe.tune(valid, valid_qrels, lams=LAMS, ks=(16,), measure="nDCG@10")["best"]["lam"]
    probe = probe.with_settings(lam=lam)
    fused = [linear_fusion(bm25, query >> probe.retriever(k=1000), weight=w) for w in WEIGHTS]
    grid = pt.Experiment(fused, valid, valid_qrels, [nDCG @ 10], names=[str(w) for w in WEIGHTS])
    weight = WEIGHTS[int(grid["nDCG@10"].to_numpy().argmax())]
    print(f"tuned on {len(valid)} held-out training queries: lam={lam}, BM25 weight={weight}", flush=True)

    memory = drop_overlap(train, test)
    pefa = PEFA(index, encoder, memory, train_qrels, kind="xs", lam=lam)
    systems = {
        "BM25": bm25,
        "dense (trained encoder)": query >> index.retriever(k=1000),
        "BM25 + dense (linear fusion)": linear_fusion(bm25, query >> index.retriever(k=1000), weight=0.5),
        "PEFA-XS": query >> pefa.retriever(k=1000),
        "BM25 + PEFA-XS (the pipeline)": linear_fusion(bm25, query >> pefa.retriever(k=1000), weight=weight),
    }
    table = pt.Experiment(list(systems.values()), test, data.qrels("test"), measures, names=list(systems))
    rows = [{"system": r["name"], **{m: float(r[str(x)]) for m, x in zip(MEASURES, measures, strict=True)}}
            for r in table.to_dict("records")]
    print(markdown_table(rows))
    (args.out / "pipeline.md").write_text(markdown_table(rows) + "\n")
    grouped_bars({r["system"]: [r[m] for m in MEASURES] for r in rows}, list(MEASURES), args.out / "pipeline.png",
                 ylabel="SciFact test", title=f"BM25 + PEFA-XS over {args.encoder.parent.name}")
    config = {"data": args.data, "encoder": str(args.encoder), "lam": lam, "bm25_weight": weight,
              "memory_queries": len(memory), "valid_queries": len(valid)}
    write_json(args.json or args.out / "pipeline.json",
               bench_payload(rows, config, pipeline_ndcg10=rows[-1]["nDCG@10"]))


if __name__ == "__main__":
    main()
