//! Llama-family decoder (Llama 1–3 with RoPE scaling, Mistral with its sliding window, SmolLM,
//! TinyLlama), Qwen2 (q/k/v bias, which [`Linear`](super::linear::Linear) picks up when the
//! checkpoint has it), Qwen3 (per-head q/k RMSNorm), Phi-3 (fused `qkv_proj` and
//! `gate_up_proj`), Gemma, Gemma-2 and Gemma-3 (see [`Arch::Gemma`], [`Arch::Gemma2`],
//! [`Arch::Gemma3`]), SmolLM3 (NoPE layers), OLMo-2 and OLMo-3 (norms after attention and MLP,
//! q/k norms over the whole projection), Granite (four multipliers): RMSNorm, rotary
//! positions, grouped-query attention, gated MLP. Parameter names follow HF.

use burn::prelude::*;

use super::block::{Attention, Block, Mlp, Norm, QkNorms, Qkv};
use super::config::{Arch, ModelConfig, QkNorm};
use super::linear::LinearBuilder;
use super::matrix::Matrix;
use super::nn;
use super::output::OutputHead;
use super::positions::{PositionCache, Positions, Rope};
use super::rope::RopeSpec;
use super::Decoder;
use crate::error::Result;

/// The decoder stack (its output head is the model's [`OutputHead`]).
pub struct Llama {
    embed: Matrix,
    embed_scale: Option<f64>,
    blocks: Vec<Block>,
    norm: Norm,
    positions: PositionCache,
}

impl Llama {
    /// Builds the stack and its output head from checkpoint tensors.
    pub fn load(cfg: &ModelConfig, lb: &mut LinearBuilder<'_>) -> Result<(Self, OutputHead)> {
        let h = cfg.hidden;
        // Each tensor goes to the device as soon as it is decoded: the host holds one at a time.
        let embed_host = lb.weights.take("model.embed_tokens.weight", &[cfg.vocab_size, h])?;
        let embed = lb.embedding("model.embed_tokens.weight", embed_host);
        let blocks = (0..cfg.layers).map(|l| block(cfg, lb, l)).collect::<Result<Vec<_>>>()?;
        let norm = match rms(cfg, lb, "model.norm.weight", h)? {
            // Granite divides the logits by `logits_scaling`: the same as dividing the final
            // norm's weight, which costs nothing per token.
            Norm::Rms { w, eps } if cfg.logits_divisor != 1.0 => Norm::Rms { w: w.div_scalar(cfg.logits_divisor), eps },
            norm => norm,
        };
        let lm_head = if cfg.tie_embeddings && !lb.weights.contains("lm_head.weight") {
            // Tied: one tensor (one leaf, when training) serves both ends.
            embed.transpose()
        } else {
            lb.matrix("lm_head.weight", lb.weights.take_transposed("lm_head.weight", &[cfg.vocab_size, h])?, true)
        };
        let rope = |spec: RopeSpec| Rope { rotary_dim: cfg.rotary_dim, spec, inv_freq_dtype: cfg.dtype };
        let full_rope = cfg.rope.clone().map(rope);
        let stack = Llama {
            embed,
            // The tied head uses the embeddings unscaled.
            embed_scale: cfg.embed_scale,
            blocks,
            norm,
            positions: PositionCache::new(full_rope, cfg.sliding_rope.clone().map(rope), cfg.sliding_window),
        };
        Ok((stack, OutputHead { weight: lm_head, bias: None, softcap: cfg.final_softcap }))
    }
}

/// An RMSNorm of width `n`.
fn rms(cfg: &ModelConfig, lb: &mut LinearBuilder<'_>, name: &str, n: usize) -> Result<Norm> {
    Ok(Norm::Rms { w: rms_weight(cfg, lb, name, n)?, eps: cfg.norm_eps })
}

/// An RMSNorm's weight. Gemma scales by (1 + w): folded into the weight once, here.
fn rms_weight(cfg: &ModelConfig, lb: &mut LinearBuilder<'_>, name: &str, n: usize) -> Result<Tensor<1>> {
    let w = lb.vector(name, n)?;
    Ok(if cfg.arch.is_gemma() { w.add_scalar(1.0) } else { w })
}

/// Layer `l`: its norms, attention and MLP. The linear layers are built in the checkpoint's
/// module order (q, k, v, o, then the MLP's), which numbers them for the LoRA branches.
fn block(cfg: &ModelConfig, lb: &mut LinearBuilder<'_>, l: usize) -> Result<Block> {
    let p = format!("model.layers.{l}");
    // OLMo-2 has no norm before attention.
    let attn_norm = match cfg.arch.is_olmo() {
        true => None,
        false => Some(rms(cfg, lb, &format!("{p}.input_layernorm.weight"), cfg.hidden)?),
    };
    let attn = attention(cfg, lb, &p, l)?;
    let (attn_out_norm, mlp_norm, mlp_out_norm) = norms_around_the_mlp(cfg, lb, &p)?;
    let mlp = mlp(cfg, lb, &p)?;
    Ok(Block {
        parallel: false,
        attn_norm,
        attn,
        attn_out_norm,
        mlp_norm,
        mlp,
        mlp_out_norm,
        residual_scale: cfg.residual_scale,
    })
}

/// Layer `l`'s attention, `p` its name prefix: q/k/v (Phi-3 fuses them), o, the q/k norms of the
/// families that have them.
fn attention(cfg: &ModelConfig, lb: &mut LinearBuilder<'_>, p: &str, l: usize) -> Result<Attention> {
    let (h, hd) = (cfg.hidden, cfg.head_dim);
    let (q_dim, kv_dim) = (cfg.heads * hd, cfg.kv_heads * hd);
    let qkv = match cfg.arch {
        Arch::Phi3 => Qkv::Fused(lb.linear(&format!("{p}.self_attn.qkv_proj"), h, q_dim + 2 * kv_dim)?),
        _ => Qkv::Separate {
            q: lb.linear(&format!("{p}.self_attn.q_proj"), h, q_dim)?,
            k: lb.linear(&format!("{p}.self_attn.k_proj"), h, kv_dim)?,
            v: lb.linear(&format!("{p}.self_attn.v_proj"), h, kv_dim)?,
        },
    };
    let o = lb.linear(&format!("{p}.self_attn.o_proj"), q_dim, h)?;
    let qk_norm = match cfg.qk_norm {
        Some(kind) => {
            let per_head = kind == QkNorm::PerHead;
            let (qn, kn) = if per_head { (hd, hd) } else { (q_dim, kv_dim) };
            // Gemma-3's q/k norms scale by (1 + w) like its other norms.
            let q = rms_weight(cfg, lb, &format!("{p}.self_attn.q_norm.weight"), qn)?;
            let k = rms_weight(cfg, lb, &format!("{p}.self_attn.k_norm.weight"), kn)?;
            Some(QkNorms { q, k, eps: cfg.norm_eps, per_head })
        }
        None => None,
    };
    Ok(Attention {
        qkv,
        o,
        heads: cfg.heads,
        kv_heads: cfg.kv_heads,
        head_dim: hd,
        qk_norm,
        rope: cfg.rope_layers[l],
        scale: cfg.attn_scale,
        softcap: cfg.attn_softcap,
        sliding: cfg.sliding_layers[l],
    })
}

/// The norms after attention, before the MLP and after it. Gemma-2 and -3 name their four norms
/// for where they sit; in Llama and Gemma (1) `post_attention_layernorm` is the norm before the
/// MLP; OLMo-2's two norms sit after attention and the MLP, under the same names.
fn norms_around_the_mlp(
    cfg: &ModelConfig,
    lb: &mut LinearBuilder<'_>,
    p: &str,
) -> Result<(Option<Norm>, Option<Norm>, Option<Norm>)> {
    let mut norm = |name: &str| rms(cfg, lb, &format!("{p}.{name}.weight"), cfg.hidden).map(Some);
    Ok(match (cfg.arch.is_gemma2_family(), cfg.arch.is_olmo()) {
        (true, _) => {
            (norm("post_attention_layernorm")?, norm("pre_feedforward_layernorm")?, norm("post_feedforward_layernorm")?)
        }
        (_, true) => (norm("post_attention_layernorm")?, None, norm("post_feedforward_layernorm")?),
        _ => (None, norm("post_attention_layernorm")?, None),
    })
}

/// Layer's gated MLP, `p` its name prefix (Phi-3 fuses gate and up).
fn mlp(cfg: &ModelConfig, lb: &mut LinearBuilder<'_>, p: &str) -> Result<Mlp> {
    let (h, inter, act) = (cfg.hidden, cfg.intermediate, cfg.hidden_act);
    Ok(match cfg.arch {
        Arch::Phi3 => Mlp::FusedGated {
            gate_up: lb.linear(&format!("{p}.mlp.gate_up_proj"), h, 2 * inter)?,
            down: lb.linear(&format!("{p}.mlp.down_proj"), inter, h)?,
            intermediate: inter,
            act,
        },
        _ => Mlp::Gated {
            gate: lb.linear(&format!("{p}.mlp.gate_proj"), h, inter)?,
            up: lb.linear(&format!("{p}.mlp.up_proj"), h, inter)?,
            down: lb.linear(&format!("{p}.mlp.down_proj"), inter, h)?,
            act,
        },
    })
}

impl Decoder for Llama {
    /// The blocks' input (scaled embeddings, where the family scales them).
    fn embed(&self, ids: Tensor<2, Int>, lengths: &[usize]) -> (Tensor<3>, Positions) {
        let t = ids.dims()[1];
        let pos = self.positions.positions(t, lengths, &ids.device());
        let x = nn::embedding(&self.embed, ids);
        let x = match self.embed_scale {
            Some(scale) => x.mul_scalar(scale),
            None => x,
        };
        (x, pos)
    }

    fn blocks(&self) -> &[Block] {
        &self.blocks
    }

    fn final_norm(&self) -> &Norm {
        &self.norm
    }
}
