"""The FAISS kinds pt_dense serves: a checked subset of FAISS's ``index_factory`` grammar.

FAISS checks much of its input with C++ assertions that abort the whole process (``HNSW0``, ``PQ4x0``, ``RR0``, an
OPQ rotation trained on fewer vectors than dimensions...). So every factory string is parsed here, and every number
in it checked against the vectors it will index, before FAISS sees it. The grammar (components separated by
commas; FAISS's own spelling)::

    [transform,]... body [,RFlat]
    transform := OPQ<M>[_<dout>] | PCA[W][R]<dout> | RR[<dout>] | L2norm
    body      := <code> | HNSW[<M>][(,|_)(Flat|<sq>)] | IVF<nlist>[k|M][_HNSW[<M>]],<code>
    code      := Flat | <sq> | PQ<M>[x<nbits>][np] | PQ<M>x4fs
    sq        := SQ4 | SQ6 | SQ8 | SQfp16 | SQbf16
"""

from __future__ import annotations

import numbers
import re
from dataclasses import dataclass, field

from pt_dense.errors import InputError

#: HNSW's M (neighbours per node): FAISS aborts below 2; above 256 a graph costs more memory than it buys
HNSW_M = (2, 256)
#: efSearch / efConstruction: at least 1 (FAISS returns fewer hits than asked below k), at most 2**20
EF_MAX = 1 << 20
MAX_NLIST = 1 << 24
#: FAISS's own defaults, set when a stage gives none (structures are shared between stages)
DEFAULT_NPROBE, DEFAULT_EF_SEARCH = 1, 16
#: PQ code widths served (FAISS aborts at 0 bits; each sub-quantizer has 2**nbits centroids to train)
MAX_NBITS = 16
MAX_TRANSFORMS = 4
#: training vectors OPQ's own 8-bit product quantizer needs (FAISS's k-means wants one per centroid)
OPQ_CENTROIDS = 256
SQ = r"SQ(?:4|6|8|fp16|bf16)"
CODES = {"flat": r"Flat", "sq": SQ, "pq": r"PQ(?P<M>[0-9]+)(?:x(?P<nbits>[0-9]+))?(?P<np>np)?",
         "pqfs": r"PQ(?P<M>[0-9]+)x4fs"}
TRANSFORMS = {"opq": r"OPQ(?P<M>[0-9]+)(?:_(?P<dout>[0-9]+))?", "pca": r"PCAW?R?(?P<dout>[0-9]+)",
              "rr": r"RR(?P<dout>[0-9]*)", "l2norm": r"L2[nN]orm"}
HNSW = r"HNSW(?P<M>[0-9]*)(?:_(?P<code>.*))?"
IVF = r"IVF(?P<nlist>[0-9]+)(?P<unit>[kM]?)(?P<quantizer>_HNSW(?P<M>[0-9]*))?"
SUPPORTED = ("transforms OPQ<M>[_<dout>], PCA[W][R]<dout>, RR[<dout>], L2norm; then Flat, SQ4/SQ6/SQ8/SQfp16/SQbf16, "
             "PQ<M>[x<nbits>][np], PQ<M>x4fs, HNSW<M>[,Flat|,SQ8...], or IVF<nlist>[_HNSW<M>],<Flat|SQ8|PQ<M>...>; "
             "then optionally RFlat (e.g. 'IVF1024,PQ32', 'OPQ32,IVF1024,PQ32', 'HNSW32,SQ8', 'IVF4096,Flat')")
#: components FAISS knows that pt_dense does not serve, and why (matched at the start of a component)
REFUSED = {
    "IDMap": "an ID map wraps an index to number vectors itself (add_with_ids), but pt_dense numbers them by row and "
             "maps rows to docnos: drop IDMap/IDMap2 from the string",
    "IMI": "FAISS implements it for L2 distance only; pt_dense searches by inner product",
    "Residual": "FAISS implements it for L2 distance only; pt_dense searches by inner product",
    "LSH": "FAISS implements it for L2 distance only; pt_dense searches by inner product",
    "Refine": "the only refinement served is ',RFlat' (re-scoring with the exact vectors)",
    "MinMax": "row-wise min-max wrappers are not served",
}


@dataclass(frozen=True)
class Step:
    """One parsed component: its text as written, its kind and its numbers."""

    text: str
    kind: str
    numbers: dict = field(default_factory=dict)


def check_int(name: str, value: object, low: int, high: int | None = None) -> int:
    """``value`` as an int if it is a whole number (not a bool) in ``[low, high]``, else an InputError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InputError(f"{name} must be a whole number, not {value!r} ({type(value).__name__})")
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high:,}" if high is not None else f"at least {low}"
        raise InputError(f"{name} must be {bound}, not {value}")
    return int(value)


def _refuse(factory: str, component: str, reason: str) -> InputError:
    return InputError(f"{factory!r} is not a FAISS kind pt_dense serves: {component!r} {reason}. Supported: "
                      f"{SUPPORTED}")


def _match(pattern: str, text: str) -> re.Match | None:
    return re.fullmatch(pattern, text, flags=re.ASCII)


def _code_step(factory: str, text: str, *, hnsw: bool = False) -> Step | None:
    """The code (how vectors are stored) ``text`` names, checked; None if it names none."""
    for kind, pattern in CODES.items():
        found = _match(pattern, text)
        if not found:
            continue
        if hnsw and kind in ("pq", "pqfs"):
            raise _refuse(factory, text, "after HNSW: FAISS builds HNSW over PQ codes for L2 distance only, and "
                                        "pt_dense searches by inner product (use HNSW32,SQ8 or IVF<n>,PQ<M>)")
        numbers_ = {k: int(v) for k, v in found.groupdict().items() if v and k in ("M", "nbits")}
        if kind in ("pq", "pqfs"):
            numbers_["M"] = check_int(f"{text}: its number of sub-quantizers", numbers_["M"], 1, 65536)
            numbers_["nbits"] = 4 if kind == "pqfs" else numbers_.get("nbits", 8)
            if not 1 <= numbers_["nbits"] <= MAX_NBITS:
                raise _refuse(factory, text, f"has {numbers_['nbits']}-bit codes; FAISS serves 1 to {MAX_NBITS} bits")
        return Step(text, kind, numbers_)
    return None


def _transform_step(factory: str, text: str) -> Step | None:
    for kind, pattern in TRANSFORMS.items():
        found = _match(pattern, text)
        if found:
            given = {k: int(v) for k, v in found.groupdict().items() if v}
            for key, value in given.items():
                check_int(f"{text}: its {'output dimension' if key == 'dout' else 'number of sub-quantizers'}",
                          value, 1, 65536)
            return Step(text, kind, given)
    return None


def _body_steps(factory: str, parts: list[str], i: int) -> tuple[list[Step], int]:
    """The index proper (HNSW, IVF and its code, or a code alone) from ``parts[i]``; the steps and the next index."""
    text, following = parts[i], parts[i + 1] if i + 1 < len(parts) else None
    if found := _match(HNSW, text):
        hnsw = Step(text, "hnsw", {"M": check_int(f"{text}: its M", int(found["M"] or 32), *HNSW_M)})
        inline = found["code"]
        code = _code_step(factory, inline, hnsw=True) if inline is not None else None
        if inline is not None and code is None:
            raise _refuse(factory, text, f"stores vectors as {inline!r}, which HNSW does not take (use Flat or SQ8)")
        if code is None and following is not None:
            code = _code_step(factory, following, hnsw=True)
            i += code is not None
        return [hnsw, code or Step("Flat", "flat")], i + 1
    if found := _match(IVF, text):
        nlist = int(found["nlist"]) * {"": 1, "k": 1024, "M": 1 << 20}[found["unit"]]
        ivf = Step(text, "ivf", {"nlist": check_int(f"{text}: its number of lists", nlist, 1, MAX_NLIST)})
        if found["quantizer"]:
            ivf.numbers["M"] = check_int(f"{text}: its HNSW M", int(found["M"] or 32), *HNSW_M)
        code = _code_step(factory, following) if following is not None else None
        if code is None:
            raise _refuse(factory, text, "needs a code after it: IVF<nlist>,Flat, IVF<nlist>,SQ8 or IVF<nlist>,PQ<M>")
        return [ivf, code], i + 2
    if code := _code_step(factory, text):
        return [code], i + 1
    if _transform_step(factory, text):
        raise _refuse(factory, text, "is a transform: an index must follow it (e.g. 'OPQ32,IVF1024,PQ32')")
    raise _refuse(factory, text, _unknown_reason(text))


def _unknown_reason(text: str) -> str:
    if "(" in text or ")" in text:
        return "nests an index in parentheses, which pt_dense does not serve"
    return "is not a component pt_dense knows" if text else "is an empty component (two commas, or one at an end)"


def parse_factory(factory: object) -> FactoryKind:
    """The :class:`FactoryKind` a FAISS factory string names, or an InputError naming the component at fault."""
    if not isinstance(factory, str):
        raise InputError(f"a FAISS factory string must be a string, not {factory!r} ({type(factory).__name__})")
    if not factory or len(factory) > 200 or not factory.isascii() or any(c.isspace() for c in factory):
        raise InputError(f"{factory!r} is not a FAISS factory string (non-empty ASCII without spaces, e.g. "
                         "'IVF1024,PQ32')")
    parts, steps, i = factory.split(","), [], 0
    for part in parts:  # a component FAISS knows but pt_dense refuses is named wherever it stands
        reason = next((why for name, why in REFUSED.items() if part.startswith(name)), None)
        if reason:
            raise _refuse(factory, part, f"is refused: {reason}")
    while i < len(parts) - 1 and (transform := _transform_step(factory, parts[i])):
        steps.append(transform)
        i += 1
    if len(steps) > MAX_TRANSFORMS:
        raise _refuse(factory, parts[MAX_TRANSFORMS], f"is one transform too many (at most {MAX_TRANSFORMS})")
    body, i = _body_steps(factory, parts, i)
    steps += body
    if i < len(parts) and parts[i] == "RFlat":
        steps.append(Step("RFlat", "rflat"))
        i += 1
    if i < len(parts):
        known = any(_match(p, parts[i]) for p in (*CODES.values(), *TRANSFORMS.values(), HNSW, IVF, "RFlat"))
        raise _refuse(factory, parts[i], "cannot follow what comes before it" if known else _unknown_reason(parts[i]))
    return FactoryKind(factory, tuple(steps))


@dataclass(frozen=True)
class FactoryKind:
    """A parsed factory string: its steps, what each needs of the vectors (:meth:`check_dim`, :meth:`check_training`)
    and the search parameters it takes (:meth:`search_parameters`)."""

    factory: str
    steps: tuple[Step, ...]

    @property
    def nlist(self) -> int | None:
        """The number of IVF lists (None without IVF): ``nprobe`` may be 1 to this."""
        return next((s.numbers["nlist"] for s in self.steps if s.kind == "ivf"), None)

    @property
    def ef_parameter(self) -> str | None:
        """FAISS's name for ``ef_search`` on this structure (None when it has no HNSW graph)."""
        if any(s.kind == "hnsw" for s in self.steps):
            return "efSearch"
        return "quantizer_efSearch" if any(s.kind == "ivf" and "M" in s.numbers for s in self.steps) else None

    def check_dim(self, dim: int) -> None:
        """Refuse a structure whose numbers do not fit ``dim``-d vectors (each transform's output included)."""
        current = dim
        for step in self.steps:
            out = step.numbers.get("dout", current)
            if step.kind in ("opq", "rr") and out > 4 * dim:  # bounds the memory a transform's output takes
                self._cannot(dim, f"{step.text} outputs {out} dimensions from {current}; at most 4x the vectors' "
                                  f"{dim}")
            if step.kind == "pca" and out > current:
                self._cannot(dim, f"{step.text} cannot output {out} dimensions from {current}")
            if step.kind in ("opq", "pq", "pqfs") and out % step.numbers["M"]:
                self._cannot(dim, f"{step.text} splits {out} dimensions into {step.numbers['M']} sub-vectors, which "
                                  f"needs a dimension divisible by {step.numbers['M']}; choose M among "
                                  f"{[m for m in range(1, out + 1) if out % m == 0][:16]}")
            if step.kind == "pq" and current == 2 * step.numbers["M"] and step.numbers["nbits"] < 3:
                self._cannot(dim, f"{step.text} has 2-d sub-vectors, for which FAISS's search needs codes of at least "
                                  "3 bits (8 centroids)")
            current = out if step.kind in TRANSFORMS else current

    def _cannot(self, dim: int, why: str) -> None:
        raise InputError(f"FAISS cannot build {self.factory!r} for {dim}-d vectors: {why}")

    def training_needs(self, dim: int) -> list[tuple[int, str]]:
        """(training vectors needed, by what) for each step that trains on the vectors."""
        needs, current = [], dim
        for step in self.steps:
            out = step.numbers.get("dout", current)
            if step.kind == "opq":
                needs.append((max(current, out, OPQ_CENTROIDS), f"{step.text} (a {current}x{out} rotation trained with "
                                                                f"{OPQ_CENTROIDS} centroids)"))
            elif step.kind == "pca":
                needs.append((current + 1, f"{step.text} (a covariance of {current} dimensions)"))
            elif step.kind == "ivf":
                needs.append((step.numbers["nlist"], f"{step.text} (k-means: one vector per list at least)"))
            elif step.kind in ("pq", "pqfs"):
                nbits = step.numbers["nbits"]
                needs.append((1 << nbits, f"{step.text} ({1 << nbits} centroids per sub-quantizer)"))
            current = out if step.kind in TRANSFORMS else current
        return needs

    def check_training(self, dim: int, sample: int, documents: int, train_size: int) -> None:
        """Refuse to train on ``sample`` vectors when a step needs more (FAISS would abort or fail mid-way)."""
        short = [(need, what) for need, what in self.training_needs(dim) if need > sample]
        if short:
            need = max(n for n, _ in short)
            raise InputError(
                f"{self.factory!r} needs more vectors to train than it has: {'; '.join(w for _, w in short)} needs "
                f"at least {need:,}, and the training sample holds {sample:,} (train_size={train_size:,}, "
                f"{documents:,} documents). Index more documents, or choose fewer lists or centroids")

    def search_parameters(self, nprobe: int | None, ef_search: int | None) -> str:
        """FAISS ParameterSpace settings for ``nprobe``/``ef_search``, checked (each applies to some kinds only); a
        kind that takes one gets FAISS's default when it is None, so a stage never inherits another's setting on a
        shared structure."""
        settings = []
        if nprobe is not None and self.nlist is None:
            raise InputError(f"nprobe applies to IVF kinds; {self.factory!r} has no IVF lists to probe")
        if ef_search is not None and self.ef_parameter is None:
            raise InputError(f"ef_search applies to HNSW kinds; {self.factory!r} has no HNSW graph")
        if self.nlist is not None:
            probes = DEFAULT_NPROBE if nprobe is None else check_int("nprobe", nprobe, 1, self.nlist)
            settings.append(f"nprobe={probes}")
        if self.ef_parameter is not None:
            ef = DEFAULT_EF_SEARCH if ef_search is None else check_int("ef_search", ef_search, 1, EF_MAX)
            settings.append(f"{self.ef_parameter}={ef}")
        return ",".join(settings)
