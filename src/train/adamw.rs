//! AdamW over a flat parameter vector (the LoRA tensors), written out so that its moments can be
//! saved: LESS preconditions candidate gradients with them. Same update as PyTorch's AdamW:
//! decoupled weight decay, bias-corrected moments, ε outside the square root.

use std::path::Path;

use crate::error::{Error, Result};
use crate::model::{read_safetensors, write_safetensors, ParamSlot};

/// Hyper-parameters (PyTorch defaults: β1 0.9, β2 0.999, ε 1e-8).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AdamWConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        AdamWConfig { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0 }
    }
}

/// Optimizer state: first and second moments and the step count.
#[derive(Debug, Clone)]
pub struct AdamW {
    pub config: AdamWConfig,
    /// exp_avg.
    pub m: Vec<f32>,
    /// exp_avg_sq.
    pub v: Vec<f32>,
    pub step: u64,
}

impl AdamW {
    /// Zero moments for `n` parameters.
    pub fn new(config: AdamWConfig, n: usize) -> Self {
        AdamW { config, m: vec![0.0; n], v: vec![0.0; n], step: 0 }
    }

    /// One update of `params` with gradient `grad` at learning rate `lr`.
    pub fn step(&mut self, params: &mut [f32], grad: &[f32], lr: f64) {
        assert_eq!(params.len(), grad.len());
        let c = self.config;
        self.step += 1;
        let bc1 = 1.0 - c.beta1.powi(self.step as i32);
        let bc2 = 1.0 - c.beta2.powi(self.step as i32);
        for i in 0..params.len() {
            let g = grad[i] as f64;
            let m = c.beta1 * self.m[i] as f64 + (1.0 - c.beta1) * g;
            let v = c.beta2 * self.v[i] as f64 + (1.0 - c.beta2) * g * g;
            self.m[i] = m as f32;
            self.v[i] = v as f32;
            let mut p = params[i] as f64 * (1.0 - lr * c.weight_decay);
            p -= lr * (m / bc1) / ((v / bc2).sqrt() + c.eps);
            params[i] = p as f32;
        }
    }

    /// Writes `optimizer.safetensors`: `exp_avg.NAME` and `exp_avg_sq.NAME` per PEFT tensor,
    /// with the step and hyper-parameters in the metadata.
    pub fn save(&self, path: &Path, layout: &[ParamSlot]) -> Result<()> {
        let mut tensors: Vec<(String, Vec<usize>, &[f32])> = Vec::new();
        for slot in layout {
            let len: usize = slot.shape.iter().product();
            for (prefix, src) in [("exp_avg", &self.m), ("exp_avg_sq", &self.v)] {
                tensors.push((
                    format!("{prefix}.{}", slot.name),
                    slot.shape.clone(),
                    &src[slot.offset..slot.offset + len],
                ));
            }
        }
        let meta = [("step", self.step.to_string()), ("config", serde_json::to_string(&self.config).expect("json"))];
        write_safetensors(path, &tensors, &meta)
    }

    /// Reads moments saved by [`Self::save`] for the parameters of `layout`.
    pub fn load(path: &Path, layout: &[ParamSlot]) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes)
            .map_err(|e| Error::format(path, format!("not a safetensors file: {e}")))?;
        // β and ε feed LESS's Adam features: defaults in their place would give other features
        // that look right, so missing or malformed metadata is an error.
        let meta = meta.metadata().clone().unwrap_or_default();
        let field = |name: &str| {
            meta.get(name).ok_or_else(|| {
                Error::format(path, format!("metadata has no `{name}` (moments saved by `gradsift warmup` carry it)"))
            })
        };
        let step = field("step")?
            .parse()
            .map_err(|e| Error::format(path, format!("metadata field `step` is not a step count: {e}")))?;
        let config: AdamWConfig = serde_json::from_str(field("config")?)
            .map_err(|e| Error::format(path, format!("metadata field `config` is not an AdamW configuration: {e}")))?;
        let tensors: std::collections::HashMap<String, _> = read_safetensors(path)?.into_iter().collect();
        let n = layout.last().map(|s| s.offset + s.shape.iter().product::<usize>()).unwrap_or(0);
        let mut opt = AdamW::new(config, n);
        opt.step = step;
        for slot in layout {
            for (prefix, dst) in [("exp_avg", &mut opt.m), ("exp_avg_sq", &mut opt.v)] {
                let key = format!("{prefix}.{}", slot.name);
                let t =
                    tensors.get(&key).ok_or_else(|| Error::MissingTensor { path: path.into(), name: key.clone() })?;
                if t.shape != slot.shape {
                    return Err(Error::Shape {
                        path: path.into(),
                        name: key,
                        found: t.shape.clone(),
                        expected: slot.shape.clone(),
                    });
                }
                dst[slot.offset..slot.offset + t.data.len()].copy_from_slice(&t.data);
            }
        }
        Ok(opt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two steps by hand, PyTorch's formula, f64.
    #[test]
    fn matches_the_pytorch_update() {
        let cfg = AdamWConfig { weight_decay: 0.1, ..Default::default() };
        let mut opt = AdamW::new(cfg, 2);
        let mut p = vec![0.5f32, -1.0];
        let grads = [[0.2f32, -0.4], [0.1, 0.3]];
        let mut want = [0.5f64, -1.0];
        let (mut m, mut v) = ([0f64; 2], [0f64; 2]);
        for (t, g) in grads.iter().enumerate() {
            opt.step(&mut p, g, 1e-2);
            for i in 0..2 {
                let gi = g[i] as f64;
                m[i] = 0.9 * m[i] + 0.1 * gi;
                v[i] = 0.999 * v[i] + 0.001 * gi * gi;
                want[i] *= 1.0 - 1e-2 * 0.1;
                let mh = m[i] / (1.0 - 0.9f64.powi(t as i32 + 1));
                let vh = v[i] / (1.0 - 0.999f64.powi(t as i32 + 1));
                want[i] -= 1e-2 * mh / (vh.sqrt() + 1e-8);
            }
        }
        for i in 0..2 {
            assert!((p[i] as f64 - want[i]).abs() < 1e-6, "{} vs {}", p[i], want[i]);
        }
    }

    /// Saved moments come back with their step and hyper-parameters; a file whose metadata
    /// lacks either, or holds something else, is refused naming the file and the field.
    #[test]
    fn moments_round_trip_and_bad_metadata_is_refused() {
        let tmp = tempfile::Builder::new().prefix("gradsift-adamw-").tempdir().unwrap();
        let dir = tmp.path();
        let layout = [ParamSlot { name: "a".into(), shape: vec![2], offset: 0 }];
        let mut opt = AdamW::new(AdamWConfig { beta1: 0.8, beta2: 0.99, eps: 1e-6, weight_decay: 0.0 }, 2);
        opt.step(&mut [0.5, -1.0], &[0.2, -0.4], 1e-2);
        let good = dir.join("good.safetensors");
        opt.save(&good, &layout).unwrap();
        let back = AdamW::load(&good, &layout).unwrap();
        assert_eq!((back.step, back.config, back.m.clone(), back.v.clone()), (opt.step, opt.config, opt.m, opt.v));
        let zeros = [0f32; 2];
        let tensors =
            [("exp_avg.a".to_string(), vec![2], &zeros[..]), ("exp_avg_sq.a".to_string(), vec![2], &zeros[..])];
        let cases = [
            ("none", vec![], "no `step`"),
            ("no-config", vec![("step", "3".to_string())], "no `config`"),
            ("bad-config", vec![("step", "3".into()), ("config", "{\"beta1\": 0.9}".into())], "field `config`"),
        ];
        for (name, meta, says) in cases {
            let p = dir.join(format!("{name}.safetensors"));
            write_safetensors(&p, &tensors, &meta).unwrap();
            let e = AdamW::load(&p, &layout).unwrap_err().to_string();
            assert!(e.contains(&format!("{name}.safetensors")) && e.contains(says), "{name}: {e}");
        }
    }
}
