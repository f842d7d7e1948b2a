//! Phi-1, Phi-1.5 and Phi-2 (`phi`): one LayerNorm feeding attention and MLP side by side,
//! `q_proj`/`k_proj`/`v_proj`/`dense` and `fc1`/`fc2` with biases, RoPE on the first part of
//! each head, a GELU-tanh MLP, a final LayerNorm and an output head with a bias. Parameter
//! names follow HF.

use burn::prelude::*;

use super::block::{Attention, Block, Mlp, Norm, Qkv};
use super::config::ModelConfig;
use super::linear::LinearBuilder;
use super::matrix::Matrix;
use super::nn;
use super::output::OutputHead;
use super::positions::{PositionCache, Positions, Rope};
use super::Decoder;
use crate::error::Result;

/// The Phi stack (its biased head is the model's [`OutputHead`]).
pub struct Phi {
    embed: Matrix,
    blocks: Vec<Block>,
    final_norm: Norm,
    positions: PositionCache,
}

impl Phi {
    /// Builds the model from checkpoint tensors.
    pub fn load(cfg: &ModelConfig, lb: &mut LinearBuilder<'_>) -> Result<(Self, OutputHead)> {
        let (h, hd, eps) = (cfg.hidden, cfg.head_dim, cfg.norm_eps);
        let layer_norm = |lb: &mut LinearBuilder<'_>, name: &str| -> Result<Norm> {
            Ok(Norm::Layer {
                w: lb.vector(&format!("{name}.weight"), h)?,
                b: lb.vector(&format!("{name}.bias"), h)?,
                eps,
            })
        };
        let embed_host = lb.weights.take("model.embed_tokens.weight", &[cfg.vocab_size, h])?;
        let embed = lb.embedding("model.embed_tokens.weight", embed_host);
        let mut blocks = Vec::with_capacity(cfg.layers);
        for l in 0..cfg.layers {
            let p = format!("model.layers.{l}");
            let (q_dim, kv_dim) = (cfg.heads * hd, cfg.kv_heads * hd);
            let attn = Attention {
                qkv: Qkv::Separate {
                    q: lb.linear(&format!("{p}.self_attn.q_proj"), h, q_dim)?,
                    k: lb.linear(&format!("{p}.self_attn.k_proj"), h, kv_dim)?,
                    v: lb.linear(&format!("{p}.self_attn.v_proj"), h, kv_dim)?,
                },
                o: lb.linear(&format!("{p}.self_attn.dense"), q_dim, h)?,
                heads: cfg.heads,
                kv_heads: cfg.kv_heads,
                head_dim: hd,
                qk_norm: None,
                rope: true,
                scale: cfg.attn_scale,
                softcap: None,
                sliding: false,
            };
            let mlp = Mlp::Plain {
                fc: lb.linear(&format!("{p}.mlp.fc1"), h, cfg.intermediate)?,
                proj: lb.linear(&format!("{p}.mlp.fc2"), cfg.intermediate, h)?,
                act: cfg.hidden_act,
            };
            // One norm feeds both branches: the same weights serve as the block's two norms.
            let norm = layer_norm(lb, &format!("{p}.input_layernorm"))?;
            blocks.push(Block {
                parallel: true,
                attn_norm: Some(norm.clone()),
                attn,
                attn_out_norm: None,
                mlp_norm: Some(norm),
                mlp,
                mlp_out_norm: None,
                residual_scale: cfg.residual_scale,
            });
        }
        let final_norm = layer_norm(lb, "model.final_layernorm")?;
        let lm_head = match cfg.tie_embeddings && !lb.weights.contains("lm_head.weight") {
            true => embed.transpose(),
            false => {
                lb.matrix("lm_head.weight", lb.weights.take_transposed("lm_head.weight", &[cfg.vocab_size, h])?, true)
            }
        };
        let lm_head_bias = lb.vector("lm_head.bias", cfg.vocab_size)?;
        let rope = cfg.rope.clone().map(|spec| Rope { rotary_dim: cfg.rotary_dim, spec, inv_freq_dtype: cfg.dtype });
        let head = OutputHead { weight: lm_head, bias: Some(lm_head_bias), softcap: cfg.final_softcap };
        Ok((Phi { embed, blocks, final_norm, positions: PositionCache::new(rope, None, None) }, head))
    }
}

impl Decoder for Phi {
    fn embed(&self, ids: Tensor<2, Int>, lengths: &[usize]) -> (Tensor<3>, Positions) {
        let t = ids.dims()[1];
        let pos = self.positions.positions(t, lengths, &ids.device());
        (nn::embedding(&self.embed, ids), pos)
    }

    fn blocks(&self) -> &[Block] {
        &self.blocks
    }

    fn final_norm(&self) -> &Norm {
        &self.final_norm
    }
}
