//! The transformer block the families share: a norm, attention, a norm, an MLP, each with a
//! residual. What differs between families is a choice inside each part (RMS or layer norm,
//! separate or fused q/k/v, rotary positions or none, gated SiLU or GELU MLP), not the code.

use burn::prelude::*;

use super::linear::{Linear, LoraRuntime};
use super::nn;
use super::positions::Positions;

/// A normalisation layer.
// Built once and never moved in bulk: boxing the larger variant would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum Norm {
    /// RMSNorm (Llama, Qwen2).
    Rms { w: Tensor<1>, eps: f64 },
    /// LayerNorm with bias (GPT-2).
    Layer { w: Tensor<1>, b: Tensor<1>, eps: f64 },
}

impl Norm {
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        match self {
            Norm::Rms { w, eps } => nn::rms_norm(x, w, *eps),
            Norm::Layer { w, b, eps } => nn::layer_norm(x, w, b, *eps),
        }
    }
}

/// The query, key and value projections.
// Built once and never moved in bulk: boxing the larger variant would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum Qkv {
    Separate {
        q: Linear,
        k: Linear,
        v: Linear,
    },
    /// One projection whose output is `[q | k | v]` (GPT-2's `c_attn`, Phi-3's `qkv_proj`).
    Fused(Linear),
}

/// Causal self-attention with grouped-query heads.
pub struct Attention {
    pub qkv: Qkv,
    pub o: Linear,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    /// Per-head RMSNorm weights of queries and keys, applied before RoPE (Qwen3), and its eps.
    pub qk_norm: Option<(Tensor<1>, Tensor<1>, f64)>,
}

impl Attention {
    pub fn forward(&self, x: Tensor<3>, pos: &Positions, lora: Option<&LoraRuntime>) -> Tensor<3> {
        let (hd, kv) = (self.head_dim, self.kv_heads);
        let (q, k, v) = match &self.qkv {
            Qkv::Separate { q, k, v } => (q.forward(x.clone(), lora), k.forward(x.clone(), lora), v.forward(x, lora)),
            Qkv::Fused(qkv) => {
                let y = qkv.forward(x, lora);
                let (qd, kd) = (self.heads * hd, kv * hd);
                (y.clone().narrow(2, 0, qd), y.clone().narrow(2, qd, kd), y.narrow(2, qd + kd, kd))
            }
        };
        let (mut q, mut k, v) = (nn::heads(q, self.heads, hd), nn::heads(k, kv, hd), nn::heads(v, kv, hd));
        if let Some((qn, kn, eps)) = &self.qk_norm {
            q = nn::rms_norm_heads(q, qn, *eps);
            k = nn::rms_norm_heads(k, kn, *eps);
        }
        if let Some((cos, sin)) = &pos.rope {
            q = nn::apply_rope(q, cos, sin);
            k = nn::apply_rope(k, cos, sin);
        }
        let rep = self.heads / kv;
        self.o.forward(nn::attention(q, nn::repeat_kv(k, rep), nn::repeat_kv(v, rep), &pos.mask), lora)
    }
}

/// The feed-forward part.
// Built once and never moved in bulk: boxing the larger variant would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum Mlp {
    /// `down(silu(gate(x)) · up(x))` (Llama, Qwen2).
    GatedSilu { gate: Linear, up: Linear, down: Linear },
    /// The same with gate and up fused in one projection whose output is `[gate | up]` (Phi-3's
    /// `gate_up_proj`, `intermediate` wide each).
    FusedGatedSilu { gate_up: Linear, down: Linear, intermediate: usize },
    /// `proj(gelu_tanh(fc(x)))` (GPT-2).
    GeluTanh { fc: Linear, proj: Linear },
}

impl Mlp {
    pub fn forward(&self, x: Tensor<3>, lora: Option<&LoraRuntime>) -> Tensor<3> {
        match self {
            Mlp::GatedSilu { gate, up, down } => {
                down.forward(nn::silu(gate.forward(x.clone(), lora)) * up.forward(x, lora), lora)
            }
            Mlp::FusedGatedSilu { gate_up, down, intermediate } => {
                let y = gate_up.forward(x, lora);
                let (gate, up) = (y.clone().narrow(2, 0, *intermediate), y.narrow(2, *intermediate, *intermediate));
                down.forward(up * nn::silu(gate), lora)
            }
            Mlp::GeluTanh { fc, proj } => proj.forward(nn::gelu_tanh(fc.forward(x, lora)), lora),
        }
    }
}

/// One pre-norm decoder block.
pub struct Block {
    pub attn_norm: Norm,
    pub attn: Attention,
    pub mlp_norm: Norm,
    pub mlp: Mlp,
}

impl Block {
    pub fn forward(&self, x: Tensor<3>, pos: &Positions, lora: Option<&LoraRuntime>) -> Tensor<3> {
        let x = x.clone() + self.attn.forward(self.attn_norm.forward(x), pos, lora);
        x.clone() + self.mlp.forward(self.mlp_norm.forward(x), lora)
    }
}
