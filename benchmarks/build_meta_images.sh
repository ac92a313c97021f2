#!/usr/bin/env bash
# The images meta-dataset at the scale where architecture matters (issue "Image transfer on
# labels that mean something", part 3), and the meta-predictors meta-trained on it.
#
# Protocol: the proxy part 2 picks (PROXY_STEPS SGD steps of 64 images, at least one epoch,
# bfloat16 and channels-last, NB201 C=16 N=1; label: validation accuracy on 1,000 images per
# class, 35 for digits, whose classes hold no more). Tasks: Fashion-MNIST at 28 px, 3 to 10
# classes of 200 to 500 training images, one family each of none, invert, blur and noise
# (rotate is left out: part 5 holds out its targets); digits at 8 px as a second file.
# Both builds journal and resume: run this again after a kill.
#
#   OMP_NUM_THREADS=1 nohup nice -n 10 bash benchmarks/build_meta_images.sh \
#       >> runs/meta-images/build.log 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/.."
PROXY_STEPS="${PROXY_STEPS:-158}"
OUT="${OUT:-runs/meta-images}"
BIN=.venv/bin/diffusionnag
mkdir -p "$OUT"
proxy=(--epochs 1 --steps "$PROXY_STEPS" --cells-per-stage 1 --channels-last --bf16 --device cpu)
resume() { [[ -s "$1" ]] && echo --resume || true; }

$BIN meta-dataset build --source fashion-mnist --tasks 110 --cells-per-task 8 --shared-cells 4 \
    --resolutions 28 --classes 3 10 --per-class 200 500 --eval-per-class 1000 \
    --transforms none invert blur noise --seed 1 "${proxy[@]}" --no-progress \
    --out "$OUT/fmnist.jsonl" $(resume "$OUT/fmnist.jsonl")
$BIN meta-dataset build --source digits --tasks 20 --cells-per-task 8 --shared-cells 4 \
    --resolutions 8 --classes 3 10 --per-class 40 100 --eval-per-class 35 \
    --seed 1 "${proxy[@]}" --no-progress \
    --out "$OUT/digits.jsonl" $(resume "$OUT/digits.jsonl")

# Every 11th Fashion-MNIST task (in journal order) is held out, so that meta-train reports
# ranking on tasks it never saw; part 5's targets are not in the meta-dataset at all. The
# unconditioned predictor reads the same rows with one learned vector for every task.
mapfile -t held_out < <(.venv/bin/python -c '
import json, sys
tasks = []
for line in open(sys.argv[1]):
    row = json.loads(line)
    if row.get("type") == "trial" and row["task"] not in tasks:
        tasks.append(row["task"])
print("\n".join(tasks[10::11]))' "$OUT/fmnist.jsonl")
rows=("$OUT/fmnist.jsonl" "$OUT/digits.jsonl")
for encoder in images none; do
    sizes=(); [[ $encoder == images ]] && sizes=(--task-sizes)
    $BIN meta-train --meta-dataset "${rows[@]}" --encoder $encoder "${sizes[@]}" --device cpu \
        --holdout "${held_out[@]}" --quiet --out "$OUT/$encoder"
done
