# Sourced by the device scripts (gpu_sst2.sh, gpu_phase2.sh): the environment, a timeline, MPS, a deadline
# per step, and the packing of results into $OUT (at most 8 files of 16 MiB come back from a device call).
OUT=${OUT:-runs/gpu-out}
WORK=${WORK:-/tmp/hprune-gpu}
MODEL=${MODEL:-$PWD/.gpu/minilm-fp16}  # all-MiniLM-L6-v2 rounded to fp16 for transport (64 MiB limit); trained in fp32
DATA=${DATA:-$PWD/.gpu/data}
mkdir -p "$OUT" "$WORK"
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} CUBLAS_WORKSPACE_CONFIG=:4096:8 TOKENIZERS_PARALLELISM=false
started=$(date +%s)
stamp() { echo "[$(( $(date +%s) - started )) s] $*" | tee -a "$OUT/timeline.log"; }
seconds_left() { local left=$(( DEADLINE - ($(date +%s) - started) )); echo $(( left > 1 ? left : 1 )); }

stamp "start on $(hostname): $(nproc) cores; $(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || echo no GPU)"
python3 -c "import torch, transformers; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'transformers', transformers.__version__)" \
  | tee -a "$OUT/timeline.log" || exit 1
# Several processes on one GPU run their kernels side by side only under MPS; without it they take turns.
if command -v nvidia-cuda-mps-control >/dev/null; then
  export CUDA_MPS_PIPE_DIRECTORY=/tmp/mps-pipe CUDA_MPS_LOG_DIRECTORY=/tmp/mps-log
  mkdir -p $CUDA_MPS_PIPE_DIRECTORY $CUDA_MPS_LOG_DIRECTORY
  if nvidia-cuda-mps-control -d && timeout 40 python3 -c "import torch; torch.ones(1).cuda().sum().item()"; then
    stamp "MPS on"
  else
    echo quit | timeout 10 nvidia-cuda-mps-control; unset CUDA_MPS_PIPE_DIRECTORY CUDA_MPS_LOG_DIRECTORY; stamp "MPS off (did not start)"
  fi
fi

pack() {  # WORK's task folders as one tarball each (resume checkpoints left out; FOLDER/PART names split one), logs in one more
  pkill -9 -g "$(ps -o pgid= -p $$ | tr -d " ")" -f "multiprocessing.spawn" 2>/dev/null; sleep 1  # workers a timed-out step left behind
  local part
  for part in "$@"; do
    [ -e "$WORK/$part" ] && tar czhf "$OUT/${part//\//-}.tar.gz" --exclude='*.ckpt' --exclude='*.tmp*' -C "$WORK" "$part"
  done
  stamp "packed: $(cd "$OUT" && ls -s *.tar.gz | tr '\n' ' ')"
  tar czf "$OUT/logs.tar.gz" -C "$OUT" $(cd "$OUT" && ls *.log) && rm "$OUT"/*.log
}
task_folders() { (cd "$WORK" && ls -d */ 2>/dev/null | tr -d / | grep -vx data); }
