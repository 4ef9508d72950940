#!/usr/bin/env bash
# GPU measurements, for a machine with CUDA (run it whenever one is available):
#   bash bench/gpu_check.sh            # ~5-8 minutes on one modern GPU
# Training steps of CycleGAN / pix2pix / MUNIT with PONO-MS at 256 px in fp32, bf16, channels-last and
# torch.compile (bench_train.py, interleaved, against the official-style PONO), then `ponogan translate`
# throughput per batch size and dtype, the defaults included (bench_infer.py). Results go to
# bench/results/train.json and infer.json under the "cuda" key, with the GPU model in "machine".
set -euo pipefail
cd "$(dirname "$0")/.."
python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA GPU visible: nothing to measure')"
python -c "import torch; print('GPU:', torch.cuda.get_device_name(0))"
python bench/bench_train.py --device cuda --sizes 256 --shortcuts ms --families cyclegan pix2pix munit \
    --variants ours_fp32 ours_bf16 official_fp32 official_bf16 cl_fp32 cl_bf16 compile_fp32 compile_bf16 \
    --repeats 20 --warmup 3 --timeout 900
python bench/bench_infer.py --device cuda --images 64 --repeats 3
