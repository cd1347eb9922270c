"""Scaling laws of dense retrieval (Fang et al., SIGIR 2024) at CPU scale: L(D) at fixed N, L(N) at fixed D, then the
joint L(N, D).

Runs the grid (MiniLM cut to its first k layers x nested subsets of the training split's judged pairs; each cell
trained with in-batch negatives to convergence, stopped early on the contrastive entropy of held-out training
queries with its best weights kept, and measured by the contrastive entropy L on the test split, 256 random
negatives a query, fp32; by default on the test queries whose positives are no training pair's, since SciFact
judges many documents relevant to both), then fits, each with the largest value held out and its error set
against a constant's and against the nearest fitted cell's:
L(D) for every model size, L(N) for every annotation count, and the joint law (once with the largest D held out,
once with the largest N), and plans a budget with it. Cells are
cached in ``--out``: a killed run resumes. Writes a markdown table, JSON and PNGs. Usage::

    python examples/scaling.py                           # SciFact, 4 sizes x 5 annotation counts (about 80 min)
    python examples/scaling.py --data ../shared/data/nfcorpus --min-label 2 --out out/scaling-nfcorpus
    python examples/scaling.py --fit-only                # refit the cells already in --out
"""

from __future__ import annotations

import argparse
from pathlib import Path

PAPER = {"alpha": 0.53, "beta": 1.05}  # Fang et al. 2024, the joint law's exponents on MS MARCO


def main() -> None:
    from pt_dense.scaling import GridConfig, fit_law, load_cells, run_grid

    defaults = GridConfig(data="")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/scifact")
    parser.add_argument("--out", default="out/scaling-scifact", type=Path)
    parser.add_argument("--layers", default=",".join(map(str, defaults.layers)))
    parser.add_argument("--annotations", default=",".join(map(str, defaults.annotations)))
    for name in ("min_label", "steps", "patience", "lr"):
        value = getattr(defaults, name)
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    parser.add_argument("--budget", type=float, default=1_000, help="for the plan, in units of one annotation")
    parser.add_argument("--train-cost", type=float, default=1e-8, help="cost per parameter per annotation trained")
    parser.add_argument("--inference-cost", type=float, default=1e-5, help="cost per parameter served")
    parser.add_argument("--measure", choices=["L_unseen", "L"], default="L_unseen",
                        help="fit L on the test queries whose positives no training pair has (default), or on all")
    parser.add_argument("--fit-only", action="store_true", help="fit the cells already in --out; train nothing")
    parser.add_argument("--json")
    args = parser.parse_args()

    from pt_dense.errors import InputError
    from pt_dense.report import bench_payload, markdown_table, write_json

    config = GridConfig(data=args.data, layers=[int(x) for x in args.layers.split(",")],
                        annotations=[int(x) for x in args.annotations.split(",")], min_label=args.min_label,
                        steps=args.steps, patience=args.patience, lr=args.lr)
    cells = load_cells(args.out) if args.fit_only else run_grid(config, args.out)
    cells = sorted(cells, key=lambda c: (c["N"], c["D"]))
    rows = [{k: c.get(k) for k in ("layers", "N", "D", "L", "L_unseen", "dev_L", "best_step", "steps")} for c in cells]
    print(markdown_table(rows))
    cells = [c | {"L": c[args.measure]} for c in cells]  # the laws are fitted to the chosen measure

    sizes, counts = sorted({c["N"] for c in cells}), sorted({c["D"] for c in cells})
    laws = []  # (name, file stem, points, kind, holdout, held-out variable)
    for n in sizes:
        layers = next(c["layers"] for c in cells if c["N"] == n)
        laws.append((f"L(D), {layers} layers", f"law-D-layers{layers}", [c for c in cells if c["N"] == n], "D",
                     "largest", "D"))
    for d in counts:  # 3 constants: with fewer than 5 sizes there is none to spare for a held-out one
        laws.append((f"L(N), D = {d}", f"law-N-D{d}", [c for c in cells if c["D"] == d], "N",
                     "largest" if len(sizes) >= 5 else None, "N"))
    laws.append(("L(N, D), largest D held out", "law-ND", cells, "ND", "largest", "D"))
    laws.append(("L(N, D), largest N held out", "law-ND-N", cells, "ND", [c["N"] == sizes[-1] for c in cells], "N"))
    fits, fitted = [], {}
    for name, stem, points, kind, holdout, held_variable in laws:
        try:
            law = fit_law(points, kind, holdout=holdout)
        except InputError as err:  # too few sizes or counts for this law
            print(f"{name}: not fitted ({err})")
            continue
        fitted[stem] = law
        fits.append({"law": name, **{k: round(v, 4) for k, v in law.params.items()}, "R^2": round(law.r2, 4),
                     "held-out max rel. error": law.max_holdout_error,
                     "constant's held-out error": law.holdout_baseline_error,
                     "nearest cell's held-out error": nearest_cell_error(law, held_variable)})
        print(f"{name}: {law.describe()}")
        law.save(args.out / f"{stem}.json")
        law.plot(args.out / f"{stem}.png", title=f"{Path(args.data).name} test ({args.measure}), {name}: "
                                                 f"R^2 = {law.r2:.3f} (hollow: held out)")
    columns = ["law", "A", "B", "alpha", "beta", "delta", "R^2", "held-out max rel. error",
               "constant's held-out error", "nearest cell's held-out error"]
    print(markdown_table(fits, columns))
    print(f"the paper's joint exponents: alpha = {PAPER['alpha']}, beta = {PAPER['beta']}")
    text = markdown_table(rows) + "\n\n" + markdown_table(fits, columns)
    headline = {}
    if joint := fitted.get("law-ND"):
        plan = joint.plan(args.budget, annotation_cost=1.0, train_cost=args.train_cost,
                          inference_cost=args.inference_cost, sizes=sorted({c["N"] for c in cells}))
        print(f"plan for a budget of {args.budget:g} annotation-units: {plan}")
        text += f"\n\nplan: {plan}\n"
        headline = {"r2": joint.r2, "holdout_max_rel_error": joint.max_holdout_error,
                    "constant_holdout_max_rel_error": joint.holdout_baseline_error, "constants": joint.params,
                    "ci": joint.ci, "paper": PAPER, "plan": {"N": plan.N, "D": plan.D, "L": plan.L, "cost": plan.cost}}
    (args.out / "scaling.md").write_text(text)
    write_json(args.json or args.out / "scaling.json", bench_payload(rows, vars(args) | {"out": str(args.out)},
                                                                      fits=fits, **headline))


def nearest_cell_error(law, key: str) -> float | None:
    """Max relative error on the held-out points of a stronger baseline than the constant: predict each one by the
    fitted point nearest to it along the held-out variable ``key`` (for a held-out D: the same N's largest fitted D;
    for a held-out N: the same D's largest fitted N), i.e. "more data (or parameters) change nothing". A law that
    extrapolates must beat this too."""
    other = "D" if key == "N" else "N"
    errors = []
    for held in (p for p in law.points if p["held_out"]):
        same = [p for p in law.points if not p["held_out"] and p.get(other) == held.get(other)]
        if same:
            nearest = max(same, key=lambda p: p[key])
            errors.append(abs(nearest["L"] - held["L"]) / held["L"])
    return max(errors) if errors else None


if __name__ == "__main__":
    main()
