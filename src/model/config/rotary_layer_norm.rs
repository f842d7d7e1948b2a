//! What GPT-NeoX's and Phi's config files have in common, once each is read under its own
//! names.

use std::path::Path;

use super::rope::{RopeContext, RopeParameters};
use super::{kv_heads, rotated_features, Activation, Arch, ModelConfig};
use crate::error::{Error, Result};
use crate::model::dtype::FloatKind;
use crate::model::rope::{RopeScaling, RopeSpec};

/// What GPT-NeoX's and Phi's files describe, each under its own names: LayerNorm, attention
/// and MLP side by side (NeoX optionally), one RoPE on part of every head, a GELU MLP.
pub(super) struct RotaryLayerNormModel<'a> {
    pub(super) arch: Arch,
    pub(super) vocab_size: usize,
    pub(super) hidden: usize,
    pub(super) layers: usize,
    pub(super) heads: usize,
    /// Left out: as many as the query heads.
    pub(super) kv_heads: Option<usize>,
    /// Left out: hidden / heads.
    pub(super) head_dim: Option<usize>,
    pub(super) intermediate: usize,
    pub(super) norm_eps: f64,
    pub(super) act: &'a str,
    pub(super) max_positions: Option<usize>,
    pub(super) tie_embeddings: bool,
    pub(super) parallel_residual: bool,
    /// The RoPE block, for its scaling.
    pub(super) block: Option<&'a RopeParameters>,
    /// The rotated fraction of each head and the base, resolved from the file's names.
    pub(super) partial: f64,
    pub(super) theta: f64,
}

impl RotaryLayerNormModel<'_> {
    pub(super) fn build(self, path: &Path, eos: u32, bos: Option<u32>, dtype: FloatKind) -> Result<ModelConfig> {
        let hidden_act = match self.act {
            "gelu" => Activation::Gelu,
            "gelu_new" | "gelu_pytorch_tanh" => Activation::GeluTanh,
            other => return Err(Error::format(path, format!("unsupported hidden_act `{other}` (gelu, gelu_new)"))),
        };
        let heads = self.heads;
        let kv_heads = kv_heads(heads, self.kv_heads, path)?;
        let head_dim = self.head_dim.unwrap_or(self.hidden / heads);
        let rotary_dim = rotated_features(head_dim, self.partial, path)?;
        let cx = RopeContext { path, phi3: false, top_original: None, max_positions: self.max_positions, rotary_dim };
        let rope = RopeSpec {
            theta: self.theta,
            scaling: self.block.map(|b| b.scaling(&cx)).transpose()?.unwrap_or(RopeScaling::None),
        };
        Ok(ModelConfig {
            arch: self.arch,
            vocab_size: self.vocab_size,
            hidden: self.hidden,
            layers: self.layers,
            heads,
            kv_heads,
            head_dim,
            rotary_dim,
            intermediate: self.intermediate,
            norm_eps: self.norm_eps,
            rope: Some(rope),
            sliding_rope: None,
            tie_embeddings: self.tie_embeddings,
            max_positions: self.max_positions.unwrap_or(usize::MAX),
            eos_token_id: eos,
            bos_token_id: bos,
            dtype,
            sliding_window: None,
            qk_norm: None,
            rope_layers: vec![true; self.layers],
            sliding_layers: vec![false; self.layers],
            hidden_act,
            attn_scale: 1.0 / (head_dim as f64).sqrt(),
            attn_scale_by_layer: false,
            embed_scale: None,
            residual_scale: 1.0,
            logits_divisor: 1.0,
            attn_softcap: None,
            final_softcap: None,
            parallel_residual: self.parallel_residual,
        })
    }
}
