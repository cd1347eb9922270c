"""LoRA vs full fine-tuning, with in-batch vs BM25 hard negatives (Lee et al., 2023) on our collections.

Trains MiniLM on SciFact train in each cell of {full, LoRA} x {in-batch, BM25 negatives}, then evaluates it
in-domain (SciFact test) and out-of-domain (Vaswani, Cranfield, NFCorpus test) against the frozen MiniLM. Each
cell is cached in ``--out`` (trained encoder + its scores), so an interrupted run resumes where it stopped.
Out-of-domain corpora can be subsampled (``--ood-docs``: all judged documents plus a fixed random sample) to fit a
CPU budget; the same subset serves every model. Writes a markdown table, JSON and a PNG chart. Usage::

    python examples/lora_vs_full.py --data-root ../shared/data --out out/lora_vs_full
"""

from __future__ import annotations

CELLS = [("lora", "in-batch"), ("full", "in-batch"), ("lora", "bm25"), ("full", "bm25")]


def main() -> None:
    from _transfer import report, start, trained_cell, transfer_parser

    parser = transfer_parser(__doc__, "out/lora_vs_full")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--doc-max-length", type=int, default=128,
                        help="document tokens kept in training (evaluation encodes 256, as the model was built)")
    parser.add_argument("--cells", default=",".join(f"{a}/{n}" for a, n in CELLS))
    args = parser.parse_args()

    from pt_dense import BiEncoder

    collections, results = start(args)
    for cell in [c for c in args.cells.split(",") if c]:
        adapter, negatives = cell.split("/")

        def make(adapter: str = adapter) -> BiEncoder:
            encoder = BiEncoder.from_pretrained("minilm")
            return encoder.with_lora() if adapter == "lora" else encoder

        folder = args.out / f"{adapter}-{negatives}"
        results[cell] = trained_cell(folder, make, collections, negatives, epochs=args.epochs,
                                     batch_size=args.batch_size, doc_max_length=args.doc_max_length, seed=args.seed,
                                     checkpoint_dir=str(args.out / f"{folder.name}.checkpoints"), resume=True)
    report(results, collections, args.out, "lora_vs_full", "Trained on SciFact train: in-domain (scifact) and "
           "out-of-domain", vars(args) | {"out": str(args.out), "data_root": str(args.data_root)}, args.json)


if __name__ == "__main__":
    main()
