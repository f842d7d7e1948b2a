//! The numeric building blocks shared by the architectures: norms, activations, rotary
//! embeddings and causal attention.

use burn::prelude::*;
use burn::tensor::activation;

use super::config::{FloatKind, RopeScaling};

/// Root-mean-square norm over the last dimension of `[B, H, T, hd]` (Qwen3's per-head q/k norm).
pub fn rms_norm_heads(x: Tensor<4>, w: &Tensor<1>, eps: f64) -> Tensor<4> {
    let d = w.dims()[0];
    let inv = x.clone().square().mean_dim(3).add_scalar(eps).sqrt().recip();
    x * inv * w.clone().reshape([1, 1, 1, d])
}

/// Root-mean-square norm (Llama, Qwen2).
pub fn rms_norm(x: Tensor<3>, w: &Tensor<1>, eps: f64) -> Tensor<3> {
    let d = w.dims()[0];
    let inv = x.clone().square().mean_dim(2).add_scalar(eps).sqrt().recip();
    x * inv * w.clone().reshape([1, 1, d])
}

/// Layer norm with bias (GPT-2).
pub fn layer_norm(x: Tensor<3>, w: &Tensor<1>, b: &Tensor<1>, eps: f64) -> Tensor<3> {
    let d = w.dims()[0];
    let centered = x.clone() - x.mean_dim(2);
    let var = centered.clone().square().mean_dim(2);
    centered / var.add_scalar(eps).sqrt() * w.clone().reshape([1, 1, d]) + b.clone().reshape([1, 1, d])
}

/// GPT-2's `gelu_new`: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
pub fn gelu_tanh(x: Tensor<3>) -> Tensor<3> {
    let c = (2.0f64 / std::f64::consts::PI).sqrt();
    let inner = (x.clone() + x.clone().powi_scalar(3).mul_scalar(0.044715)).mul_scalar(c);
    x.clone().mul_scalar(0.5) * activation::tanh(inner).add_scalar(1.0)
}

/// SiLU.
pub fn silu(x: Tensor<3>) -> Tensor<3> {
    activation::silu(x)
}

/// Rotary tables for HF's rotate-half convention: `cos, sin: [1, 1, T, head_dim]`.
///
/// The inverse frequencies are rounded to `inv_freq_dtype`: Transformers keeps them in a
/// buffer that takes the checkpoint's dtype when a bf16/f16 model is loaded, so a bf16 Qwen2
/// rotates by bf16-rounded frequencies (measured: without this, logits drift by ~1e-4).
pub fn rope_tables(
    t: usize,
    head_dim: usize,
    theta: f64,
    scaling: RopeScaling,
    inv_freq_dtype: FloatKind,
    device: &Device,
) -> (Tensor<4>, Tensor<4>) {
    let half = head_dim / 2;
    let inv: Vec<f64> = (0..half)
        .map(|i| {
            let f = scaling.apply(1.0f32 / (theta as f32).powf((2 * i) as f32 / head_dim as f32));
            match inv_freq_dtype {
                FloatKind::F32 => f as f64,
                FloatKind::Bf16 => half::bf16::from_f32(f).to_f64(),
                FloatKind::F16 => half::f16::from_f32(f).to_f64(),
            }
        })
        .collect();
    let mut cos = vec![0f32; t * head_dim];
    let mut sin = vec![0f32; t * head_dim];
    for p in 0..t {
        for (i, f) in inv.iter().enumerate() {
            let ang = p as f64 * f;
            for j in [i, i + half] {
                cos[p * head_dim + j] = ang.cos() as f32;
                sin[p * head_dim + j] = ang.sin() as f32;
            }
        }
    }
    let mk = |v: Vec<f32>| Tensor::<4>::from_data(TensorData::new(v, [1, 1, t, head_dim]), device);
    (mk(cos), mk(sin))
}

/// `x·cos + rotate_half(x)·sin` on `[B, H, T, hd]`.
pub fn apply_rope(x: Tensor<4>, cos: &Tensor<4>, sin: &Tensor<4>) -> Tensor<4> {
    let hd = x.dims()[3];
    let half = hd / 2;
    let x1 = x.clone().narrow(3, 0, half);
    let x2 = x.clone().narrow(3, half, half);
    let rotated = Tensor::cat(vec![x2.neg(), x1], 3);
    x * cos.clone() + rotated * sin.clone()
}

/// Splits `[B, T, n·hd]` into heads `[B, n, T, hd]`.
pub fn heads(x: Tensor<3>, n: usize, hd: usize) -> Tensor<4> {
    let [b, t, _] = x.dims();
    x.reshape([b, t, n, hd]).swap_dims(1, 2)
}

/// Repeats each of `kv` heads `rep` times (grouped-query attention; head h reads kv head h / rep).
pub fn repeat_kv(x: Tensor<4>, rep: usize) -> Tensor<4> {
    if rep == 1 {
        return x;
    }
    let [b, kv, t, hd] = x.dims();
    x.unsqueeze_dim::<5>(2).expand([b, kv, rep, t, hd]).reshape([b, kv * rep, t, hd])
}

/// Additive causal mask `[1, 1, T, T]`: 0 where query i may see key j (j ≤ i, and with a
/// sliding `window`, i − j < window, as Transformers' sliding-window mask), -1e9 elsewhere.
pub fn causal_mask(t: usize, window: Option<usize>, device: &Device) -> Tensor<4> {
    let seen = |i: usize, j: usize| j <= i && window.is_none_or(|w| i - j < w);
    let v: Vec<f32> = (0..t * t).map(|k| if seen(k / t, k % t) { 0.0 } else { -1e9 }).collect();
    Tensor::from_data(TensorData::new(v, [1, 1, t, t]), device)
}

/// `cap · tanh(x / cap)`: Gemma-2's soft-capping of attention scores and final logits.
pub fn soft_cap<const D: usize>(x: Tensor<D>, cap: f64) -> Tensor<D> {
    activation::tanh(x.div_scalar(cap)).mul_scalar(cap)
}

/// Softmax attention over `q, k, v: [B, H, T, hd]` with scores `q·kᵀ·scale` (soft-capped at
/// `softcap` when given) plus `mask`, returned as `[B, T, H·hd]`.
pub fn attention(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    mask: &Tensor<4>,
    scale: f64,
    softcap: Option<f64>,
) -> Tensor<3> {
    let [b, h, t, hd] = q.dims();
    let mut scores = q.matmul(k.swap_dims(2, 3)).mul_scalar(scale);
    if let Some(cap) = softcap {
        scores = soft_cap(scores, cap);
    }
    let scores = scores + mask.clone();
    let p = activation::softmax(scores, 3);
    p.matmul(v).swap_dims(1, 2).reshape([b, t, h * hd])
}
