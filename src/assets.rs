//! The embedded default: a small Llama-architecture base model trained by
//! `examples/make_assets.rs`, its tokenizer, and the demo task suite (pool, preference pool,
//! few-shot targets, held-out tests and the suite's ground truth). They are compiled into the binary and written
//! out to a cache directory on first use, so `gradsift select` works anywhere with no download.

use std::path::{Path, PathBuf};

use crate::data::RecordKind;
use crate::error::Result;
use crate::util::write_atomic;

const FILES: &[(&str, &[u8])] = &[
    ("model/config.json", include_bytes!("../assets/model/config.json")),
    ("model/model.safetensors", include_bytes!("../assets/model/model.safetensors")),
    ("model/tokenizer.json", include_bytes!("../assets/model/tokenizer.json")),
    ("demo/pool.jsonl", include_bytes!("../assets/demo/pool.jsonl")),
    ("demo/target.jsonl", include_bytes!("../assets/demo/target.jsonl")),
    ("demo/target-pairs.jsonl", include_bytes!("../assets/demo/target-pairs.jsonl")),
    ("demo/pool-pairs.jsonl", include_bytes!("../assets/demo/pool-pairs.jsonl")),
    ("demo/test.jsonl", include_bytes!("../assets/demo/test.jsonl")),
    ("demo/test-pairs.jsonl", include_bytes!("../assets/demo/test-pairs.jsonl")),
    ("demo/suite.json", include_bytes!("../assets/demo/suite.json")),
];

/// An embedded file's bytes by its name under the default (`model/config.json`,
/// `demo/pool.jsonl`, ...), for hosts without a file system (the browser page).
pub fn bytes(name: &str) -> Option<&'static [u8]> {
    FILES.iter().find(|(n, _)| *n == name).map(|(_, b)| *b)
}

/// Where an embedded file is said to be when it is read from the binary, not from disk
/// (`<embedded>/model/config.json`): in errors, and in the manifests of stores made from it.
pub(crate) fn origin(name: &str) -> PathBuf {
    Path::new(ORIGIN).join(name)
}

/// The bytes of the embedded file an [`origin`] path names; None for any other path.
pub(crate) fn embedded_bytes(path: &Path) -> Option<&'static [u8]> {
    bytes(path.strip_prefix(ORIGIN).ok()?.to_str()?)
}

const ORIGIN: &str = "<embedded>";

/// Paths of the materialized default files.
pub struct DefaultAssets {
    pub model_dir: PathBuf,
    pub pool: PathBuf,
    pub target: PathBuf,
    /// Preference pairs for the same subtasks (ROSE, PRISM; the TIF family's validation set).
    pub target_pairs: PathBuf,
    /// A preference pool, 30% of its pairs flipped (the TIF family).
    pub pool_pairs: PathBuf,
    /// Held-out instruction records and preference pairs of the target tasks.
    pub test: PathBuf,
    pub test_pairs: PathBuf,
    /// The directory holding all demo files and `suite.json` (the ground truth).
    pub demo_dir: PathBuf,
}

impl DefaultAssets {
    /// The demo pool of `kind`.
    pub fn pool_of(&self, kind: RecordKind) -> &PathBuf {
        match kind {
            RecordKind::Instructions => &self.pool,
            RecordKind::Preferences => &self.pool_pairs,
        }
    }

    /// The demo target set of `kind` (preference targets double as the TIF family's
    /// validation set).
    pub fn target_of(&self, kind: RecordKind) -> &PathBuf {
        match kind {
            RecordKind::Instructions => &self.target,
            RecordKind::Preferences => &self.target_pairs,
        }
    }
}

/// Writes the embedded files (once) under the system's cache or temp directory.
pub fn materialize() -> Result<DefaultAssets> {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for (name, bytes) in FILES {
        h.update(name.as_bytes());
        h.update(bytes);
    }
    let tag = format!("{:x}", h.finalize());
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("gradsift")
        .join(format!("default-{}", &tag[..12]));
    for (name, bytes) in FILES {
        let path = base.join(name);
        let fresh = std::fs::read(&path).map(|b| b == *bytes).unwrap_or(false);
        if !fresh {
            write_atomic(&path, bytes)?;
        }
    }
    Ok(DefaultAssets {
        model_dir: base.join("model"),
        pool: base.join("demo/pool.jsonl"),
        target: base.join("demo/target.jsonl"),
        target_pairs: base.join("demo/target-pairs.jsonl"),
        pool_pairs: base.join("demo/pool-pairs.jsonl"),
        test: base.join("demo/test.jsonl"),
        test_pairs: base.join("demo/test-pairs.jsonl"),
        demo_dir: base.join("demo"),
    })
}
