//! Models named as on the Hugging Face Hub (`ORG/NAME`, optionally `@REVISION`), found in the
//! local Hub cache the way `huggingface_hub` lays it out, offline:
//! `CACHE/models--ORG--NAME/refs/REVISION` holds a commit hash, and
//! `CACHE/models--ORG--NAME/snapshots/COMMIT/` holds the files. A revision that is itself a
//! 40-character commit hash names its snapshot directly.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The cache directories to look in, in `huggingface_hub`'s order: `HF_HUB_CACHE`, then
/// `HF_HOME/hub`, then `~/.cache/huggingface/hub` (the first that is set is the one it uses;
/// we look in every one that is set, in that order).
pub(crate) fn cache_dirs() -> Vec<PathBuf> {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    let mut dirs = Vec::new();
    dirs.extend(var("HF_HUB_CACHE"));
    dirs.extend(var("HF_HOME").map(|h| h.join("hub")));
    dirs.extend(var("XDG_CACHE_HOME").map(|c| c.join("huggingface/hub")));
    dirs.extend(var("HOME").map(|h| h.join(".cache/huggingface/hub")));
    dirs.dedup();
    dirs
}

/// True when `spec` reads as a Hub name rather than a path: `ORG/NAME` or `ORG/NAME@REV`, with
/// no other separators.
pub(crate) fn is_hub_name(spec: &str) -> bool {
    let name = spec.split_once('@').map_or(spec, |(n, _)| n);
    let parts: Vec<&str> = name.split('/').collect();
    parts.len() == 2
        && parts.iter().all(|p| !p.is_empty() && !p.starts_with('.') && !p.contains('\\'))
        && !spec.starts_with('/')
}

/// The snapshot directory of `spec` (`ORG/NAME[@REVISION]`, revision `main` by default) in the
/// first of `dirs` that has it.
pub(crate) fn resolve_in(spec: &str, dirs: &[PathBuf]) -> Result<PathBuf> {
    let (name, revision) = spec.split_once('@').unwrap_or((spec, "main"));
    let repo = format!("models--{}", name.replace('/', "--"));
    let mut looked = Vec::new();
    for dir in dirs {
        let root = dir.join(&repo);
        let commit = if revision.len() == 40 && revision.chars().all(|c| c.is_ascii_hexdigit()) {
            Some(revision.to_string())
        } else {
            std::fs::read_to_string(root.join("refs").join(revision)).ok().map(|s| s.trim().to_string())
        };
        if let Some(commit) = commit {
            let snapshot = root.join("snapshots").join(&commit);
            if snapshot.join("config.json").exists() {
                return Ok(snapshot);
            }
            looked.push(snapshot);
        } else {
            looked.push(root.join("refs").join(revision));
        }
    }
    let places = if looked.is_empty() {
        "no cache directory is set (HF_HUB_CACHE, HF_HOME, HOME)".to_string()
    } else {
        looked.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    };
    Err(Error::ModelNotFound { spec: spec.to_string(), name: name.to_string(), looked: places })
}

/// A model directory from `spec`: an existing directory as it is, else a Hub name resolved in
/// the local cache (`cache_dirs`).
pub fn model_dir(spec: &Path) -> Result<PathBuf> {
    if spec.is_dir() {
        return Ok(spec.to_path_buf());
    }
    match spec.to_str().filter(|s| is_hub_name(s)) {
        Some(name) => resolve_in(name, &cache_dirs()),
        None => Err(Error::format(spec, "model directory not found")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(name: &str) -> tempfile::TempDir {
        let tmp = tempfile::Builder::new().prefix(&format!("gradsift-hub-{name}-")).tempdir().unwrap();
        let repo = tmp.path().join("models--org--tiny");
        for (rev, commit) in [("main", "a".repeat(40)), ("v1", "b".repeat(40))] {
            std::fs::create_dir_all(repo.join("refs")).unwrap();
            std::fs::write(repo.join("refs").join(rev), format!("{commit}\n")).unwrap();
            std::fs::create_dir_all(repo.join("snapshots").join(&commit)).unwrap();
            std::fs::write(repo.join("snapshots").join(&commit).join("config.json"), "{}").unwrap();
        }
        tmp
    }

    #[test]
    fn names_resolve_by_ref_or_commit_and_misses_say_where_they_looked() {
        let tmp = cache("resolve");
        let d = tmp.path().to_path_buf();
        let dirs = vec![d.join("empty"), d.clone()];
        let snap = |c: char| d.join("models--org--tiny/snapshots").join(c.to_string().repeat(40));
        assert_eq!(resolve_in("org/tiny", &dirs).unwrap(), snap('a'));
        assert_eq!(resolve_in("org/tiny@v1", &dirs).unwrap(), snap('b'));
        assert_eq!(resolve_in(&format!("org/tiny@{}", "b".repeat(40)), &dirs).unwrap(), snap('b'));
        let e = resolve_in("org/other", &dirs).unwrap_err().to_string();
        assert!(e.contains("models--org--other") && e.contains("empty"), "{e}");
        assert!(resolve_in("org/tiny@v2", &dirs).is_err());
    }

    #[test]
    fn hub_names_are_told_from_paths() {
        assert!(is_hub_name("meta-llama/Llama-3.2-1B"));
        assert!(is_hub_name("Qwen/Qwen3-0.6B@main"));
        for path in ["model", "/abs/model", "./org/name", "a/b/c", "org/", "../x"] {
            assert!(!is_hub_name(path), "{path}");
        }
    }
}
