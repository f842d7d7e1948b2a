//! Reading checkpoint tensors: `model.safetensors`, or shards listed by
//! `model.safetensors.index.json`, memory-mapped. Floats in f32, f16, bf16 or f64 are cast to
//! f32 as each tensor is taken, because wgpu has no bf16 and our kernels run in f32.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use burn::prelude::*;
use memmap2::Mmap;
use safetensors::{Dtype, SafeTensors};

use super::dtype::FloatKind;
use crate::error::{Error, Result};

/// A host tensor read from a checkpoint.
#[derive(Debug, Clone)]
pub struct HostTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl HostTensor {
    /// The tensor on `device`, its values moved (no second host copy).
    pub(crate) fn upload<const D: usize>(self, device: &Device) -> Tensor<D> {
        Tensor::from_data(TensorData::new(self.data, self.shape), device)
    }
}

/// Where a checkpoint's tensors are: which file, which bytes, in which dtype.
struct Entry {
    file: usize,
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: std::ops::Range<usize>,
}

/// The tensors' storage.
enum Source {
    /// Memory-mapped safetensors files. A tensor is decoded to f32 only when the model takes
    /// it and is moved from there to the device, so the host holds the mapping (file-backed,
    /// reclaimable) and one tensor in flight, never a second copy of the whole model.
    Mapped { maps: Vec<Mmap>, index: HashMap<String, Entry> },
    /// Tensors already in memory (a model being trained); taking one moves it out.
    Memory(RefCell<HashMap<String, HostTensor>>),
}

/// All tensors of a checkpoint, by name, and the files they come from.
pub struct Weights {
    source: Source,
    /// The files read, in order (for hashing into manifests).
    pub files: Vec<PathBuf>,
    /// Names taken by the model (the rest are reported as unused, not fatal).
    taken: RefCell<HashSet<String>>,
}

/// Decodes one value from its little-endian bytes.
type Decode = fn(&[u8]) -> f32;

/// Bytes per value and the decoder of one little-endian float of `dtype` (f32, f16, bf16, f64).
fn decoder(path: &Path, name: &str, dtype: Dtype) -> Result<(usize, Decode)> {
    Ok(match dtype {
        Dtype::F32 => (4, |v| f32::from_le_bytes([v[0], v[1], v[2], v[3]])),
        Dtype::F16 => (2, |v| half::f16::from_le_bytes([v[0], v[1]]).to_f32()),
        Dtype::BF16 => (2, |v| half::bf16::from_le_bytes([v[0], v[1]]).to_f32()),
        Dtype::F64 => (8, |v| f64::from_le_bytes(v.try_into().expect("8 bytes")) as f32),
        other => {
            return Err(Error::format(path, format!("tensor `{name}` has dtype {other:?}; expected a float type")))
        }
    })
}

/// Decodes little-endian floats of `dtype` to f32.
fn to_f32(path: &Path, name: &str, dtype: Dtype, b: &[u8]) -> Result<Vec<f32>> {
    let (w, decode) = decoder(path, name, dtype)?;
    Ok(b.chunks_exact(w).map(decode).collect())
}

/// Decodes `[r, c]` little-endian floats of `dtype` straight into `[c, r]` f32 order (one
/// buffer, no decoded copy in the original order).
fn to_f32_transposed(path: &Path, name: &str, dtype: Dtype, b: &[u8], r: usize, c: usize) -> Result<Vec<f32>> {
    let (w, decode) = decoder(path, name, dtype)?;
    let mut out = vec![0.0; r * c];
    for i in 0..r {
        for j in 0..c {
            let k = i * c + j;
            out[j * r + i] = decode(&b[k * w..(k + 1) * w]);
        }
    }
    Ok(out)
}

/// Transposes `[r, c]` values into `[c, r]` order.
fn transpose(data: &[f32], r: usize, c: usize) -> Vec<f32> {
    let mut out = vec![0.0; r * c];
    for i in 0..r {
        for j in 0..c {
            out[j * r + i] = data[i * c + j];
        }
    }
    out
}

/// Lets the kernel drop the mapped pages of a tensor already decoded, so the mapping does not
/// stay resident beside the decoded copy (the file is read-only; a later read re-reads it).
fn release(map: &Mmap, bytes: &std::ops::Range<usize>) {
    #[cfg(unix)]
    // SAFETY: the mapping is read-only and no slice of these bytes is alive; after DONTNEED
    // a read sees the file's contents again.
    unsafe {
        let _ = map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, bytes.start, bytes.len());
    }
    #[cfg(not(unix))]
    let _ = (map, bytes);
}

/// Maps a safetensors file and lists its tensors (name → dtype, shape, byte range).
fn map_file(path: &Path, file: usize) -> Result<(Mmap, Vec<(String, Entry)>)> {
    let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    // SAFETY: the mapping is read-only and lives as long as the `Weights`; a checkpoint
    // rewritten by another process while we read it is outside what we can guard against
    // (as with every reader of safetensors files).
    let map = unsafe { Mmap::map(&f) }.map_err(|e| Error::io(path, e))?;
    let (header, meta) = SafeTensors::read_metadata(&map[..])
        .map_err(|e| Error::format(path, format!("not a safetensors file: {e}")))?;
    let base = 8 + header;
    let entries = meta
        .tensors()
        .into_iter()
        .map(|(name, info)| {
            let (s, e) = info.data_offsets;
            (name, Entry { file, dtype: info.dtype, shape: info.shape.clone(), bytes: base + s..base + e })
        })
        .collect();
    Ok((map, entries))
}

/// Reads every tensor of one safetensors file (adapters, optimizer moments: small files).
pub fn read_safetensors(path: &Path) -> Result<Vec<(String, HostTensor)>> {
    let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    // SAFETY: as in `map_file`: read-only, alive while we decode.
    let map = unsafe { Mmap::map(&f) }.map_err(|e| Error::io(path, e))?;
    parse_safetensors(&map[..], path)
}

/// Every tensor of a safetensors file's bytes, by name (sorted), as f32; errors name `origin`.
/// The browser page's embedded model comes this way, with no file behind it.
pub(crate) fn parse_safetensors(bytes: &[u8], origin: &Path) -> Result<Vec<(String, HostTensor)>> {
    let (header, meta) =
        SafeTensors::read_metadata(bytes).map_err(|e| Error::format(origin, format!("not a safetensors file: {e}")))?;
    let base = 8 + header;
    let mut out = meta
        .tensors()
        .into_iter()
        .map(|(name, info)| {
            let (s, e) = info.data_offsets;
            let data = to_f32(origin, &name, info.dtype, &bytes[base + s..base + e])?;
            Ok((name, HostTensor { shape: info.shape.clone(), data }))
        })
        .collect::<Result<Vec<_>>>()?;
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

impl Weights {
    /// Maps the checkpoint of a model directory: `model.safetensors`, or the shards listed by
    /// `model.safetensors.index.json`.
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
        let (mut maps, mut index) = (Vec::with_capacity(files.len()), HashMap::new());
        for (i, f) in files.iter().enumerate() {
            if !f.exists() {
                return Err(Error::format(f, "shard listed in model.safetensors.index.json is missing"));
            }
            let (map, entries) = map_file(f, i)?;
            maps.push(map);
            index.extend(entries);
        }
        Ok(Weights { source: Source::Mapped { maps, index }, files, taken: Default::default() })
    }

    /// Tensors already in memory (a model being trained); errors name `origin`.
    pub fn from_tensors(tensors: Vec<(String, HostTensor)>, origin: &Path) -> Self {
        Weights {
            source: Source::Memory(RefCell::new(tensors.into_iter().collect())),
            files: vec![origin.to_path_buf()],
            taken: Default::default(),
        }
    }

    /// The path to name in errors: the single file, or the directory's index.
    pub(crate) fn origin(&self) -> PathBuf {
        self.files.first().cloned().unwrap_or_default()
    }

    /// Every tensor name.
    fn names(&self) -> Vec<String> {
        match &self.source {
            Source::Mapped { index, .. } => index.keys().cloned().collect(),
            Source::Memory(m) => m.borrow().keys().chain(self.taken.borrow().iter()).cloned().collect(),
        }
    }

    /// True if the checkpoint has `name`.
    pub fn contains(&self, name: &str) -> bool {
        match &self.source {
            Source::Mapped { index, .. } => index.contains_key(name),
            Source::Memory(m) => m.borrow().contains_key(name) || self.taken.borrow().contains(name),
        }
    }

    /// Takes tensor `name` (decoded to f32, or moved out of memory), checking its shape.
    pub fn take(&self, name: &str, expected: &[usize]) -> Result<HostTensor> {
        self.take_as(name, expected, false)
    }

    /// Takes 2-D tensor `name` (checked against `expected`) transposed: PyTorch's `[out, in]`
    /// becomes our `[in, out]` as it is decoded, with no intermediate copy of a mapped tensor.
    pub fn take_transposed(&self, name: &str, expected: &[usize]) -> Result<HostTensor> {
        self.take_as(name, expected, true)
    }

    fn take_as(&self, name: &str, expected: &[usize], transposed: bool) -> Result<HostTensor> {
        let missing = || Error::MissingTensor { path: self.origin(), name: name.into() };
        let shape_error = |file: &Path, found: &[usize]| Error::Shape {
            path: file.to_path_buf(),
            name: name.into(),
            found: found.to_vec(),
            expected: expected.to_vec(),
        };
        if self.taken.borrow().contains(name) {
            return Err(Error::format(self.origin(), format!("tensor `{name}` is used twice by the model")));
        }
        let tensor = match &self.source {
            Source::Mapped { maps, index } => {
                let e = index.get(name).ok_or_else(missing)?;
                let file = &self.files[e.file];
                if e.shape != expected {
                    return Err(shape_error(file, &e.shape));
                }
                let bytes = &maps[e.file][e.bytes.clone()];
                let tensor = match (transposed, &e.shape[..]) {
                    (true, &[r, c]) => {
                        HostTensor { shape: vec![c, r], data: to_f32_transposed(file, name, e.dtype, bytes, r, c)? }
                    }
                    _ => HostTensor { shape: e.shape.clone(), data: to_f32(file, name, e.dtype, bytes)? },
                };
                release(&maps[e.file], &e.bytes);
                self.taken.borrow_mut().insert(name.to_string());
                return Ok(tensor);
            }
            Source::Memory(m) => {
                let mut m = m.borrow_mut();
                let found = m.get(name).ok_or_else(missing)?.shape.clone();
                if found != expected {
                    return Err(shape_error(&self.origin(), &found));
                }
                m.remove(name).expect("checked above")
            }
        };
        self.taken.borrow_mut().insert(name.to_string());
        Ok(if transposed { tensor.transposed() } else { tensor })
    }

    /// Takes `name` if present.
    pub fn take_opt(&self, name: &str, expected: &[usize]) -> Result<Option<HostTensor>> {
        if self.contains(name) {
            self.take(name, expected).map(Some)
        } else {
            Ok(None)
        }
    }

    /// The float type most of the checkpoint's bytes are stored in (f32 for tensors already
    /// in memory, which are f32).
    pub fn stored_kind(&self) -> FloatKind {
        let Source::Mapped { index, .. } = &self.source else { return FloatKind::F32 };
        let mut bytes = [0usize; 3];
        for e in index.values() {
            let slot = match e.dtype {
                Dtype::BF16 => 1,
                Dtype::F16 => 2,
                _ => 0,
            };
            bytes[slot] += e.bytes.len();
        }
        let most = (0..3).max_by_key(|&i| bytes[i]).unwrap_or(0);
        [FloatKind::F32, FloatKind::Bf16, FloatKind::F16][most]
    }

    /// Names that were in the file but not used by the model.
    pub fn unused(&self) -> Vec<String> {
        let taken = self.taken.borrow();
        let mut v: Vec<String> = self.names().into_iter().filter(|k| !taken.contains(k)).collect();
        v.sort();
        v
    }
}

impl HostTensor {
    /// Transposes a 2-D tensor (e.g. a PyTorch Linear `[out, in]` into our `[in, out]`).
    pub fn transposed(&self) -> HostTensor {
        let (r, c) = (self.shape[0], self.shape[1]);
        HostTensor { shape: vec![c, r], data: transpose(&self.data, r, c) }
    }
}

/// Writes f32 tensors `(name, shape, values)` to a safetensors file at `path` (atomically),
/// with `metadata` in its header. The one writer of adapters, optimizer moments and models.
pub fn write_safetensors(
    path: &Path,
    tensors: &[(String, Vec<usize>, &[f32])],
    metadata: &[(&str, String)],
) -> Result<()> {
    let bytes: Vec<Vec<u8>> =
        tensors.iter().map(|(_, _, v)| v.iter().flat_map(|x| x.to_le_bytes()).collect()).collect();
    let views = tensors
        .iter()
        .zip(&bytes)
        .map(|((name, shape, _), b)| {
            safetensors::tensor::TensorView::new(Dtype::F32, shape.clone(), b)
                .map(|v| (name.clone(), v))
                .map_err(|e| Error::format(path, format!("tensor `{name}`: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let meta: HashMap<String, String> = metadata.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    let data = safetensors::serialize(views, (!meta.is_empty()).then_some(meta))
        .map_err(|e| Error::format(path, e.to_string()))?;
    crate::util::write_atomic(path, &data)
}
