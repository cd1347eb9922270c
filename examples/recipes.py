"""The named training recipes, each trained on SciFact train and measured in-domain and out of domain.

Every recipe of :mod:`pt_dense.training.recipes` (or ``--recipes``) trains MiniLM on SciFact train exactly as
``pt-dense train --recipe NAME`` does, then is evaluated on SciFact test and, out of domain, on Vaswani, Cranfield and
NFCorpus test (corpora cut to ``--ood-docs``: every judged document plus a fixed random sample, the same for every
model), beside the frozen MiniLM. Cells are cached in ``--out`` (an interrupted run resumes). Prints the table
(recipe, trainable %, training minutes, each collection, the out-of-domain mean), writes JSON and a PNG. Usage::

    python examples/recipes.py --data-root ../shared/data --out out/recipes
"""

from __future__ import annotations


def main() -> None:
    from _transfer import report, start, trained_cell, transfer_parser

    from pt_dense.training.recipes import RECIPES

    parser = transfer_parser(__doc__, "out/recipes")
    parser.add_argument("--recipes", default=",".join(RECIPES), help="comma-separated recipe names")
    args = parser.parse_args()

    import torch

    from pt_dense.training.recipes import get_recipe
    from pt_dense.training.run import adapted_encoder

    collections, results = start(args)
    for name in [n for n in args.recipes.split(",") if n]:
        recipe = get_recipe(name)

        def make(recipe=recipe):
            with torch.random.fork_rng():
                torch.manual_seed(args.seed)  # as train_collection: the adapter's initial weights follow the seed
                return adapted_encoder("minilm", recipe.adapter, lora=recipe.lora)

        folder = args.out / name
        results[name] = trained_cell(folder, make, collections, None, recipe=name, seed=args.seed,
                                     checkpoint_dir=str(args.out / f"{name}.checkpoints"), resume=True)
    report(results, collections, args.out, "recipes", "Recipes trained on SciFact train: in-domain (scifact) and "
           "out-of-domain", vars(args) | {"out": str(args.out), "data_root": str(args.data_root)}, args.json)


if __name__ == "__main__":
    main()
