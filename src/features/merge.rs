//! `gradsift merge`: shard stores (see [`super::shard`]) into one store.

use std::path::{Path, PathBuf};

use super::npy::{self, Dtype, NpyWriter};
use super::shard::Shard;
use super::store::{differing_fields, Manifest, Store};
use crate::error::{Error, Result, Setting};

/// Merges complete shard stores (in any order) into one store at `out`, bit-identical to the
/// store one unsharded run writes. Refuses shards made with other arguments (naming what
/// differs), a missing or repeated shard, or an incomplete one.
pub fn merge(shards: &[PathBuf], out: &Path) -> Result<Manifest> {
    let mut parts: Vec<(Shard, PathBuf, Manifest)> = Vec::new();
    for dir in shards {
        let m =
            Store::new(dir).manifest()?.ok_or_else(|| Error::format(dir, "no manifest.json: not a feature store"))?;
        if !m.complete {
            return Err(Error::format(dir, "shard is incomplete; re-run its featurize to resume it"));
        }
        let s = m.key.shard.ok_or_else(|| Error::format(dir, "not a shard (made without --shard)"))?;
        parts.push((s, dir.clone(), m));
    }
    parts.sort_by_key(|p| p.0.index);
    let Some((first, first_dir, _)) = parts.first().cloned() else {
        return Err(Error::setting(Setting::Stores, "merge: no shard stores given"));
    };
    let unsharded = |m: &Manifest| {
        let mut k = m.key.clone();
        k.shard = None;
        k
    };
    let key = unsharded(&parts[0].2);
    for (i, (s, dir, m)) in parts.iter().enumerate() {
        if s.count != first.count || s.index != i {
            return Err(Error::format(
                dir,
                format!(
                    "shard {}/{}: merge needs shards 0..{} of {}, each once",
                    s.index, s.count, first.count, first.count
                ),
            ));
        }
        if unsharded(m) != key {
            return Err(Error::StoreMismatch { path: dir.clone(), differs: differing_fields(&key, &unsharded(m)) });
        }
        if m.feature_dim != parts[0].2.feature_dim {
            return Err(Error::format(
                dir,
                format!("features of width {} against {}", m.feature_dim, parts[0].2.feature_dim),
            ));
        }
    }
    if parts.len() != first.count {
        return Err(Error::format(&first_dir, format!("{} of {} shards given", parts.len(), first.count)));
    }
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let total: usize = parts.iter().map(|p| p.2.num_examples).sum();
    let dim = parts[0].2.feature_dim;
    let mut features = NpyWriter::create(&out.join("features.npy"), total, dim, key.dtype)?;
    let mut losses = Vec::with_capacity(total);
    let mut merged =
        Manifest { key, num_examples: total, rows: Vec::new(), tasks: Vec::new(), truncated: 0, ..parts[0].2.clone() };
    for (_, dir, m) in &parts {
        let f = npy::NpyFile::open(&dir.join("features.npy"))?;
        // A block of rows at a time: the merged matrix never sits in memory.
        let step = (64 << 20) / (4 * dim.max(1));
        for r0 in (0..f.rows).step_by(step.max(1)) {
            features.append(&f.read_rows(r0, step.min(f.rows - r0))?)?;
        }
        losses.extend(npy::read(&dir.join("losses.npy"))?.0);
        merged.rows.extend(&m.rows);
        merged.tasks.extend(m.tasks.iter().cloned());
        merged.truncated += m.truncated;
    }
    features.finish()?;
    npy::write(&out.join("losses.npy"), &losses, losses.len(), 1, Dtype::F32)?;
    merged.chunks_done = total.div_ceil(merged.key.chunk_size.max(1));
    Store::new(out).write_manifest(&merged)?;
    Ok(merged)
}
