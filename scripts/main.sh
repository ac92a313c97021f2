#!/usr/bin/env bash
# The project's main job. `scripts/main.sh` runs the default job below;
# `scripts/main.sh <args>` runs `diffusionnag <args>` instead (e.g. `scripts/main.sh generate --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup_venv.sh

if [[ "$#" -gt 0 ]]; then
  exec diffusionnag "$@"
fi

# ---- main job: DiffusionNAG-BO on scikit-learn's digits, every candidate trained for real.
# Writes runs/search/run.json (+ .jsonl journal, .png plot); `scripts/main.sh search --resume`
# continues an interrupted run.
exec diffusionnag search --resume
