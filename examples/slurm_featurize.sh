#!/usr/bin/env bash
# Featurize a large pool as a Slurm job array: each array task takes one shard (whole chunks)
# into its own resumable store; a dependent job merges them into one store, bit-identical to
# an unsharded run. Submit with:
#
#   sbatch examples/slurm_featurize.sh
#   sbatch --dependency=afterok:<array job id> --wrap \
#     'gradsift merge --out stores/pool stores/pool-shard-*'
#
# or let select take the shards directly (it merges the ones made with its own arguments):
#
#   gradsift select --method less --model "$MODEL" --pool "$DATA" --target target.jsonl \
#     --checkpoints "$ADAPTER" --pool-features stores/pool-shard-*
#
# gradsift reads SLURM_ARRAY_TASK_ID, SLURM_ARRAY_TASK_MIN and SLURM_ARRAY_TASK_COUNT itself;
# a re-queued task resumes after its last complete chunk.
#SBATCH --job-name=gradsift-featurize
#SBATCH --array=0-7
#SBATCH --cpus-per-task=8
#SBATCH --mem=16G
#SBATCH --time=04:00:00
#SBATCH --gres=gpu:1
set -euo pipefail

MODEL=${MODEL:-HuggingFaceTB/SmolLM2-135M}   # a directory, or a name in the local HF cache
ADAPTER=${ADAPTER:-warmup/checkpoint-4}
DATA=${DATA:-data/pool.jsonl}

# --grad-type adam: the Adam features of the warmup checkpoint, as select --checkpoints uses.
gradsift featurize --model "$MODEL" --adapter "$ADAPTER" --data "$DATA" --loss sft --grad-type adam \
  --proj-dim 8192 --seed 0 --chunk-size 256 \
  --out "stores/pool-shard-${SLURM_ARRAY_TASK_ID}"
