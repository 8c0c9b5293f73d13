#!/usr/bin/env bash
# Run every benchmark of docs/benchmarks.md one after the other (`make bench-all`), on a quiet machine.
# Each step logs the 1-minute load average before it and the highest load sampled while it ran, so a step
# disturbed by other work can be told apart. Results: bench/out/*.md (+ .json), log: bench/out/run_all.log.
# STEPS="overhead grid" bench/run_all.sh runs a subset. Sizes are chosen so the whole set fits in about an hour
# on 2 cores; the figures in docs/benchmarks.md say which sizes they used.
set -u
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=bench/out
mkdir -p "$OUT"
LOG=$OUT/run_all.log
STEPS=${STEPS:-"overhead app_render lmeval meters scaling grid variants meter_cost"}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 HF_EVALUATE_OFFLINE=1

step() {
  local name=$1; shift
  local peak_file; peak_file=$(mktemp)
  echo 0 > "$peak_file"
  ( while sleep 5; do
      l=$(cut -d' ' -f1 /proc/loadavg); p=$(cat "$peak_file")
      awk -v l="$l" -v p="$p" 'BEGIN{exit !(l>p)}' && echo "$l" > "$peak_file"
    done ) & local mon=$!
  local t0; t0=$(date +%s)
  echo "== $name: start $(date -u +%H:%M:%S), load before $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$LOG"
  "$@" >> "$LOG" 2>&1; local rc=$?
  kill $mon 2>/dev/null; wait $mon 2>/dev/null
  echo "== $name: rc=$rc, $(( $(date +%s) - t0 )) s, peak 1-min load while running $(cat "$peak_file")" | tee -a "$LOG"
  rm -f "$peak_file"
}

for s in $STEPS; do
  case $s in
    overhead)   step overhead   $PY bench/overhead.py --limit 48 --rounds 3 ;;
    app_render) step app_render $PY bench/app_render.py --rounds 5 ;;
    lmeval)     step lmeval     $PY bench/lmeval_side_by_side.py --model smollm2-135m --model qwen2.5-0.5b \
                                    --limit 30 --batch-size 8 --threads 2 ;;
    meters)     step meters     $PY bench/meters.py --limit 12 --rounds 8 \
                                    --cv-models minilm-l6 mpnet-base smollm2-135m gemma3-270m qwen2.5-0.5b ;;
    scaling)    step scaling    $PY bench/scaling.py --model smollm2-135m ;;
    grid)       step grid       $PY bench/grid.py --limit 5 --variants fp32 bf16 int8-dynamic prune-structured-25 \
                                    --exclude qwen2.5-1.5b:int8-dynamic --out $OUT/grid.md ;;
    variants)   step variants   $PY bench/grid.py --suites finance --limit 10 \
                                    --models minilm-l6 mpnet-base smollm2-135m qwen2.5-0.5b \
                                    --variants fp32 fp16 int8-weight-only bnb-int8 bnb-nf4 \
                                      prune-magnitude-30 prune-magnitude-50 prune-structured-50 \
                                    --out $OUT/variants.md ;;  # bf16, int8-dynamic, prune-structured-25: grid step
    meter_cost) step meter_cost $PY bench/meters.py --skip-cv --limit 12 --rounds 6 --calls 500 \
                                    --out $OUT/meters-overhead.md ;;
    *) echo "unknown step $s" | tee -a "$LOG" ;;
  esac
done
