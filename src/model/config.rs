//! The parts of a Hugging Face `config.json` the supported architectures use, read as the file
//! has them (both the old top-level `rope_theta` and the newer `rope_parameters` block).

use std::path::Path;

use serde_json::Value;

use crate::error::{Error, Result};

/// The transformer families we implement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// Llama and its relatives (Mistral, SmolLM, TinyLlama): RMSNorm, SwiGLU, rotate-half RoPE.
    Llama,
    /// Qwen2: Llama with q/k/v biases.
    Qwen2,
    /// GPT-2: LayerNorm, GELU (tanh), learned positions, Conv1D weights stored [in, out].
    Gpt2,
}

/// A checkpoint's declared float type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FloatKind {
    F32,
    Bf16,
    F16,
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
    pub intermediate: usize,
    pub norm_eps: f64,
    pub rope_theta: f64,
    pub tie_embeddings: bool,
    pub max_positions: usize,
    pub eos_token_id: u32,
    pub bos_token_id: Option<u32>,
    /// `dtype` (or the older `torch_dtype`) of config.json.
    pub dtype: FloatKind,
}

fn get_usize(v: &Value, key: &str, path: &Path) -> Result<usize> {
    v.get(key)
        .and_then(Value::as_u64)
        .map(|x| x as usize)
        .ok_or_else(|| Error::format(path, format!("missing or non-integer field `{key}`")))
}

fn first_id(v: Option<&Value>) -> Option<u32> {
    match v? {
        Value::Number(n) => n.as_u64().map(|x| x as u32),
        Value::Array(a) => a.first().and_then(Value::as_u64).map(|x| x as u32),
        _ => None,
    }
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
        let model_type = v.get("model_type").and_then(Value::as_str).unwrap_or("").to_string();
        let arch = match model_type.as_str() {
            "llama" | "mistral" => Arch::Llama,
            "qwen2" => Arch::Qwen2,
            "gpt2" => Arch::Gpt2,
            _ => return Err(Error::UnknownArchitecture { path: path.into(), model_type }),
        };
        let eos_token_id =
            first_id(v.get("eos_token_id")).ok_or_else(|| Error::format(path, "missing field `eos_token_id`"))?;
        let bos_token_id = first_id(v.get("bos_token_id"));
        let dtype = match v.get("dtype").or_else(|| v.get("torch_dtype")).and_then(Value::as_str) {
            Some("bfloat16") => FloatKind::Bf16,
            Some("float16") => FloatKind::F16,
            _ => FloatKind::F32,
        };
        if arch == Arch::Gpt2 {
            let hidden = get_usize(v, "n_embd", path)?;
            let heads = get_usize(v, "n_head", path)?;
            let act = v.get("activation_function").and_then(Value::as_str).unwrap_or("gelu_new");
            if !matches!(act, "gelu_new" | "gelu_pytorch_tanh") {
                return Err(Error::format(path, format!("unsupported activation_function `{act}` (gelu_new)")));
            }
            return Ok(ModelConfig {
                arch,
                vocab_size: get_usize(v, "vocab_size", path)?,
                hidden,
                layers: get_usize(v, "n_layer", path)?,
                heads,
                kv_heads: heads,
                head_dim: hidden / heads,
                intermediate: v.get("n_inner").and_then(Value::as_u64).map(|x| x as usize).unwrap_or(4 * hidden),
                norm_eps: v.get("layer_norm_epsilon").and_then(Value::as_f64).unwrap_or(1e-5),
                rope_theta: 0.0,
                tie_embeddings: true,
                max_positions: get_usize(v, "n_positions", path)?,
                eos_token_id,
                bos_token_id,
                dtype,
            });
        }
        let hidden = get_usize(v, "hidden_size", path)?;
        let heads = get_usize(v, "num_attention_heads", path)?;
        let kv_heads = v.get("num_key_value_heads").and_then(Value::as_u64).map(|x| x as usize).unwrap_or(heads);
        let head_dim = v.get("head_dim").and_then(Value::as_u64).map(|x| x as usize).unwrap_or(hidden / heads);
        if heads % kv_heads != 0 {
            return Err(Error::format(
                path,
                format!("num_attention_heads {heads} is not a multiple of num_key_value_heads {kv_heads}"),
            ));
        }
        let rope = v.get("rope_parameters").or_else(|| v.get("rope_scaling")).filter(|r| !r.is_null());
        if let Some(kind) = rope.and_then(|r| r.get("rope_type").or_else(|| r.get("type"))).and_then(Value::as_str) {
            if kind != "default" {
                return Err(Error::format(path, format!("unsupported rope_type `{kind}` (default)")));
            }
        }
        let rope_theta = rope
            .and_then(|r| r.get("rope_theta"))
            .or_else(|| v.get("rope_theta"))
            .and_then(Value::as_f64)
            .unwrap_or(10000.0);
        let act = v.get("hidden_act").and_then(Value::as_str).unwrap_or("silu");
        if act != "silu" {
            return Err(Error::format(path, format!("unsupported hidden_act `{act}` (silu)")));
        }
        Ok(ModelConfig {
            arch,
            vocab_size: get_usize(v, "vocab_size", path)?,
            hidden,
            layers: get_usize(v, "num_hidden_layers", path)?,
            heads,
            kv_heads,
            head_dim,
            intermediate: get_usize(v, "intermediate_size", path)?,
            norm_eps: v.get("rms_norm_eps").and_then(Value::as_f64).unwrap_or(1e-6),
            rope_theta,
            tie_embeddings: v.get("tie_word_embeddings").and_then(Value::as_bool).unwrap_or(arch == Arch::Qwen2),
            max_positions: v
                .get("max_position_embeddings")
                .and_then(Value::as_u64)
                .map(|x| x as usize)
                .unwrap_or(usize::MAX),
            eos_token_id,
            bos_token_id,
            dtype,
        })
    }
}
