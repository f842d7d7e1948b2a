//! Small file helpers shared by the writers.

use std::path::Path;

use crate::error::{Error, Result};

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, then a rename,
/// so an interrupted run never leaves a half-written file under the final name.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    let tmp = tmp_path(path);
    std::fs::write(&tmp, bytes).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// The temporary name a file is written under before it is renamed into place (same
/// directory, so the rename is atomic; the process id keeps concurrent writers apart).
pub(crate) fn tmp_path(path: &Path) -> std::path::PathBuf {
    path.with_extension(format!(
        "{}.tmp{}",
        path.extension().and_then(|e| e.to_str()).unwrap_or(""),
        std::process::id()
    ))
}

/// SHA-256 of a file, hex. Store keys hash the model's weight files, the data and the
/// adapter on every featurize call, and one `select` makes several such calls on a model of
/// gigabytes: the digest is remembered for the process, keyed by the file's path, length and
/// modification time, so each file is read once per run and a changed file is read again.
pub(crate) fn sha256_file(path: &Path) -> Result<String> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    type Stamp = (std::path::PathBuf, u64, Option<std::time::SystemTime>);
    static DIGESTS: OnceLock<Mutex<HashMap<Stamp, String>>> = OnceLock::new();
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    let stamp: Stamp = (path.to_path_buf(), meta.len(), meta.modified().ok());
    let digests = DIGESTS.get_or_init(Default::default);
    if let Some(d) = digests.lock().expect("digest cache").get(&stamp) {
        return Ok(d.clone());
    }
    let digest = sha256_uncached(path)?;
    digests.lock().expect("digest cache").insert(stamp, digest.clone());
    Ok(digest)
}

/// SHA-256 of bytes in memory, hex.
pub(crate) fn sha256_bytes(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    format!("{:x}", Sha256::digest(bytes))
}

fn sha256_uncached(path: &Path) -> Result<String> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(format!("{:x}", h.finalize()))
}

/// SplitMix64: a small seeded generator for initialisation (fresh LoRA weights, the embedded
/// model). Not used for projections, which need the counter-based generator.
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1).
    pub fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        (-2.0 * self.uniform().ln()).sqrt() * (2.0 * std::f64::consts::PI * self.uniform()).cos()
    }

    /// Uniform integer below `n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}
