"""Deep prompt tuning (DPTDR) vs LoRA on SciFact, with and without intermediate pretraining and unified negatives.

Cells (each trained on SciFact train with the same batches, then evaluated in-domain on SciFact test and
out-of-domain on Vaswani, Cranfield and NFCorpus test, against the frozen MiniLM):

- ``dpt``: deep prompts (length 32 in each of the 6 layers, lr 7e-3), in-batch negatives;
- ``dpt+unified``: the same with unified negatives (RRF of BM25 and frozen MiniLM, mined once, shared by every cell);
- ``dpt+pretrain``: prompts first pretrained on SciFact's corpus alone (title -> body, span -> body), then fine-tuned;
- ``dpt+pretrain+unified``: both;
- ``lora`` and ``lora+unified``: LoRA (r=8) on the same data, for reference.

Every cell (and the pretrained prompts) is cached in ``--out``: an interrupted run resumes. Out-of-domain corpora are
cut to ``--ood-docs`` documents (all judged ones plus a fixed sample), the same for every model. Writes a markdown
table, JSON and a PNG chart. Usage::

    python examples/prompts_vs_lora.py --data-root ../shared/data --out out/prompts_vs_lora
"""

from __future__ import annotations

CELLS = ("dpt", "dpt+unified", "dpt+pretrain", "dpt+pretrain+unified", "lora", "lora+unified")


def main() -> None:
    from _transfer import cached, report, start, trained_cell, transfer_parser

    parser = transfer_parser(__doc__, "out/prompts_vs_lora")
    parser.add_argument("--cells", default=",".join(CELLS))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--prompt-length", type=int, default=32)
    parser.add_argument("--doc-max-length", type=int, default=128, help="document tokens kept in training")
    parser.add_argument("--pretrain-docs", type=int, default=2000, help="documents sampled for pretraining")
    args = parser.parse_args()

    from pt_dense import BiEncoder
    from pt_dense.training.pretrain import pretrain

    collections, results = start(args)
    train = {"epochs": args.epochs, "batch_size": args.batch_size, "doc_max_length": args.doc_max_length,
             "seed": args.seed}

    def fresh(adapter: str) -> BiEncoder:
        base = BiEncoder.from_pretrained("minilm")
        return base.with_prompts(length=args.prompt_length) if adapter == "dpt" else base.with_lora()

    def pretrained_prompts() -> BiEncoder:
        folder = args.out / "pretrained-prompts"

        def compute() -> dict:
            print("pretraining prompts on the SciFact corpus (title -> body, span -> body)", flush=True)
            encoder = fresh("dpt")
            history = pretrain(encoder, collections["scifact"], max_docs=args.pretrain_docs, **train | {"epochs": 1})
            encoder.save(folder / "encoder")
            return {"steps": len(history["loss"]), "final_loss": history["loss"][-1]}

        cached(folder / "pretraining.json", compute)
        return BiEncoder.from_pretrained(str(folder / "encoder"))

    for cell in [c for c in args.cells.split(",") if c]:
        if cell not in CELLS:
            raise SystemExit(f"unknown cell {cell!r}; cells: {', '.join(CELLS)}")
        parts = cell.split("+")
        make = pretrained_prompts if "pretrain" in parts else (lambda adapter=parts[0]: fresh(adapter))
        results[cell] = trained_cell(args.out / cell.replace("+", "-"), make, collections,
                                     "unified" if "unified" in parts else "in-batch", **train)
    report(results, collections, args.out, "prompts_vs_lora", "Deep prompts vs LoRA, trained on SciFact train",
           vars(args) | {"out": str(args.out), "data_root": str(args.data_root)}, args.json)


if __name__ == "__main__":
    main()
