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

use super::npy::{self, Dtype, NpyFile, NpyWriter};
use crate::data::View;
use crate::error::{Error, Result};
use crate::model::{FloatKind, ParamSlot};
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
    pub loss: crate::loss::LossKind,
    /// DPO's reference adapter (its files), when it is not the base model. Stores made before
    /// the option have none: their reference was the base model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<serde_json::Value>,
    pub transform: String,
    pub seed: u64,
    /// 0 = no projection.
    pub proj_dim: usize,
    /// Stores written before the sparse projection have none: they were dense.
    #[serde(default)]
    pub projection: ProjectionKey,
    pub dtype: Dtype,
    /// The type the model's frozen matrices were kept in (`--weights-dtype`): 16-bit weights
    /// give other gradients. Stores written before the option have none: they were f32.
    #[serde(default, skip_serializing_if = "is_f32")]
    pub weights: FloatKind,
    pub max_len: usize,
    /// The data files, in order. Stores written before several files were allowed hold one
    /// `source`; they read as a list of one, so they are still reused.
    #[serde(alias = "source", deserialize_with = "one_or_many")]
    pub sources: Vec<FileHash>,
    /// Which side of a preference file was read as instruction data (empty: the file as is).
    #[serde(default, skip_serializing_if = "is_as_read")]
    pub view: View,
    pub chunk_size: usize,
    /// The part of the data this store holds, when featurized in shards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<super::shard::Shard>,
}

fn is_f32(kind: &FloatKind) -> bool {
    *kind == FloatKind::F32
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Vec<FileHash>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(FileHash),
        Many(Vec<FileHash>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(f) => vec![f],
        OneOrMany::Many(v) => v,
    })
}

fn is_as_read(v: &View) -> bool {
    *v == View::AsRead
}

/// How P was drawn (see [`super::FeatureOptions::projection_key`]).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct ProjectionKey {
    pub kind: super::ProjectionKind,
    /// Nonzeros per column of the sparse P; 0 for the dense one.
    pub nnz: usize,
}

impl Default for ProjectionKey {
    /// The dense P, the only one before `--projection`.
    fn default() -> Self {
        ProjectionKey { kind: super::ProjectionKind::Dense, nnz: 0 }
    }
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
    /// A matrix made in memory rather than by `featurize` (benchmarks, tests): its manifest
    /// records the shape and the rows' tasks, and no source.
    pub fn from_matrix(data: Vec<f32>, rows: usize, dim: usize, tasks: Vec<Option<String>>) -> Features {
        assert_eq!(data.len(), rows * dim, "a [{rows}, {dim}] matrix needs {} values", rows * dim);
        let key = StoreKey {
            model: vec![],
            adapter: serde_json::Value::Null,
            loss: crate::loss::LossKind::Sft,
            reference: None,
            transform: String::new(),
            seed: 0,
            proj_dim: dim,
            projection: ProjectionKey::default(),
            dtype: Dtype::F32,
            weights: FloatKind::F32,
            max_len: 0,
            sources: Vec::new(),
            view: View::AsRead,
            chunk_size: rows.max(1),
            shard: None,
        };
        let manifest = Manifest {
            format: "gradsift-features/1".into(),
            key,
            complete: true,
            num_examples: rows,
            feature_dim: dim,
            grad_dim: dim,
            chunks_done: 1,
            truncated: 0,
            rows: (1..=rows).collect(),
            tasks,
            layout: vec![],
            device: "memory".into(),
        };
        Features { rows, dim, data, losses: vec![0.0; rows], manifest }
    }

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
                let differs = differing_fields(&old.key, key);
                return Err(Error::StoreMismatch { path: self.dir.clone(), differs });
            }
            // What cannot be removed would be read back as this key's work: an error, not a
            // store that mixes two settings. Only what is already gone is fine.
            let gone = |r: std::io::Result<()>, path: PathBuf| match r {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(path, e)),
                _ => Ok(()),
            };
            let chunks = self.dir.join("chunks");
            gone(std::fs::remove_dir_all(&chunks), chunks)?;
            let merged = self.dir.join("features.npy");
            gone(std::fs::remove_file(&merged), merged)?;
            gone(std::fs::remove_file(self.manifest_path()), self.manifest_path())?;
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

    /// Assembles the final matrix and losses from the chunks, one chunk in memory at a time,
    /// removes the chunks and marks the manifest complete.
    pub fn finish(&self, m: &mut Manifest) -> Result<()> {
        let (dim, size) = (m.feature_dim, m.key.chunk_size);
        let mut features = NpyWriter::create(&self.dir.join("features.npy"), m.num_examples, dim, m.key.dtype)?;
        let mut losses = Vec::with_capacity(m.num_examples);
        for c in 0..m.num_examples.div_ceil(size) {
            let (d, l) = self.read_chunk(c, dim)?;
            let expected = size.min(m.num_examples - c * size);
            if l.len() != expected {
                return Err(Error::format(
                    self.chunk_path(c),
                    format!("chunk has {} rows, expected {expected}", l.len()),
                ));
            }
            features.append(&d)?;
            losses.extend(l);
        }
        features.finish()?;
        npy::write(&self.dir.join("losses.npy"), &losses, losses.len(), 1, Dtype::F32)?;
        m.complete = true;
        self.write_manifest(m)?;
        let _ = std::fs::remove_dir_all(self.dir.join("chunks"));
        Ok(())
    }

    /// Opens a complete store for reading a block of rows at a time.
    pub fn open(&self) -> Result<FeatureFile> {
        let m = self.manifest()?.ok_or_else(|| Error::format(&self.dir, "no manifest.json: not a feature store"))?;
        if !m.complete {
            return Err(Error::format(&self.dir, "feature store is incomplete; re-run featurize to resume it"));
        }
        let path = self.dir.join("features.npy");
        let matrix = NpyFile::open(&path)?;
        let (losses, _, _) = npy::read(&self.dir.join("losses.npy"))?;
        if matrix.rows != m.num_examples || matrix.cols != m.feature_dim || losses.len() != m.num_examples {
            return Err(Error::format(path, "shape disagrees with manifest.json"));
        }
        Ok(FeatureFile { rows: matrix.rows, dim: matrix.cols, matrix, losses, manifest: m })
    }

    /// Loads a complete store into memory.
    pub fn load(&self) -> Result<Features> {
        self.open()?.load()
    }
}

/// A complete store's matrix, left on disk: [`super::FeatureRows`] reads it a block of rows at
/// a time, so scoring a pool holds one block, not the pool.
#[derive(Debug, Clone)]
pub struct FeatureFile {
    pub rows: usize,
    pub dim: usize,
    matrix: NpyFile,
    /// Per-example loss values.
    pub losses: Vec<f32>,
    pub manifest: Manifest,
}

impl FeatureFile {
    /// Rows `r0 .. r0 + n`.
    pub fn read_rows(&self, r0: usize, n: usize) -> Result<Vec<f32>> {
        self.matrix.read_rows(r0, n)
    }

    /// The whole matrix in memory, for the methods that need every row at once.
    pub fn load(&self) -> Result<Features> {
        Ok(Features {
            rows: self.rows,
            dim: self.dim,
            data: self.read_rows(0, self.rows)?,
            losses: self.losses.clone(),
            manifest: self.manifest.clone(),
        })
    }
}

pub(super) fn differing_fields(a: &StoreKey, b: &StoreKey) -> Vec<String> {
    let (va, vb) = (serde_json::to_value(a).expect("json"), serde_json::to_value(b).expect("json"));
    let (Some(oa), Some(ob)) = (va.as_object(), vb.as_object()) else { return vec![] };
    let mut keys: Vec<&String> = oa.keys().chain(ob.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter().filter(|k| oa.get(*k) != ob.get(*k)).cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `--overwrite` over a store it cannot clear is an error naming what stood in the way,
    /// not a store that mixes the old rows with the new key's.
    #[test]
    fn an_overwrite_that_cannot_clear_the_store_fails() {
        let tmp = tempfile::Builder::new().prefix("gradsift-store-clear-").tempdir().unwrap();
        let dir = tmp.path().join("store");
        let store = Store::new(&dir);
        let old = Features::from_matrix(vec![1.0; 4], 2, 2, vec![None, None]).manifest;
        std::fs::create_dir_all(&dir).unwrap();
        store.write_manifest(&old).unwrap();
        // Something that is no file where the merged matrix goes (remove_file cannot take it).
        std::fs::create_dir_all(dir.join("features.npy/inside")).unwrap();
        let new = StoreKey { seed: 1, ..old.key.clone() };
        let e = store.open_for(&new, true).unwrap_err().to_string();
        assert!(e.contains("features.npy"), "{e}");
        std::fs::remove_dir_all(dir.join("features.npy")).unwrap();
        assert_eq!(store.open_for(&new, true).unwrap(), 0, "a clearable store is cleared");
        assert!(store.manifest().unwrap().is_none());
    }
}
