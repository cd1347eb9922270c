"""Power laws of L over model size N and annotations D (Fang et al., SIGIR 2024), and budget planning.

    L(N)    = (A/N)^alpha + delta
    L(D)    = (B/D)^beta + delta
    L(N, D) = [(A/N)^(alpha/beta) + B/D]^beta + delta

Fitted with ``scipy.optimize.curve_fit`` under bounds (exponents in (0, 5], 0 <= delta < min L) from several starts;
A and B are fitted as logarithms, so the search is well scaled whatever the units. Confidence intervals come from a
bootstrap over the points; R^2 is over the fitted points; points held out of the fit (by default those with the
largest D, or the largest N for an N-law) measure how well the law extrapolates.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from pt_dense.errors import InputError
from pt_dense.report import save_figure, write_json

Kind = Literal["N", "D", "ND"]
PARAMS: dict[str, tuple[str, ...]] = {"N": ("A", "alpha", "delta"), "D": ("B", "beta", "delta"),
                                      "ND": ("A", "B", "alpha", "beta", "delta")}
MAX_EXPONENT = 5.0


def _curve(kind: Kind):
    """The law as a function of (x, *theta) with log-scale A and B, for curve_fit."""
    if kind in ("N", "D"):
        return lambda x, log_a, alpha, delta: np.exp(alpha * (log_a - np.log(x))) + delta

    def joint(x, log_a, log_b, alpha, beta, delta):
        n, d = x
        return (np.exp((alpha / beta) * (log_a - np.log(n))) + np.exp(log_b - np.log(d))) ** beta + delta

    return joint


def _to_params(kind: Kind, theta: Sequence[float]) -> dict[str, float]:
    values = list(theta)
    if kind == "ND":
        values[0], values[1] = float(np.exp(values[0])), float(np.exp(values[1]))
    else:
        values[0] = float(np.exp(values[0]))
    return dict(zip(PARAMS[kind], map(float, values), strict=True))


def _to_theta(kind: Kind, params: dict[str, float]) -> list[float]:
    values = [params[name] for name in PARAMS[kind]]
    logs = 2 if kind == "ND" else 1
    return [float(np.log(v)) if i < logs else float(v) for i, v in enumerate(values)]


def _starts(kind: Kind, x: np.ndarray, y: np.ndarray) -> list[list[float]]:
    """Initial guesses: a grid of exponents and floors, the scale set so the curve passes near the worst point."""
    starts = []
    for exponent in (0.1, 0.3, 0.6, 1.0, 2.0):
        for floor in (0.0, 0.5 * y.min(), 0.9 * y.min()):
            excess = max(y.max() - floor, 1e-6)
            if kind == "ND":
                log_a = float(np.log(x[0].min()) + np.log(excess) / exponent)
                log_b = float(np.log(x[1].min()) + np.log(excess) / exponent)
                starts.append([log_a, log_b, exponent, exponent, floor])
            else:
                starts.append([float(np.log(x.min()) + np.log(excess) / exponent), exponent, floor])
    return starts


def _fit_theta(kind: Kind, x: np.ndarray, y: np.ndarray, starts: list[list[float]]) -> tuple[list[float], float]:
    from scipy.optimize import curve_fit

    curve = _curve(kind)
    logs = 2 if kind == "ND" else 1
    ceiling = max(float(y.min()) - 1e-9, 1e-9)
    lower = [-200.0] * logs + [1e-4] * (len(PARAMS[kind]) - logs - 1) + [0.0]
    upper = [200.0] * logs + [MAX_EXPONENT] * (len(PARAMS[kind]) - logs - 1) + [ceiling]
    best, best_sse = None, np.inf
    for start in starts:
        start = np.clip(start, np.add(lower, 1e-9), np.subtract(upper, 1e-9))
        try:
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                theta, _ = curve_fit(curve, x, y, p0=start, bounds=(lower, upper), maxfev=20000)
        except (RuntimeError, ValueError):
            continue
        sse = float(np.sum((curve(x, *theta) - y) ** 2))
        if np.isfinite(sse) and sse < best_sse:
            best, best_sse = list(map(float, theta)), sse
    if best is None:
        raise InputError("the power law could not be fitted to these points (every start failed)")
    return best, best_sse


@dataclass
class BudgetPlan:
    """The (N, D) that minimises predicted L within a budget, and what it costs (:meth:`ScalingLaw.plan`).

    Args:
        N: Non-embedding parameters of the model to train.
        D: Annotations to buy.
        L: The law's prediction at (N, D).
        cost: What each part costs: ``annotation``, ``training`` and ``inference``.
        budget: The budget planned for.
    """

    N: float
    D: float
    L: float
    cost: dict[str, float]
    budget: float

    def __str__(self) -> str:
        parts = ", ".join(f"{k} {v:,.4g}" for k, v in self.cost.items())
        return (f"N = {self.N:,.0f} non-embedding parameters, D = {self.D:,.0f} annotations: predicted L = "
                f"{self.L:.4f} (cost {sum(self.cost.values()):,.4g} of {self.budget:,.4g}: {parts})")


@dataclass
class ScalingLaw:
    """A fitted law with its uncertainty and its fit quality (made by :func:`fit_law`).

    The laws, in model size N (non-embedding parameters) and annotations D::

        L(N)    = (A/N)^alpha + delta
        L(D)    = (B/D)^beta + delta
        L(N, D) = [(A/N)^(alpha/beta) + B/D]^beta + delta

    Args:
        kind: ``"N"``, ``"D"`` or ``"ND"``: the variables the law is in.
        params: The constants: ``A``, ``alpha`` and ``delta`` (N), ``B``, ``beta`` and ``delta`` (D), or all five.
        ci: A 95% bootstrap interval per constant (NaN when no bootstrap fit succeeded).
        r2: R^2 over the fitted points (NaN when they all have the same L or there is only one).
        points: The points as given, each with ``held_out`` added.
        holdout_errors: The relative prediction error on each held-out point.
        holdout_baseline_error: The largest such error of a constant (the mean fitted L): what the law must beat.
    """

    kind: Kind
    params: dict[str, float]
    ci: dict[str, tuple[float, float]]
    r2: float
    points: list[dict] = field(default_factory=list)  # {"N", "D", "L", "held_out"}
    holdout_errors: list[float] = field(default_factory=list)  # relative errors on the held-out points
    holdout_baseline_error: float | None = None  # the same for a constant (the mean fitted L): what the law must beat

    # ------------------------------------------------------------------ use
    def predict(self, N: float | np.ndarray | None = None, D: float | np.ndarray | None = None) -> np.ndarray:
        """Predicted L at model size ``N`` and/or ``D`` annotations (the variables the law is in).

        Args:
            N: Non-embedding parameters (a number or an array); needed by N- and ND-laws.
            D: Annotations (a number or an array); needed by D- and ND-laws.

        Returns:
            L for each (broadcast) value.

        Raises:
            InputError: A variable the law needs is missing, or a value is not positive.
        """
        given = {"N": N, "D": D}
        needed = ("N", "D") if self.kind == "ND" else (self.kind,)
        if any(given[v] is None for v in needed):
            raise InputError(f"a {self.kind}-law needs {' and '.join(needed)} to predict")
        arrays = np.broadcast_arrays(*(np.asarray(given[v], float) for v in needed))
        if any(np.any(a <= 0) for a in arrays):
            raise InputError("N and D must be positive")
        x = tuple(arrays) if self.kind == "ND" else arrays[0]
        return _curve(self.kind)(x, *_to_theta(self.kind, self.params))

    @property
    def max_holdout_error(self) -> float | None:
        """The largest relative error on the held-out points (None when none was held out)."""
        return max(self.holdout_errors) if self.holdout_errors else None

    def plan(self, budget: float, *, annotation_cost: float, train_cost: float = 0.0, inference_cost: float = 0.0,
             sizes: Sequence[float] | None = None, n_range: tuple[float, float] | None = None) -> BudgetPlan:
        """The (N, D) with the lowest predicted L whose cost fits ``budget``.

        cost(N, D) = annotation_cost * D + train_cost * N * D + inference_cost * N: annotating D pairs, training an
        N-parameter model on them (compute grows with N * D), and serving it (per parameter, over its deployment).
        ``sizes`` restricts N to the model sizes one can actually pick; otherwise N ranges over ``n_range``
        (default: a tenth of the smallest to ten times the largest fitted N, to extrapolate no further than that).

        Args:
            budget: What may be spent, in the unit of the costs.
            annotation_cost: The cost of one annotation.
            train_cost: The cost of training per parameter and annotation.
            inference_cost: The cost of serving per parameter.
            sizes: The model sizes to choose from (None: a fine grid over ``n_range``).
            n_range: The (lowest, highest) N to search when ``sizes`` is None.

        Returns:
            The plan: N, D, the predicted L and the cost of each part.

        Raises:
            InputError: The law is not an ND-law, a cost or the budget is out of range, or the budget buys no
                annotation at any size.

        Example:
            ::

                law.plan(10_000, annotation_cost=2.0, sizes=[5e6, 11e6, 22e6])
        """
        if self.kind != "ND":
            raise InputError("planning trades model size against annotations: fit a joint law (kind='ND')")
        if budget <= 0 or annotation_cost <= 0 or min(train_cost, inference_cost) < 0:
            raise InputError("budget and annotation_cost must be positive; train and inference costs non-negative")
        if sizes is None:
            fitted = [p["N"] for p in self.points]
            lo, hi = n_range or (min(fitted) / 10, max(fitted) * 10)
            sizes = np.geomspace(lo, hi, 4000)
        sizes = np.asarray(sizes, float)
        affordable_d = (budget - inference_cost * sizes) / (annotation_cost + train_cost * sizes)
        ok = affordable_d >= 1
        if not ok.any():
            raise InputError(f"a budget of {budget:g} buys no annotation at any model size: raise it")
        losses = np.where(ok, self.predict(sizes, np.where(ok, affordable_d, 1.0)), np.inf)
        best = int(np.argmin(losses))
        n, d = float(sizes[best]), float(affordable_d[best])
        cost = {"annotation": annotation_cost * d, "training": train_cost * n * d, "inference": inference_cost * n}
        return BudgetPlan(N=n, D=d, L=float(losses[best]), cost=cost, budget=budget)

    # ------------------------------------------------------------------ report
    def describe(self) -> str:
        """One line for a report: the constants with their intervals, R^2 and the held-out error.

        Returns:
            The line.
        """
        constants = ", ".join(f"{k} = {v:.4g} [{self.ci[k][0]:.3g}, {self.ci[k][1]:.3g}]"
                              for k, v in self.params.items())
        held = "" if not self.holdout_errors else (
            f", held-out error {100 * self.max_holdout_error:.1f}% (max; a constant: "
            f"{100 * self.holdout_baseline_error:.1f}%)")
        return f"L({', '.join(self.kind)}): {constants}; R^2 = {self.r2:.4f}{held}"

    def plot(self, path: str | Path, title: str = "") -> Path:
        """Log-log PNG: the points (hollow where held out) and the fitted curve, one curve per model size for an
        ND-law, and the irreducible loss delta as a dotted line.

        Args:
            path: The PNG file.
            title: The plot's title (default: the law and its R^2).

        Returns:
            The file written.
        """
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 4.6))
        var = "D" if self.kind in ("D", "ND") else "N"
        groups = sorted({p["N"] for p in self.points}) if self.kind == "ND" else [None]
        colours = plt.cm.viridis(np.linspace(0, 0.9, len(groups)))
        shown = [p["L"] for p in self.points]
        for colour, n in zip(colours, groups, strict=True):
            pts = [p for p in self.points if n is None or p["N"] == n]
            xs = np.array([p[var] for p in pts], float)
            grid = np.geomspace(xs.min() / 1.5, xs.max() * 1.5, 100)
            curve = self.predict(N=n, D=grid) if self.kind == "ND" else self.predict(**{var: grid})
            label = f"N = {n / 1e6:.2f}M" if n is not None else "fit"
            ax.plot(grid, curve, color=colour, label=label)
            shown += list(curve)
            for p in pts:
                ax.scatter(p[var], p["L"], color=colour, facecolors="none" if p["held_out"] else colour, zorder=3,
                           s=36)
        low, high = 0.9 * min(shown), 1.1 * max(shown)
        if self.params["delta"] >= 0.5 * low:  # a floor far below the points would squash them into a line
            ax.axhline(self.params["delta"], color="grey", linestyle=":", label=f"delta = {self.params['delta']:.3f}")
            low = min(low, 0.9 * self.params["delta"])
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_ylim(low, high)
        ax.set_xticks(sorted({p[var] for p in self.points}))
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: _short(v)))
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        plain = matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:.3g}")
        ax.yaxis.set_major_formatter(plain)
        ax.yaxis.set_minor_formatter(plain)
        ax.set_xlabel({"N": "non-embedding parameters N", "D": "annotations D"}[var])
        ax.set_ylabel("contrastive entropy L (test)")
        held = " (hollow: held out of the fit)" if any(p["held_out"] for p in self.points) else ""
        ax.set_title(title or f"L({', '.join(self.kind)}): R^2 = {self.r2:.3f}{held}", fontsize=10)
        ax.legend(fontsize=7)
        ax.grid(which="both", alpha=0.25)
        return save_figure(fig, path)

    def to_dict(self) -> dict:
        """The law as plain data (what :meth:`save` writes).

        Returns:
            The fields, and ``max_holdout_error``.
        """
        return asdict(self) | {"max_holdout_error": self.max_holdout_error}

    def save(self, path: str | Path) -> Path:
        """Write the law as JSON (atomically); :meth:`load` reads it back.

        Args:
            path: The JSON file.

        Returns:
            ``path``.
        """
        write_json(path, self.to_dict())
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> ScalingLaw:
        """Read a law that :meth:`save` wrote.

        Args:
            path: The JSON file.

        Returns:
            The law.
        """
        data = json.loads(Path(path).read_text())
        data.pop("max_holdout_error", None)
        data["ci"] = {k: tuple(v) for k, v in data["ci"].items()}
        return cls(**data)


def _short(value: float) -> str:
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.3g}"


def fit_law(points: Sequence[dict], kind: Kind = "ND", *, holdout: str | Sequence[bool] | None = "largest",
            bootstrap: int = 200, seed: int = 0) -> ScalingLaw:
    """Fit a law to ``points`` (dicts with ``L`` and ``N`` and/or ``D``).

    Fitted with ``scipy.optimize.curve_fit`` under bounds (exponents in (0, 5], 0 <= delta < min L) from several
    starts; the intervals come from refitting to ``bootstrap`` resamples of the fitted points.

    Args:
        points: The measurements, e.g. the cells of :func:`~pt_dense.scaling.load_cells`.
        kind: ``"N"``, ``"D"`` or ``"ND"``.
        holdout: ``"largest"`` keeps the points with the largest D (largest N for an N-law) out of the fit and
            reports the relative error of their prediction; a boolean per point picks them by hand; None fits all.
        bootstrap: Resamples for the confidence intervals.
        seed: Seeds the resampling.

    Returns:
        The fitted law.

    Raises:
        InputError: An unknown ``kind``, a point that lacks a variable or L, a ``holdout`` of the wrong length,
            fewer fitted points than the law has constants plus one, a value that is not positive, or a fit that
            fails from every start.

    Example:
        ::

            law = fit_law(load_cells("grid"), "ND")
            print(law.describe())
    """
    if kind not in PARAMS:
        raise InputError(f"kind must be 'N', 'D' or 'ND', not {kind!r}")
    variables = ("N", "D") if kind == "ND" else (kind,)
    for p in points:
        if any(v not in p for v in (*variables, "L")):
            raise InputError(f"every point needs {', '.join(variables)} and L; got {sorted(p)}")
    pts = [dict(p) for p in points]
    if holdout == "largest":
        key = "N" if kind == "N" else "D"
        top = max(p[key] for p in pts)
        held = [p[key] == top for p in pts]
    elif holdout is None:
        held = [False] * len(pts)
    else:
        held = [bool(h) for h in holdout]
        if len(held) != len(pts):
            raise InputError(f"holdout has {len(held)} flags for {len(pts)} points")
    for p, h in zip(pts, held, strict=True):
        p["held_out"] = h
    train = [p for p in pts if not p["held_out"]]
    if len(train) < len(PARAMS[kind]) + 1:
        raise InputError(f"a {kind}-law has {len(PARAMS[kind])} constants: fit it to at least "
                         f"{len(PARAMS[kind]) + 1} points (got {len(train)} outside the held-out ones)")

    def arrays(subset: list[dict]) -> tuple[np.ndarray, np.ndarray]:
        x = np.array([[p[v] for p in subset] for v in variables], float)
        return (x if kind == "ND" else x[0]), np.array([p["L"] for p in subset], float)

    x, y = arrays(train)
    if np.any(x <= 0) or np.any(y <= 0):
        raise InputError("N, D and L must all be positive to fit a power law")
    theta, sse = _fit_theta(kind, x, y, _starts(kind, x, y))
    r2 = 1.0 - sse / float(np.sum((y - y.mean()) ** 2)) if len(y) > 1 and np.ptp(y) > 0 else float("nan")

    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(bootstrap):
        pick = rng.integers(0, len(train), len(train))
        if len(set(pick.tolist())) < len(PARAMS[kind]):
            continue  # too few distinct points to pin the constants down
        xb, yb = arrays([train[i] for i in pick])
        try:
            samples.append(_to_params(kind, _fit_theta(kind, xb, yb, [theta])[0]))
        except InputError:
            continue
    params = _to_params(kind, theta)
    ci = {k: ((float(np.percentile([s[k] for s in samples], 2.5)), float(np.percentile([s[k] for s in samples], 97.5)))
              if samples else (float("nan"), float("nan"))) for k in params}
    law = ScalingLaw(kind=kind, params=params, ci=ci, r2=float(r2), points=pts)
    held_pts = [p for p in pts if p["held_out"]]
    if held_pts:
        xh, yh = arrays(held_pts)
        pred = law.predict(**dict(zip(variables, xh if kind == "ND" else (xh,), strict=True)))
        law.holdout_errors = [float(e) for e in np.abs(pred - yh) / yh]
        law.holdout_baseline_error = float(np.max(np.abs(y.mean() - yh) / yh))
    return law
