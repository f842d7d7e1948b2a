"""The LESS-style PyTorch loop gradsift replaces, at the shapes of `gradsift bench --shape`:
the same published config (random weights), a PEFT LoRA r=8 on the attention projections,
generated records of the same length with the first quarter masked, and one backward per
example (batch 1), as LESS's get_info does. `--dtype f32` computes the bf16 weights in f32, as
gradsift does; `--dtype bf16` keeps the model in bf16, as LESS loads it. `--attention sdpa` is
Transformers' default attention (what users run), `eager` the explicit softmax. `--device
cuda` runs it on an NVIDIA GPU. Prints examples/s, tokens/s and the peak resident memory (on a
GPU also the peak of PyTorch's GPU allocations), to put beside the Rust bench's line:

    python3 -m venv /tmp/ref && /tmp/ref/bin/pip install torch transformers peft
    /tmp/ref/bin/python scripts/less_loop.py --shape smollm2-135m --examples 16 --seq-len 192 --threads 2
    cargo run -- bench --shape smollm2-135m --examples 16 --seq-len 192 --cpu-only

Optional: gradsift's tests and CI do not need Python.
"""

import argparse
import resource
import time

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, LlamaConfig, Phi3Config, Qwen2Config

SHAPES = {
    "smollm2-135m": lambda: LlamaConfig(
        vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
        num_key_value_heads=3, rms_norm_eps=1e-5, rope_theta=100000.0, tie_word_embeddings=True,
        max_position_embeddings=8192),
    "qwen2.5-0.5b": lambda: Qwen2Config(
        vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
        num_key_value_heads=2, rms_norm_eps=1e-6, rope_theta=1000000.0, tie_word_embeddings=True,
        max_position_embeddings=32768),
    "llama-3.2-1b": lambda: LlamaConfig(
        vocab_size=128256, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
        num_key_value_heads=8, head_dim=64, rms_norm_eps=1e-5, tie_word_embeddings=True,
        rope_scaling={"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                      "original_max_position_embeddings": 8192, "rope_theta": 500000.0},
        max_position_embeddings=131072),
    "qwen2.5-1.5b": lambda: Qwen2Config(
        vocab_size=151936, hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
        num_key_value_heads=2, rms_norm_eps=1e-6, rope_theta=1000000.0, tie_word_embeddings=True,
        max_position_embeddings=131072),
    "llama-3.2-3b": lambda: LlamaConfig(
        vocab_size=128256, hidden_size=3072, intermediate_size=8192, num_hidden_layers=28, num_attention_heads=24,
        num_key_value_heads=8, head_dim=128, rms_norm_eps=1e-5, tie_word_embeddings=True,
        rope_scaling={"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                      "original_max_position_embeddings": 8192, "rope_theta": 500000.0},
        max_position_embeddings=131072),
    # The published long and short RoPE factors are 48 numbers each; ones here, as in the Rust
    # bench: they change neither a shape nor a cost.
    "phi-3.5-mini": lambda: Phi3Config(
        vocab_size=32064, hidden_size=3072, intermediate_size=8192, num_hidden_layers=32, num_attention_heads=32,
        num_key_value_heads=32, rms_norm_eps=1e-5, tie_word_embeddings=False, original_max_position_embeddings=4096,
        rope_scaling={"type": "longrope", "long_factor": [1.0] * 48, "short_factor": [1.0] * 48},
        max_position_embeddings=131072),
    "llama-3.1-8b": lambda: LlamaConfig(
        vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
        num_key_value_heads=8, rms_norm_eps=1e-5, tie_word_embeddings=False,
        rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                      "original_max_position_embeddings": 8192, "rope_theta": 500000.0},
        max_position_embeddings=131072),
}

TARGETS = {"phi-3.5-mini": ["qkv_proj", "o_proj"]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", choices=sorted(SHAPES), default="smollm2-135m")
    ap.add_argument("--examples", type=int, default=16)
    ap.add_argument("--seq-len", type=int, default=192)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dtype", choices=["f32", "bf16"], default="f32")
    ap.add_argument("--attention", choices=["sdpa", "eager"], default="sdpa")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    cfg = SHAPES[a.shape]()
    cfg._attn_implementation = a.attention
    # Built in bf16 (the checkpoints' dtype), widened for --dtype f32.
    torch.set_default_dtype(torch.bfloat16)
    model = AutoModelForCausalLM.from_config(cfg)
    torch.set_default_dtype(torch.float32)
    if a.dtype == "f32":
        model = model.float()
    model = model.to(a.device)
    targets = TARGETS.get(a.shape, ["q_proj", "k_proj", "v_proj", "o_proj"])
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=targets))
    params = [p for p in model.parameters() if p.requires_grad]
    print(f"{a.shape}: LoRA {sum(p.numel() for p in params)} parameters, {a.examples} records of {a.seq_len} tokens")
    g = torch.Generator().manual_seed(7)
    lo = cfg.vocab_size // 8
    data = [torch.randint(lo, cfg.vocab_size, (1, a.seq_len), generator=g).to(a.device) for _ in range(a.examples)]
    cuda = a.device == "cuda"

    def grad(ids):
        labels = ids.clone()
        labels[:, : a.seq_len // 4] = -100
        model.zero_grad(set_to_none=True)
        model(input_ids=ids, labels=labels).loss.backward()
        return torch.cat([p.grad.reshape(-1) for p in params])

    grad(data[0])  # warm-up
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for ids in data:
        grad(ids)
    if cuda:
        torch.cuda.synchronize()
    secs = time.perf_counter() - start
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    where = f"{torch.cuda.get_device_name()}, peak GPU memory {torch.cuda.max_memory_allocated() / 1e9:.2f} GB, " if cuda else f"{a.threads} threads, "
    print(f"  pytorch loop ({a.dtype}, {a.attention} attention, batch 1, {where.rstrip(', ')}): {a.examples / secs:.2f} examples/s, "
          f"{a.examples * a.seq_len / secs:.0f} tokens/s, peak RSS {rss / 1e9:.2f} GB")


if __name__ == "__main__":
    main()
