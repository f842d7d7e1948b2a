//! What a [`super::Backprop::Blocks`] pass keeps alive: every block's graph from the forward
//! pass until the backward reaches it, so its memory is the sum over blocks of what each
//! block's backward needs. [`super::Backprop::Auto`] compares that sum with a budget before the
//! pass, so it is counted from the block's structure and the LoRA branches it carries, as Burn's
//! autodiff and our CPU kernels keep tensors: a product keeps its input only where the other
//! factor is tracked (a LoRA branch's A, not a frozen weight), the CPU's RMSNorm and SwiGLU
//! kernels keep their inputs alone, and the blocked attention keeps q, k, v, its output and
//! one log-sum-exp per row. Counted for the CPU backend, the only one where `auto` takes
//! the blocks pass.

use super::block::{Attention, Block, Mlp, Norm, Qkv};
use super::config::{Activation, ModelConfig};
use super::lora::LoraAdapter;
use super::CausalLm;

impl CausalLm {
    /// About the bytes of activations a [`super::Backprop::Blocks`] pass over `rows` sequences
    /// of `t` positions keeps on the CPU backend with `adapter`'s branches (f32). With LoRA on
    /// q/k/v/o this says 0.85 GB per 1,024 tokens at SmolLM2-135M's shape and 1.51 GB at
    /// Qwen2.5-0.5B's, where the measured growth of the peak, less the transients the
    /// layerwise pass has too, is 0.86 and 1.40 GB (docs/performance.md).
    pub fn kept_activations(&self, adapter: &LoraAdapter, rows: usize, t: usize) -> usize {
        let mut adapted = vec![false; self.linears.len()];
        for m in &adapter.modules {
            adapted[m.linear] = true;
        }
        let c = &self.config;
        let per_position: usize = self.body.blocks().iter().map(|b| b.kept(c, &adapted)).sum();
        4 * rows * t * per_position
    }
}

impl Block {
    /// Floats per position this block's backward keeps; `adapted[id]`: linear `id` has a
    /// LoRA branch.
    fn kept(&self, c: &ModelConfig, adapted: &[bool]) -> usize {
        let norms = [&self.attn_norm, &self.attn_out_norm, &self.mlp_norm, &self.mlp_out_norm];
        let norms: usize = norms.into_iter().flatten().map(|n| n.kept() * c.hidden).sum();
        norms + self.attn.kept(c.hidden, adapted) + self.mlp.kept(c, adapted)
    }
}

impl Norm {
    /// Inputs' widths kept: the CPU's RMSNorm kernel keeps its input (and a scale per row);
    /// LayerNorm's tensor operations the centred input and the normalised result.
    fn kept(&self) -> usize {
        match self {
            Norm::Rms { .. } => 1,
            Norm::Layer { .. } => 2,
        }
    }
}

impl Attention {
    fn kept(&self, hidden: usize, adapted: &[bool]) -> usize {
        let (q, kv) = (self.heads * self.head_dim, self.kv_heads * self.head_dim);
        let ids = match &self.qkv {
            Qkv::Separate { q, k, v } => vec![q.id, k.id, v.id],
            Qkv::Fused(l) | Qkv::PerHead(l) => vec![l.id],
        };
        // The normed input, read by the branches' A.
        let input = if ids.iter().any(|&i| adapted[i]) { hidden } else { 0 };
        // The q/k norms' inputs (through the RMSNorm kernel).
        let qk_norm = if self.qk_norm.is_some() { q + kv } else { 0 };
        // The output in heads' order, then its copy in positions' order for o's branch.
        let out = q + if adapted[self.o.id] { q } else { 0 };
        input + qk_norm + q + 2 * kv + out + self.heads
    }
}

impl Mlp {
    fn kept(&self, c: &ModelConfig, adapted: &[bool]) -> usize {
        let (hidden, i) = (c.hidden, c.intermediate);
        let branch = |ids: &[usize], width: usize| if ids.iter().any(|&i| adapted[i]) { width } else { 0 };
        match self {
            Mlp::Gated { gate, up, down, act } => {
                branch(&[gate.id, up.id], hidden) + gated_kept(*act) * i + branch(&[down.id], i)
            }
            Mlp::FusedGated { gate_up, down, intermediate, act } => {
                branch(&[gate_up.id], hidden) + gated_kept(*act) * intermediate + branch(&[down.id], *intermediate)
            }
            // The activation's input and the tensor operations' intermediates (GELU's is the
            // longer chain), then its output where the projection has a branch.
            Mlp::Plain { fc, proj, act } => {
                let act = if *act == Activation::Silu { 1 } else { 3 };
                branch(&[fc.id], hidden) + act * i + branch(&[proj.id], i)
            }
        }
    }
}

/// Widths of `act(gate)·up` kept: gate and up through the CPU's SwiGLU kernel; the activation's
/// tensor operations keep their input, their intermediates and the product's factors.
fn gated_kept(act: Activation) -> usize {
    match act {
        Activation::Silu => 2,
        Activation::GeluTanh | Activation::Gelu => 5,
    }
}
