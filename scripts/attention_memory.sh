#!/usr/bin/env bash
# Peak memory and throughput of one example's LoRA gradients on SmolLM2-135M's shape (f32,
# batch 1) at T = 512, 1024, 2048 and 4096: gradsift with the layerwise, the blocks and the
# whole-graph backward (no projection: the gradient pass alone), beside the PyTorch loop with
# SDPA (Transformers' default) and eager attention, in one run. The whole graph and eager
# attention are skipped at lengths where they need more memory than the machine has (they grow
# with T²; pass ALL=1 to try them anyway).
#
#   scripts/attention_memory.sh [PYTHON]     # PYTHON: a venv with torch, transformers, peft
set -euo pipefail
cd "$(dirname "$0")/.."
python=${1:-/tmp/ref/bin/python}
bin="$(bash scripts/cache-dir.sh)/release/gradsift"
[ -x "$bin" ] || bin="$(bash scripts/cache-dir.sh)/debug/gradsift"
mem_kb=$(awk '/MemTotal/ {print $2}' /proc/meminfo)
echo "# $(date -u +%F), $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, $((mem_kb / 1024 / 1024)) GiB; gradsift $(git rev-parse --short HEAD); $bin"
for t in 512 1024 2048 4096; do
    # The whole graph keeps ~2 × 30 layers × 9 heads × T² floats of attention (17 GB at 2048).
    modes="layerwise blocks"
    if [ "${ALL:-0}" = 1 ] || [ $((t * t * 9 * 30 * 2 * 4 / 1024)) -lt $((mem_kb / 2)) ]; then modes="$modes whole"; fi
    for m in $modes; do
        "$bin" --quiet bench --shape smollm2-135m --cpu-only --single-cpu --examples 1 --batch-size 1 \
            --seq-len "$t" --backprop "$m" --proj-dim 0 2>&1 | grep -E "gradients:|peak RSS|backward" || echo "gradsift $m T=$t: failed (out of memory?)"
    done
    attns="sdpa"
    if [ "${ALL:-0}" = 1 ] || [ "$t" -le 2048 ]; then attns="sdpa eager"; fi
    for a in $attns; do
        "$python" scripts/less_loop.py --shape smollm2-135m --examples 1 --seq-len "$t" --attention "$a" 2>&1 | grep "pytorch loop" \
            | sed "s/^/T=$t /" || echo "pytorch $a T=$t: failed (out of memory?)"
    done
done
