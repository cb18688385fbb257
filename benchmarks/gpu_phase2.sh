#!/usr/bin/env bash
# Phase-2 comparisons of finished scorings in one call of a lent GPU machine: the folders in .gpu/scorings/
# (scores.parquet, subsets.json and manifest.json of a scoring; the fine-tunes read the training file from
# .gpu/data/), many fine-tunes sharing the GPU (--jobs): the budget table of issue 21 (benchmarks/budget.py)
# for sst2-20k (TREC's and CoLA's ran on the CPU; a GPU's numbers differ from the CPU's, so don't mix them in
# one task), and with PARITY=yes issue 24's CoLA phase-2 parity (done on the CPU). The comparisons of one
# task share one cache, so its full-set fine-tunes are trained once.
#
# Here first: `bash benchmarks/gpu_sst2.sh prepare` (the model), then copy the scorings and data the jobs name
# into .gpu/. Device call: `bash benchmarks/gpu_phase2.sh`, carry [".gpu"]. Results: one tarball per task.
set -u
SCORINGS=${SCORINGS:-$PWD/.gpu/scorings}
DEADLINE=${DEADLINE:-330}
SEEDS=${SEEDS:-3}
BUDGET=${BUDGET-sst2-20k:12}  # task:jobs
PARITY=${PARITY-}
source "$(dirname "$0")/gpu_common.sh"

compare() {  # task, scoring, compare name, eval split, metric, seeds, jobs, extra options
  local task=$1 scoring=$2 name=$3 split=$4 metric=$5 seeds=$6 jobs=$7; shift 7
  local out="$WORK/$task/$name"
  mkdir -p "$WORK/$task"
  [ -e "$WORK/$task/cache" ] || mkdir -p "$WORK/$task/cache"
  mkdir -p "$out" && ln -sfn "$WORK/$task/cache" "$out/cache"  # one task's comparisons share their full-set fine-tunes
  stamp "$task/$name started"
  timeout "$(seconds_left)" python3 -m hprune compare "$SCORINGS/$scoring" --train "$DATA/$task/train.jsonl" \
    --eval "$DATA/$task/$split.jsonl" --subsets winning-ticket --methods hscore,random --seeds "$seeds" --metric "$metric" --task "$task" \
    --out "$out" --jobs "$jobs" --threads 1 --model "$MODEL" --quiet "$@" > "$OUT/$task-$name.log" 2>&1
  stamp "$task/$name ended with status $?"
}
budget() {  # task, jobs
  local task=$1 jobs=$2
  mkdir -p "$WORK/$task/cache" "$WORK/$task/budget" && ln -sfn "$WORK/$task/cache" "$WORK/$task/budget/cache"
  stamp "$task/budget started"
  timeout "$(seconds_left)" python3 benchmarks/budget.py --tasks "$task" --scoring "$SCORINGS/$task" --work "$WORK" --data "$DATA" \
    --model "$MODEL" --jobs "$jobs" --no-publish > "$OUT/$task-budget.log" 2>&1
  stamp "$task/budget ended with status $?"
}
pids=()
[ -n "$BUDGET" ] && for spec in $BUDGET; do budget ${spec%:*} ${spec#*:} & pids+=($!); done
# Issue 24's phase-2 parity on CoLA (MCC): the full-cost winning ticket, then the 1- and 2-epoch prefix
# scorings' (benchmarks/cheap_scoring.py --prefix-scoring), all against random at equal size.
if [ -n "$PARITY" ]; then
  { compare cola cola compare-full validation mcc "$SEEDS" 4
    compare cola cola-e1 compare-e1 validation mcc "$SEEDS" 3 & compare cola cola-e2 compare-e2 validation mcc "$SEEDS" 3; wait; } & pids+=($!)
fi
wait "${pids[@]}"
pack $(task_folders)
