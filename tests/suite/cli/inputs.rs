//! Where models and data come from: the local Hugging Face cache, chat records, Parquet, the
//! embedded model with the user's own files.

use super::{bin, fixtures, run};
use crate::common;
use std::path::{Path, PathBuf};

/// A Hugging Face cache under `base/cache` holding `someorg/NAME` at one snapshot (`refs/main`
/// names it) with `files` copied from `from`; returns the snapshot directory.
fn hub_cache(base: &Path, name: &str, from: &Path, files: &[&str]) -> PathBuf {
    let commit = "0123456789abcdef0123456789abcdef01234567";
    let repo = base.join(format!("cache/models--someorg--{name}"));
    let snapshot = repo.join("snapshots").join(commit);
    std::fs::create_dir_all(&snapshot).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), commit).unwrap();
    for f in files {
        std::fs::copy(from.join(f), snapshot.join(f)).unwrap();
    }
    snapshot
}

/// `--model ORG/NAME[@REV]` is found in the local Hugging Face cache (HF_HUB_CACHE), offline,
/// and the manifest records the snapshot it used; a name not in the cache is a clear error.
#[test]
fn a_hub_name_resolves_in_the_local_cache() {
    let base_tmp = common::tmp("test", "hub");
    let base = base_tmp.path();
    let snapshot = hub_cache(
        base,
        "tiny-llama",
        &fixtures().join("tiny-llama"),
        &["config.json", "model.safetensors", "tokenizer.json"],
    );
    let data = fixtures().join("instruction.jsonl");
    let out = base.join("out");
    let r = run(bin()
        .env("HF_HUB_CACHE", base.join("cache"))
        .args(["select", "--device", "cpu", "--quiet", "--method", "less", "--count", "2", "--proj-dim", "64"])
        .args(["--model", "someorg/tiny-llama", "--pool"])
        .arg(&data)
        .arg("--target")
        .arg(&data)
        .arg("--out")
        .arg(&out));
    assert!(r.status.success());
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["model"].as_str().unwrap(), snapshot.to_str().unwrap());
    expect_error_env(
        &["select", "--device", "cpu", "--method", "less", "--model", "someorg/other", "--pool"],
        &data,
        &base.join("cache"),
        &["someorg/other", "models--someorg--other", "never downloads"],
    );
}

/// [`expect_error`] for `args` + `data` with HF_HUB_CACHE set to `cache`.
fn expect_error_env(args: &[&str], data: &Path, cache: &Path, needles: &[&str]) {
    let out = run(bin().env("HF_HUB_CACHE", cache).args(args).arg(data).arg("--target").arg(data));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "expected failure for {args:?}");
    for n in needles {
        assert!(stderr.contains(n), "error for {args:?} does not mention `{n}`: {stderr}");
    }
}

/// Chat-format pools and targets through `select`, on a model with a chat template: LESS on
/// conversations, ROSE and PRISM with chat preference targets; selected.jsonl copies the pool's
/// lines byte for byte.
#[test]
fn chat_records_run_through_select() {
    let arch = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hf-arch");
    let base_tmp = common::tmp("test", "chat");
    let base = base_tmp.path();
    for (method, pool, target) in [
        ("less", "chat.jsonl", "sharegpt.jsonl"),
        ("rose", "chat.jsonl", "chat-pairs.jsonl"),
        ("prism", "alpaca.jsonl", "chat-pairs.jsonl"),
    ] {
        let out = base.join(method);
        let r = run(bin()
            .args(["select", "--device", "cpu", "--quiet", "--method", method, "--count", "1", "--proj-dim", "64"])
            .arg("--model")
            .arg(arch.join("tiny-qwen3"))
            .arg("--adapter")
            .arg(arch.join("tiny-qwen3/adapter"))
            .arg("--pool")
            .arg(arch.join(pool))
            .arg("--target")
            .arg(arch.join(target))
            .arg("--out")
            .arg(&out));
        assert!(r.status.success(), "--method {method} on chat records failed");
        let selected: Vec<usize> =
            serde_json::from_str(&std::fs::read_to_string(out.join("selected.json")).unwrap()).unwrap();
        let pool_text = std::fs::read_to_string(arch.join(pool)).unwrap();
        let lines: Vec<&str> = pool_text.lines().collect();
        let chosen = std::fs::read_to_string(out.join("selected.jsonl")).unwrap();
        for (line, &i) in chosen.lines().zip(&selected) {
            assert_eq!(line, lines[i]);
        }
    }
    // --chat-template: another template file renders the records; `none` refuses them.
    let with = |template: &Path, out: &str| {
        run(bin()
            .args(["select", "--device", "cpu", "--method", "loss", "--count", "1", "--chat-template"])
            .arg(template)
            .arg("--model")
            .arg(arch.join("tiny-qwen3"))
            .arg("--pool")
            .arg(arch.join("chat.jsonl"))
            .arg("--out")
            .arg(base.join(out)))
    };
    assert!(with(&arch.join("tiny-phi3/chat_template.jinja"), "phi3-template").status.success());
    let refused = with(Path::new("none"), "no-template");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && stderr.contains("chat template"), "{stderr}");
}

/// A pool of several files, one of them Parquet (message-list columns, as the Hub stores chat
/// datasets), scored by a model resolved in the local Hugging Face cache: `select --method less`
/// end to end. scores.csv and the manifest say which file and line (Parquet: row) each candidate
/// came from, and selected.jsonl holds each chosen record.
#[test]
fn parquet_and_jsonl_pool_files_with_a_cached_model_run_less() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let base_tmp = common::tmp("test", "parquet");
    let base = base_tmp.path();
    let files = ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja"];
    let snapshot = hub_cache(base, "tiny-qwen3", &root.join("hf-arch/tiny-qwen3"), &files);
    let (parquet, jsonl) = (root.join("parquet/chat.parquet"), root.join("hf-arch/chat-nosystem.jsonl"));
    let out = base.join("out");
    let r = run(bin()
        .env("HF_HUB_CACHE", base.join("cache"))
        .args(["select", "--device", "cpu", "--quiet", "--method", "less", "--count", "2", "--proj-dim", "64"])
        .args(["--model", "someorg/tiny-qwen3", "--pool"])
        .arg(&parquet)
        .arg(&jsonl)
        .arg("--target")
        .arg(root.join("hf-arch/alpaca.jsonl"))
        .arg("--out")
        .arg(&out));
    assert!(r.status.success(), "select on a Parquet + JSONL pool failed");

    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["model"].as_str().unwrap(), snapshot.to_str().unwrap());
    let files = manifest["pool"]["files"].as_array().unwrap();
    assert_eq!(files.len(), 2);
    assert_eq!(files[0]["path"].as_str().unwrap(), parquet.to_str().unwrap());
    assert_eq!((files[0]["format"].as_str().unwrap(), &files[0]["indices"]), ("Parquet", &serde_json::json!([0, 3])));
    assert_eq!(files[1]["indices"], serde_json::json!([3, 6]));

    let mut csv = csv::Reader::from_path(out.join("scores.csv")).unwrap();
    let header: Vec<String> = csv.headers().unwrap().iter().map(String::from).collect();
    let (file_col, line_col) =
        (header.iter().position(|h| h == "file").unwrap(), header.iter().position(|h| h == "line").unwrap());
    let at: Vec<(String, usize)> = csv
        .records()
        .map(|r| {
            let r = r.unwrap();
            (r[file_col].to_string(), r[line_col].parse().unwrap())
        })
        .collect();
    let (p, j) = (parquet.display().to_string(), jsonl.display().to_string());
    assert_eq!(at, [(p.clone(), 1), (p.clone(), 2), (p, 3), (j.clone(), 1), (j.clone(), 2), (j, 3)]);

    // Each selected record is the pool's: a JSONL line verbatim, a Parquet row as its JSON.
    let selected: Vec<usize> =
        serde_json::from_str(&std::fs::read_to_string(out.join("selected.json")).unwrap()).unwrap();
    let twins: Vec<serde_json::Value> = std::fs::read_to_string(root.join("hf-arch/chat.jsonl"))
        .unwrap()
        .lines()
        .chain(std::fs::read_to_string(&jsonl).unwrap().lines())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let chosen = std::fs::read_to_string(out.join("selected.jsonl")).unwrap();
    for (line, &i) in chosen.lines().zip(&selected) {
        let got: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(got["messages"], twins[i]["messages"], "selected record {i}");
    }
}

/// `--pool`/`--target` without `--model`: the embedded model scores the user's files, and says so.
#[test]
fn own_data_without_a_model_uses_the_embedded_one() {
    let out_tmp = common::tmp("test", "own-data");
    let out = out_tmp.path();
    let data = fixtures().join("instruction.jsonl");
    let r = run(bin()
        .args(["select", "--device", "cpu", "--method", "less", "--count", "1", "--proj-dim", "64", "--pool"])
        .arg(&data)
        .arg("--target")
        .arg(&data)
        .arg("--out")
        .arg(out));
    assert!(r.status.success());
    assert!(String::from_utf8_lossy(&r.stderr).contains("using the embedded demo model"));
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["pool"]["files"][0]["path"].as_str().unwrap(), data.to_str().unwrap());
}
