//! The transformer block the families share: a norm, attention, a norm, an MLP, each with a
//! residual (Gemma-2 adds a norm after each). What differs between families is a choice inside
//! each part (RMS or layer norm, separate or fused q/k/v, rotary positions or none, a sliding
//! window, soft-capping, the MLP's activation), not the code.

use burn::prelude::*;

use super::blocked_attention;
use super::config::Activation;
use super::linear::{Linear, LoraRuntime};
use super::nn;
use super::positions::Positions;

/// A normalisation layer.
// Built once and never moved in bulk: boxing the larger variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
pub(crate) enum Norm {
    /// RMSNorm (Llama, Qwen2; Gemma's `1 + w` is folded into `w` at load).
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

/// RMSNorm weights of queries and keys: per head (`[head_dim]`, Qwen3, Gemma-3) or over the
/// whole projection before the split into heads (`[heads × head_dim]`, OLMo-2).
pub(crate) struct QkNorms {
    pub q: Tensor<1>,
    pub k: Tensor<1>,
    pub eps: f64,
    pub per_head: bool,
}

/// The query, key and value projections.
// Built once and never moved in bulk: boxing the larger variant would buy nothing.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Qkv {
    Separate {
        q: Linear,
        k: Linear,
        v: Linear,
    },
    /// One projection whose output is `[q | k | v]` (GPT-2's `c_attn`, Phi-3's `qkv_proj`).
    Fused(Linear),
    /// One projection whose output is, head by head, `[q_h | k_h | v_h]` (GPT-NeoX's
    /// `query_key_value`).
    PerHead(Linear),
}

/// Causal self-attention with grouped-query heads.
pub(crate) struct Attention {
    pub qkv: Qkv,
    pub o: Linear,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    /// RMSNorm of queries and keys, applied before RoPE.
    pub qk_norm: Option<QkNorms>,
    /// Whether queries and keys rotate (SmolLM3's NoPE layers do not).
    pub rope: bool,
    /// Scores are `q·kᵀ·scale`: 1/√head_dim, or Gemma's `query_pre_attn_scalar^-1/2`.
    pub scale: f64,
    /// Gemma-2's attention soft-cap.
    pub softcap: Option<f64>,
    /// A sliding-window layer (uses the window mask, and the window's RoPE where it has its own).
    pub sliding: bool,
}

/// How a block computes attention from its queries, keys and values.
// One is made per block call and moved once: boxing the larger variant would buy nothing.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Attend<'a> {
    /// Through whole `[B, H, T, T]` score tensors when any of q, k, v is tracked (autodiff
    /// differentiates them), else a block of queries at a time ([`blocked_attention::forward`]): the same
    /// values with memory linear in T.
    Auto,
    /// Blocked on the values of q, k and v (nothing of them tracked: a pass on values), its
    /// result kept in the slot for a later [`Attend::Recorded`] of the same block on the same
    /// input.
    Keep(&'a mut Option<blocked_attention::Attended>),
    /// Attention's result as [`Attend::Keep`] computed it (not computed again), with q, k, v
    /// projected again (tracked) and kept for [`blocked_attention::backward`]; the output
    /// continues as a fresh gradient leaf.
    Recorded(blocked_attention::Attended, &'a mut Option<Recorded>),
    /// Blocked on the values of q, k and v as [`Attend::Keep`], with q, k, v (tracked) and the
    /// result kept as [`Attend::Recorded`] keeps them: the block's graph is the one a recompute
    /// would build, without the recompute.
    Record(&'a mut Option<Recorded>),
}

/// What [`Attend::Recorded`] keeps of one layer's attention.
pub(crate) struct Recorded {
    /// `[B, H, T, hd]`, tracked back to the layer's input and LoRA weights.
    pub q: Tensor<4>,
    /// `[B, KV, T, hd]`, tracked.
    pub k: Tensor<4>,
    /// `[B, KV, T, hd]`, tracked.
    pub v: Tensor<4>,
    /// The attention output `[B, H, T, hd]` as a gradient leaf: ∂L/∂out is read from it after
    /// the backward pass.
    pub out: Tensor<4>,
    /// Its values and log-sum-exps, for the backward.
    pub attended: blocked_attention::Attended,
}

impl Attention {
    /// Queries `[B, H, T, hd]`, keys and values `[B, KV, T, hd]` of the (normed) input:
    /// projected, normed where the family norms them, and rotated.
    fn project(&self, x: Tensor<3>, pos: &Positions, lora: Option<&LoraRuntime>) -> (Tensor<4>, Tensor<4>, Tensor<4>) {
        let (hd, kv) = (self.head_dim, self.kv_heads);
        let (q, k, v) = match &self.qkv {
            Qkv::Separate { q, k, v } => (q.forward(x.clone(), lora), k.forward(x.clone(), lora), v.forward(x, lora)),
            Qkv::Fused(qkv) => {
                let y = qkv.forward(x, lora);
                let (qd, kd) = (self.heads * hd, kv * hd);
                (y.clone().narrow(2, 0, qd), y.clone().narrow(2, qd, kd), y.narrow(2, qd + kd, kd))
            }
            Qkv::PerHead(qkv) => {
                let y = qkv.forward(x, lora);
                let [b, t, _] = y.dims();
                let y = y.reshape([b, t, self.heads, 3 * hd]);
                let part = |i: usize| y.clone().narrow(3, i * hd, hd).reshape([b, t, self.heads * hd]);
                (part(0), part(1), part(2))
            }
        };
        let (q, k) = match &self.qk_norm {
            Some(QkNorms { q: qn, k: kn, eps, per_head: false }) => {
                (nn::rms_norm(q, qn, *eps), nn::rms_norm(k, kn, *eps))
            }
            _ => (q, k),
        };
        let (mut q, mut k, v) = (nn::heads(q, self.heads, hd), nn::heads(k, kv, hd), nn::heads(v, kv, hd));
        if let Some(QkNorms { q: qn, k: kn, eps, per_head: true }) = &self.qk_norm {
            q = nn::rms_norm(q, qn, *eps);
            k = nn::rms_norm(k, kn, *eps);
        }
        let rope = match (&pos.window_rope, self.sliding) {
            (Some(window_rope), true) => Some(window_rope),
            _ => pos.rope.as_ref(),
        };
        if let Some((cos, sin)) = rope.filter(|_| self.rope) {
            q = nn::apply_rope(q, cos, sin);
            k = nn::apply_rope(k, cos, sin);
        }
        (q, k, v)
    }

    /// The keys this layer's queries see (within the window on sliding layers).
    pub fn causal(&self, pos: &Positions) -> blocked_attention::Causal {
        match (&pos.window_causal, self.sliding) {
            (Some(window), true) => window.clone(),
            _ => pos.causal.clone(),
        }
    }

    pub fn forward(&self, x: Tensor<3>, pos: &Positions, lora: Option<&LoraRuntime>, attend: Attend<'_>) -> Tensor<3> {
        let (q, k, v) = self.project(x, pos, lora);
        let [b, h, t, hd] = q.dims();
        let causal = self.causal(pos);
        // On values (nothing tracked reaches it); the output goes back to the kind of device q
        // is on.
        let autodiff = q.is_autodiff();
        let on_kind = |out: Tensor<4>| if autodiff { out.autodiff() } else { out };
        let blocked = |q: Tensor<4>, k: Tensor<4>, v: Tensor<4>| {
            let values = |x: Tensor<4>| x.without_autodiff();
            blocked_attention::forward(
                blocked_attention::BLOCK,
                values(q),
                values(k),
                values(v),
                &causal.values(),
                self.scale,
                self.softcap,
            )
        };
        let a = match attend {
            Attend::Auto if q.is_tracked() || k.is_tracked() || v.is_tracked() => {
                let rep = h / self.kv_heads;
                nn::attention(q, nn::repeat_kv(k, rep), nn::repeat_kv(v, rep), &causal.mask, self.scale, self.softcap)
            }
            Attend::Auto => on_kind(blocked(q, k, v).out),
            Attend::Keep(slot) => {
                let attended = blocked(q, k, v);
                let out = on_kind(attended.out.clone());
                *slot = Some(attended);
                out
            }
            Attend::Recorded(attended, slot) => record(q, k, v, attended, slot),
            Attend::Record(slot) => {
                let attended = blocked(q.clone(), k.clone(), v.clone());
                record(q, k, v, attended, slot)
            }
        };
        self.o.forward(a.swap_dims(1, 2).reshape([b, t, h * hd]), lora)
    }
}

/// Attention's output as a fresh gradient leaf, with what its backward needs kept in `slot`.
fn record(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    attended: blocked_attention::Attended,
    slot: &mut Option<Recorded>,
) -> Tensor<4> {
    let out = attended.out.clone().autodiff().require_grad();
    *slot = Some(Recorded { q, k, v, out: out.clone(), attended });
    out
}

/// `act(x)`.
fn activate(act: Activation, x: Tensor<3>) -> Tensor<3> {
    match act {
        Activation::Silu => nn::silu(x),
        Activation::GeluTanh => nn::gelu_tanh(x),
        Activation::Gelu => nn::gelu(x),
    }
}

/// `act(gate)·up`: on the CPU backend SiLU's through our kernel ([`super::flex_gated`]).
fn gated(act: Activation, gate: Tensor<3>, up: Tensor<3>) -> Tensor<3> {
    #[cfg(not(target_family = "wasm"))]
    if act == Activation::Silu {
        if let Some(h) = super::flex_gated::silu_gated(&gate, &up) {
            return h;
        }
    }
    activate(act, gate) * up
}

/// The feed-forward part.
// Built once and never moved in bulk: boxing the larger variant would buy nothing.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Mlp {
    /// `down(act(gate(x)) · up(x))` (Llama, Qwen2: SiLU; Gemma: GELU-tanh).
    Gated { gate: Linear, up: Linear, down: Linear, act: Activation },
    /// The same with gate and up fused in one projection whose output is `[gate | up]` (Phi-3's
    /// `gate_up_proj`, `intermediate` wide each).
    FusedGated { gate_up: Linear, down: Linear, intermediate: usize, act: Activation },
    /// `proj(act(fc(x)))` (GPT-2: GELU-tanh; GPT-NeoX: exact GELU).
    Plain { fc: Linear, proj: Linear, act: Activation },
}

impl Mlp {
    pub fn forward(&self, x: Tensor<3>, lora: Option<&LoraRuntime>) -> Tensor<3> {
        match self {
            Mlp::Gated { gate, up, down, act } => {
                down.forward(gated(*act, gate.forward(x.clone(), lora), up.forward(x, lora)), lora)
            }
            Mlp::FusedGated { gate_up, down, intermediate, act } => {
                let y = gate_up.forward(x, lora);
                let (gate, up) = (y.clone().narrow(2, 0, *intermediate), y.narrow(2, *intermediate, *intermediate));
                down.forward(gated(*act, gate, up), lora)
            }
            Mlp::Plain { fc, proj, act } => proj.forward(activate(*act, fc.forward(x, lora)), lora),
        }
    }
}

/// One decoder block.
pub(crate) struct Block {
    /// Attention and MLP side by side on the block's input (GPT-NeoX): `x + attn(n₁(x)) +
    /// mlp(n₂(x))`.
    pub parallel: bool,
    /// The norm before attention (all but OLMo-2).
    pub attn_norm: Option<Norm>,
    pub attn: Attention,
    /// Gemma-2's and OLMo-2's norm of the attention output, before the residual.
    pub attn_out_norm: Option<Norm>,
    /// The norm before the MLP (all but OLMo-2).
    pub mlp_norm: Option<Norm>,
    pub mlp: Mlp,
    /// Gemma-2's and OLMo-2's norm of the MLP output, before the residual.
    pub mlp_out_norm: Option<Norm>,
    /// Each branch's output is multiplied by this before it is added (Granite; 1 elsewhere).
    pub residual_scale: f64,
}

impl Block {
    pub fn forward(&self, x: Tensor<3>, pos: &Positions, lora: Option<&LoraRuntime>, attend: Attend<'_>) -> Tensor<3> {
        let norm = |norm: &Option<Norm>, y: Tensor<3>| match norm {
            Some(n) => n.forward(y),
            None => y,
        };
        // A branch's output: normed where the family norms it, then scaled (Granite).
        let out = |n: &Option<Norm>, y: Tensor<3>| match self.residual_scale {
            1.0 => norm(n, y),
            s => norm(n, y).mul_scalar(s),
        };
        let attn = out(&self.attn_out_norm, self.attn.forward(norm(&self.attn_norm, x.clone()), pos, lora, attend));
        if self.parallel {
            return x.clone() + attn + out(&self.mlp_out_norm, self.mlp.forward(norm(&self.mlp_norm, x), lora));
        }
        let x = x + attn;
        x.clone() + out(&self.mlp_out_norm, self.mlp.forward(norm(&self.mlp_norm, x), lora))
    }
}
