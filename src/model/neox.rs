//! GPT-NeoX (Pythia): LayerNorm with bias, attention and MLP side by side on the same input,
//! one `query_key_value` projection laid out head by head, RoPE on the first features of each
//! head, exact-GELU MLP, an untied output embedding (`embed_out`, `lm_head` in files that
//! Transformers 5 wrote). Parameter names follow HF.

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

/// The GPT-NeoX stack (its head is the model's [`OutputHead`]).
pub(crate) struct GptNeox {
    embed: Matrix,
    blocks: Vec<Block>,
    final_norm: Norm,
    positions: PositionCache,
}

impl GptNeox {
    /// Builds the model from checkpoint tensors.
    pub fn load(cfg: &ModelConfig, lb: &mut LinearBuilder<'_>) -> Result<(Self, OutputHead)> {
        let (h, eps) = (cfg.hidden, cfg.norm_eps);
        let layer_norm = |lb: &mut LinearBuilder<'_>, name: &str| -> Result<Norm> {
            Ok(Norm::Layer {
                w: lb.vector(&format!("{name}.weight"), h)?,
                b: lb.vector(&format!("{name}.bias"), h)?,
                eps,
            })
        };
        let embed_host = lb.weights.take("gpt_neox.embed_in.weight", &[cfg.vocab_size, h])?;
        let embed = lb.embedding("gpt_neox.embed_in.weight", embed_host);
        let mut blocks = Vec::with_capacity(cfg.layers);
        for l in 0..cfg.layers {
            let p = format!("gpt_neox.layers.{l}");
            let attn = Attention {
                qkv: Qkv::PerHead(lb.linear(&format!("{p}.attention.query_key_value"), h, 3 * h)?),
                o: lb.linear(&format!("{p}.attention.dense"), h, h)?,
                heads: cfg.heads,
                kv_heads: cfg.heads,
                head_dim: cfg.head_dim,
                qk_norm: None,
                rope: true,
                scale: cfg.attn_scale,
                softcap: None,
                sliding: false,
            };
            let mlp = Mlp::Plain {
                fc: lb.linear(&format!("{p}.mlp.dense_h_to_4h"), h, cfg.intermediate)?,
                proj: lb.linear(&format!("{p}.mlp.dense_4h_to_h"), cfg.intermediate, h)?,
                act: cfg.hidden_act,
            };
            blocks.push(Block {
                parallel: cfg.parallel_residual,
                attn_norm: Some(layer_norm(lb, &format!("{p}.input_layernorm"))?),
                attn,
                attn_out_norm: None,
                mlp_norm: Some(layer_norm(lb, &format!("{p}.post_attention_layernorm"))?),
                mlp,
                mlp_out_norm: None,
                residual_scale: cfg.residual_scale,
            });
        }
        let final_norm = layer_norm(lb, "gpt_neox.final_layer_norm")?;
        // Pythia's files name the head `embed_out`; Transformers 5 writes `lm_head`. Tied and
        // absent, the embedding serves.
        let head = ["embed_out.weight", "lm_head.weight"].into_iter().find(|n| lb.weights.contains(n));
        let lm_head = match head {
            None if cfg.tie_embeddings => embed.transpose(),
            // Absent and untied: the take names the missing tensor.
            name => {
                let name = name.unwrap_or("embed_out.weight");
                lb.matrix(name, lb.weights.take_transposed(name, &[cfg.vocab_size, h])?, true)
            }
        };
        let rope = cfg.rope.clone().map(|spec| Rope { rotary_dim: cfg.rotary_dim, spec, inv_freq_dtype: cfg.dtype });
        let head = OutputHead { weight: lm_head, bias: None, softcap: cfg.final_softcap };
        Ok((GptNeox { embed, blocks, final_norm, positions: PositionCache::new(rope, None, None) }, head))
    }
}

impl Decoder for GptNeox {
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
