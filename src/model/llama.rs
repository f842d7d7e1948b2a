//! Llama-family decoder (Llama 1–3 with RoPE scaling, Mistral with its sliding window, SmolLM,
//! TinyLlama), Qwen2 (q/k/v bias, which [`Linear`](super::linear::Linear) picks up when the
//! checkpoint has it), Qwen3 (per-head q/k RMSNorm) and Phi-3 (fused `qkv_proj` and
//! `gate_up_proj`): RMSNorm, rotary positions, grouped-query attention, gated SiLU MLP.
//! Parameter names follow HF.

use burn::prelude::*;

use super::block::{Attention, Block, Mlp, Norm, Qkv};
use super::config::{Arch, ModelConfig};
use super::linear::{LinearBuilder, LoraRuntime};
use super::positions::{PositionCache, Rope};
use crate::error::Result;

/// The decoder stack and head.
pub struct Llama {
    hidden: usize,
    embed: Tensor<2>,
    blocks: Vec<Block>,
    norm: Norm,
    lm_head: Tensor<2>,
    positions: PositionCache,
}

impl Llama {
    /// Builds the model from checkpoint tensors.
    pub fn load(cfg: &ModelConfig, lb: &mut LinearBuilder<'_>) -> Result<Self> {
        let (h, hd, eps) = (cfg.hidden, cfg.head_dim, cfg.norm_eps);
        // Each tensor goes to the device as soon as it is decoded: the host holds one at a time.
        let embed_host = lb.weights.take("model.embed_tokens.weight", &[cfg.vocab_size, h])?;
        let embed: Tensor<2> = lb.param("model.embed_tokens.weight", embed_host, false);
        let mut blocks = Vec::with_capacity(cfg.layers);
        for l in 0..cfg.layers {
            let p = format!("model.layers.{l}");
            let attn_norm = Norm::Rms { w: lb.vector(&format!("{p}.input_layernorm.weight"), h)?, eps };
            let (q_dim, kv_dim) = (cfg.heads * hd, cfg.kv_heads * hd);
            let qkv = match cfg.arch {
                Arch::Phi3 => Qkv::Fused(lb.linear(&format!("{p}.self_attn.qkv_proj"), h, q_dim + 2 * kv_dim)?),
                _ => Qkv::Separate {
                    q: lb.linear(&format!("{p}.self_attn.q_proj"), h, q_dim)?,
                    k: lb.linear(&format!("{p}.self_attn.k_proj"), h, kv_dim)?,
                    v: lb.linear(&format!("{p}.self_attn.v_proj"), h, kv_dim)?,
                },
            };
            let attn = Attention {
                qkv,
                o: lb.linear(&format!("{p}.self_attn.o_proj"), q_dim, h)?,
                heads: cfg.heads,
                kv_heads: cfg.kv_heads,
                head_dim: hd,
                qk_norm: match cfg.qk_norm {
                    true => Some((
                        lb.vector(&format!("{p}.self_attn.q_norm.weight"), hd)?,
                        lb.vector(&format!("{p}.self_attn.k_norm.weight"), hd)?,
                        eps,
                    )),
                    false => None,
                },
            };
            let mlp_norm = Norm::Rms { w: lb.vector(&format!("{p}.post_attention_layernorm.weight"), h)?, eps };
            let inter = cfg.intermediate;
            let mlp = match cfg.arch {
                Arch::Phi3 => Mlp::FusedGatedSilu {
                    gate_up: lb.linear(&format!("{p}.mlp.gate_up_proj"), h, 2 * inter)?,
                    down: lb.linear(&format!("{p}.mlp.down_proj"), inter, h)?,
                    intermediate: inter,
                },
                _ => Mlp::GatedSilu {
                    gate: lb.linear(&format!("{p}.mlp.gate_proj"), h, inter)?,
                    up: lb.linear(&format!("{p}.mlp.up_proj"), h, inter)?,
                    down: lb.linear(&format!("{p}.mlp.down_proj"), inter, h)?,
                },
            };
            blocks.push(Block { attn_norm, attn, mlp_norm, mlp });
        }
        let norm = Norm::Rms { w: lb.vector("model.norm.weight", h)?, eps };
        let lm_head = if cfg.tie_embeddings && !lb.weights.contains("lm_head.weight") {
            // Tied: one tensor (one leaf, when training) serves both ends.
            embed.clone().transpose()
        } else {
            lb.param("lm_head.weight", lb.weights.take_transposed("lm_head.weight", &[cfg.vocab_size, h])?, true)
        };
        let rope = Rope { head_dim: hd, theta: cfg.rope_theta, scaling: cfg.rope_scaling, inv_freq_dtype: cfg.dtype };
        Ok(Llama {
            hidden: h,
            embed,
            blocks,
            norm,
            lm_head,
            positions: PositionCache::new(Some(rope), cfg.sliding_window),
        })
    }

    /// Final hidden states `[B, T, H]` (after the last norm).
    pub fn hidden(&self, ids: Tensor<2, Int>, lora: Option<&LoraRuntime>) -> Tensor<3> {
        let [b, t] = ids.dims();
        let pos = self.positions.positions(t, &ids.device());
        let mut x = self.embed.clone().select(0, ids.reshape([b * t])).reshape([b, t, self.hidden]);
        for blk in &self.blocks {
            x = blk.forward(x, &pos, lora);
        }
        self.norm.forward(x)
    }

    /// The output projection `[H, V]`.
    pub fn lm_head(&self) -> &Tensor<2> {
        &self.lm_head
    }
}
