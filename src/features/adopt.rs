//! Feature stores computed elsewhere (`featurize`, whole or as the shards of a cluster job)
//! taken in place of computing them: `select --pool-features`. A store is taken only when its
//! key, shard aside, equals the key the featurization at hand would write, so the result is
//! the one an unsharded run in place would give, bit for bit.

use std::path::{Path, PathBuf};

use super::merge::merge;
use super::store::{differing_fields, Manifest, Store, StoreKey};
use crate::error::{Error, Result, Setting};

/// Brings the stores among `given` that match `key` into the store at `out`: the shards merged
/// (every one of them, complete), or a whole store copied. Does nothing when `out` already
/// holds the complete store. Refuses, naming what differs, when none of `given` matches.
pub(crate) fn adopt(given: &[PathBuf], key: &StoreKey, out: &Path) -> Result<()> {
    if let Some(m) = Store::new(out).manifest()? {
        if m.complete && m.key == *key {
            return Ok(());
        }
    }
    let mut manifests = Vec::with_capacity(given.len());
    for dir in given {
        let m =
            Store::new(dir).manifest()?.ok_or_else(|| Error::format(dir, "no manifest.json: not a feature store"))?;
        manifests.push((dir, m));
    }
    let unsharded = |m: &Manifest| StoreKey { shard: None, ..m.key.clone() };
    let matching: Vec<&(&PathBuf, Manifest)> = manifests.iter().filter(|(_, m)| unsharded(m) == *key).collect();
    if let Some((dir, _)) = matching.iter().find(|(_, m)| m.key.shard.is_none()) {
        return copy_store(dir, out);
    }
    if !matching.is_empty() {
        let shards: Vec<PathBuf> = matching.iter().map(|(d, _)| d.to_path_buf()).collect();
        tracing::info!("features: merging {} shard stores into {}", shards.len(), out.display());
        merge(&shards, out)?;
        return Ok(());
    }
    // Name the differences from the closest store given.
    let closest =
        manifests.iter().map(|(dir, m)| (dir, differing_fields(key, &unsharded(m)))).min_by_key(|(_, d)| d.len());
    match closest {
        Some((dir, differs)) => Err(Error::StoreMismatch { path: dir.to_path_buf(), differs }),
        None => Err(Error::setting(Setting::PoolFeatures, "no pool feature stores given")),
    }
}

/// Copies a complete store's files into `out`, the manifest last (a copy cut short is never
/// taken for a complete store).
fn copy_store(from: &Path, out: &Path) -> Result<()> {
    let m = Store::new(from).manifest()?.ok_or_else(|| Error::format(from, "no manifest.json"))?;
    if !m.complete {
        return Err(Error::format(from, "store is incomplete; re-run its featurize to resume it"));
    }
    tracing::info!("features: taking {} as {}", from.display(), out.display());
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    for f in ["features.npy", "losses.npy"] {
        std::fs::copy(from.join(f), out.join(f)).map_err(|e| Error::io(from.join(f), e))?;
    }
    let manifest = from.join("manifest.json");
    let bytes = std::fs::read(&manifest).map_err(|e| Error::io(&manifest, e))?;
    crate::util::write_atomic(&out.join("manifest.json"), &bytes)
}
