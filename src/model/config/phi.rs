//! config.json of Phi-1, 1.5 and 2.

use std::path::Path;

use serde::Deserialize;

use super::rope::RopeParameters;
use super::rotary_layer_norm::RotaryLayerNormModel;
use super::{default_ln_eps, Arch, ModelConfig};
use crate::error::{Error, Result};
use crate::model::dtype::FloatKind;

/// config.json of Phi-1/1.5/2, as the file has it (older files keep `rope_theta`,
/// `partial_rotary_factor` and `rope_scaling` at the top level).
#[derive(Debug, Clone, Deserialize)]
pub(super) struct PhiConfigFile {
    vocab_size: usize,
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    num_key_value_heads: Option<usize>,
    head_dim: Option<usize>,
    #[serde(default = "default_ln_eps")]
    layer_norm_eps: f64,
    hidden_act: Option<String>,
    max_position_embeddings: Option<usize>,
    tie_word_embeddings: Option<bool>,
    rope_parameters: Option<RopeParameters>,
    rope_scaling: Option<RopeParameters>,
    rope_theta: Option<f64>,
    partial_rotary_factor: Option<f64>,
    /// LayerNorm of each head's queries and keys; no released Phi checkpoint sets it.
    qk_layernorm: Option<bool>,
}

impl ModelConfig {
    pub(super) fn phi(c: PhiConfigFile, path: &Path, eos: u32, bos: Option<u32>, dtype: FloatKind) -> Result<Self> {
        if c.qk_layernorm == Some(true) {
            return Err(Error::format(path, "qk_layernorm: true is not supported for model_type `phi`"));
        }
        let block = c.rope_parameters.as_ref().or(c.rope_scaling.as_ref());
        RotaryLayerNormModel {
            arch: Arch::Phi,
            vocab_size: c.vocab_size,
            hidden: c.hidden_size,
            layers: c.num_hidden_layers,
            heads: c.num_attention_heads,
            kv_heads: c.num_key_value_heads,
            head_dim: c.head_dim,
            intermediate: c.intermediate_size,
            norm_eps: c.layer_norm_eps,
            act: c.hidden_act.as_deref().unwrap_or("gelu_new"),
            max_positions: c.max_position_embeddings,
            tie_embeddings: c.tie_word_embeddings.unwrap_or(false),
            parallel_residual: true,
            block,
            // The block's values first, then the top-level ones, then the class defaults.
            partial: block.and_then(|b| b.partial_rotary_factor).or(c.partial_rotary_factor).unwrap_or(0.5),
            theta: block.and_then(|b| b.rope_theta).or(c.rope_theta).unwrap_or(1e4),
        }
        .build(path, eos, bos, dtype)
    }
}
