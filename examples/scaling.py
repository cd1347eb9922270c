"""Scaling laws of dense retrieval on NFCorpus (Fang et al., SIGIR 2024), at CPU scale.

Runs the grid (MiniLM cut to its first k layers x nested subsets of NFCorpus train's judged pairs; each cell trained
with in-batch negatives and measured by the contrastive entropy L on NFCorpus test, 256 random negatives a query),
then fits L(N, D) with the largest-annotation cells held out, L(D) for the full model and L(N) at the largest
annotation count, and plans a budget with the joint law. Cells are cached in ``--out``: a killed run resumes.
Writes a markdown table, JSON and PNGs. Usage::

    python examples/scaling.py --data ../shared/data/nfcorpus --out out/scaling
"""

from __future__ import annotations

import argparse
from pathlib import Path


def main() -> None:
    from pt_dense.scaling import GridConfig, fit_law, load_cells, run_grid

    defaults = GridConfig(data="")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/nfcorpus")
    parser.add_argument("--out", default="out/scaling", type=Path)
    parser.add_argument("--layers", default=",".join(map(str, defaults.layers)))
    parser.add_argument("--annotations", default=",".join(map(str, defaults.annotations)))
    parser.add_argument("--steps", type=int, default=defaults.steps, help="training steps of every cell")
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--budget", type=float, default=20_000, help="for the plan, in units of one annotation")
    parser.add_argument("--train-cost", type=float, default=1e-7, help="cost per parameter per annotation trained")
    parser.add_argument("--inference-cost", type=float, default=1e-3, help="cost per parameter served")
    parser.add_argument("--fit-only", action="store_true", help="fit the cells already in --out; train nothing")
    parser.add_argument("--json")
    args = parser.parse_args()

    from pt_dense.errors import InputError
    from pt_dense.report import bench_payload, markdown_table, write_json

    config = GridConfig(data=args.data, layers=[int(x) for x in args.layers.split(",")],
                        annotations=[int(x) for x in args.annotations.split(",")], steps=args.steps, lr=args.lr)
    cells = load_cells(args.out) if args.fit_only else run_grid(config, args.out)
    cells = sorted(cells, key=lambda c: (c["N"], c["D"]))
    rows = [{k: c[k] for k in ("layers", "N", "D", "L", "steps", "train_seconds")} for c in cells]
    print(markdown_table(rows))

    joint = fit_law(cells, "ND", holdout="largest")
    largest_n, largest_d = max(c["N"] for c in cells), max(c["D"] for c in cells)
    plan = joint.plan(args.budget, annotation_cost=1.0, train_cost=args.train_cost, inference_cost=args.inference_cost,
                      sizes=sorted({c["N"] for c in cells}))
    laws = [("L(N, D)", "law-ND", joint)]
    for name, stem, kind, points in (("L(D), largest model", "law-D", "D", [c for c in cells if c["N"] == largest_n]),
                                     ("L(N), largest D", "law-N", "N", [c for c in cells if c["D"] == largest_d])):
        try:
            laws.append((name, stem, fit_law(points, kind, holdout=None)))
        except InputError as err:  # too few sizes or counts for a one-variable law
            print(f"{name}: not fitted ({err})")
    fits = []
    for name, stem, law in laws:
        fits.append({"law": name, **{k: round(v, 4) for k, v in law.params.items()},
                     "R^2": law.r2, "held-out max rel. error": law.max_holdout_error,
                     "constant's held-out error": law.holdout_baseline_error})
        print(f"{name}: {law.describe()}")
        law.save(args.out / f"{stem}.json")
        law.plot(args.out / f"{stem}.png", title=f"NFCorpus test, {name}: R^2 = {law.r2:.3f}")
    print(markdown_table(fits, ["law", "A", "B", "alpha", "beta", "delta", "R^2", "held-out max rel. error",
                                "constant's held-out error"]))
    print(f"plan for a budget of {args.budget:g} annotation-units: {plan}")
    (args.out / "scaling.md").write_text(markdown_table(rows) + "\n\n" + markdown_table(fits) + f"\n\nplan: {plan}\n")
    headline = {"r2": joint.r2, "holdout_max_rel_error": joint.max_holdout_error,
                "constant_holdout_max_rel_error": joint.holdout_baseline_error, "constants": joint.params,
                "ci": joint.ci, "plan": {"N": plan.N, "D": plan.D, "L": plan.L, "cost": plan.cost}}
    write_json(args.json or args.out / "scaling.json", bench_payload(rows, vars(args) | {"out": str(args.out)},
                                                                      fits=fits, **headline))


if __name__ == "__main__":
    main()
