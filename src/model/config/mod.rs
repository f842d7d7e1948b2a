//! The parts of a Hugging Face `config.json` the supported architectures use: one typed serde
//! struct per family (`llama.rs` for the Llama-like families, `neox.rs`, `phi.rs`, `gpt2.rs`),
//! read as the file has it (both the old top-level `rope_theta` and the newer `rope_parameters`
//! block, `rope.rs`), turned into the [`ModelConfig`] the model code uses.

mod gpt2;
mod llama;
mod neox;
mod phi;
mod rope;
mod rotary_layer_norm;

use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use super::dtype::FloatKind;
use super::rope::RopeSpec;
use crate::error::{Error, Result};

/// The transformer families we implement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// Llama and its relatives (Mistral, SmolLM, TinyLlama): RMSNorm, SwiGLU, rotate-half RoPE.
    Llama,
    /// Qwen2: Llama with q/k/v biases.
    Qwen2,
    /// Qwen3: Llama with per-head RMSNorm of queries and keys, and an explicit head_dim.
    Qwen3,
    /// Phi-3: Llama with fused `qkv_proj` and `gate_up_proj`.
    Phi3,
    /// Gemma (1): Llama's block (a norm before attention and one before the MLP) with RMSNorm
    /// scaled by (1 + w), embeddings × √hidden and a GELU-tanh gated MLP (its legacy
    /// `hidden_act: "gelu"` read as the tanh form, as Transformers does).
    Gemma,
    /// Gemma-2: RMSNorm scaled by (1 + w), embeddings × √hidden, GELU-tanh gated MLP, norms
    /// after attention and MLP too, soft-capped attention scores and logits,
    /// `query_pre_attn_scalar`, sliding-window layers per `layer_types`.
    Gemma2,
    /// Gemma-3 (text): Gemma-2's layout without the soft-caps by default, plus per-head q/k
    /// RMSNorm (scaled by 1 + w) and RoPE settings per layer type (a local base for the
    /// sliding layers, a global one, possibly scaled, for the full ones).
    Gemma3,
    /// SmolLM3: Llama with no RoPE on some layers (`no_rope_layers`; by default every fourth).
    SmolLm3,
    /// OLMo-2: Llama's attention and MLP with the norms moved after them (on the residual
    /// branch's output, none before), and RMSNorm of the whole query and key projections
    /// before they are split into heads.
    Olmo2,
    /// OLMo-3: OLMo-2 with sliding-window layers (by default three of every four) and RoPE
    /// settings per layer type.
    Olmo3,
    /// Granite (IBM): Llama with four multipliers: on the embeddings, on each residual
    /// branch's output, as the attention-score scale (instead of 1/√head_dim), and a divisor
    /// of the logits.
    Granite,
    /// GPT-NeoX (Pythia): LayerNorm with bias, attention and MLP side by side on the same
    /// input (`use_parallel_residual`), one `query_key_value` projection laid out per head as
    /// `[q | k | v]`, RoPE on a quarter of each head by default, exact-GELU MLP.
    GptNeox,
    /// Phi-1, Phi-1.5 and Phi-2 (`phi`): LayerNorm with bias, one norm feeding attention and
    /// MLP side by side, RoPE on part of each head (half by default), a GELU-tanh MLP
    /// (`fc1`, `fc2`), biases on every projection and on the output head.
    Phi,
    /// GPT-2: LayerNorm, GELU (tanh), learned positions, Conv1D weights stored [in, out].
    Gpt2,
}

/// Every `model_type` of config.json that gradsift runs, and its architecture.
pub(crate) const MODEL_TYPES: &[(&str, Arch)] = &[
    ("llama", Arch::Llama),
    ("mistral", Arch::Llama),
    ("qwen2", Arch::Qwen2),
    ("qwen3", Arch::Qwen3),
    ("phi3", Arch::Phi3),
    ("gemma", Arch::Gemma),
    ("gemma2", Arch::Gemma2),
    ("gemma3_text", Arch::Gemma3),
    ("smollm3", Arch::SmolLm3),
    ("granite", Arch::Granite),
    ("olmo2", Arch::Olmo2),
    ("olmo3", Arch::Olmo3),
    ("gpt_neox", Arch::GptNeox),
    ("phi", Arch::Phi),
    ("gpt2", Arch::Gpt2),
];

impl Arch {
    /// Where a fresh LoRA attaches when no targets are given: the attention projections.
    pub fn default_lora_targets(self) -> Vec<String> {
        match self {
            Arch::Gpt2 => vec!["c_attn".into(), "c_proj".into()],
            Arch::GptNeox => vec!["query_key_value".into(), "dense".into()],
            Arch::Phi => ["q_proj", "k_proj", "v_proj", "dense"].map(String::from).to_vec(),
            Arch::Phi3 => vec!["qkv_proj".into(), "o_proj".into()],
            _ => ["q_proj", "k_proj", "v_proj", "o_proj"].map(String::from).to_vec(),
        }
    }

    /// Gemma's conventions: norms scaled by (1 + w), embeddings multiplied by √hidden, a
    /// GELU-tanh MLP.
    pub fn is_gemma(self) -> bool {
        matches!(self, Arch::Gemma | Arch::Gemma2 | Arch::Gemma3)
    }

    /// OLMo-2 and -3: norms after attention and the MLP only.
    pub fn is_olmo(self) -> bool {
        matches!(self, Arch::Olmo2 | Arch::Olmo3)
    }

    /// The class default of `rms_norm_eps`, for a file that leaves it out.
    fn default_norm_eps(self) -> f64 {
        match self {
            Arch::Phi3 | Arch::Olmo2 | Arch::Olmo3 => 1e-5,
            _ => 1e-6,
        }
    }

    /// Gemma-2 and later: norms after attention and the MLP as well as before, sliding-window
    /// layers, soft-capping and `query_pre_attn_scalar`.
    pub fn is_gemma2_family(self) -> bool {
        matches!(self, Arch::Gemma2 | Arch::Gemma3)
    }
}

/// The activation of a gated MLP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    Silu,
    /// GELU with the exact erf (GPT-NeoX's `gelu`).
    Gelu,
    /// GELU, tanh approximation (Gemma's `gelu_pytorch_tanh`).
    GeluTanh,
}

/// Model hyper-parameters.
#[derive(Debug, Clone)]
pub struct ModelConfig {
    pub arch: Arch,
    pub vocab_size: usize,
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    /// How many features of each head RoPE rotates: `head_dim` unless Phi-3's
    /// `partial_rotary_factor` says less.
    pub rotary_dim: usize,
    pub intermediate: usize,
    pub norm_eps: f64,
    /// Rotary positions of the (full-attention) layers; None for learned positions (GPT-2).
    pub rope: Option<RopeSpec>,
    /// Rotary positions of the sliding-window layers, where they differ (Gemma-3's local base).
    pub sliding_rope: Option<RopeSpec>,
    pub tie_embeddings: bool,
    pub max_positions: usize,
    pub eos_token_id: u32,
    pub bos_token_id: Option<u32>,
    /// `dtype` (or the older `torch_dtype`) of config.json.
    pub dtype: FloatKind,
    /// Sliding-window attention (Mistral): a token sees itself and the `w - 1` before it.
    pub sliding_window: Option<usize>,
    /// RMSNorm of queries and keys before RoPE: per head (Qwen3, Gemma-3) or over the whole
    /// projection (OLMo-2).
    pub qk_norm: Option<QkNorm>,
    /// Which layers rotate queries and keys (all but SmolLM3's NoPE layers).
    pub rope_layers: Vec<bool>,
    /// Which layers use the sliding window (and [`Self::sliding_rope`]): per `layer_types`, or
    /// the family's default pattern.
    pub sliding_layers: Vec<bool>,
    /// The gated MLP's activation.
    pub hidden_act: Activation,
    /// Attention scores are `q·kᵀ·attn_scale` (1/√head_dim unless `query_pre_attn_scalar`).
    pub attn_scale: f64,
    /// GPT-2's `scale_attn_by_inverse_layer_idx`: layer l's scores are divided by l + 1 as
    /// well (see [`Self::layer_attn_scale`]).
    pub attn_scale_by_layer: bool,
    /// The embeddings are multiplied by this (Gemma's √hidden, Granite's
    /// `embedding_multiplier`).
    pub embed_scale: Option<f64>,
    /// Each residual branch's output is multiplied by this before it is added (Granite's
    /// `residual_multiplier`; 1 elsewhere).
    pub residual_scale: f64,
    /// The logits are divided by this (Granite's `logits_scaling`; 1 elsewhere). The loader
    /// folds it into the final RMSNorm's weight, so the head and its backward stay as they are.
    pub logits_divisor: f64,
    /// Gemma's soft-caps of attention scores and final logits.
    pub attn_softcap: Option<f64>,
    pub final_softcap: Option<f64>,
    /// Attention and MLP read the same block input and both add to it (GPT-NeoX), instead of
    /// the MLP reading the attention's output.
    pub parallel_residual: bool,
}

impl ModelConfig {
    /// The longest sequence the model can take: the rows of its learned position table (GPT-2's
    /// `n_positions`); None for rotary positions, which extend to any length.
    pub fn position_limit(&self) -> Option<usize> {
        self.rope.is_none().then_some(self.max_positions)
    }

    /// The widest output of the model's linear layers, per position (a fused q/k/v or
    /// gate/up projection counts whole): what a batch's widest activation holds per token.
    pub fn widest_layer(&self) -> usize {
        let (q, kv) = (self.heads * self.head_dim, self.kv_heads * self.head_dim);
        let (attention, mlp) = match self.arch {
            Arch::Phi3 => (q + 2 * kv, 2 * self.intermediate),
            Arch::Gpt2 | Arch::GptNeox => (3 * self.hidden, self.intermediate),
            _ => (q, self.intermediate),
        };
        attention.max(mlp).max(self.hidden)
    }

    /// The attention-score scale of layer `l` (0-based).
    pub fn layer_attn_scale(&self, l: usize) -> f64 {
        match self.attn_scale_by_layer {
            true => self.attn_scale / (l + 1) as f64,
            false => self.attn_scale,
        }
    }
}

/// Where queries and keys are normalised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QkNorm {
    /// Each head over its `head_dim` features, one weight shared by the heads.
    PerHead,
    /// The whole projection (`heads × head_dim` features) before it is split into heads.
    Projection,
}

/// `eos_token_id` / `bos_token_id`: one id, or a list (Llama-3 lists several EOS ids; the
/// first is the one appended after a completion).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum TokenIds {
    One(u32),
    Many(Vec<u32>),
}

impl TokenIds {
    /// The first id.
    pub fn first(&self) -> Option<u32> {
        match self {
            TokenIds::One(id) => Some(*id),
            TokenIds::Many(ids) => ids.first().copied(),
        }
    }
}

/// The fields of `config.json` every family shares.
#[derive(Debug, Clone, Deserialize)]
struct CommonFields {
    #[serde(default)]
    model_type: String,
    eos_token_id: Option<TokenIds>,
    bos_token_id: Option<TokenIds>,
    dtype: Option<String>,
    /// The older name of `dtype` (some files carry both).
    torch_dtype: Option<String>,
}

fn default_ln_eps() -> f64 {
    1e-5
}

/// Deserializes `v` as `T`, naming the file in the error (serde names the field).
fn typed<T: serde::de::DeserializeOwned>(v: &Value, path: &Path) -> Result<T> {
    T::deserialize(v).map_err(|e| Error::format(path, e.to_string()))
}

impl ModelConfig {
    /// Reads `config.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let v: Value = serde_json::from_str(&text).map_err(|e| Error::format(path, format!("invalid JSON: {e}")))?;
        Self::from_value(&v, path)
    }

    /// Interprets a parsed `config.json`; `path` is only used in error messages.
    pub fn from_value(v: &Value, path: &Path) -> Result<Self> {
        let common: CommonFields = typed(v, path)?;
        if common.model_type == "gemma3" {
            return Err(Error::format(
                path,
                "model_type `gemma3` is the multimodal Gemma-3 (vision tower and text model); \
                 gradsift implements the text model (`gemma3_text`, as the 1B checkpoint and \
                 Gemma3ForCausalLM exports have it)",
            ));
        }
        let arch = MODEL_TYPES.iter().find(|(name, _)| *name == common.model_type).map(|&(_, arch)| arch).ok_or_else(
            || Error::UnknownArchitecture {
                path: path.into(),
                model_type: common.model_type.clone(),
                supported: MODEL_TYPES.iter().map(|(name, _)| *name).collect::<Vec<_>>().join(", "),
            },
        )?;
        let eos_token_id = common
            .eos_token_id
            .as_ref()
            .and_then(TokenIds::first)
            .ok_or_else(|| Error::format(path, "missing field `eos_token_id`"))?;
        let bos_token_id = common.bos_token_id.as_ref().and_then(TokenIds::first);
        let dtype = match common.dtype.as_deref().or(common.torch_dtype.as_deref()) {
            Some("bfloat16") => FloatKind::Bf16,
            Some("float16") => FloatKind::F16,
            _ => FloatKind::F32,
        };
        match arch {
            Arch::Gpt2 => Self::gpt2(typed(v, path)?, path, eos_token_id, bos_token_id, dtype),
            Arch::GptNeox => Self::neox(typed(v, path)?, path, eos_token_id, bos_token_id, dtype),
            Arch::Phi => Self::phi(typed(v, path)?, path, eos_token_id, bos_token_id, dtype),
            _ => {
                // Mistral and Phi-3 apply `sliding_window` to every layer when it is set.
                let windowed = matches!(common.model_type.as_str(), "mistral" | "phi3");
                Self::llama(arch, windowed, typed(v, path)?, path, eos_token_id, bos_token_id, dtype)
            }
        }
    }
}

/// `num_key_value_heads` (as many as the query heads when left out), refused unless it divides
/// `num_attention_heads`.
fn kv_heads(heads: usize, kv: Option<usize>, path: &Path) -> Result<usize> {
    let kv = kv.unwrap_or(heads);
    if kv == 0 || !heads.is_multiple_of(kv) {
        return Err(Error::format(
            path,
            format!("num_attention_heads {heads} is not a multiple of num_key_value_heads {kv}"),
        ));
    }
    Ok(kv)
}

/// How many features of each head a rotary fraction `f` rotates, as Transformers truncates
/// `head_dim · f`; refused unless in (0, 1] and an even, positive count.
fn rotated_features(head_dim: usize, f: f64, path: &Path) -> Result<usize> {
    let r = (head_dim as f64 * f) as usize;
    if !(f > 0.0 && f <= 1.0) || r == 0 || r % 2 == 1 {
        return Err(Error::format(
            path,
            format!("a rotary fraction of {f} of head_dim {head_dim} rotates {r} features (must be even and positive)"),
        ));
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::rope::RopeScaling;

    fn parse(v: Value) -> Result<ModelConfig> {
        ModelConfig::from_value(&v, Path::new("config.json"))
    }

    fn llama(extra: Value) -> Value {
        let mut v = serde_json::json!({
            "model_type": "llama", "vocab_size": 32, "hidden_size": 16, "intermediate_size": 24,
            "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "eos_token_id": 2,
        });
        v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        v
    }

    #[test]
    fn eos_may_be_a_list_and_the_first_is_used() {
        let c = parse(llama(serde_json::json!({ "eos_token_id": [7, 9], "bos_token_id": 1 }))).unwrap();
        assert_eq!((c.eos_token_id, c.bos_token_id), (7, Some(1)));
    }

    #[test]
    fn rope_theta_from_either_form_and_defaults() {
        let top = parse(llama(serde_json::json!({ "rope_theta": 500000.0, "rope_scaling": null }))).unwrap();
        assert_eq!(top.rope.unwrap().theta, 500000.0);
        let block =
            parse(llama(serde_json::json!({ "rope_parameters": { "rope_type": "default", "rope_theta": 1e6 } })));
        assert_eq!(block.unwrap().rope.unwrap().theta, 1e6);
        let c = parse(llama(serde_json::json!({}))).unwrap();
        assert_eq!((c.rope.unwrap().theta, c.head_dim, c.norm_eps, c.tie_embeddings), (10000.0, 4, 1e-6, false));
        assert_eq!(c.sliding_rope, None);
    }

    #[test]
    fn smollm3_and_olmo_take_their_class_defaults_when_fields_are_left_out() {
        let mut v = llama(serde_json::json!({ "model_type": "smollm3", "num_hidden_layers": 8 }));
        let c = parse(v.clone()).unwrap();
        assert_eq!(c.rope_layers, [true, true, true, false, true, true, true, false]);
        assert!(c.tie_embeddings && c.sliding_window.is_none() && c.norm_eps == 1e-6);
        // The window goes to the NoPE layers, and only when asked for.
        v["use_sliding_window"] = true.into();
        v["sliding_window"] = 16.into();
        v["no_rope_layer_interval"] = 2.into();
        let c = parse(v.clone()).unwrap();
        assert_eq!(c.sliding_window, Some(16));
        assert_eq!(c.sliding_layers, c.rope_layers.iter().map(|r| !r).collect::<Vec<_>>());
        v["no_rope_layers"] = serde_json::json!([1, 0]);
        assert!(parse(v).unwrap_err().to_string().contains("no_rope_layers has 2 entries for 8 layers"));

        let o2 = parse(llama(serde_json::json!({ "model_type": "olmo2" }))).unwrap();
        assert_eq!((o2.qk_norm, o2.norm_eps, o2.tie_embeddings), (Some(QkNorm::Projection), 1e-5, false));
        assert!(o2.sliding_window.is_none() && o2.rope_layers.iter().all(|&r| r));
        let o3 = parse(llama(serde_json::json!({ "model_type": "olmo3", "num_hidden_layers": 8, "rope_theta": 5e5,
            "rope_scaling": { "rope_type": "yarn", "factor": 8.0, "original_max_position_embeddings": 8192 } })))
        .unwrap();
        assert_eq!(o3.sliding_window, Some(4096));
        assert_eq!(o3.sliding_layers, [true, true, true, false, true, true, true, false]);
        // The older form scales the full layers only.
        assert!(matches!(o3.rope.unwrap().scaling, RopeScaling::Yarn { .. }));
        assert_eq!(o3.sliding_rope, Some(RopeSpec { theta: 5e5, scaling: RopeScaling::None }));
        let phi3 = parse(llama(serde_json::json!({ "model_type": "phi3" }))).unwrap();
        assert_eq!(phi3.norm_eps, 1e-5);
    }

    #[test]
    fn gpt_neox_reads_pythias_older_rope_names_and_the_class_defaults() {
        // As Pythia's files have it: rotary_pct and rotary_emb_base at the top level.
        let pythia = serde_json::json!({ "model_type": "gpt_neox", "vocab_size": 32, "hidden_size": 64,
            "intermediate_size": 256, "num_hidden_layers": 2, "num_attention_heads": 4, "eos_token_id": 0,
            "rotary_pct": 0.5, "rotary_emb_base": 20000, "hidden_act": "gelu" });
        let c = parse(pythia.clone()).unwrap();
        assert_eq!((c.head_dim, c.rotary_dim, c.rope.clone().unwrap().theta), (16, 8, 20000.0));
        assert_eq!(
            (c.hidden_act, c.parallel_residual, c.tie_embeddings, c.norm_eps),
            (Activation::Gelu, true, false, 1e-5)
        );
        assert_eq!(c.arch.default_lora_targets(), ["query_key_value", "dense"]);
        // Without any: a quarter of each head, base 1e4.
        let mut bare = pythia.clone();
        bare.as_object_mut().unwrap().retain(|k, _| !k.starts_with("rotary"));
        let c = parse(bare).unwrap();
        assert_eq!((c.rotary_dim, c.rope.unwrap().theta), (4, 1e4));
        let mut odd = pythia;
        odd["rotary_pct"] = 0.1875.into();
        assert!(parse(odd).unwrap_err().to_string().contains("rotates 3 features"));
    }

    #[test]
    fn rope_scalings_read_as_transformers_resolves_them() {
        let c = parse(llama(serde_json::json!({ "rope_scaling": { "rope_type": "linear", "factor": 2.0 } })));
        assert_eq!(c.unwrap().rope.unwrap().scaling, RopeScaling::Linear { factor: 2.0 });
        // llama3 without its own original length takes max_position_embeddings.
        let c = parse(llama(serde_json::json!({ "max_position_embeddings": 64, "rope_parameters": {
            "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0 } })));
        assert!(matches!(
            c.unwrap().rope.unwrap().scaling,
            RopeScaling::Llama3 { original_max_positions, .. } if original_max_positions == 64.0
        ));
        // Qwen's long-context YaRN: attention factor 0.1·ln(4) + 1.
        let c = parse(llama(serde_json::json!({ "model_type": "qwen3", "head_dim": 4, "rope_scaling": {
            "rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768 } })));
        match c.unwrap().rope.unwrap().scaling {
            RopeScaling::Yarn { factor, beta_fast, beta_slow, truncate, attention_factor, .. } => {
                assert_eq!((factor, beta_fast, beta_slow, truncate), (4.0, 32.0, 1.0, true));
                assert!((attention_factor - (0.1 * 4f64.ln() + 1.0)).abs() < 1e-12);
            }
            other => panic!("{other:?}"),
        }
        // Phi-3.5 as on the Hub: the older key, the original length at the top level, no factor
        // (so max/original = 32), and a 3/4 rotation as Phi-4-mini has.
        let mut v = llama(serde_json::json!({ "model_type": "phi3", "head_dim": 8, "max_position_embeddings": 131072,
            "original_max_position_embeddings": 4096, "partial_rotary_factor": 0.75, "rope_scaling": {
            "type": "longrope", "short_factor": [1.0, 1.0, 1.0], "long_factor": [2.0, 2.0, 2.0] } }));
        let c = parse(v.clone()).unwrap();
        assert_eq!((c.head_dim, c.rotary_dim), (8, 6));
        match c.rope.unwrap().scaling {
            RopeScaling::LongRope { original_max_positions, attention_factor, .. } => {
                assert_eq!(original_max_positions, 4096);
                assert!((attention_factor - (1.0 + 32f64.ln() / 4096f64.ln()).sqrt()).abs() < 1e-12);
            }
            other => panic!("{other:?}"),
        }
        v["rope_scaling"]["short_factor"] = serde_json::json!([1.0, 1.0]);
        let e = parse(v.clone()).unwrap_err().to_string();
        assert!(e.contains("short_factor") && e.contains("2 entries"), "{e}");
        v["model_type"] = "llama".into();
        let e = parse(v).unwrap_err().to_string();
        assert!(e.contains("partial_rotary_factor 0.75"), "{e}");
        let e = parse(llama(serde_json::json!({ "rope_scaling": { "rope_type": "dynamic", "factor": 2.0 } })));
        assert!(e.unwrap_err().to_string().contains("unsupported rope_type `dynamic`"));
    }

    #[test]
    fn sliding_windows_are_kept_for_mistral_and_refused_where_unimplemented() {
        let mut v = llama(serde_json::json!({ "sliding_window": 10 }));
        v["model_type"] = "mistral".into();
        assert_eq!(parse(v).unwrap().sliding_window, Some(10));
        let mut v = llama(serde_json::json!({ "sliding_window": 10, "use_sliding_window": false }));
        v["model_type"] = "qwen2".into();
        assert_eq!(parse(v).unwrap().sliding_window, None);
        // Qwen windows the layers from max_window_layers on, and only with use_sliding_window.
        let mut v =
            llama(serde_json::json!({ "sliding_window": 10, "use_sliding_window": true, "max_window_layers": 1 }));
        v["model_type"] = "qwen2".into();
        let c = parse(v).unwrap();
        assert_eq!((c.sliding_window, c.sliding_layers), (Some(10), vec![false, true]));
        let v = llama(serde_json::json!({ "sliding_window": 10, "use_sliding_window": true }));
        assert!(parse(v).unwrap_err().to_string().contains("use_sliding_window"), "llama has no such switch");
    }

    fn gemma3(extra: Value) -> Value {
        let mut v = llama(serde_json::json!({
            "model_type": "gemma3_text", "num_hidden_layers": 12, "head_dim": 8,
            "hidden_activation": "gelu_pytorch_tanh", "query_pre_attn_scalar": 8,
        }));
        v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        v
    }

    #[test]
    fn gemma3_reads_both_rope_forms_and_its_default_layer_pattern() {
        let old = parse(gemma3(serde_json::json!({
            "rope_theta": 1e6, "rope_local_base_freq": 1e4, "sliding_window": 512, "sliding_window_pattern": 6,
            "rope_scaling": { "rope_type": "linear", "factor": 8.0 },
        })))
        .unwrap();
        let new = parse(gemma3(serde_json::json!({
            "sliding_window": 512,
            "rope_parameters": {
                "full_attention": { "rope_type": "linear", "factor": 8.0, "rope_theta": 1e6 },
                "sliding_attention": { "rope_type": "default", "rope_theta": 1e4 },
            },
        })))
        .unwrap();
        for c in [&old, &new] {
            assert_eq!(c.rope, Some(RopeSpec { theta: 1e6, scaling: RopeScaling::Linear { factor: 8.0 } }));
            assert_eq!(c.sliding_rope, Some(RopeSpec { theta: 1e4, scaling: RopeScaling::None }));
            // Every sixth layer is a full one.
            let full: Vec<usize> = (0..12).filter(|&l| !c.sliding_layers[l]).collect();
            assert_eq!(full, [5, 11]);
            assert!(c.qk_norm == Some(QkNorm::PerHead) && c.arch.is_gemma());
        }
        // Without a window in the file, Transformers' default of 4096 applies.
        assert_eq!(parse(gemma3(serde_json::json!({}))).unwrap().sliding_window, Some(4096));
        let e = parse(gemma3(serde_json::json!({ "use_bidirectional_attention": true }))).unwrap_err();
        assert!(e.to_string().contains("use_bidirectional_attention"), "{e}");
        let e = parse(serde_json::json!({ "model_type": "gemma3", "text_config": {} })).unwrap_err();
        assert!(e.to_string().contains("gemma3_text"), "{e}");
    }

    #[test]
    fn gemma_reads_its_legacy_activation_and_the_class_defaults() {
        // As google/gemma-2b's config.json has it: no tie_word_embeddings (Transformers 4 left
        // the default out) and the legacy "gelu".
        let mut v = llama(serde_json::json!({ "model_type": "gemma", "hidden_act": "gelu", "head_dim": 8 }));
        v.as_object_mut().unwrap().remove("tie_word_embeddings");
        let c = parse(v.clone()).unwrap();
        assert_eq!(c.arch, Arch::Gemma);
        assert_eq!(c.hidden_act, Activation::GeluTanh);
        assert!(c.tie_embeddings, "Gemma's configs leave the tied default out");
        assert_eq!(c.sliding_window, None, "Gemma (1) has no window");
        assert!(c.attn_softcap.is_none() && c.qk_norm.is_none());
        assert!(c.arch.is_gemma() && !c.arch.is_gemma2_family());
        v["query_pre_attn_scalar"] = 8.into();
        assert!(parse(v).unwrap_err().to_string().contains("query_pre_attn_scalar"));
        // Gemma-2 without the field is tied too; Llama without it is not.
        let mut g2 = llama(serde_json::json!({ "model_type": "gemma2", "hidden_activation": "gelu_pytorch_tanh" }));
        g2.as_object_mut().unwrap().remove("tie_word_embeddings");
        assert!(parse(g2).unwrap().tie_embeddings);
        let mut l = llama(serde_json::json!({}));
        l.as_object_mut().unwrap().remove("tie_word_embeddings");
        assert!(!parse(l).unwrap().tie_embeddings);
        // "gelu" means the tanh form only where Transformers rewrites it.
        let e = parse(llama(serde_json::json!({ "hidden_act": "gelu" }))).unwrap_err();
        assert!(e.to_string().contains("gelu"), "{e}");
    }

    #[test]
    fn granite_reads_its_multipliers_and_other_families_refuse_them() {
        let multipliers = serde_json::json!({
            "model_type": "granite", "embedding_multiplier": 12.0, "residual_multiplier": 0.22,
            "attention_multiplier": 0.015625, "logits_scaling": 8.0,
        });
        let c = parse(llama(multipliers)).unwrap();
        assert_eq!(
            (c.embed_scale, c.residual_scale, c.attn_scale, c.logits_divisor),
            (Some(12.0), 0.22, 0.015625, 8.0)
        );
        let plain = parse(llama(serde_json::json!({ "model_type": "granite" }))).unwrap();
        assert_eq!(
            (plain.embed_scale, plain.residual_scale, plain.attn_scale, plain.logits_divisor),
            (None, 1.0, 0.5, 1.0)
        );
        let e = parse(llama(serde_json::json!({ "logits_scaling": 8.0 }))).unwrap_err();
        assert!(e.to_string().contains("logits_scaling"), "{e}");
    }

    #[test]
    fn phi_reads_both_rope_forms_and_refuses_qk_layernorm() {
        let phi = |extra: Value| {
            let mut v = serde_json::json!({
                "model_type": "phi", "vocab_size": 32, "hidden_size": 80, "intermediate_size": 96,
                "num_hidden_layers": 2, "num_attention_heads": 4, "eos_token_id": 2,
            });
            v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            parse(v)
        };
        // The class defaults: half of each head rotates, base 1e4, untied, LayerNorm eps 1e-5.
        let c = phi(serde_json::json!({})).unwrap();
        assert_eq!((c.head_dim, c.rotary_dim, c.kv_heads, c.tie_embeddings, c.norm_eps), (20, 10, 4, false, 1e-5));
        assert_eq!(c.rope.unwrap().theta, 1e4);
        // microsoft/phi-2's form: the settings at the top level.
        let hub = phi(serde_json::json!({ "rope_theta": 5e4, "partial_rotary_factor": 0.4, "rope_scaling": null }));
        let hub = hub.unwrap();
        assert_eq!((hub.rotary_dim, hub.rope.unwrap().theta), (8, 5e4));
        let block = phi(
            serde_json::json!({ "rope_parameters": { "rope_type": "default", "rope_theta": 3e4, "partial_rotary_factor": 0.4 } }),
        );
        let block = block.unwrap();
        assert_eq!((block.rotary_dim, block.rope.unwrap().theta), (8, 3e4));
        let e = phi(serde_json::json!({ "qk_layernorm": true })).unwrap_err();
        assert!(e.to_string().contains("qk_layernorm"), "{e}");
        assert_eq!(Arch::Phi.default_lora_targets(), ["q_proj", "k_proj", "v_proj", "dense"]);
    }

    #[test]
    fn gpt2_reads_its_attention_scale_switches() {
        let gpt2 = |extra: Value| {
            let mut v = serde_json::json!({
                "model_type": "gpt2", "vocab_size": 32, "n_embd": 16, "n_layer": 3, "n_head": 4,
                "n_positions": 64, "eos_token_id": 2,
            });
            v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            parse(v).unwrap()
        };
        let scales = |c: &ModelConfig| (0..3).map(|l| c.layer_attn_scale(l)).collect::<Vec<_>>();
        assert_eq!(scales(&gpt2(serde_json::json!({}))), [0.5, 0.5, 0.5]);
        let by_layer = gpt2(serde_json::json!({ "scale_attn_by_inverse_layer_idx": true }));
        assert_eq!(scales(&by_layer), [0.5, 0.25, 0.5 / 3.0]);
        let unscaled = gpt2(serde_json::json!({ "scale_attn_weights": false }));
        assert_eq!(scales(&unscaled), [1.0, 1.0, 1.0]);
    }

    #[test]
    fn unsupported_settings_and_missing_fields_are_named() {
        let e = parse(llama(serde_json::json!({ "rope_scaling": { "type": "yarn" } }))).unwrap_err();
        assert!(e.to_string().contains("yarn"), "{e}");
        let e = parse(llama(serde_json::json!({ "rope_parameters": { "rope_type": "llama3", "factor": 8.0 } })))
            .unwrap_err();
        assert!(e.to_string().contains("low_freq_factor"), "{e}");
        let mut v = llama(serde_json::json!({}));
        v.as_object_mut().unwrap().remove("hidden_size");
        let e = parse(v).unwrap_err();
        assert!(e.to_string().contains("hidden_size"), "{e}");
        let e = parse(llama(serde_json::json!({ "partial_rotary_factor": 0.5 }))).unwrap_err();
        assert!(e.to_string().contains("partial_rotary_factor"), "{e}");
        let e = parse(llama(serde_json::json!({ "num_key_value_heads": 3 }))).unwrap_err();
        assert!(e.to_string().contains("num_key_value_heads"), "{e}");
        let e = parse(serde_json::json!({ "model_type": "mamba" })).unwrap_err();
        assert!(e.to_string().contains("mamba"), "{e}");
        // The list a user is shown is the dispatch table itself.
        for (name, _) in MODEL_TYPES {
            assert!(
                e.to_string().contains(&format!(" {name},")) || e.to_string().contains(&format!(" {name})")),
                "{name}: {e}"
            );
        }
    }
}
