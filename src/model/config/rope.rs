//! The RoPE block of config.json (`rope_parameters`, or the older `rope_scaling`) and the
//! scaling it describes, resolved as Transformers resolves it.

use std::path::Path;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::model::rope::RopeScaling;

/// The RoPE block: `rope_parameters` (newer files) or `rope_scaling` (older ones, with
/// `rope_theta` at the top level).
#[derive(Debug, Clone, Deserialize)]
pub(super) struct RopeParameters {
    pub(super) rope_type: Option<String>,
    /// The older name of `rope_type` (some files carry both).
    #[serde(rename = "type")]
    pub(super) kind: Option<String>,
    pub(super) rope_theta: Option<f64>,
    pub(super) factor: Option<f64>,
    pub(super) partial_rotary_factor: Option<f64>,
    pub(super) low_freq_factor: Option<f32>,
    pub(super) high_freq_factor: Option<f32>,
    pub(super) original_max_position_embeddings: Option<f64>,
    pub(super) attention_factor: Option<f64>,
    pub(super) beta_fast: Option<f64>,
    pub(super) beta_slow: Option<f64>,
    pub(super) mscale: Option<f64>,
    pub(super) mscale_all_dim: Option<f64>,
    pub(super) truncate: Option<bool>,
    pub(super) short_factor: Option<Vec<f32>>,
    pub(super) long_factor: Option<Vec<f32>>,
}

/// What the scalings read outside their block, as Transformers resolves it.
pub(super) struct RopeContext<'a> {
    pub(super) path: &'a Path,
    pub(super) phi3: bool,
    /// A top-level `original_max_position_embeddings`; it wins over the block's.
    pub(super) top_original: Option<f64>,
    pub(super) max_positions: Option<usize>,
    /// The rotation's width (LongRoPE has one factor per frequency).
    pub(super) rotary_dim: usize,
}

impl RopeContext<'_> {
    pub(super) fn error(&self, message: String) -> Error {
        Error::format(self.path, message)
    }
}

impl RopeParameters {
    pub(super) fn rope_type(&self, phi3: bool) -> &str {
        match self.rope_type.as_deref().or(self.kind.as_deref()).unwrap_or("default") {
            // Phi-3's older names of LongRoPE (Transformers renames them so).
            "su" | "yarn" if phi3 => "longrope",
            other => other,
        }
    }

    /// The scaling it describes.
    pub(super) fn scaling(&self, cx: &RopeContext) -> Result<RopeScaling> {
        let need = |v: Option<f64>, field: &str| {
            v.ok_or_else(|| cx.error(format!("rope scaling `{}` needs field `{field}`", self.rope_type(cx.phi3))))
        };
        // The pretraining context: Phi-3's config class always has a top-level one (4096 by
        // default), other classes only where the file sets it; then the block's, then
        // max_position_embeddings.
        let original = || {
            let top = if cx.phi3 { Some(cx.top_original.unwrap_or(4096.0)) } else { cx.top_original };
            let max = cx.max_positions.map(|m| m as f64);
            need(top.or(self.original_max_position_embeddings).or(max), "original_max_position_embeddings")
        };
        // YaRN and LongRoPE without a factor stretch to max_position_embeddings.
        let factor_or_ratio = |original: f64| match (self.factor, cx.max_positions) {
            (Some(f), _) => Ok(f),
            (None, Some(max)) => Ok(max as f64 / original),
            (None, None) => need(None, "factor"),
        };
        Ok(match self.rope_type(cx.phi3) {
            "default" => RopeScaling::None,
            "linear" => RopeScaling::Linear { factor: need(self.factor, "factor")? as f32 },
            "llama3" => RopeScaling::Llama3 {
                factor: need(self.factor, "factor")? as f32,
                low_freq_factor: need(self.low_freq_factor.map(f64::from), "low_freq_factor")? as f32,
                high_freq_factor: need(self.high_freq_factor.map(f64::from), "high_freq_factor")? as f32,
                original_max_positions: original()? as f32,
            },
            "yarn" => {
                let original = original()?;
                let factor = factor_or_ratio(original)?;
                let mscale = |scale: f64, m: f64| if scale <= 1.0 { 1.0 } else { 0.1 * m * scale.ln() + 1.0 };
                let attention_factor = match (self.attention_factor, self.mscale, self.mscale_all_dim) {
                    (Some(a), _, _) => a,
                    (None, Some(m), Some(all)) if m != 0.0 && all != 0.0 => mscale(factor, m) / mscale(factor, all),
                    _ => mscale(factor, 1.0),
                };
                // Zero means the default, as Transformers' `or`.
                let or_default = |v: Option<f64>, d: f64| v.filter(|&v| v != 0.0).unwrap_or(d);
                RopeScaling::Yarn {
                    factor: factor as f32,
                    original_max_positions: original,
                    beta_fast: or_default(self.beta_fast, 32.0),
                    beta_slow: or_default(self.beta_slow, 1.0),
                    truncate: self.truncate.unwrap_or(true),
                    attention_factor,
                }
            }
            "longrope" => {
                let original = original()?;
                let factor = factor_or_ratio(original)?;
                let attention_factor = match self.attention_factor {
                    Some(a) => a,
                    None if factor <= 1.0 => 1.0,
                    None => (1.0 + factor.ln() / original.ln()).sqrt(),
                };
                let set = |v: &Option<Vec<f32>>, field: &str| -> Result<Vec<f32>> {
                    let v =
                        v.clone().ok_or_else(|| cx.error(format!("rope scaling `longrope` needs field `{field}`")))?;
                    if v.len() != cx.rotary_dim / 2 {
                        return Err(cx.error(format!(
                            "`{field}` has {} entries; the rotation of {} features needs {}",
                            v.len(),
                            cx.rotary_dim,
                            cx.rotary_dim / 2
                        )));
                    }
                    Ok(v)
                };
                RopeScaling::LongRope {
                    short: set(&self.short_factor, "short_factor")?,
                    long: set(&self.long_factor, "long_factor")?,
                    original_max_positions: original as usize,
                    attention_factor,
                }
            }
            other => {
                return Err(
                    cx.error(format!("unsupported rope_type `{other}` (default, linear, llama3, yarn, longrope)"))
                )
            }
        })
    }
}
