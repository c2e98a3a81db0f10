#!/usr/bin/env bash
# The CUDA paths in one prepared run (<= 8 minutes on one GPU): frozen vs fine-tuned step time and
# peak memory of R50 Cascade NAS-FPN at 1024 px, batch 8, in fp32, with the bf16 trunk and with
# AMP; then the DeepForest time-to-accuracy run (frozen / naive / fine-tuned) on the GPU.
# Without a CUDA device it prints that it skipped and exits 0.
#
#   bash benchmarks/gpu_check.sh [OUT_DIR]      (default: output/gpu_check)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${1:-output/gpu_check}

if ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "gpu_check: no CUDA device visible to torch; skipped (nothing measured)"
    exit 0
fi
mkdir -p "$OUT"
{ nvidia-smi || true; "$PY" -c "import torch; print('torch', torch.__version__, torch.version.cuda)"; } \
    > "$OUT/device.txt" 2>&1

# 1. step time / memory at the paper's scale (random weights: timing does not depend on them)
timeout 300 "$PY" benchmarks/gpu_steps.py --device cuda \
    --config COCO/cascade_rcnn_nasfpn_72ep.py --size 1024 --batch-size 8 \
    --warmup 3 --repeats 10 | tee "$OUT/steps.md"

# 2. time to accuracy on DeepForest (the CPU recipe, on the GPU: minutes instead of hours)
timeout 240 "$PY" benchmarks/time_to_accuracy.py --out "$OUT/time_to_accuracy" --threads 8 \
    train.device=cuda | tee "$OUT/time_to_accuracy.md"
echo "gpu_check: results in $OUT"
