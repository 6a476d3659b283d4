#!/usr/bin/env bash
# Run the FAISS GPU benchmark once on a machine with an NVIDIA GPU and no network (a few minutes at 1M vectors).
# It downloads nothing: `make gpu-wheels GPU_PY=312` (on a machine that reaches PyPI) puts faiss-gpu-cu12 for that
# Python in .whl/ beforehand; if the GPU machine lacks CUDA 12's cuBLAS and runtime, add nvidia-cublas-cu12 and
# nvidia-cuda-runtime-cu12 there too (see benchmarks/history.md for the sizes involved).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT_DIR="${OUT:-benchmarks/out}"
mkdir -p "$OUT_DIR"
if ! python3 -c "import faiss, sys; sys.exit(0 if faiss.get_num_gpus() else 1)" 2>/dev/null; then
  if ! ls .whl/*.whl >/dev/null 2>&1; then
    echo "no FAISS GPU build here and no wheels in .whl/: run 'make gpu-wheels GPU_PY=3XX' first" >&2
    exit 2
  fi
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site
  # Make pip-installed CUDA libraries (nvidia/*/lib) visible to faiss.
  for d in /tmp/site/nvidia/*/lib; do [ -d "$d" ] && export LD_LIBRARY_PATH="$d:${LD_LIBRARY_PATH:-}"; done
fi
export PYTHONPATH="src:${PYTHONPATH:-}" PYTHONUNBUFFERED=1
python3 benchmarks/faiss_gpu.py --n "${N:-1000000}" --out "$OUT_DIR/faiss_gpu_results.json" --skip-cpu-flat \
  2>&1 | tee "$OUT_DIR/faiss_gpu_log.txt"
