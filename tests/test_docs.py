"""Every code block in the README and docs/ runs, so none can rot.

Python blocks are executed top to bottom, each page's blocks in one namespace, in an empty
working folder. A block right after ``<!-- docs-test: needs VAR -->`` reads third-party data
that is never shipped (``VAR`` names its folder): it runs where that data is (``VAR`` set, or
the repository's shared copy) and is skipped, saying so, where it is not.

Shell lines are checked without their compute: a ``diffusionnag ...`` line must
parse with the real command-line parser (options, choices, types), and a ``python
benchmarks/X.py ...`` or ``bash scripts/X.sh`` line must name a script that exists (and a
benchmark script must answer ``--help``).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from diffusionnag.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)
NEEDS = re.compile(r"<!-- docs-test: needs (\w+) -->\s*$")
COMMAND = re.compile(r"^\s*(?:\.venv/bin/)?(diffusionnag|python|bash)\s+(.*)$")


def python_blocks(page: Path) -> list[str]:
    return [body for _, body in python_blocks_with_needs(page)]


def python_blocks_with_needs(page: Path) -> list[tuple[str | None, str]]:
    """``(environment variable the block's data needs or None, code)`` per python block."""
    text = page.read_text()
    blocks = []
    for match in FENCE.finditer(text):
        if match.group(1) == "python":
            needs = NEEDS.search(text[: match.start()].rstrip() + "\n")
            blocks.append((needs.group(1) if needs else None, match.group(2)))
    return blocks


def _data_folder(variable: str) -> str | None:
    """Where the data a block needs is: ``$variable``, else the repository's shared copy."""
    from diffusionnag.evaluators.shared_data import default_ofa_dir

    shared = {"DIFFUSIONNAG_OFA_DIR": default_ofa_dir(ROOT)}.get(variable)
    if os.environ.get(variable):
        return os.environ[variable]
    return str(shared) if shared is not None and shared.is_dir() else None


def shell_lines(page: Path) -> list[tuple[int, str, str]]:
    """(line number, program, arguments) of each command in fenced shell blocks and in
    four-space indented blocks."""
    text = page.read_text()
    fenced = {m.start(2): m.group(2) for m in FENCE.finditer(text) if m.group(1) in ("bash", "")}
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        offset = sum(len(row) + 1 for row in text.splitlines()[: number - 1])
        in_fence = any(start <= offset < start + len(body) for start, body in fenced.items())
        if not (in_fence or line.startswith("    ")):
            continue
        match = COMMAND.match(line.split("  #")[0])
        if match:
            found.append((number, match.group(1), match.group(2).strip()))
    return found


PYTHON_PAGES = [page for page in PAGES if python_blocks(page)]
SHELL_LINES = [(page, *line) for page in PAGES for line in shell_lines(page)]


@pytest.mark.parametrize("page", PYTHON_PAGES, ids=lambda p: p.name)
def test_python_blocks_run(page: Path, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "__docs__"}
    skipped = []
    for needs, block in python_blocks_with_needs(page):
        if needs is not None:
            folder = _data_folder(needs)
            if folder is None:
                skipped.append(needs)
                continue
            monkeypatch.setenv(needs, folder)
        exec(compile(block, str(page), "exec"), namespace)
    if skipped:
        pytest.skip(f"blocks needing {', '.join(skipped)} skipped: that data is not here")


@pytest.mark.parametrize(
    ("page", "number", "program", "arguments"),
    SHELL_LINES,
    ids=[f"{p.name}:{n}" for p, n, _, _ in SHELL_LINES],
)
def test_shell_lines_are_valid(page: Path, number: int, program: str, arguments: str) -> None:
    words = shlex.split(arguments.replace("$O", "OUT"))
    where = f"{page.name}:{number}"
    if program == "diffusionnag":
        try:
            build_parser().parse_args(words)
        except (SystemExit, ValueError) as stop:
            pytest.fail(f"{where}: `diffusionnag {arguments}` does not parse: {stop}")
        return
    script = ROOT / words[0]
    assert script.is_file(), f"{where}: {words[0]} does not exist"


BENCHMARK_SCRIPTS = sorted(
    {
        words[0]
        for _, _, program, arguments in SHELL_LINES
        if program == "python"
        for words in [shlex.split(arguments)]
        if words[0].startswith("benchmarks/")
    }
)


@pytest.mark.parametrize("script", BENCHMARK_SCRIPTS)
def test_benchmark_scripts_answer_help(script: str) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / script), "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-2000:]
