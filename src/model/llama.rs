//! Llama-family decoder (Llama, Mistral, SmolLM, TinyLlama) and Qwen2 (same, with q/k/v bias,
//! which [`Linear`] picks up when the checkpoint has it). Parameter names follow HF.

use burn::prelude::*;

use super::config::ModelConfig;
use super::lora::LoraRuntime;
use super::nn::{self, Linear, LinearBuilder};
use crate::error::Result;

struct Block {
    input_norm: Tensor<1>,
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    post_norm: Tensor<1>,
    gate: Linear,
    up: Linear,
    down: Linear,
}

/// The decoder stack and head.
pub struct Llama {
    cfg: ModelConfig,
    embed: Tensor<2>,
    blocks: Vec<Block>,
    norm: Tensor<1>,
    lm_head: Tensor<2>,
}

impl Llama {
    /// Builds the model from checkpoint tensors.
    pub fn load(cfg: &ModelConfig, lb: &mut LinearBuilder<'_>) -> Result<Self> {
        let (h, hd) = (cfg.hidden, cfg.head_dim);
        let embed_host = lb.weights.take("model.embed_tokens.weight", &[cfg.vocab_size, h])?;
        let mut blocks = Vec::with_capacity(cfg.layers);
        for l in 0..cfg.layers {
            let p = format!("model.layers.{l}");
            blocks.push(Block {
                input_norm: lb.vector(&format!("{p}.input_layernorm.weight"), h)?,
                q: lb.linear(&format!("{p}.self_attn.q_proj"), h, cfg.heads * hd)?,
                k: lb.linear(&format!("{p}.self_attn.k_proj"), h, cfg.kv_heads * hd)?,
                v: lb.linear(&format!("{p}.self_attn.v_proj"), h, cfg.kv_heads * hd)?,
                o: lb.linear(&format!("{p}.self_attn.o_proj"), cfg.heads * hd, h)?,
                post_norm: lb.vector(&format!("{p}.post_attention_layernorm.weight"), h)?,
                gate: lb.linear(&format!("{p}.mlp.gate_proj"), h, cfg.intermediate)?,
                up: lb.linear(&format!("{p}.mlp.up_proj"), h, cfg.intermediate)?,
                down: lb.linear(&format!("{p}.mlp.down_proj"), cfg.intermediate, h)?,
            });
        }
        let norm = lb.vector("model.norm.weight", h)?;
        let embed: Tensor<2> = lb.param("model.embed_tokens.weight", &embed_host, false);
        let lm_head = if cfg.tie_embeddings && !lb.weights.contains("lm_head.weight") {
            // Tied: one tensor (one leaf, when training) serves both ends.
            embed.clone().transpose()
        } else {
            lb.param("lm_head.weight", &lb.weights.take("lm_head.weight", &[cfg.vocab_size, h])?.transposed(), true)
        };
        Ok(Llama { cfg: cfg.clone(), embed, blocks, norm, lm_head })
    }

    /// Final hidden states `[B, T, H]` (after the last norm).
    pub fn hidden(&self, ids: Tensor<2, Int>, lora: Option<&LoraRuntime>) -> Tensor<3> {
        let [b, t] = ids.dims();
        let c = &self.cfg;
        let device = ids.device();
        let mut x = self.embed.clone().select(0, ids.reshape([b * t])).reshape([b, t, c.hidden]);
        let (cos, sin) = nn::rope_tables(t, c.head_dim, c.rope_theta, c.dtype, &device);
        let mask = nn::causal_mask(t, &device);
        for blk in &self.blocks {
            let hn = nn::rms_norm(x.clone(), &blk.input_norm, c.norm_eps);
            let q = nn::apply_rope(nn::heads(blk.q.forward(hn.clone(), lora), c.heads, c.head_dim), &cos, &sin);
            let k = nn::apply_rope(nn::heads(blk.k.forward(hn.clone(), lora), c.kv_heads, c.head_dim), &cos, &sin);
            let v = nn::heads(blk.v.forward(hn, lora), c.kv_heads, c.head_dim);
            let rep = c.heads / c.kv_heads;
            let a = nn::attention(q, nn::repeat_kv(k, rep), nn::repeat_kv(v, rep), &mask);
            x = x + blk.o.forward(a, lora);
            let hn = nn::rms_norm(x.clone(), &blk.post_norm, c.norm_eps);
            let act = nn::silu(blk.gate.forward(hn.clone(), lora)) * blk.up.forward(hn, lora);
            x = x + blk.down.forward(act, lora);
        }
        nn::rms_norm(x, &self.norm, c.norm_eps)
    }

    /// The output projection `[H, V]`.
    pub fn lm_head(&self) -> &Tensor<2> {
        &self.lm_head
    }
}
