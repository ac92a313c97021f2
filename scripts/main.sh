#!/usr/bin/env bash
# The project's main job. `scripts/main.sh` runs the default job below;
# `scripts/main.sh <args>` runs `diffusionnag <args>` instead (e.g. `scripts/main.sh generate --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup_venv.sh

if [[ "$#" -gt 0 ]]; then
  exec diffusionnag "$@"
fi

# ---- main job: transfer to scikit-learn's digits, a dataset the shipped meta-predictor never
# saw (it was meta-trained on Fashion-MNIST tasks): generate cells guided by the meta-predictor
# conditioned on digits' images, train the top 3 (10 classes, 50 training images each, 2 epochs:
# the meta-dataset's protocol), and place the chosen one among 100 random cells trained the same
# way (the shipped reference). Writes runs/transfer/digits.json (+ .jsonl journal, .png plot);
# rerunning continues or reprints the run from its journal.
exec diffusionnag transfer --benchmark task:digits/c0-1-2-3-4-5-6-7-8-9/n50/r8/s0 --budget 3 \
  --round-samples 500 --out runs/transfer/digits.json --resume
