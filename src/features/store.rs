//! The feature store: one directory per (data set, model, adapter, loss, projection).
//!
//! ```text
//! STORE/manifest.json   what was computed and from what (hashes), row provenance, progress
//! STORE/chunks/NNNNNN.npy  complete chunks, written atomically while the job runs
//! STORE/features.npy    the [N, k] matrix, assembled when every chunk is done
//! STORE/losses.npy      the per-example loss values, [N, 1]
//! ```
//! A re-run with the same arguments reuses every complete chunk; a run with other arguments
//! refuses to mix its rows with the old ones.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::npy::{self, Dtype};
use crate::error::{Error, Result};
use crate::model::ParamSlot;
use crate::util::write_atomic;

/// A file and its SHA-256.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FileHash {
    pub path: String,
    pub sha256: String,
}

/// Everything that determines the features' values. Two runs with equal keys compute equal rows.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StoreKey {
    pub model: Vec<FileHash>,
    /// Adapter files, or a description of the fresh adapter.
    pub adapter: serde_json::Value,
    pub loss: crate::features::LossKind,
    pub transform: String,
    pub seed: u64,
    /// 0 = no projection.
    pub proj_dim: usize,
    pub dtype: Dtype,
    pub max_len: usize,
    pub source: FileHash,
    /// Which side of a preference file was read as instruction data (empty: the file as is).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub view: String,
    pub chunk_size: usize,
}

/// manifest.json.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub key: StoreKey,
    pub complete: bool,
    pub num_examples: usize,
    pub feature_dim: usize,
    pub grad_dim: usize,
    pub chunks_done: usize,
    pub truncated: usize,
    /// Source line (1-based) of each row.
    pub rows: Vec<usize>,
    /// The task field of each row.
    pub tasks: Vec<Option<String>>,
    /// With `proj_dim = 0`: where each PEFT parameter sits in a row.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layout: Vec<ParamSlot>,
    pub device: String,
}

/// A feature matrix in memory.
#[derive(Debug, Clone)]
pub struct Features {
    pub rows: usize,
    pub dim: usize,
    /// `[rows, dim]` row-major.
    pub data: Vec<f32>,
    /// Per-example loss values.
    pub losses: Vec<f32>,
    pub manifest: Manifest,
}

impl Features {
    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }
}

/// An open store directory.
pub struct Store {
    pub dir: PathBuf,
}

impl Store {
    pub fn new(dir: &Path) -> Self {
        Store { dir: dir.to_path_buf() }
    }

    fn manifest_path(&self) -> PathBuf {
        self.dir.join("manifest.json")
    }

    fn chunk_path(&self, i: usize) -> PathBuf {
        self.dir.join("chunks").join(format!("{i:06}.npy"))
    }

    /// Reads manifest.json if present.
    pub fn manifest(&self) -> Result<Option<Manifest>> {
        let p = self.manifest_path();
        if !p.exists() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&p).map_err(|e| Error::io(&p, e))?;
        serde_json::from_str(&text).map(Some).map_err(|e| Error::format(&p, format!("invalid manifest: {e}")))
    }

    /// Writes manifest.json atomically.
    pub fn write_manifest(&self, m: &Manifest) -> Result<()> {
        write_atomic(&self.manifest_path(), serde_json::to_string_pretty(m).expect("json").as_bytes())
    }

    /// Prepares the directory for `key`: returns how many chunks are already done. A store made
    /// with another key is an error unless `overwrite`, which clears it.
    pub fn open_for(&self, key: &StoreKey, overwrite: bool) -> Result<usize> {
        if let Some(old) = self.manifest()? {
            if old.key == *key {
                return Ok(old.chunks_done);
            }
            if !overwrite {
                let diff = differing_fields(&old.key, key);
                return Err(Error::Invalid(format!(
                    "{}: this feature store was made with other arguments ({}); choose another output or pass --overwrite",
                    self.dir.display(),
                    diff.join(", ")
                )));
            }
            let _ = std::fs::remove_dir_all(self.dir.join("chunks"));
            let _ = std::fs::remove_file(self.dir.join("features.npy"));
            let _ = std::fs::remove_file(self.manifest_path());
        }
        std::fs::create_dir_all(self.dir.join("chunks")).map_err(|e| Error::io(&self.dir, e))?;
        Ok(0)
    }

    /// Saves chunk `i` (features and losses).
    pub fn write_chunk(&self, i: usize, data: &[f32], losses: &[f32], dim: usize, dtype: Dtype) -> Result<()> {
        let rows = losses.len();
        let mut packed = Vec::with_capacity(rows * (dim + 1));
        for r in 0..rows {
            packed.push(losses[r]);
            packed.extend_from_slice(&data[r * dim..(r + 1) * dim]);
        }
        // Losses travel in column 0 at full precision only when the dtype is f32; keep them exact.
        npy::write(&self.chunk_path(i), &packed, rows, dim + 1, if dtype == Dtype::F16 { Dtype::F32 } else { dtype })
    }

    /// Reads chunk `i`: (features, losses).
    pub fn read_chunk(&self, i: usize, dim: usize) -> Result<(Vec<f32>, Vec<f32>)> {
        let p = self.chunk_path(i);
        let (packed, rows, cols) = npy::read(&p)?;
        if cols != dim + 1 {
            return Err(Error::format(&p, format!("chunk has {} columns, expected {}", cols, dim + 1)));
        }
        let mut data = Vec::with_capacity(rows * dim);
        let mut losses = Vec::with_capacity(rows);
        for r in 0..rows {
            losses.push(packed[r * cols]);
            data.extend_from_slice(&packed[r * cols + 1..(r + 1) * cols]);
        }
        Ok((data, losses))
    }

    /// Writes the final matrix and losses, removes the chunks, marks the manifest complete.
    pub fn finish(&self, m: &mut Manifest, data: &[f32], losses: &[f32]) -> Result<()> {
        npy::write(&self.dir.join("features.npy"), data, m.num_examples, m.feature_dim, m.key.dtype)?;
        npy::write(&self.dir.join("losses.npy"), losses, losses.len(), 1, Dtype::F32)?;
        m.complete = true;
        self.write_manifest(m)?;
        let _ = std::fs::remove_dir_all(self.dir.join("chunks"));
        Ok(())
    }

    /// Loads a complete store.
    pub fn load(&self) -> Result<Features> {
        let m = self.manifest()?.ok_or_else(|| Error::format(&self.dir, "no manifest.json: not a feature store"))?;
        if !m.complete {
            return Err(Error::format(&self.dir, "feature store is incomplete; re-run featurize to resume it"));
        }
        let (data, rows, dim) = npy::read(&self.dir.join("features.npy"))?;
        let (losses, _, _) = npy::read(&self.dir.join("losses.npy"))?;
        if rows != m.num_examples || dim != m.feature_dim {
            return Err(Error::format(self.dir.join("features.npy"), "shape disagrees with manifest.json"));
        }
        Ok(Features { rows, dim, data, losses, manifest: m })
    }
}

fn differing_fields(a: &StoreKey, b: &StoreKey) -> Vec<String> {
    let (va, vb) = (serde_json::to_value(a).expect("json"), serde_json::to_value(b).expect("json"));
    let (Some(oa), Some(ob)) = (va.as_object(), vb.as_object()) else { return vec![] };
    oa.iter().filter(|(k, v)| ob.get(*k) != Some(v)).map(|(k, _)| k.clone()).collect()
}
