#!/usr/bin/env bash
# The project's main job. `scripts/main.sh` runs the default job below;
# `scripts/main.sh <args>` runs `diffusionnag <args>` instead (e.g. `scripts/main.sh generate --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup_venv.sh

if [[ "$#" -gt 0 ]]; then
  exec diffusionnag "$@"
fi

# ---- main job: one command line; replace it (e.g. with `diffusionnag search ...`) to change the job.
# Trains a small NB201 score model (resuming if runs/default-score holds an unfinished run,
# skipping training if it is finished), then generates 1,000 cells and prints their metrics.
diffusionnag train-score --space nb201 --out runs/default-score --steps 1500 --batch-size 128 --hidden 32 --layers 2 --heads 2 && diffusionnag generate --checkpoint runs/default-score --num 1000 --out runs/default-generation.json
# ---- end of main job
