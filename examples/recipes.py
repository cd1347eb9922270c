"""The named training recipes, each trained on SciFact train and measured in-domain and out of domain.

Every recipe of :mod:`pt_dense.training.recipes` (or ``--recipes``) trains MiniLM on SciFact train exactly as
``pt-dense train --recipe NAME`` does, then is evaluated on SciFact test and, out of domain, on Vaswani, Cranfield and
NFCorpus test (corpora cut to ``--ood-docs``: every judged document plus a fixed random sample, the same for every
model), beside the frozen MiniLM. Cells are cached in ``--out`` (an interrupted run resumes). Prints the table
(recipe, trainable %, training minutes, each collection, the out-of-domain mean), writes JSON and a PNG. Usage::

    python examples/recipes.py --data-root ../shared/data --out out/recipes
"""

from __future__ import annotations

import argparse
from pathlib import Path


def main() -> None:
    from pt_dense.training.recipes import RECIPES

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default="../shared/data", type=Path)
    parser.add_argument("--out", default="out/recipes", type=Path)
    parser.add_argument("--recipes", default=",".join(RECIPES), help="comma-separated recipe names")
    parser.add_argument("--ood-docs", type=int, default=3000, help="subsample out-of-domain corpora (0: all)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--json")
    args = parser.parse_args()

    import torch
    from _transfer import OOD, frozen_cell, report, trained_cell

    from pt_dense.evaluation import transfer_collections
    from pt_dense.training.recipes import get_recipe
    from pt_dense.training.run import adapted_encoder

    args.out.mkdir(parents=True, exist_ok=True)
    collections = transfer_collections(args.data_root, "scifact", OOD, args.ood_docs)
    results = {"frozen MiniLM": frozen_cell(args.out, collections)}
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
