//! Reading checkpoint tensors: `model.safetensors`, or shards listed by
//! `model.safetensors.index.json`. Floats in f32, f16, bf16 or f64 are cast to f32, because
//! wgpu has no bf16 and our kernels run in f32.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};

use crate::error::{Error, Result};

/// A host tensor read from a checkpoint.
#[derive(Debug, Clone)]
pub struct HostTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// All tensors of a checkpoint, by name, and the file each came from.
pub struct Weights {
    tensors: HashMap<String, (HostTensor, PathBuf)>,
    /// The files read, in order (for hashing into manifests).
    pub files: Vec<PathBuf>,
    /// Tensor names that were read but never taken (reported, not fatal).
    taken: std::cell::RefCell<std::collections::HashSet<String>>,
}

fn to_f32(path: &Path, name: &str, view: &safetensors::tensor::TensorView<'_>) -> Result<Vec<f32>> {
    let b = view.data();
    Ok(match view.dtype() {
        Dtype::F32 => b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
        Dtype::F16 => b.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
        Dtype::BF16 => b.chunks_exact(2).map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
        Dtype::F64 => b.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32).collect(),
        other => {
            return Err(Error::format(path, format!("tensor `{name}` has dtype {other:?}; expected a float type")))
        }
    })
}

/// Reads every tensor of one safetensors file into `out`.
pub fn read_safetensors(path: &Path) -> Result<Vec<(String, HostTensor)>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let st =
        SafeTensors::deserialize(&bytes).map_err(|e| Error::format(path, format!("not a safetensors file: {e}")))?;
    let mut out = Vec::new();
    for (name, view) in st.tensors() {
        let data = to_f32(path, &name, &view)?;
        out.push((name, HostTensor { shape: view.shape().to_vec(), data }));
    }
    Ok(out)
}

impl Weights {
    /// Loads the checkpoint of a model directory.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let single = dir.join("model.safetensors");
        let index = dir.join("model.safetensors.index.json");
        let files = if single.exists() {
            vec![single]
        } else if index.exists() {
            let text = std::fs::read_to_string(&index).map_err(|e| Error::io(&index, e))?;
            let v: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| Error::format(&index, format!("invalid JSON: {e}")))?;
            let map = v
                .get("weight_map")
                .and_then(|m| m.as_object())
                .ok_or_else(|| Error::format(&index, "missing field `weight_map`"))?;
            let mut shards: Vec<String> = map.values().filter_map(|s| s.as_str().map(String::from)).collect();
            shards.sort();
            shards.dedup();
            shards.into_iter().map(|s| dir.join(s)).collect()
        } else {
            return Err(Error::format(dir, "no model.safetensors or model.safetensors.index.json"));
        };
        let mut tensors = HashMap::new();
        for f in &files {
            if !f.exists() {
                return Err(Error::format(f, "shard listed in model.safetensors.index.json is missing"));
            }
            for (name, t) in read_safetensors(f)? {
                tensors.insert(name, (t, f.clone()));
            }
        }
        Ok(Weights { tensors, files, taken: Default::default() })
    }

    /// Tensors already in memory (a model being trained); errors name `origin`.
    pub fn from_tensors(tensors: Vec<(String, HostTensor)>, origin: &Path) -> Self {
        let tensors = tensors.into_iter().map(|(n, t)| (n, (t, origin.to_path_buf()))).collect();
        Weights { tensors, files: vec![origin.to_path_buf()], taken: Default::default() }
    }

    /// The path to name in errors: the single file, or the directory's index.
    fn origin(&self) -> PathBuf {
        self.files.first().cloned().unwrap_or_default()
    }

    /// True if the checkpoint has `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    /// Takes tensor `name`, checking its shape.
    pub fn take(&self, name: &str, expected: &[usize]) -> Result<HostTensor> {
        let (t, file) =
            self.tensors.get(name).ok_or_else(|| Error::MissingTensor { path: self.origin(), name: name.into() })?;
        if t.shape != expected {
            return Err(Error::Shape {
                path: file.clone(),
                name: name.into(),
                found: t.shape.clone(),
                expected: expected.to_vec(),
            });
        }
        self.taken.borrow_mut().insert(name.to_string());
        Ok(t.clone())
    }

    /// Takes `name` if present.
    pub fn take_opt(&self, name: &str, expected: &[usize]) -> Result<Option<HostTensor>> {
        if self.contains(name) {
            self.take(name, expected).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Names that were in the file but not used by the model.
    pub fn unused(&self) -> Vec<String> {
        let taken = self.taken.borrow();
        let mut v: Vec<String> = self.tensors.keys().filter(|k| !taken.contains(*k)).cloned().collect();
        v.sort();
        v
    }
}

impl HostTensor {
    /// Transposes a 2-D tensor (e.g. a PyTorch Linear `[out, in]` into our `[in, out]`).
    pub fn transposed(&self) -> HostTensor {
        let (r, c) = (self.shape[0], self.shape[1]);
        let mut data = vec![0.0; r * c];
        for i in 0..r {
            for j in 0..c {
                data[j * r + i] = self.data[i * c + j];
            }
        }
        HostTensor { shape: vec![c, r], data }
    }
}
