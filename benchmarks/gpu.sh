#!/usr/bin/env bash
# Every GPU measurement of docs/performance.md in one run (~8 minutes on one H100), from the repo
# root of a fresh GPU machine:
#
#   bash benchmarks/gpu.sh              # needs torch with CUDA; installs what else is missing
#   bash benchmarks/gpu.sh --cpu-smoke  # the same steps, tiny and on CPU (~3 min on 2 cores): checks the script
#
# 1. the SCHP build (random weights in the official layout, synthetic PRCC-like crops, 512x256 box)
#    against SCHP's forward pass alone (eager batches, and the parser's batch-independent path: one
#    image a pass on lanes), with --distributor local and processes with 1, 2 and 4 workers on the
#    one GPU (benchmarks/distributors.py); target: build >= 0.8 of the batch-independent forward
#    rate; it also prints the LaST estimate for 1, 8 and 32 GPUs from the measured per-GPU rate;
# 2. the benchmark command's feature extraction against the forward pass alone, threads and
#    --processes 15 side by side (benchmarks/feature_extraction.py); target >= 0.85.
# Everything it prints names the card (nvidia-smi) and the versions; nothing is kept outside git.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
PYTHON=${PYTHON:-python3}

smoke=0
[[ "${1:-}" == "--cpu-smoke" ]] && smoke=1

# What the builder needs beyond a CUDA torch image: carried wheels in .whl/ (see
# /work/.library/device/README.md), else the package's own requirements from PyPI.
if ! "$PYTHON" -c "import datasets, transformers, pyarrow, jinja2, tqdm" 2>/dev/null; then
    if compgen -G ".whl/*.whl" >/dev/null; then
        "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
        export PYTHONPATH="$PYTHONPATH:/tmp/site"
    else
        "$PYTHON" -m pip install -q -e ".[builder]"
    fi
fi

if [[ $smoke == 1 ]]; then
    device=cpu; images=24; size=128x64; batch=8; floor_images=8; processes=1,2
    fx=(--device cpu --model vit-tiny --images 32 --batch-size 16 --rounds 1 --processes 2)
else
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    device=cuda; images=6000; size=512x256; batch=32; floor_images=512; processes=1,2,4
    fx=(--device cuda --model vit-s16 --images 2048 --batch-size 64 --rounds 2 --processes 15)
fi
"$PYTHON" -c "import os, torch; print(f'torch {torch.__version__}, {os.cpu_count()} CPUs, cuda', torch.cuda.is_available())"

echo "== 1. SCHP build, local and processes ($processes workers on one device), against the forward pass"
"$PYTHON" benchmarks/distributors.py --model schp --device "$device" --images "$images" --parse-size "$size" \
    --batch-size "$batch" --shard-size 250 --processes "$processes" --ray-tasks "" --floor --floor-images "$floor_images"

echo "== 2. feature extraction of the benchmark command against the forward pass"
"$PYTHON" benchmarks/feature_extraction.py "${fx[@]}"
