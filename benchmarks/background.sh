#!/usr/bin/env bash
# The background measurements of issue "Image transfer on labels that mean something", in the
# order of their priority (nice level); every job journals its rows and resumes where it
# stopped, so a session starts them again with this one command (one process per journal):
#
#   bash benchmarks/background.sh            # then watch benchmarks/results/*/run*.log
#
# - part 2, two shards at nice 6, task by task (part 1's task's last proxy and two proxies'
#   second seeds, the rotated task's second seeds, then the other four tasks' proxies and
#   final rows): whether any proxy agrees is decided there;
# - part 1, two shards at nice 14: the 20-epoch two-seed setting's E=40 rows (is 20 final?);
# - part 5's proposals of the free baselines at nice 19 (they need no training).
set -euo pipefail
cd "$(dirname "$0")/.."
if pgrep -f "benchmarks/bench_" >/dev/null; then
    echo "benchmark jobs are running already (pgrep -af benchmarks/bench_); start them all or none"
    exit 1
fi
run() {  # run NICE LOG ARGS...: one background job, its output appended to LOG
    local level=$1 log=$2
    shift 2
    OMP_NUM_THREADS=1 PYTHONPATH=src nohup nice -n "$level" .venv/bin/python "$@" >>"$log" 2>&1 &
    echo "started: $*"
}
scale=benchmarks/results/protocol-scale
proxy=benchmarks/results/proxy-agreement
for k in 0 1; do
    run 6 $proxy/run.log benchmarks/bench_proxy_agreement.py --shard $k/2
done
for k in 0 1; do
    run 14 $scale/run-e1000.log benchmarks/bench_protocol_scale.py --settings \
        fashion-mnist-C16-N1-r28-n500-e1000-E10-m2 fashion-mnist-C16-N1-r28-n500-e1000-E20-m2 \
        --shard $k/2
done
run 19 benchmarks/results/transfer-final/proposals.log benchmarks/bench_transfer_final.py \
    --stage proposals --methods old params naswot synflow
