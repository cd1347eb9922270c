"""Every code block of README.md and of the documentation pages (pt_dense/pt_docs/**/*.rst) runs here or says why not.

A block that cannot run in the default test run (it needs a GPU, the network, or a long run) carries a marker just
before it, with its reason:

- in markdown, an HTML comment on the line before the fence: ``<!-- not-executed: long run -->``
- in rst, a comment before the directive: ``.. not-executed: long run``

Every other block runs: the python blocks of one page in sequence in one namespace, the bash blocks in a shell with
this environment's ``bin/`` on the PATH, all in a temporary folder, with the environment conftest.py sets (every cache
in a temporary folder, ``HF_HUB_OFFLINE=1``, fp32). Blocks in any other language must be marked.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "pt_dense" / "pt_docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.rglob("*.rst"))]
MARK_MD = re.compile(r"^<!--\s*not-executed:(.*?)-->\s*$")
MARK_RST = re.compile(r"^\s*\.\.\s+not-executed:(.*)$")
DIRECTIVE = re.compile(r"^(\s*)\.\.\s+(code-block|code|sourcecode)::\s*(\S*)\s*$")
RUNS = {"python": "python", "bash": "bash", "shell": "bash", "sh": "bash"}


@dataclass
class Block:
    page: Path
    line: int
    lang: str
    code: str
    reason: str | None  # None: executed; otherwise the marker's reason ("" when the marker gives none)

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def _previous_text(lines: list[str], i: int) -> str:
    j = i - 1
    while j >= 0 and not lines[j].strip():
        j -= 1
    return lines[j] if j >= 0 else ""


def _markdown_blocks(page: Path) -> list[Block]:
    lines, blocks, i = page.read_text(encoding="utf-8").split("\n"), [], 0
    while i < len(lines):
        if lines[i].startswith("```"):
            lang, start = lines[i][3:].strip(), i
            i += 1
            while i < len(lines) and not lines[i].startswith("```"):
                i += 1
            mark = MARK_MD.match(_previous_text(lines, start))
            blocks.append(Block(page, start + 1, lang, "\n".join(lines[start + 1:i]) + "\n",
                                mark.group(1).strip() if mark else None))
        i += 1
    return blocks


def _rst_blocks(page: Path) -> list[Block]:
    lines, blocks = page.read_text(encoding="utf-8").split("\n"), []
    for i, line in enumerate(lines):
        found = DIRECTIVE.match(line)
        if not found:
            continue
        indent, j = len(found.group(1)), i + 1
        while j < len(lines) and lines[j].strip().startswith(":") and len(lines[j]) - len(lines[j].lstrip()) > indent:
            j += 1  # the directive's options
        body = []
        while j < len(lines) and (not lines[j].strip() or len(lines[j]) - len(lines[j].lstrip()) > indent):
            body.append(lines[j])
            j += 1
        while body and not body[-1].strip():
            body.pop()
        cut = min((len(b) - len(b.lstrip()) for b in body if b.strip()), default=0)
        code = "\n".join(b[cut:] for b in body).strip("\n") + "\n"
        mark = MARK_RST.match(_previous_text(lines, i))
        blocks.append(Block(page, i + 1, found.group(3) or "text", code, mark.group(1).strip() if mark else None))
    return blocks


def blocks_of(page: Path) -> list[Block]:
    return _markdown_blocks(page) if page.suffix == ".md" else _rst_blocks(page)


ALL = [b for page in PAGES for b in blocks_of(page)]
EXECUTED_PAGES = [p for p in PAGES if any(b.page == p and b.reason is None for b in ALL)]


def test_blocks_are_counted(capsys):
    executed = [b for b in ALL if b.reason is None]
    marked = [b for b in ALL if b.reason is not None]
    assert executed and marked, "no code blocks found"
    with capsys.disabled():
        print(f"\ndocs code blocks: {len(executed)} executed, {len(marked)} marked not executed "
              f"({len(ALL)} in {len(PAGES)} pages)")
        kinds = [b.reason.split(" (")[0] for b in marked]
        for kind in sorted(set(kinds)):
            print(f"  not executed, {kind}: {kinds.count(kind)}")


def test_every_marked_block_gives_a_reason():
    assert [b.where for b in ALL if b.reason == ""] == []


def test_every_unmarked_block_is_runnable():
    assert [f"{b.where} ({b.lang or 'no language'})" for b in ALL if b.reason is None and b.lang not in RUNS] == []


def test_rst_pages_use_code_block_directives():
    """Literal blocks (a paragraph ending in ``::``) would escape this test: pages use ``.. code-block::``."""
    literal = []
    for page in PAGES:
        if page.suffix != ".rst":
            continue
        for n, line in enumerate(page.read_text(encoding="utf-8").split("\n"), 1):
            if line.rstrip().endswith("::") and not re.match(r"^\s*\.\.\s", line):
                literal.append(f"{page.relative_to(ROOT)}:{n}")
    assert literal == []


def test_readme_quick_start_is_executed():
    readme = [b for b in ALL if b.page.name == "README.md" and b.lang == "python"]
    assert readme and readme[0].reason is None, "README's first python block (the quick start) must run"


@pytest.mark.parametrize("page", EXECUTED_PAGES, ids=[str(p.relative_to(ROOT)) for p in EXECUTED_PAGES])
def test_page_runs(page, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
               MPLBACKEND="Agg")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    namespace: dict = {"__name__": "__docs__"}
    start = time.perf_counter()
    for block in (b for b in ALL if b.page == page and b.reason is None):
        if RUNS[block.lang] == "python":
            exec(compile(block.code, block.where, "exec"), namespace)  # the page's own code
        else:
            done = subprocess.run(["bash", "-euo", "pipefail", "-c", block.code], cwd=tmp_path, env=env,
                                  capture_output=True, text=True, timeout=600)
            assert done.returncode == 0, f"{block.where} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    with capsys.disabled():
        print(f"\n{page.relative_to(ROOT)}: {time.perf_counter() - start:.1f} s")
