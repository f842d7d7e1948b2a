//! config.json of the Llama-like families (Llama, Mistral, Qwen2/3, Phi-3, Gemma 1–3, SmolLM3,
//! OLMo-2/3, Granite): their fields, defaults, RoPE forms and attention windows.

use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use super::rope::{RopeContext, RopeParameters};
use super::{kv_heads, rotated_features, typed, Activation, Arch, ModelConfig, QkNorm};
use crate::error::{Error, Result};
use crate::model::dtype::FloatKind;
use crate::model::rope::{RopeScaling, RopeSpec};

/// config.json of the Llama family (Llama, Mistral, SmolLM, TinyLlama) and Qwen2, as the file
/// has it.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct LlamaConfigFile {
    vocab_size: usize,
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    num_key_value_heads: Option<usize>,
    head_dim: Option<usize>,
    /// Left out, the config class's default ([`Arch::default_norm_eps`]).
    rms_norm_eps: Option<f64>,
    rope_theta: Option<f64>,
    /// One block, or (Gemma-3) one per layer type: `{"full_attention": {..}, "sliding_attention": {..}}`.
    rope_parameters: Option<Value>,
    rope_scaling: Option<RopeParameters>,
    /// Gemma-3's older name of the sliding layers' RoPE base.
    rope_local_base_freq: Option<f64>,
    tie_word_embeddings: Option<bool>,
    max_position_embeddings: Option<usize>,
    /// Phi-3 keeps the pretraining context here, outside the RoPE block.
    original_max_position_embeddings: Option<f64>,
    hidden_act: Option<String>,
    /// Mistral's attention window (Qwen2 carries one too, used only with `use_sliding_window`).
    sliding_window: Option<usize>,
    /// RoPE on only part of each head (Phi-4-mini); older files keep it at the top level.
    partial_rotary_factor: Option<f64>,
    /// Gemma's name of `hidden_act`.
    hidden_activation: Option<String>,
    query_pre_attn_scalar: Option<f64>,
    attn_logit_softcapping: Option<f64>,
    final_logit_softcapping: Option<f64>,
    /// `sliding_attention` or `full_attention` per layer (Gemma, Qwen).
    layer_types: Option<Vec<String>>,
    /// Qwen2/Qwen3: the window applies (to the layers from `max_window_layers` on) only when true.
    use_sliding_window: Option<bool>,
    max_window_layers: Option<usize>,
    /// Gemma-3 files without `layer_types`: every n-th layer is a full one.
    sliding_window_pattern: Option<usize>,
    /// Embedding models built on Gemma-3 attend both ways.
    use_bidirectional_attention: Option<bool>,
    /// Granite's multipliers.
    embedding_multiplier: Option<f64>,
    residual_multiplier: Option<f64>,
    attention_multiplier: Option<f64>,
    logits_scaling: Option<f64>,
    /// SmolLM3: 1 where a layer uses RoPE, 0 where it does not.
    no_rope_layers: Option<Vec<u8>>,
    /// SmolLM3 without `no_rope_layers`: every n-th layer has no RoPE.
    no_rope_layer_interval: Option<usize>,
}

impl ModelConfig {
    pub(super) fn llama(
        arch: Arch,
        windowed: bool,
        c: LlamaConfigFile,
        path: &Path,
        eos: u32,
        bos: Option<u32>,
        dtype: FloatKind,
    ) -> Result<Self> {
        let heads = c.num_attention_heads;
        let kv_heads = kv_heads(heads, c.num_key_value_heads, path)?;
        let head_dim = c.head_dim.unwrap_or(c.hidden_size / heads);
        let (rope, sliding_rope, rotary_dim) = ropes(arch, &c, head_dim, path)?;
        let gemma = arch.is_gemma();
        let act_name = c.hidden_activation.as_deref().or(c.hidden_act.as_deref()).unwrap_or("silu");
        let hidden_act = match act_name {
            "silu" => Activation::Silu,
            "gelu_pytorch_tanh" | "gelu_new" if gemma => Activation::GeluTanh,
            // Gemma (1)'s released configs say "gelu" and mean the tanh form (Transformers
            // rewrites it so).
            "gelu" if arch == Arch::Gemma => Activation::GeluTanh,
            other => return Err(Error::format(path, format!("unsupported hidden activation `{other}`"))),
        };
        // Fields that change the computation, implemented only where they belong.
        let gemma2 = arch.is_gemma2_family();
        let granite = arch == Arch::Granite;
        for (field, set) in [
            ("query_pre_attn_scalar", !gemma2 && c.query_pre_attn_scalar.is_some()),
            ("attn_logit_softcapping", !gemma2 && c.attn_logit_softcapping.is_some()),
            ("final_logit_softcapping", !gemma2 && c.final_logit_softcapping.is_some()),
            ("embedding_multiplier", !granite && c.embedding_multiplier.is_some()),
            ("residual_multiplier", !granite && c.residual_multiplier.is_some()),
            ("attention_multiplier", !granite && c.attention_multiplier.is_some()),
            ("logits_scaling", !granite && c.logits_scaling.is_some()),
        ] {
            if set {
                return Err(Error::format(path, format!("`{field}` is not supported for this model_type")));
            }
        }
        if c.use_bidirectional_attention == Some(true) {
            return Err(Error::format(
                path,
                "use_bidirectional_attention: true (an embedding model) is not supported: gradsift scores causal LMs",
            ));
        }
        let rope_layers = rope_layers(arch, &c, path)?;
        let (sliding_window, sliding_layers) = windows(arch, windowed, &c, &rope_layers, path)?;
        Ok(ModelConfig {
            arch,
            vocab_size: c.vocab_size,
            hidden: c.hidden_size,
            layers: c.num_hidden_layers,
            heads,
            kv_heads,
            head_dim,
            rotary_dim,
            intermediate: c.intermediate_size,
            norm_eps: c.rms_norm_eps.unwrap_or(arch.default_norm_eps()),
            rope: Some(rope),
            sliding_rope,
            // Absent means the config class's default: Transformers 4 leaves a value out of
            // config.json when it equals both PretrainedConfig's default (tied) and the
            // class's, so Gemma's checkpoints say nothing and have no `lm_head.weight`.
            tie_embeddings: c.tie_word_embeddings.unwrap_or(arch.is_gemma() || arch == Arch::SmolLm3),
            max_positions: c.max_position_embeddings.unwrap_or(usize::MAX),
            eos_token_id: eos,
            bos_token_id: bos,
            dtype,
            sliding_window,
            qk_norm: match arch {
                Arch::Qwen3 | Arch::Gemma3 => Some(QkNorm::PerHead),
                Arch::Olmo2 | Arch::Olmo3 => Some(QkNorm::Projection),
                _ => None,
            },
            rope_layers,
            sliding_layers,
            hidden_act,
            attn_scale: c
                .attention_multiplier
                .unwrap_or(1.0 / c.query_pre_attn_scalar.unwrap_or(head_dim as f64).sqrt()),
            attn_scale_by_layer: false,
            // Gemma's √hidden is held in the checkpoint's dtype, as Transformers' buffer is (a
            // bf16 Gemma-3-1B scales by 34.0, not √1152 = 33.94).
            embed_scale: match arch.is_gemma() {
                true => Some(dtype.round((c.hidden_size as f64).sqrt())),
                false => c.embedding_multiplier,
            },
            residual_scale: c.residual_multiplier.unwrap_or(1.0),
            logits_divisor: c.logits_scaling.unwrap_or(1.0),
            attn_softcap: c.attn_logit_softcapping,
            final_softcap: c.final_logit_softcapping,
            parallel_residual: false,
        })
    }
}

/// The RoPE of the full layers and, where it differs, of the sliding ones, and how many
/// features of each head rotate. Reads every form Transformers writes: `rope_parameters` (one
/// block, or one per layer type) and the older `rope_scaling` with top-level `rope_theta`
/// (and Gemma-3's `rope_local_base_freq`).
fn ropes(arch: Arch, c: &LlamaConfigFile, head_dim: usize, path: &Path) -> Result<(RopeSpec, Option<RopeSpec>, usize)> {
    let block = |v: &Value| typed::<RopeParameters>(v, path);
    let per_type = c
        .rope_parameters
        .as_ref()
        .filter(|v| v.get("full_attention").is_some() || v.get("sliding_attention").is_some());
    let (full, local) = match (per_type, &c.rope_parameters) {
        (Some(v), _) => {
            (v.get("full_attention").map(block).transpose()?, v.get("sliding_attention").map(block).transpose()?)
        }
        (None, Some(v)) => (Some(block(v)?), None),
        (None, None) => (c.rope_scaling.clone(), None),
    };
    // The block's factor first, then the top-level one (Transformers' order).
    let partial = full.iter().chain(&local).find_map(|p| p.partial_rotary_factor).or(c.partial_rotary_factor);
    let rotary_dim = match partial.filter(|&f| f != 1.0) {
        None => head_dim,
        // Only Phi-3's attention splits heads into a rotated and a passed-through part.
        Some(f) if arch == Arch::Phi3 && f > 0.0 && f < 1.0 => rotated_features(head_dim, f, path)?,
        Some(f) => {
            return Err(Error::format(
                path,
                format!("partial_rotary_factor {f} is not supported for this model_type (Phi-3: in (0, 1])"),
            ))
        }
    };
    let cx = RopeContext {
        path,
        phi3: arch == Arch::Phi3,
        top_original: c.original_max_position_embeddings,
        max_positions: c.max_position_embeddings,
        rotary_dim,
    };
    // Gemma-3's defaults: a global base of 1e6 for the full layers, a local one of 1e4.
    let gemma3 = arch == Arch::Gemma3;
    let spec = |p: Option<&RopeParameters>, theta: f64| -> Result<RopeSpec> {
        Ok(RopeSpec {
            theta: p.and_then(|p| p.rope_theta).unwrap_or(theta),
            scaling: p.map(|p| p.scaling(&cx)).transpose()?.unwrap_or(RopeScaling::None),
        })
    };
    let rope = spec(full.as_ref(), c.rope_theta.unwrap_or(if gemma3 { 1e6 } else { 1e4 }))?;
    // OLMo-3's older form scales only the full layers; the sliding ones rotate unscaled.
    let olmo3_local = (arch == Arch::Olmo3).then(|| c.rope_theta.unwrap_or(1e4));
    let local_theta = c.rope_local_base_freq.or(gemma3.then_some(1e4)).or(olmo3_local);
    let sliding = match (&local, local_theta) {
        (Some(p), theta) => Some(spec(Some(p), theta.unwrap_or(1e4))?),
        (None, Some(theta)) => Some(RopeSpec { theta, scaling: RopeScaling::None }),
        (None, None) => None,
    };
    Ok((rope.clone(), sliding.filter(|s| *s != rope), rotary_dim))
}

/// Which layers rotate queries and keys: all, except SmolLM3's NoPE layers (`no_rope_layers`,
/// else every `no_rope_layer_interval`-th, 4 by default).
fn rope_layers(arch: Arch, c: &LlamaConfigFile, path: &Path) -> Result<Vec<bool>> {
    let layers = c.num_hidden_layers;
    if arch != Arch::SmolLm3 {
        return Ok(vec![true; layers]);
    }
    match &c.no_rope_layers {
        Some(flags) if flags.len() != layers => {
            Err(Error::format(path, format!("no_rope_layers has {} entries for {layers} layers", flags.len())))
        }
        Some(flags) => Ok(flags.iter().map(|&f| f != 0).collect()),
        None => {
            let every = c.no_rope_layer_interval.unwrap_or(4).max(1);
            Ok((0..layers).map(|l| (l + 1) % every != 0).collect())
        }
    }
}

/// The attention window and which layers use it, as Transformers decides per family: Mistral
/// and Phi-3 window every layer; Gemma defaults to a 4096 window on a fixed pattern of layers,
/// OLMo-3 to one on three layers of every four; Qwen2/Qwen3 window the layers from
/// `max_window_layers` on, and SmolLM3 its NoPE layers, both only with `use_sliding_window`.
/// An explicit `layer_types` overrides the pattern.
fn windows(
    arch: Arch,
    windowed: bool,
    c: &LlamaConfigFile,
    rope_layers: &[bool],
    path: &Path,
) -> Result<(Option<usize>, Vec<bool>)> {
    let layers = c.num_hidden_layers;
    let asked = c.use_sliding_window == Some(true);
    // A window changes every attention score past it: never ignore one.
    let window = match arch {
        _ if arch.is_gemma2_family() || arch == Arch::Olmo3 => Some(c.sliding_window.unwrap_or(4096)),
        _ if windowed => c.sliding_window,
        Arch::Qwen2 | Arch::Qwen3 if asked => Some(c.sliding_window.unwrap_or(4096)),
        Arch::SmolLm3 if asked => c.sliding_window,
        Arch::Qwen2 | Arch::Qwen3 | Arch::SmolLm3 => None,
        _ if asked => return Err(Error::format(path, "use_sliding_window: true is not supported for this model_type")),
        _ => None,
    };
    if window == Some(0) {
        return Err(Error::format(path, "sliding_window must be positive"));
    }
    let sliding: Vec<bool> = match &c.layer_types {
        Some(types) => {
            if types.len() != layers {
                return Err(Error::format(
                    path,
                    format!("layer_types has {} entries for {layers} layers", types.len()),
                ));
            }
            types
                .iter()
                .map(|t| match t.as_str() {
                    "sliding_attention" => Ok(true),
                    "full_attention" => Ok(false),
                    other => Err(Error::format(path, format!("unsupported layer type `{other}` in layer_types"))),
                })
                .collect::<Result<_>>()?
        }
        None => (0..layers)
            .map(|l| match arch {
                // Gemma-2 alternates, starting with a sliding layer.
                Arch::Gemma2 => l % 2 == 0,
                Arch::Gemma3 => {
                    let pattern = c.sliding_window_pattern.unwrap_or(6).max(1);
                    (l + 1) % pattern != 0
                }
                Arch::Qwen2 | Arch::Qwen3 => l >= c.max_window_layers.unwrap_or(28),
                Arch::Olmo3 => (l + 1) % 4 != 0,
                Arch::SmolLm3 => !rope_layers[l],
                _ => true,
            })
            .collect(),
    };
    Ok((window, sliding.into_iter().map(|s| s && window.is_some()).collect()))
}
