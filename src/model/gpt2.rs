//! GPT-2: learned positions, pre-LayerNorm blocks, fused q/k/v `c_attn`, Conv1D weights
//! stored `[in, out]`, tied output embedding.

use burn::prelude::*;

use super::config::ModelConfig;
use super::lora::LoraRuntime;
use super::nn::{self, Linear, LinearBuilder};
use crate::error::Result;

struct Block {
    ln1_w: Tensor<1>,
    ln1_b: Tensor<1>,
    c_attn: Linear,
    c_proj: Linear,
    ln2_w: Tensor<1>,
    ln2_b: Tensor<1>,
    c_fc: Linear,
    mlp_proj: Linear,
}

/// The GPT-2 stack and tied head.
pub struct Gpt2 {
    cfg: ModelConfig,
    wte: Tensor<2>,
    wpe: Tensor<2>,
    blocks: Vec<Block>,
    lnf_w: Tensor<1>,
    lnf_b: Tensor<1>,
    lm_head: Tensor<2>,
}

impl Gpt2 {
    /// Builds the model; accepts names with or without the `transformer.` prefix.
    pub fn load(cfg: &ModelConfig, lb: &mut LinearBuilder<'_>) -> Result<Self> {
        let pre = if lb.weights.contains("wte.weight") { "" } else { "transformer." };
        let h = cfg.hidden;
        let wte_host = lb.weights.take(&format!("{pre}wte.weight"), &[cfg.vocab_size, h])?;
        let wpe_host = lb.weights.take(&format!("{pre}wpe.weight"), &[cfg.max_positions, h])?;
        let mut blocks = Vec::with_capacity(cfg.layers);
        for l in 0..cfg.layers {
            let p = format!("{pre}h.{l}");
            blocks.push(Block {
                ln1_w: lb.vector(&format!("{p}.ln_1.weight"), h)?,
                ln1_b: lb.vector(&format!("{p}.ln_1.bias"), h)?,
                c_attn: lb.conv1d(&format!("{p}.attn.c_attn"), h, 3 * h)?,
                c_proj: lb.conv1d(&format!("{p}.attn.c_proj"), h, h)?,
                ln2_w: lb.vector(&format!("{p}.ln_2.weight"), h)?,
                ln2_b: lb.vector(&format!("{p}.ln_2.bias"), h)?,
                c_fc: lb.conv1d(&format!("{p}.mlp.c_fc"), h, cfg.intermediate)?,
                mlp_proj: lb.conv1d(&format!("{p}.mlp.c_proj"), cfg.intermediate, h)?,
            });
        }
        let lnf_w = lb.vector(&format!("{pre}ln_f.weight"), h)?;
        let lnf_b = lb.vector(&format!("{pre}ln_f.bias"), h)?;
        // The original checkpoints keep a (tied) lm_head copy; skip it if present.
        let _ = lb.weights.take_opt("lm_head.weight", &[cfg.vocab_size, h])?;
        let wte: Tensor<2> = lb.param(&format!("{pre}wte.weight"), &wte_host, false);
        let wpe = lb.param(&format!("{pre}wpe.weight"), &wpe_host, false);
        let lm_head = wte.clone().transpose();
        Ok(Gpt2 { cfg: cfg.clone(), wte, wpe, blocks, lnf_w, lnf_b, lm_head })
    }

    /// Final hidden states `[B, T, H]` (after `ln_f`).
    pub fn hidden(&self, ids: Tensor<2, Int>, lora: Option<&LoraRuntime>) -> Tensor<3> {
        let [b, t] = ids.dims();
        let c = &self.cfg;
        let device = ids.device();
        let tok = self.wte.clone().select(0, ids.reshape([b * t])).reshape([b, t, c.hidden]);
        let pos = self.wpe.clone().narrow(0, 0, t).reshape([1, t, c.hidden]);
        let mut x = tok + pos;
        let mask = nn::causal_mask(t, &device);
        for blk in &self.blocks {
            let hn = nn::layer_norm(x.clone(), &blk.ln1_w, &blk.ln1_b, c.norm_eps);
            let qkv = blk.c_attn.forward(hn, lora);
            let q = nn::heads(qkv.clone().narrow(2, 0, c.hidden), c.heads, c.head_dim);
            let k = nn::heads(qkv.clone().narrow(2, c.hidden, c.hidden), c.heads, c.head_dim);
            let v = nn::heads(qkv.narrow(2, 2 * c.hidden, c.hidden), c.heads, c.head_dim);
            x = x + blk.c_proj.forward(nn::attention(q, k, v, &mask), lora);
            let hn = nn::layer_norm(x.clone(), &blk.ln2_w, &blk.ln2_b, c.norm_eps);
            x = x + blk.mlp_proj.forward(nn::gelu_tanh(blk.c_fc.forward(hn, lora)), lora);
        }
        nn::layer_norm(x, &self.lnf_w, &self.lnf_b, c.norm_eps)
    }

    /// The output projection `[H, V]`.
    pub fn lm_head(&self) -> &Tensor<2> {
        &self.lm_head
    }
}
