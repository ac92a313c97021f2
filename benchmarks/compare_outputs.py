"""Compare two folders written by ``benchmarks/fixed_seed_outputs.sh``: every JSON, JSONL, CSV,
Markdown and stdout file must be identical once wall-clock fields (``*seconds*``,
``elapsed*``) and the folders' own paths are masked. PNGs are not compared (they draw what the
JSON holds).

    python benchmarks/compare_outputs.py OLD NEW   # exit 0 when identical, else the differences
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

TIMING = re.compile(r"seconds|elapsed")
DURATION = re.compile(r"\d+(\.\d+)? s\b|s/step.*|\d+\.\d{4} \|")


def _mask(value: object) -> object:
    if isinstance(value, dict):
        return {k: "<time>" if TIMING.search(k) else _mask(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask(v) for v in value]
    return value


def _normalise(path: Path, root: Path) -> list[str]:
    text = path.read_text()
    text = text.replace(str(root), "<out>")
    text = re.sub(r"/work/[^ ,\"']*?/src/diffusionnag", "<src>", text)
    if path.suffix in (".json", ".jsonl"):
        if path.suffix == ".json":
            rows = [json.loads(text)]
        else:
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        return [json.dumps(_mask(row), sort_keys=True) for row in rows]
    return [DURATION.sub("<time>", line) for line in text.splitlines()]


def main(old: Path, new: Path) -> int:
    differences = []
    names = sorted(
        {p.relative_to(old) for p in old.rglob("*") if p.is_file()}
        | {p.relative_to(new) for p in new.rglob("*") if p.is_file()}
    )
    compared = 0
    for name in names:
        if name.suffix in (".png", ".lock"):
            continue
        a, b = old / name, new / name
        if not (a.exists() and b.exists()):
            differences.append(f"{name}: only in {'old' if a.exists() else 'new'}")
            continue
        compared += 1
        left, right = _normalise(a, old), _normalise(b, new)
        if left != right:
            padded = zip([*left, ""], [*right, ""], strict=False)
            line = next(i for i, (x, y) in enumerate(padded) if x != y)
            differences.append(f"{name}: first difference at line {line + 1}")
    print(f"{compared} files compared, {len(differences)} differ")
    for difference in differences:
        print(f"  {difference}")
    return 1 if differences else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
