"""Count pt_dense's public names that have a complete Google-style docstring.

Public names are those reachable from ``pt_dense.__all__``: its classes, functions and errors, the names in the
``__all__`` of each public submodule listed there (or, for a module without one, the classes and functions it defines
without a leading underscore), the public methods and properties of those classes, and the PyTerrier stages
(``pt.Transformer`` / ``pt.Indexer`` subclasses) that their methods return.

A docstring is complete when it has a summary line, an ``Args:`` entry for every parameter (a class's ``__init__``
parameters in the class docstring or in ``__init__``'s; a dataclass may list its fields under ``Attributes:``),
``Returns:`` (or ``Yields:``) when the callable returns a value, and ``Raises:`` naming every exception class it raises
itself. A property needs a summary only; a PyTerrier protocol method (``transform``...) is described by its stage's
docstring and not counted.

    python docs/docstring_coverage.py            # the totals, and each incomplete name with what it lacks
    python docs/docstring_coverage.py --quiet    # the totals only
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import importlib
import inspect
import re
import sys
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pt_dense

# Methods of PyTerrier's protocols: documented once by the stage's class docstring (its input and output columns).
PROTOCOL = {"transform", "transform_iter", "transform_inputs", "transform_outputs", "index", "fuse", "fit",
            "schematic", "subtransformers"}
PROTOCOL_OWNERS = {"Transformer", "Indexer", "Estimator", "Artifact"}
SECTION = re.compile(r"^(Args|Arguments|Parameters|Attributes|Returns|Return|Yields|Yield|Raises|Example|Examples|"
                     r"Note|Notes|Warning|See Also|Keyword Args|Other Parameters):\s*$", re.M)


def stage_classes() -> list[type]:
    """Every public PyTerrier stage class defined in pt_dense (the objects its methods hand out)."""
    import pyterrier as pt

    stages = []
    for path in sorted(Path(pt_dense.__file__).parent.rglob("*.py")):
        rel = path.relative_to(Path(pt_dense.__file__).parent.parent).with_suffix("")
        name = ".".join(rel.parts).removesuffix(".__init__")
        if any(part.startswith("_") and part != "__init__" for part in rel.parts) or name in {"pt_dense.cli"}:
            continue
        if "distributed" in rel.parts or "pt_docs" in rel.parts:
            continue
        try:
            module = importlib.import_module(name)
        except Exception:  # an optional extra (ray...) that is not installed
            continue
        for attr, obj in vars(module).items():
            if (inspect.isclass(obj) and obj.__module__ == name and not attr.startswith("_")
                    and issubclass(obj, (pt.Transformer, pt.Indexer))):
                stages.append(obj)
    return stages


def public_objects() -> dict[str, object]:
    """Qualified name -> object, for every public class and function (methods come from their classes)."""
    found: dict[str, object] = {}
    for name in pt_dense.__all__:
        obj = getattr(pt_dense, name)
        if inspect.ismodule(obj):
            names = getattr(obj, "__all__", None)
            if names is None:
                names = [k for k, v in vars(obj).items() if not k.startswith("_") and
                         (inspect.isclass(v) or inspect.isfunction(v)) and v.__module__ == obj.__name__]
            for sub in names:
                value = getattr(obj, sub)
                if inspect.isclass(value) or inspect.isfunction(value):
                    found.setdefault(f"pt_dense.{name}.{sub}", value)
        else:
            found[f"pt_dense.{name}"] = obj
    for cls in stage_classes():
        found.setdefault(f"{cls.__module__}.{cls.__qualname__}", cls)
    # one entry per object, under the shortest name
    by_id: dict[int, str] = {}
    for qual, obj in sorted(found.items(), key=lambda item: (len(item[0]), item[0])):
        by_id.setdefault(id(obj), qual)
    return {qual: found[qual] for qual in by_id.values()}


def members(cls: type) -> list[tuple[str, object]]:
    """The public methods and properties a class defines (or takes from a pt_dense base class)."""
    out, seen = [], set()
    for klass in cls.__mro__:
        if not klass.__module__.startswith("pt_dense") or issubclass(klass, BaseException):
            continue
        for attr, value in vars(klass).items():
            if attr.startswith("_") or attr in seen or attr in PROTOCOL:
                continue
            seen.add(attr)
            if isinstance(value, (staticmethod, classmethod)):
                value = value.__func__
            cached = isinstance(getattr(value, "func", None), type(lambda: 0))  # functools.cached_property
            if inspect.isfunction(value) or isinstance(value, (property, dataclasses.Field)) or cached:
                out.append((attr, value))
    return out


def sections(doc: str) -> dict[str, str]:
    """Section title -> body (the summary is under ``""``)."""
    parts = SECTION.split(doc)
    result = {"": parts[0]}
    for title, body in zip(parts[1::2], parts[2::2], strict=True):
        result[title] = result.get(title, "") + body
    return result


def documented_params(body: str) -> set[str]:
    names = set()
    for line in textwrap.dedent(body.strip("\n")).splitlines():
        if line and not line[0].isspace():
            match = re.match(r"\*{0,2}([A-Za-z_][A-Za-z0-9_]*)\s*(\(.*?\))?\s*:", line)
            if match:
                names.add(match.group(1))
            for extra in re.findall(r",\s*\*{0,2}([A-Za-z_][A-Za-z0-9_]*)", line.split(":")[0]):
                names.add(extra)  # "a, b: ..." documents both
    return names


def function_node(func) -> ast.FunctionDef | None:
    try:
        source = textwrap.dedent(inspect.getsource(func))
    except (OSError, TypeError):
        return None
    tree = ast.parse(source)
    node = tree.body[0]
    return node if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) else None


def own_nodes(node: ast.AST):
    """The nodes of a function's body, nested functions and classes left out."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        yield child
        yield from own_nodes(child)


def behaviour(func) -> tuple[bool, bool, set[str]]:
    """(returns a value, yields, names of the exception classes it raises itself)."""
    node = function_node(func)
    if node is None:
        return False, False, set()
    returns = yields = False
    raised = set()
    for child in own_nodes(node):
        if isinstance(child, ast.Return) and child.value is not None and not (
                isinstance(child.value, ast.Constant) and child.value.value is None):
            returns = True
        elif isinstance(child, (ast.Yield, ast.YieldFrom)):
            yields = True
        elif isinstance(child, ast.Raise) and child.exc is not None:
            exc = child.exc.func if isinstance(child.exc, ast.Call) else child.exc
            name = exc.attr if isinstance(exc, ast.Attribute) else getattr(exc, "id", None)
            if name and name[0].isupper() and name not in {"NotImplementedError"}:
                raised.add(name)
    annotation = inspect.signature(func).return_annotation
    never_returns = str(annotation).rsplit(".", 1)[-1] in {"NoReturn", "Never"}  # it always raises
    if annotation not in (inspect.Signature.empty, None, "None") and not yields and not never_returns:
        returns = returns or ("Iterator" not in str(annotation) and "Generator" not in str(annotation))
    return returns, yields, raised


def parameters(func, skip_first: bool) -> list[str]:
    try:
        params = list(inspect.signature(func).parameters.values())
    except (TypeError, ValueError):
        return []
    if skip_first and params and params[0].name in {"self", "cls"}:
        params = params[1:]
    return [p.name for p in params]


def check_function(func, doc: str | None, skip_first: bool, extra_doc: str = "") -> list[str]:
    """What a callable's docstring lacks (empty when complete)."""
    doc = inspect.cleandoc(doc or "")
    if not doc.strip():
        return ["docstring"]
    parts = sections(doc + ("\n" + inspect.cleandoc(extra_doc) if extra_doc else ""))
    missing = []
    if not parts[""].strip():
        missing.append("summary")
    params = parameters(func, skip_first)
    documented = documented_params(parts.get("Args", "") + parts.get("Arguments", "") + parts.get("Parameters", "")
                                   + parts.get("Attributes", "") + parts.get("Keyword Args", ""))
    absent = [p for p in params if p not in documented]
    if absent:
        missing.append("Args: " + ", ".join(absent))
    returns, yields, raised = behaviour(func)
    if returns and not ({"Returns", "Return"} & parts.keys()):
        missing.append("Returns")
    if yields and not ({"Yields", "Yield"} & parts.keys()):
        missing.append("Yields")
    if raised:
        text = parts.get("Raises", "")
        absent = sorted(name for name in raised if name not in text)
        if absent:
            missing.append("Raises: " + ", ".join(absent))
    return missing


def check_class(cls: type) -> list[str]:
    doc = cls.__dict__.get("__doc__") or ""
    if not inspect.cleandoc(doc).strip():
        return ["docstring"]
    if issubclass(cls, BaseException):
        return []
    init = cls.__dict__.get("__init__")
    if getattr(init, "__name__", "") == "_no_init_or_replace_init":  # a typing.Protocol's: not a constructor
        init = None
    if init is None and dataclasses.is_dataclass(cls):
        init = cls.__init__
    if init is None or not inspect.isfunction(init):
        return check_function(lambda: None, doc, False) if not sections(inspect.cleandoc(doc))[""].strip() else []
    missing = check_function(init, doc, True, extra_doc=init.__doc__ or "")
    return [m for m in missing if m not in {"Returns"}]


def report() -> tuple[int, list[tuple[str, list[str]]]]:
    rows: list[tuple[str, list[str]]] = []
    seen: set[int] = set()
    for qual, obj in public_objects().items():
        if inspect.isclass(obj):
            rows.append((qual, check_class(obj)))
            for attr, value in members(obj):
                key = id(value)
                if key in seen:
                    continue
                seen.add(key)
                if isinstance(value, property) or not inspect.isfunction(value):
                    doc = getattr(value, "__doc__", None) or ""
                    rows.append((f"{qual}.{attr}", [] if doc.strip() else ["docstring"]))
                else:
                    is_static = isinstance(inspect.getattr_static(obj, attr), staticmethod)
                    rows.append((f"{qual}.{attr}", check_function(value, value.__doc__, not is_static)))
        elif inspect.isfunction(obj):
            rows.append((qual, check_function(obj, obj.__doc__, False)))
    return sum(not missing for _, missing in rows), rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quiet", action="store_true", help="print the totals only")
    args = parser.parse_args()
    complete, rows = report()
    if not args.quiet:
        for qual, missing in rows:
            if missing:
                print(f"{qual}: {'; '.join(missing)}")
    print(f"{complete} of {len(rows)} public names have a complete docstring")


if __name__ == "__main__":
    main()
