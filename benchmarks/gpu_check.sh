#!/usr/bin/env bash
# The CUDA path on a GPU machine: its equality tests, then the benchmark figures on --device cuda.
# Usage: bash benchmarks/gpu_check.sh [OUTDIR]   (python3 with a CUDA torch; MONAI optional)
# Writes gpu.txt, tests.txt, profile.txt, volume.txt and bench.txt into OUTDIR (default: the current folder).
set -u
out=${1:-.}
export PYTHONUNBUFFERED=1 OMP_WAIT_POLICY=PASSIVE
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  python3 -c "import torch, os; print('torch', torch.__version__, torch.cuda.get_device_name(), os.cpu_count(), 'cpus')"
} 2>&1 | tee "$out/gpu.txt"
timeout 150 python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py tests/test_distance.py -k "cuda or device" \
  2>&1 | tee "$out/tests.txt" | tail -30
timeout 120 python3 benchmarks/profile_cuda.py 2>&1 | tee "$out/profile.txt"
timeout 150 python3 benchmarks/bench_volume.py --device cuda --classes 2 3 --no-app 2>&1 | tee "$out/volume.txt"
timeout 220 python3 benchmarks/run.py --device cuda --quick --no-browser --no-dataset --no-volume --threads 16 \
  2>&1 | tee "$out/bench.txt"
