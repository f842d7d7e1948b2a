//! The numeric building blocks shared by the architectures: norms, activations, rotary
//! embeddings and causal attention.

use burn::prelude::*;
use burn::tensor::activation;

use super::Matrix;

/// Rows `ids: [B, T]` of an embedding table `[V, H]` as f32 activations `[B, T, H]` (the table
/// may be kept in 16 bits, see [`super::half`], and in parts, see [`Matrix`]).
pub fn embedding(table: &Matrix, ids: Tensor<2, Int>) -> Tensor<3> {
    let [b, t] = ids.dims();
    let h = table.dims()[1];
    table.select(0, ids.reshape([b * t])).reshape([b, t, h])
}

/// Root-mean-square norm over the last dimension: of `[B, T, H]` (Llama, Qwen2), of `[B, H, T,
/// hd]` (Qwen3's per-head q/k norm). On the CPU backend through our kernel
/// ([`super::flex_norm`]), elsewhere by [`rms_norm_tensors`].
pub(crate) fn rms_norm<const D: usize>(x: Tensor<D>, w: &Tensor<1>, eps: f64) -> Tensor<D> {
    #[cfg(not(target_family = "wasm"))]
    if let Some(y) = super::flex_norm::rms_norm(&x, w, eps) {
        return y;
    }
    rms_norm_tensors(x, w, eps)
}

/// [`rms_norm`] by tensor operations.
pub(crate) fn rms_norm_tensors<const D: usize>(x: Tensor<D>, w: &Tensor<1>, eps: f64) -> Tensor<D> {
    let mut shape = [1; D];
    shape[D - 1] = w.dims()[0];
    let inv = x.clone().square().mean_dim(D - 1).add_scalar(eps).sqrt().recip();
    x * inv * w.clone().reshape(shape)
}

/// Layer norm with bias (GPT-2).
pub(crate) fn layer_norm(x: Tensor<3>, w: &Tensor<1>, b: &Tensor<1>, eps: f64) -> Tensor<3> {
    let d = w.dims()[0];
    let centered = x.clone() - x.mean_dim(2);
    let var = centered.clone().square().mean_dim(2);
    centered / var.add_scalar(eps).sqrt() * w.clone().reshape([1, 1, d]) + b.clone().reshape([1, 1, d])
}

/// GPT-2's `gelu_new`: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
pub(crate) fn gelu_tanh(x: Tensor<3>) -> Tensor<3> {
    let c = (2.0f64 / std::f64::consts::PI).sqrt();
    let inner = (x.clone() + x.clone().powi_scalar(3).mul_scalar(0.044715)).mul_scalar(c);
    x.clone().mul_scalar(0.5) * activation::tanh(inner).add_scalar(1.0)
}

/// Exact GELU, `0.5·x·(1 + erf(x/√2))` (GPT-NeoX's `gelu`), written with `erf` so autodiff
/// differentiates it exactly: Burn's fused `gelu` has a backward that differentiates the tanh
/// approximation on some backends (measured on wgpu: LoRA gradients off by 1e-4 relative).
pub fn gelu(x: Tensor<3>) -> Tensor<3> {
    let cdf = x.clone().div_scalar(std::f64::consts::SQRT_2).erf().add_scalar(1.0).mul_scalar(0.5);
    x * cdf
}

/// SiLU.
pub fn silu(x: Tensor<3>) -> Tensor<3> {
    activation::silu(x)
}

/// `x·cos + rotate_half(x)·sin` on `[B, H, T, hd]`, with `cos, sin: [1 or B, 1, T, r]`.
/// With `r < hd` (Phi-3's `partial_rotary_factor`) only the first `r` features of each head
/// rotate and the rest pass through, as Transformers splits them. On the CPU backend through our
/// kernel ([`super::flex_rope`]), elsewhere by [`apply_rope_tensors`].
pub(crate) fn apply_rope(x: Tensor<4>, cos: &Tensor<4>, sin: &Tensor<4>) -> Tensor<4> {
    #[cfg(not(target_family = "wasm"))]
    if let Some(y) = super::flex_rope::apply_rope(&x, cos, sin) {
        return y;
    }
    apply_rope_tensors(x, cos, sin)
}

/// [`apply_rope`] by tensor operations.
pub(crate) fn apply_rope_tensors(x: Tensor<4>, cos: &Tensor<4>, sin: &Tensor<4>) -> Tensor<4> {
    let (hd, r) = (x.dims()[3], cos.dims()[3]);
    let (rot, pass) = if r < hd { (x.clone().narrow(3, 0, r), Some(x.narrow(3, r, hd - r))) } else { (x, None) };
    let half = r / 2;
    let x1 = rot.clone().narrow(3, 0, half);
    let x2 = rot.clone().narrow(3, half, half);
    let rotated = Tensor::cat(vec![x2.neg(), x1], 3);
    let y = rot * cos.clone() + rotated * sin.clone();
    match pass {
        Some(pass) => Tensor::cat(vec![y, pass], 3),
        None => y,
    }
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
pub(crate) fn causal_mask(t: usize, window: Option<usize>, device: &Device) -> Tensor<4> {
    let seen = |i: usize, j: usize| j <= i && window.is_none_or(|w| i - j < w);
    let v: Vec<f32> = (0..t * t).map(|k| if seen(k / t, k % t) { 0.0 } else { -1e9 }).collect();
    Tensor::from_data(TensorData::new(v, [1, 1, t, t]), device)
}

/// `cap · tanh(x / cap)`: Gemma-2's soft-capping of attention scores and final logits.
pub(crate) fn soft_cap<const D: usize>(x: Tensor<D>, cap: f64) -> Tensor<D> {
    activation::tanh(x.div_scalar(cap)).mul_scalar(cap)
}

/// Softmax attention over `q, k, v: [B, H, T, hd]` with scores `q·kᵀ·scale` (soft-capped at
/// `softcap` when given) plus `mask`, returned as `[B, H, T, hd]`.
pub fn attention(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    mask: &Tensor<4>,
    scale: f64,
    softcap: Option<f64>,
) -> Tensor<4> {
    let mut scores = q.matmul(k.swap_dims(2, 3)).mul_scalar(scale);
    if let Some(cap) = softcap {
        scores = soft_cap(scores, cap);
    }
    let scores = scores + mask.clone();
    let p = activation::softmax(scores, 3);
    p.matmul(v)
}
