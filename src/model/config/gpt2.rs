//! config.json of GPT-2.

use std::path::Path;

use serde::Deserialize;

use super::{default_ln_eps, Activation, Arch, ModelConfig};
use crate::error::{Error, Result};
use crate::model::dtype::FloatKind;

/// config.json of GPT-2.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct Gpt2ConfigFile {
    vocab_size: usize,
    n_embd: usize,
    n_layer: usize,
    n_head: usize,
    n_positions: usize,
    n_inner: Option<usize>,
    #[serde(default = "default_ln_eps")]
    layer_norm_epsilon: f64,
    #[serde(default = "default_gpt2_act")]
    activation_function: String,
    /// Scores divided by √head_dim (true unless the file says otherwise).
    scale_attn_weights: Option<bool>,
    scale_attn_by_inverse_layer_idx: Option<bool>,
}

fn default_gpt2_act() -> String {
    "gelu_new".into()
}

impl ModelConfig {
    pub(super) fn gpt2(c: Gpt2ConfigFile, path: &Path, eos: u32, bos: Option<u32>, dtype: FloatKind) -> Result<Self> {
        if !matches!(c.activation_function.as_str(), "gelu_new" | "gelu_pytorch_tanh") {
            return Err(Error::format(
                path,
                format!("unsupported activation_function `{}` (gelu_new)", c.activation_function),
            ));
        }
        Ok(ModelConfig {
            arch: Arch::Gpt2,
            vocab_size: c.vocab_size,
            hidden: c.n_embd,
            layers: c.n_layer,
            heads: c.n_head,
            kv_heads: c.n_head,
            head_dim: c.n_embd / c.n_head,
            rotary_dim: c.n_embd / c.n_head,
            intermediate: c.n_inner.unwrap_or(4 * c.n_embd),
            norm_eps: c.layer_norm_epsilon,
            rope: None,
            sliding_rope: None,
            tie_embeddings: true,
            max_positions: c.n_positions,
            eos_token_id: eos,
            bos_token_id: bos,
            dtype,
            sliding_window: None,
            qk_norm: None,
            rope_layers: vec![false; c.n_layer],
            sliding_layers: vec![false; c.n_layer],
            hidden_act: Activation::GeluTanh,
            attn_scale: match c.scale_attn_weights.unwrap_or(true) {
                true => 1.0 / ((c.n_embd / c.n_head) as f64).sqrt(),
                false => 1.0,
            },
            attn_scale_by_layer: c.scale_attn_by_inverse_layer_idx.unwrap_or(false),
            embed_scale: None,
            residual_scale: 1.0,
            logits_divisor: 1.0,
            attn_softcap: None,
            final_softcap: None,
            parallel_residual: false,
        })
    }
}
