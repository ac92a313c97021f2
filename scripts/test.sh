#!/usr/bin/env bash
# Lint, format check, then the test suite: `scripts/test.sh [pytest args]` (e.g. -x -q, -k cli).
set -euo pipefail
cd "$(dirname "$0")/.."
DIFFUSIONNAG_EXTRAS=dev source scripts/setup_venv.sh

lint_paths=()
for folder in src tests benchmarks; do
  if [[ -d "$folder" ]]; then
    lint_paths+=("$folder")
  fi
done
ruff check "${lint_paths[@]}"
ruff format --check "${lint_paths[@]}"
mypy src

status=0
python -m pytest "$@" || status=$?
if [[ "$status" -eq 5 ]]; then
  echo "test.sh: pytest collected no tests; that is a failure here" >&2
fi
if [[ "${CI:-}" == "true" && "$status" -eq 0 ]]; then
  # The README's and docs' code from a wheel in a fresh venv, as a pip user runs it.
  bash scripts/wheel_docs.sh || status=$?
fi
exit "$status"
