//! LoRA adapters in PEFT's format. PEFT stores `lora_A [r, in]` and `lora_B [out, r]` for
//! Linear and Conv1D modules alike (`fan_in_fan_out` only concerns the base weight), and scales
//! the branch by `alpha / r` (`alpha / √r` with rsLoRA). Targets are matched the way PEFT does:
//! a list entry matches a module whose name equals it or ends with `.entry`; a string is a
//! regular expression that must match the whole name.

use std::path::{Path, PathBuf};

use burn::prelude::*;
use regex::Regex;
use serde_json::{json, Value};

use super::linear::{Branch, LinearInfo, LoraRuntime};
use super::weights::{read_safetensors, write_safetensors, HostTensor};
use crate::error::{Error, Result};

/// Which modules get a LoRA branch.
#[derive(Debug, Clone)]
pub enum TargetSpec {
    /// Module-name suffixes.
    Names(Vec<String>),
    /// A regular expression matched against the full module name: as written in the config
    /// file, and compiled (anchored at both ends, as PEFT's `re.fullmatch`).
    Regex { pattern: String, anchored: Regex },
}

impl TargetSpec {
    /// The regular expression `pattern`, from the config file at `path` (named in the error).
    pub fn regex(pattern: &str, path: &Path) -> Result<TargetSpec> {
        let anchored = Regex::new(&format!("^(?:{pattern})$"))
            .map_err(|e| Error::format(path, format!("target_modules regex `{pattern}`: {e}")))?;
        Ok(TargetSpec::Regex { pattern: pattern.to_string(), anchored })
    }

    fn matches(&self, module: &str) -> bool {
        match self {
            TargetSpec::Names(names) => names.iter().any(|t| module == t || module.ends_with(&format!(".{t}"))),
            TargetSpec::Regex { anchored, .. } => anchored.is_match(module),
        }
    }

    fn to_json(&self) -> Value {
        match self {
            TargetSpec::Names(n) => json!(n),
            TargetSpec::Regex { pattern, .. } => json!(pattern),
        }
    }
}

/// One adapted module.
#[derive(Debug, Clone)]
pub struct LoraModule {
    /// Index into [`crate::model::CausalLm::linears`].
    pub linear: usize,
    /// HF module name, e.g. `model.layers.0.self_attn.q_proj`.
    pub module: String,
    pub rank: usize,
    /// Branch scale (alpha / r, or alpha / √r with rsLoRA).
    pub scale: f64,
    /// PEFT layout `[r, in]`.
    pub a: HostTensor,
    /// PEFT layout `[out, r]`.
    pub b: HostTensor,
}

/// A LoRA adapter attached to a model.
#[derive(Debug, Clone)]
pub struct LoraAdapter {
    pub rank: usize,
    pub alpha: f64,
    pub targets: TargetSpec,
    pub use_rslora: bool,
    pub modules: Vec<LoraModule>,
    /// Where it was loaded from (None for a fresh adapter).
    pub dir: Option<PathBuf>,
}

/// Name, PEFT shape and offset of one trainable tensor in the flat gradient vector.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct ParamSlot {
    pub name: String,
    pub shape: Vec<usize>,
    pub offset: usize,
}

/// PEFT key of a module's tensor.
pub(crate) fn peft_key(module: &str, which: &str) -> String {
    format!("base_model.model.{module}.lora_{which}.weight")
}

/// `rank_pattern` or `alpha_pattern` of adapter_config.json: each key a regular expression
/// matched as PEFT matches it (`(.*\.)?key$`, the first key that matches wins), each value a
/// number. A key that is no regular expression is an error, not a pattern that never matches
/// (which would silently change a module's LoRA scale).
struct Patterns(Vec<(Regex, f64)>);

/// Which pattern field: a rank must be a positive whole number, an alpha any number.
#[derive(Clone, Copy, PartialEq)]
enum PatternField {
    Rank,
    Alpha,
}

impl PatternField {
    /// The field's name in adapter_config.json.
    fn key(self) -> &'static str {
        match self {
            PatternField::Rank => "rank_pattern",
            PatternField::Alpha => "alpha_pattern",
        }
    }
}

impl Patterns {
    /// `which` of `cfg` (the parsed `path`); absent or null is no pattern.
    fn parse(path: &Path, cfg: &Value, which: PatternField) -> Result<Self> {
        let field = which.key();
        let Some(value) = cfg.get(field).filter(|v| !v.is_null()) else { return Ok(Patterns(Vec::new())) };
        let map = value.as_object().ok_or_else(|| {
            Error::format(path, format!("`{field}` must map module patterns to numbers, not {value}"))
        })?;
        let pattern = |(k, v): (&String, &Value)| {
            let re = Regex::new(&format!(r"^(?:.*\.)?(?:{k})$"))
                .map_err(|e| Error::format(path, format!("`{field}` key `{k}` is not a regular expression: {e}")))?;
            let x =
                v.as_f64().ok_or_else(|| Error::format(path, format!("`{field}`.`{k}` must be a number, not {v}")))?;
            if which == PatternField::Rank && (x < 1.0 || x.fract() != 0.0) {
                return Err(Error::format(path, format!("`{field}`.`{k}` must be a positive whole rank, not {v}")));
            }
            Ok((re, x))
        };
        map.iter().map(pattern).collect::<Result<_>>().map(Patterns)
    }

    /// The value of the first pattern that matches `module`.
    fn value(&self, module: &str) -> Option<f64> {
        self.0.iter().find(|(re, _)| re.is_match(module)).map(|&(_, x)| x)
    }
}

impl LoraAdapter {
    /// Loads a PEFT adapter directory and checks it against the model's modules.
    pub fn load(dir: &Path, linears: &[LinearInfo]) -> Result<Self> {
        let cfg_path = dir.join("adapter_config.json");
        let text = std::fs::read_to_string(&cfg_path).map_err(|e| Error::io(&cfg_path, e))?;
        let cfg: Value =
            serde_json::from_str(&text).map_err(|e| Error::format(&cfg_path, format!("invalid JSON: {e}")))?;
        let field = |k: &str| cfg.get(k).filter(|v| !v.is_null());
        if let Some(t) = field("peft_type").and_then(Value::as_str) {
            if t != "LORA" {
                return Err(Error::format(&cfg_path, format!("peft_type `{t}` is not LORA")));
            }
        }
        for (k, bad) in [("use_dora", json!(true)), ("layers_to_transform", Value::Null)] {
            if let Some(v) = field(k) {
                if bad.is_null() || *v == bad {
                    return Err(Error::format(&cfg_path, format!("`{k}` is not supported")));
                }
            }
        }
        if let Some(b) = field("bias").and_then(Value::as_str) {
            if b != "none" {
                return Err(Error::format(&cfg_path, format!("bias `{b}` is not supported (none)")));
            }
        }
        let rank =
            field("r").and_then(Value::as_u64).ok_or_else(|| Error::format(&cfg_path, "missing field `r`"))? as usize;
        let alpha = field("lora_alpha").and_then(Value::as_f64).unwrap_or(8.0);
        let use_rslora = field("use_rslora").and_then(Value::as_bool).unwrap_or(false);
        let targets = match field("target_modules") {
            Some(Value::Array(a)) => TargetSpec::Names(a.iter().filter_map(|v| v.as_str().map(String::from)).collect()),
            Some(Value::String(s)) => TargetSpec::regex(s, &cfg_path)?,
            _ => return Err(Error::format(&cfg_path, "missing field `target_modules`")),
        };
        let rank_pat = Patterns::parse(&cfg_path, &cfg, PatternField::Rank)?;
        let alpha_pat = Patterns::parse(&cfg_path, &cfg, PatternField::Alpha)?;

        let st_path = dir.join("adapter_model.safetensors");
        if !st_path.exists() {
            return Err(Error::format(dir, "no adapter_model.safetensors"));
        }
        let mut tensors: std::collections::HashMap<String, HostTensor> =
            read_safetensors(&st_path)?.into_iter().collect();
        let mut modules = Vec::new();
        for (id, info) in linears.iter().enumerate() {
            let (ka, kb) = (peft_key(&info.name, "A"), peft_key(&info.name, "B"));
            let targeted = targets.matches(&info.name);
            if !targeted && !tensors.contains_key(&ka) {
                continue;
            }
            let r = rank_pat.value(&info.name).map(|x| x as usize).unwrap_or(rank);
            let al = alpha_pat.value(&info.name).unwrap_or(alpha);
            let take = |t: &mut std::collections::HashMap<String, HostTensor>,
                        key: &str,
                        shape: [usize; 2]|
             -> Result<HostTensor> {
                let x =
                    t.remove(key).ok_or_else(|| Error::MissingTensor { path: st_path.clone(), name: key.into() })?;
                if x.shape != shape {
                    return Err(Error::Shape {
                        path: st_path.clone(),
                        name: key.into(),
                        found: x.shape,
                        expected: shape.to_vec(),
                    });
                }
                Ok(x)
            };
            let a = take(&mut tensors, &ka, [r, info.d_in])?;
            let b = take(&mut tensors, &kb, [info.d_out, r])?;
            let scale = if use_rslora { al / (r as f64).sqrt() } else { al / r as f64 };
            modules.push(LoraModule { linear: id, module: info.name.clone(), rank: r, scale, a, b });
        }
        if modules.is_empty() {
            return Err(Error::format(
                &cfg_path,
                format!("target_modules {} match no module of the model", targets.to_json()),
            ));
        }
        if let Some(extra) = tensors.keys().min() {
            return Err(Error::format(
                &st_path,
                format!("tensor `{extra}` does not belong to any module of the model"),
            ));
        }
        Ok(LoraAdapter { rank, alpha, targets, use_rslora, modules, dir: Some(dir.to_path_buf()) })
    }

    /// A new adapter: A uniform in ±1/√in (PEFT's Kaiming default), B zero, seeded.
    pub fn fresh(linears: &[LinearInfo], rank: usize, alpha: f64, targets: &[String], seed: u64) -> Result<Self> {
        let spec = TargetSpec::Names(targets.to_vec());
        let mut rng = crate::util::SplitMix64(seed ^ 0x6C6F_7261);
        let mut modules = Vec::new();
        for (id, info) in linears.iter().enumerate() {
            if !spec.matches(&info.name) {
                continue;
            }
            let bound = 1.0 / (info.d_in as f64).sqrt();
            let a = (0..rank * info.d_in).map(|_| ((2.0 * rng.uniform() - 1.0) * bound) as f32).collect();
            modules.push(LoraModule {
                linear: id,
                module: info.name.clone(),
                rank,
                scale: alpha / rank as f64,
                a: HostTensor { shape: vec![rank, info.d_in], data: a },
                b: HostTensor { shape: vec![info.d_out, rank], data: vec![0.0; info.d_out * rank] },
            });
        }
        if modules.is_empty() {
            let examples = linears.iter().map(|l| l.name.clone()).take(8).collect();
            return Err(Error::NoLoraTarget { targets: targets.to_vec(), examples });
        }
        Ok(LoraAdapter { rank, alpha, targets: spec, use_rslora: false, modules, dir: None })
    }

    /// The flat parameter layout: for each module in model order, A then B, PEFT shapes.
    pub fn layout(&self) -> Vec<ParamSlot> {
        let mut off = 0;
        let mut out = Vec::new();
        for m in &self.modules {
            for (w, t) in [("A", &m.a), ("B", &m.b)] {
                out.push(ParamSlot { name: peft_key(&m.module, w), shape: t.shape.clone(), offset: off });
                off += t.data.len();
            }
        }
        out
    }

    /// All trainable values as one vector, in [`Self::layout`] order.
    pub fn flat_params(&self) -> Vec<f32> {
        self.modules.iter().flat_map(|m| m.a.data.iter().chain(&m.b.data).copied()).collect()
    }

    /// Replaces all trainable values from a vector in [`Self::layout`] order.
    pub fn set_flat_params(&mut self, flat: &[f32]) {
        assert_eq!(flat.len(), self.num_params(), "parameter vector has the wrong length");
        let mut off = 0;
        for m in &mut self.modules {
            for t in [&mut m.a, &mut m.b] {
                let n = t.data.len();
                t.data.copy_from_slice(&flat[off..off + n]);
                off += n;
            }
        }
    }

    /// Number of trainable parameters.
    pub fn num_params(&self) -> usize {
        self.modules.iter().map(|m| m.a.data.len() + m.b.data.len()).sum()
    }

    /// Branches shared by `seqs` sequences (no gradients).
    pub fn runtime(&self, n_linears: usize, seqs: usize, device: &Device) -> LoraRuntime {
        let mut branches: Vec<Option<Branch>> = (0..n_linears).map(|_| None).collect();
        for m in &self.modules {
            let (a, b) = self.module_tensors(m, device);
            let (d_in, d_out) = (m.a.shape[1], m.b.shape[0]);
            branches[m.linear] = Some(Branch {
                a: a.reshape([1, d_in, m.rank]).expand([seqs, d_in, m.rank]),
                b: b.reshape([1, m.rank, d_out]).expand([seqs, m.rank, d_out]),
                scale: m.scale,
            });
        }
        LoraRuntime::new(branches)
    }

    /// A module's matrices in our `x·A·B` layout: `A [in, r]`, `B [r, out]`.
    pub fn module_tensors(&self, m: &LoraModule, device: &Device) -> (Tensor<2>, Tensor<2>) {
        (m.a.transposed().upload(device), m.b.transposed().upload(device))
    }

    /// Writes the adapter as a PEFT directory (adapter_config.json + adapter_model.safetensors).
    pub fn save(&self, dir: &Path, fan_in_fan_out: bool) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let cfg = json!({
            "peft_type": "LORA", "task_type": "CAUSAL_LM", "r": self.rank, "lora_alpha": self.alpha,
            "target_modules": self.targets.to_json(), "fan_in_fan_out": fan_in_fan_out,
            "lora_dropout": 0.0, "bias": "none", "use_rslora": self.use_rslora, "use_dora": false,
            "inference_mode": true, "base_model_name_or_path": null, "modules_to_save": null,
            "init_lora_weights": true,
        });
        let tensors: Vec<(String, Vec<usize>, &[f32])> = self
            .modules
            .iter()
            .flat_map(|m| {
                [("A", &m.a), ("B", &m.b)].map(|(w, t)| (peft_key(&m.module, w), t.shape.clone(), &t.data[..]))
            })
            .collect();
        write_safetensors(&dir.join("adapter_model.safetensors"), &tensors, &[])?;
        crate::util::write_atomic(
            &dir.join("adapter_config.json"),
            serde_json::to_string_pretty(&cfg).expect("json").as_bytes(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_whole_components_and_regexes_the_whole_name() {
        let names = TargetSpec::Names(vec!["q_proj".into(), "c_attn".into()]);
        assert!(names.matches("model.layers.0.self_attn.q_proj"));
        assert!(names.matches("q_proj"));
        assert!(!names.matches("model.layers.0.self_attn.xq_proj"));
        assert!(!names.matches("model.layers.0.self_attn.q_proj.base"));
        let path = Path::new("adapter_config.json");
        let re = TargetSpec::regex(r".*\.(q|v)_proj", path).unwrap();
        assert!(re.matches("model.layers.3.self_attn.v_proj"));
        assert!(!re.matches("model.layers.3.self_attn.v_proj_extra"), "the match is anchored");
        let bad = TargetSpec::regex("(", path).unwrap_err().to_string();
        assert!(bad.starts_with("adapter_config.json: target_modules regex `(`"), "{bad}");
    }

    #[test]
    fn rank_and_alpha_patterns_match_like_peft() {
        let p = Path::new("adapter_config.json");
        let given = json!({ "layers.1.self_attn.q_proj": 16, "v_proj": 4 });
        let pats = Patterns::parse(p, &json!({ "rank_pattern": given }), PatternField::Rank).unwrap();
        assert_eq!(pats.value("model.layers.1.self_attn.q_proj"), Some(16.0));
        assert_eq!(pats.value("model.layers.11.self_attn.q_proj"), None, "keys match whole components");
        assert_eq!(pats.value("model.layers.0.self_attn.v_proj"), Some(4.0));
        assert_eq!(pats.value("model.layers.0.self_attn.k_proj"), None);
        assert!(Patterns::parse(p, &json!({}), PatternField::Alpha).unwrap().value("q_proj").is_none());
        assert!(Patterns::parse(p, &json!({ "alpha_pattern": null }), PatternField::Alpha).unwrap().0.is_empty());
    }

    /// Patterns that cannot be used are refused, naming the file, the field and the key.
    #[test]
    fn bad_rank_and_alpha_patterns_are_refused() {
        let p = Path::new("dir/adapter_config.json");
        for (field, given, says) in [
            (PatternField::Rank, json!({ "q_proj(": 4 }), "key `q_proj(` is not a regular expression"),
            (PatternField::Alpha, json!({ "v_proj": "32" }), "`alpha_pattern`.`v_proj` must be a number"),
            (PatternField::Rank, json!({ "v_proj": 2.5 }), "positive whole rank"),
            (PatternField::Alpha, json!(["v_proj"]), "must map module patterns to numbers"),
        ] {
            let cfg = json!({ field.key(): given });
            let e = Patterns::parse(p, &cfg, field).err().expect("refused").to_string();
            assert!(e.starts_with("dir/adapter_config.json: ") && e.contains(says), "{e}");
        }
        let fractional = json!({ "alpha_pattern": { "v_proj": 2.5 } });
        assert!(Patterns::parse(p, &fractional, PatternField::Alpha).is_ok(), "an alpha may be fractional");
    }
}
