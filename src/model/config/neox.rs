//! config.json of GPT-NeoX (Pythia).

use std::path::Path;

use serde::Deserialize;

use super::rope::RopeParameters;
use super::rotary_layer_norm::RotaryLayerNormModel;
use super::{default_ln_eps, Arch, ModelConfig};
use crate::error::Result;
use crate::model::dtype::FloatKind;

/// config.json of GPT-NeoX, as the file has it (Pythia's older files keep the RoPE settings as
/// `rotary_pct` and `rotary_emb_base`).
#[derive(Debug, Clone, Deserialize)]
pub(super) struct NeoxConfigFile {
    vocab_size: usize,
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    #[serde(default = "default_ln_eps")]
    layer_norm_eps: f64,
    hidden_act: Option<String>,
    max_position_embeddings: Option<usize>,
    tie_word_embeddings: Option<bool>,
    use_parallel_residual: Option<bool>,
    rope_parameters: Option<RopeParameters>,
    rope_scaling: Option<RopeParameters>,
    rotary_pct: Option<f64>,
    rotary_emb_base: Option<f64>,
}

impl ModelConfig {
    pub(super) fn neox(c: NeoxConfigFile, path: &Path, eos: u32, bos: Option<u32>, dtype: FloatKind) -> Result<Self> {
        let block = c.rope_parameters.as_ref().or(c.rope_scaling.as_ref());
        RotaryLayerNormModel {
            arch: Arch::GptNeox,
            vocab_size: c.vocab_size,
            hidden: c.hidden_size,
            layers: c.num_hidden_layers,
            heads: c.num_attention_heads,
            kv_heads: None,
            head_dim: None,
            intermediate: c.intermediate_size,
            norm_eps: c.layer_norm_eps,
            act: c.hidden_act.as_deref().unwrap_or("gelu"),
            max_positions: c.max_position_embeddings,
            tie_embeddings: c.tie_word_embeddings.unwrap_or(false),
            parallel_residual: c.use_parallel_residual.unwrap_or(true),
            block,
            // The block's values first, then Pythia's older top-level names, then the class
            // defaults.
            partial: block.and_then(|b| b.partial_rotary_factor).or(c.rotary_pct).unwrap_or(0.25),
            theta: block.and_then(|b| b.rope_theta).or(c.rotary_emb_base).unwrap_or(1e4),
        }
        .build(path, eos, bos, dtype)
    }
}
