#!/usr/bin/env bash
# The path a pip user walks, checked: a wheel built from a fresh clone of the committed tree,
# installed with its dependencies into a fresh venv outside the repository, runs every python
# block of the README and docs/ (tests/test_docs.py, importing the installed package).
# `scripts/test.sh` runs this under CI=true; alone: `bash scripts/wheel_docs.sh`.
# DIFFUSIONNAG_WHEEL_SITE=DIR instead installs the wheel alone into DIR and runs the blocks with
# this venv's dependencies (no download; a quick check of what the wheel ships).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python="${PYTHON:-python3}"
# The blocks run outside the repository, where the nearest shared/ cannot be found: point at
# the third-party data beside the checkout (if it is there) as a user's environment would.
shared="$(dirname "$root")/shared/data"
if [[ -z "${DIFFUSIONNAG_OFA_DIR:-}" && -d "$shared/ofa" ]]; then
  export DIFFUSIONNAG_OFA_DIR="$shared/ofa"
fi
if [[ -z "${DIFFUSIONNAG_NB201_TABLE:-}" && -f "$shared/nasbench201/nats_tss_200ep_test_acc.csv" ]]; then
  export DIFFUSIONNAG_NB201_TABLE="$shared/nasbench201/nats_tss_200ep_test_acc.csv"
fi

git clone --quiet --no-local "$root" "$work/clone"  # committed files only, as a user gets them
"$python" -m pip wheel --quiet --no-deps --no-build-isolation --wheel-dir "$work/dist" "$work/clone"
wheel="$(ls "$work"/dist/diffusionnag-*.whl)"
if [[ -n "${DIFFUSIONNAG_WHEEL_SITE:-}" ]]; then
  "$python" -m pip install --quiet --no-deps --target "$DIFFUSIONNAG_WHEEL_SITE" "$wheel"
  run=("$python")
  export PYTHONPATH="$DIFFUSIONNAG_WHEEL_SITE"
else
  "$python" -m venv "$work/venv"
  "$work/venv/bin/python" -m pip install --quiet "torch==2.13.0"
  "$work/venv/bin/python" -m pip install --quiet "$wheel[optuna]" pytest
  run=("$work/venv/bin/python")
fi
cd "$work"  # outside the repository: nothing but the installed package can be imported
start=$SECONDS
"${run[@]}" -m pytest -q -p no:cacheprovider --rootdir "$work/clone" \
  "$work/clone/tests/test_docs.py" -k python_blocks
"${run[@]}" -c "import diffusionnag, sys; assert 'site-packages' in diffusionnag.__file__ \
  or '${DIFFUSIONNAG_WHEEL_SITE:-@}' in diffusionnag.__file__, diffusionnag.__file__"
echo "wheel_docs: README and docs python blocks ran from the wheel in $((SECONDS - start)) s"
