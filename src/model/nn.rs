//! The building blocks shared by the architectures: linear layers with an optional LoRA
//! branch, norms, rotary embeddings and causal attention. Weights are plain tensors (no Burn
//! `Module`): loading is a direct copy from the checkpoint. Selection only ever differentiates the
//! LoRA matrices; training the embedded base model loads the weights as gradient leaves instead
//! ([`Leaf`]).

use burn::prelude::*;
use burn::tensor::activation;

use super::config::FloatKind;
use super::lora::LoraRuntime;
use super::weights::{HostTensor, Weights};
use crate::error::Result;

/// Uploads a host tensor.
pub fn upload<const D: usize>(t: &HostTensor, device: &Device) -> Tensor<D> {
    Tensor::from_data(TensorData::new(t.data.clone(), t.shape.clone()), device)
}

/// Name, shape and index of a linear (or Conv1D) module: the places LoRA can attach.
#[derive(Debug, Clone)]
pub struct LinearInfo {
    pub name: String,
    pub d_in: usize,
    pub d_out: usize,
}

/// `y = x·W + b (+ s·x·A·B)`, W stored `[in, out]`.
pub struct Linear {
    pub id: usize,
    w: Tensor<2>,
    b: Option<Tensor<1>>,
    d_out: usize,
}

/// A checkpoint tensor uploaded as a gradient leaf, for full-parameter training. Vectors are
/// leaves of shape `[1, n]`; linear weights are stored `[in, out]`, the transpose of HF's
/// `nn.Linear`, which `transposed` records.
pub struct Leaf {
    pub name: String,
    pub tensor: Tensor<2>,
    pub transposed: bool,
}

/// Collects linear modules while a model is built, so LoRA targets can be matched by name.
pub struct LinearBuilder<'a> {
    pub weights: &'a Weights,
    pub device: &'a Device,
    pub infos: Vec<LinearInfo>,
    /// Upload every weight as a gradient leaf (recorded in `leaves`).
    pub trainable: bool,
    pub leaves: Vec<Leaf>,
}

impl<'a> LinearBuilder<'a> {
    /// A PyTorch `nn.Linear` (`weight [out, in]`).
    pub fn linear(&mut self, name: &str, d_in: usize, d_out: usize) -> Result<Linear> {
        let w = self.weights.take(&format!("{name}.weight"), &[d_out, d_in])?.transposed();
        self.finish(name, w, true, d_in, d_out)
    }

    /// A GPT-2 `Conv1D` (`weight [in, out]`).
    pub fn conv1d(&mut self, name: &str, d_in: usize, d_out: usize) -> Result<Linear> {
        let w = self.weights.take(&format!("{name}.weight"), &[d_in, d_out])?;
        self.finish(name, w, false, d_in, d_out)
    }

    fn finish(&mut self, name: &str, w: HostTensor, transposed: bool, d_in: usize, d_out: usize) -> Result<Linear> {
        let w = self.param(&format!("{name}.weight"), &w, transposed);
        let b = self
            .weights
            .take_opt(&format!("{name}.bias"), &[d_out])?
            .map(|b| self.param(&format!("{name}.bias"), &b, false));
        let id = self.infos.len();
        self.infos.push(LinearInfo { name: name.to_string(), d_in, d_out });
        Ok(Linear { id, w, b, d_out })
    }

    /// A 1-D tensor (norm weight or bias).
    pub fn vector(&mut self, name: &str, n: usize) -> Result<Tensor<1>> {
        let t = self.weights.take(name, &[n])?;
        Ok(self.param(name, &t, false))
    }

    /// Uploads checkpoint tensor `name` (already transposed to our layout when `transposed`):
    /// a constant, or a gradient leaf when the model is built for training.
    pub fn param<const D: usize>(&mut self, name: &str, t: &HostTensor, transposed: bool) -> Tensor<D> {
        if !self.trainable {
            return upload(t, self.device);
        }
        let (rows, cols) = match t.shape[..] {
            [n] => (1, n),
            [r, c] => (r, c),
            _ => unreachable!("weights are vectors or matrices"),
        };
        let leaf = Tensor::<2>::from_data(TensorData::new(t.data.clone(), [rows, cols]), self.device).require_grad();
        self.leaves.push(Leaf { name: name.to_string(), tensor: leaf.clone(), transposed });
        leaf.reshape(Shape::from(t.shape.clone()))
    }
}

impl Linear {
    /// Applies the layer to `x: [B, T, in]`.
    pub fn forward(&self, x: Tensor<3>, lora: Option<&LoraRuntime>) -> Tensor<3> {
        let [b, t, d_in] = x.dims();
        let mut y = x.clone().reshape([b * t, d_in]).matmul(self.w.clone()).reshape([b, t, self.d_out]);
        if let Some(bias) = &self.b {
            y = y + bias.clone().reshape([1, 1, self.d_out]);
        }
        if let Some(branch) = lora.and_then(|l| l.branch(self.id)) {
            // [B,T,in]·[B,in,r]·[B,r,out]: one adapter copy per sequence, so that per-example
            // copies receive per-example gradients.
            y = y + x.matmul(branch.a.clone()).matmul(branch.b.clone()).mul_scalar(branch.scale);
        }
        y
    }
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
    inv_freq_dtype: FloatKind,
    device: &Device,
) -> (Tensor<4>, Tensor<4>) {
    let half = head_dim / 2;
    let inv: Vec<f64> = (0..half)
        .map(|i| {
            let f = 1.0f32 / (theta as f32).powf((2 * i) as f32 / head_dim as f32);
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

/// Additive causal mask `[1, 1, T, T]`: 0 on and below the diagonal, -1e9 above.
pub fn causal_mask(t: usize, device: &Device) -> Tensor<4> {
    let v: Vec<f32> = (0..t * t).map(|k| if k % t > k / t { -1e9 } else { 0.0 }).collect();
    Tensor::from_data(TensorData::new(v, [1, 1, t, t]), device)
}

/// Softmax attention over `q, k, v: [B, H, T, hd]`, returned as `[B, T, H·hd]`.
pub fn attention(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, mask: &Tensor<4>) -> Tensor<3> {
    let [b, h, t, hd] = q.dims();
    let scores = q.matmul(k.swap_dims(2, 3)).mul_scalar(1.0 / (hd as f64).sqrt()) + mask.clone();
    let p = activation::softmax(scores, 3);
    p.matmul(v).swap_dims(1, 2).reshape([b, t, h * hd])
}
