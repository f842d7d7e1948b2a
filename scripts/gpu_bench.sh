#!/usr/bin/env bash
# gradsift's gradients on a machine's GPU beside the PyTorch LESS loop on CUDA, in one run: the
# machine, `gradsift doctor`, then for each shape `gradsift bench --shape S --gpu-only` (wgpu
# on Vulkan, Metal or DX12; no projection: the gradient pass alone, as the loop computes) with
# f32 weights and with the checkpoint's 16 bits, each beside `scripts/less_loop.py --device
# cuda` in bf16 (as LESS runs) and in f32, at the same length and count. Every step has its own
# time limit, so one that hangs or runs out of memory leaves the others' lines. Everything is
# printed and kept in OUT/gpu_bench.log, the doctor's report in OUT/doctor/.
#
#   scripts/gpu_bench.sh OUT [BIN] [PYTHON]
#
# BIN: a gradsift binary (default: the build cache's release build, else its debug build);
# PYTHON: one with torch, transformers and peft. Settings (environment): SHAPES, a list of
# shape:examples (default "qwen2.5-0.5b:8 llama-3.2-1b:8 llama-3.1-8b:2"); SEQ_LEN (512);
# BATCH, gradsift's examples per pass (1, as the loop); ADAPTER, the wgpu adapter's index or
# name (default: the discrete GPU that `--device auto` picks); STEP_LIMIT, seconds per step
# (240). The shapes' bf16 weights are generated once into the temporary directory (16 GB for
# Llama-3.1-8B).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: scripts/gpu_bench.sh OUT [BIN] [PYTHON]}
bin=${2:-}
python=${3:-python3}
if [ -z "$bin" ]; then
    bin="$(bash scripts/cache-dir.sh)/release/gradsift"
    [ -x "$bin" ] || bin="$(bash scripts/cache-dir.sh)/debug/gradsift"
fi
shapes=${SHAPES:-qwen2.5-0.5b:8 llama-3.2-1b:8 llama-3.1-8b:2}
seq_len=${SEQ_LEN:-512}
batch=${BATCH:-1}
limit=${STEP_LIMIT:-240}
mkdir -p "$out"
exec > >(tee "$out/gpu_bench.log") 2>&1

step() {
    echo "## $(date -u +%T) $*"
    timeout "$limit" "$@" || echo "   (exit $?: 124 is the step's time limit)"
}

echo "# $(date -u +%F), $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; gradsift $(git rev-parse --short HEAD 2>/dev/null || echo '?'); $bin"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
"$bin" devices
adapter=${ADAPTER:-}
if [ -z "$adapter" ]; then
    adapter=$("$bin" devices 2>/dev/null | sed -n 's/^\[\([0-9]*\)\] .*, DiscreteGpu, driver .*/\1/p' | head -n 1)
    adapter=${adapter:-0}
fi
echo "# timing adapter $adapter"
step "$bin" doctor --adapter "$adapter" --out "$out/doctor"
for entry in $shapes; do
    shape=${entry%%:*}
    n=${entry##*:}
    for dtype in f32 auto; do
        step "$bin" --quiet bench --shape "$shape" --gpu-only --gpu-adapter "$adapter" --examples "$n" \
            --batch-size "$batch" --seq-len "$seq_len" --proj-dim 0 --weights-dtype "$dtype"
    done
    for dtype in bf16 f32; do
        step env PYTHONUNBUFFERED=1 "$python" scripts/less_loop.py --device cuda --shape "$shape" --examples "$n" \
            --seq-len "$seq_len" --dtype "$dtype"
    done
done
echo "## $(date -u +%T) done"
