//! GPT-2: learned positions, pre-LayerNorm blocks, fused q/k/v `c_attn`, GELU (tanh) MLP,
//! Conv1D weights stored `[in, out]`, tied output embedding.

use burn::prelude::*;

use super::block::{Attention, Block, Mlp, Norm, Qkv};
use super::config::ModelConfig;
use super::linear::LinearBuilder;
use super::matrix::Matrix;
use super::nn;
use super::output::OutputHead;
use super::positions::{PositionCache, Positions};
use super::Decoder;
use crate::error::{Error, Result};

/// The GPT-2 stack (its head, tied to `wte`, is the model's [`OutputHead`]).
pub(crate) struct Gpt2 {
    hidden: usize,
    wte: Matrix,
    wpe: Tensor<2>,
    blocks: Vec<Block>,
    ln_f: Norm,
    positions: PositionCache,
}

impl Gpt2 {
    /// Builds the model; accepts names with or without the `transformer.` prefix.
    pub fn load(cfg: &ModelConfig, lb: &mut LinearBuilder<'_>) -> Result<(Self, OutputHead)> {
        let pre = if lb.weights.contains("wte.weight") { "" } else { "transformer." };
        let (h, eps) = (cfg.hidden, cfg.norm_eps);
        // Each tensor goes to the device as soon as it is decoded: the host holds one at a time.
        let wte_host = lb.weights.take(&format!("{pre}wte.weight"), &[cfg.vocab_size, h])?;
        // GPT-2 ties its output head to the embeddings; the original checkpoints keep a copy of
        // them as `lm_head.weight`. A head that differs is a model we would run wrongly.
        if let Some(head) = lb.weights.take_opt("lm_head.weight", &[cfg.vocab_size, h])? {
            if head.data != wte_host.data {
                return Err(Error::format(
                    lb.weights.origin(),
                    format!("`lm_head.weight` differs from `{pre}wte.weight`: GPT-2's output head is tied to its embeddings, and an untied one is not supported"),
                ));
            }
        }
        let wte = lb.embedding(&format!("{pre}wte.weight"), wte_host);
        let wpe_host = lb.weights.take(&format!("{pre}wpe.weight"), &[cfg.max_positions, h])?;
        let wpe = lb.param(&format!("{pre}wpe.weight"), wpe_host, false);
        let mut blocks = Vec::with_capacity(cfg.layers);
        for l in 0..cfg.layers {
            let p = format!("{pre}h.{l}");
            let attn_norm = Norm::Layer {
                w: lb.vector(&format!("{p}.ln_1.weight"), h)?,
                b: lb.vector(&format!("{p}.ln_1.bias"), h)?,
                eps,
            };
            let attn = Attention {
                qkv: Qkv::Fused(lb.conv1d(&format!("{p}.attn.c_attn"), h, 3 * h)?),
                o: lb.conv1d(&format!("{p}.attn.c_proj"), h, h)?,
                heads: cfg.heads,
                kv_heads: cfg.heads,
                head_dim: cfg.head_dim,
                qk_norm: None,
                rope: false,
                scale: cfg.layer_attn_scale(l),
                softcap: None,
                sliding: false,
            };
            let mlp_norm = Norm::Layer {
                w: lb.vector(&format!("{p}.ln_2.weight"), h)?,
                b: lb.vector(&format!("{p}.ln_2.bias"), h)?,
                eps,
            };
            let mlp = Mlp::Plain {
                fc: lb.conv1d(&format!("{p}.mlp.c_fc"), h, cfg.intermediate)?,
                proj: lb.conv1d(&format!("{p}.mlp.c_proj"), cfg.intermediate, h)?,
                act: cfg.hidden_act,
            };
            blocks.push(Block {
                parallel: false,
                attn_norm: Some(attn_norm),
                attn,
                attn_out_norm: None,
                mlp_norm: Some(mlp_norm),
                mlp,
                mlp_out_norm: None,
                residual_scale: cfg.residual_scale,
            });
        }
        let ln_f = Norm::Layer {
            w: lb.vector(&format!("{pre}ln_f.weight"), h)?,
            b: lb.vector(&format!("{pre}ln_f.bias"), h)?,
            eps,
        };
        let head = OutputHead { weight: wte.transpose(), bias: None, softcap: cfg.final_softcap };
        Ok((Gpt2 { hidden: h, wte, wpe, blocks, ln_f, positions: PositionCache::new(None, None, None) }, head))
    }
}

impl Decoder for Gpt2 {
    /// Token plus learned position embeddings.
    fn embed(&self, ids: Tensor<2, Int>, lengths: &[usize]) -> (Tensor<3>, Positions) {
        let t = ids.dims()[1];
        let pos = self.positions.positions(t, lengths, &ids.device());
        let tok = nn::embedding(&self.wte, ids);
        (tok + self.wpe.clone().narrow(0, 0, t).reshape([1, t, self.hidden]), pos)
    }

    fn blocks(&self) -> &[Block] {
        &self.blocks
    }

    fn final_norm(&self) -> &Norm {
        &self.ln_f
    }
}
