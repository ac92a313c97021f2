#!/usr/bin/env bash
# Fixed-seed outputs of the main commands, for comparing two versions of the code (refactors must
# leave them identical): `bash benchmarks/fixed_seed_outputs.sh OUT_DIR [SRC_DIR]` runs each
# command with the package from SRC_DIR (default: this checkout's src/) and writes its result
# files under OUT_DIR; `python benchmarks/compare_outputs.py A B` compares two such folders,
# ignoring wall-clock fields. Needs the NB201 table (DIFFUSIONNAG_NB201_TABLE or ../shared).
set -euo pipefail
out="$(realpath -m "$1")"
src="$(realpath "${2:-$(dirname "$0")/../src}")"
mkdir -p "$out"
export PYTHONPATH="$src" OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
dn() { python -c "import sys; from diffusionnag.cli import main; sys.exit(main())" "$@"; }
step=0
run() { step=$((step + 1)); echo "== $*" >&2; "$@" >"$out/step$step.stdout"; }
for strategy in random bananas diffusionnag-bo; do
  run dn search --strategy "$strategy" --benchmark nb201:cifar10 --budget 12 --seed 3 \
    --out "$out/search-$strategy.json" --quiet
done
run dn transfer --benchmark nb201:cifar100 --budget 3 --seed 1 --round-samples 200 \
  --candidates 20 --out "$out/transfer-c100.json" --quiet
run dn transfer --benchmark task:digits/c0-1-2/n20/r8/s0 --budget 2 --seed 0 --round-samples 200 \
  --candidates 10 --out "$out/transfer-task.json" --quiet
run dn generate --num 50 --steps 20 --seed 5 --out "$out/generate.json" --quiet
run dn meta-dataset from-table --out "$out/meta-tables.jsonl"
run dn benchmark --strategies random evolution --seeds 2 --budget 15 --out "$out/benchmark" --quiet
