//! The real binary on temp dirs: the embedded-default selection, resumption, and clear errors
//! on bad input.

use crate::common;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_gradsift"))
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("run gradsift");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    out
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hf-tiny")
}

#[test]
fn select_on_embedded_default_writes_outputs_and_resumes() {
    let out = common::tmp("test", "default");
    let first = run(bin().args(["select", "--method", "less", "--out"]).arg(&out));
    assert!(first.status.success(), "first run failed");
    for f in ["selected.json", "scores.csv", "selected.jsonl", "manifest.json"] {
        assert!(out.join(f).exists(), "{f} missing");
    }
    let selected: Vec<usize> =
        serde_json::from_str(&std::fs::read_to_string(out.join("selected.json")).unwrap()).unwrap();
    assert_eq!(selected.len(), 20, "5% of the 400-example demo pool");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    let pool_path = manifest["pool"]["files"][0]["path"].as_str().unwrap();
    let pool_text = std::fs::read_to_string(pool_path).unwrap();
    let pool: Vec<&str> = pool_text.lines().collect();
    let chosen_text = std::fs::read_to_string(out.join("selected.jsonl")).unwrap();
    let chosen: Vec<&str> = chosen_text.lines().collect();
    for (line, &i) in chosen.iter().zip(&selected) {
        assert_eq!(*line, pool[i], "selected.jsonl line for pool index {i} differs from the pool line");
    }
    let csv = std::fs::read_to_string(out.join("scores.csv")).unwrap();
    assert!(
        csv.starts_with("index,score,rank,file,line,selected,task:add,task:capital"),
        "{}",
        csv.lines().next().unwrap()
    );
    assert_eq!(csv.lines().count(), 401);

    let second = run(bin().args(["select", "--method", "less", "--out"]).arg(&out));
    assert!(second.status.success());
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(stderr.contains("is complete, reusing it"), "second run did not reuse the store");
    let again: Vec<usize> = serde_json::from_str(&std::fs::read_to_string(out.join("selected.json")).unwrap()).unwrap();
    assert_eq!(again, selected);
}

/// Runs featurize on the tiny Llama fixture with `data`, expecting a failure naming `needle`.
fn expect_error(args: &[&str], needles: &[&str]) {
    let out = run(bin().args(args));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "expected failure for {args:?}");
    assert!(!stderr.contains("panicked"), "panicked: {stderr}");
    for n in needles {
        assert!(stderr.contains(n), "error for {args:?} does not mention `{n}`: {stderr}");
    }
}

#[test]
fn bad_input_fails_with_a_clear_message() {
    let dir = common::tmp("test", "bad");
    let model = fixtures().join("tiny-llama");
    let m = model.to_str().unwrap();
    let store = dir.join("store");
    let s = store.to_str().unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };
    let good = r#"{"prompt":"Add 1 and 2.","completion":" 3"}"#;
    let malformed = write("malformed.jsonl", &format!("{good}\n{{\"prompt\": \"x\", \n"));
    expect_error(
        &["featurize", "--device", "cpu", "--model", m, "--data", &malformed, "--out", s],
        &["malformed.jsonl:2", "invalid JSON"],
    );
    let missing = write("missing.jsonl", &format!("{good}\n{good}\n{{\"prompt\":\"x\"}}\n"));
    expect_error(
        &["featurize", "--device", "cpu", "--model", m, "--data", &missing, "--out", s],
        &["missing.jsonl:3", "completion"],
    );
    let empty = write("empty.jsonl", "{\"prompt\":\"x\",\"completion\":\"\"}\n");
    expect_error(
        &["featurize", "--device", "cpu", "--model", m, "--data", &empty, "--out", s],
        &["empty.jsonl:1", "empty"],
    );

    let data = write("good.jsonl", &format!("{good}\n"));
    expect_error(
        &["featurize", "--device", "cpu", "--model", m, "--data", &data, "--loss", "dpo", "--out", s],
        &["good.jsonl:1", "dpo loss needs preference"],
    );
    // A DPO reference policy where no DPO loss is computed is refused, not ignored.
    let sft = fixtures().join("tiny-llama/adapter");
    expect_error(
        &[
            "featurize",
            "--device",
            "cpu",
            "--model",
            m,
            "--data",
            &data,
            "--out",
            s,
            "--dpo-reference",
            sft.to_str().unwrap(),
        ],
        &["tiny-llama/adapter", "the sft loss has no reference policy", "leave out --dpo-reference"],
    );
    // A model directory without its weights.
    let no_weights = dir.join("no-weights");
    std::fs::create_dir_all(&no_weights).unwrap();
    std::fs::copy(model.join("config.json"), no_weights.join("config.json")).unwrap();
    expect_error(
        &["featurize", "--device", "cpu", "--model", no_weights.to_str().unwrap(), "--data", &data, "--out", s],
        &["no-weights", "model.safetensors"],
    );
    // An unknown architecture.
    let unknown = dir.join("unknown");
    std::fs::create_dir_all(&unknown).unwrap();
    let cfg = std::fs::read_to_string(model.join("config.json")).unwrap().replace("\"llama\"", "\"mamba\"");
    std::fs::write(unknown.join("config.json"), cfg).unwrap();
    expect_error(
        &["featurize", "--device", "cpu", "--model", unknown.to_str().unwrap(), "--data", &data, "--out", s],
        &["unknown/config.json", "mamba"],
    );
    // An adapter made for another model: the GPT-2 adapter on the Llama model.
    let other = fixtures().join("tiny-qwen2/adapter");
    let mut adapter = dir.join("adapter");
    std::fs::create_dir_all(&adapter).unwrap();
    for f in ["adapter_config.json", "adapter_model.safetensors"] {
        std::fs::copy(other.join(f), adapter.join(f)).unwrap();
    }
    // Same module names (q_proj, v_proj), but make one shape wrong by using the llama's r=4
    // with a config that claims r=8.
    let cfg = std::fs::read_to_string(adapter.join("adapter_config.json")).unwrap().replace("\"r\": 4", "\"r\": 8");
    std::fs::write(adapter.join("adapter_config.json"), cfg).unwrap();
    expect_error(
        &[
            "featurize",
            "--device",
            "cpu",
            "--model",
            m,
            "--adapter",
            adapter.to_str().unwrap(),
            "--data",
            &data,
            "--out",
            s,
        ],
        &["adapter_model.safetensors", "lora_A.weight", "shape"],
    );
    adapter = fixtures().join("tiny-gpt2/adapter");
    expect_error(
        &[
            "featurize",
            "--device",
            "cpu",
            "--model",
            m,
            "--adapter",
            adapter.to_str().unwrap(),
            "--data",
            &data,
            "--out",
            s,
        ],
        &["tiny-gpt2/adapter/adapter_config.json", "match no module of the model"],
    );
}

/// Every method through the CLI on the embedded default, timed; the selected lines are pool
/// lines; warmup checkpoints feed LESS.
#[test]
fn every_method_runs_on_the_embedded_default() {
    let base = common::tmp("test", "methods");
    for m in ["less", "rose", "prism", "tsds", "random", "loss", "rds", "rds-plus", "dsir"] {
        let out = base.join(m);
        let t = std::time::Instant::now();
        let r = run(bin().args(["select", "--device", "cpu", "--quiet", "--method", m, "--out"]).arg(&out));
        eprintln!("method {m}: {:.1} s", t.elapsed().as_secs_f64());
        assert!(r.status.success(), "--method {m} failed");
        let manifest: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
        assert_eq!(manifest["method"], m);
        let pool = std::fs::read_to_string(manifest["pool"]["files"][0]["path"].as_str().unwrap()).unwrap();
        let lines: Vec<&str> = pool.lines().collect();
        let selected: Vec<usize> =
            serde_json::from_str(&std::fs::read_to_string(out.join("selected.json")).unwrap()).unwrap();
        assert_eq!(selected.len(), 20, "--method {m}: 5% of 400");
        let chosen = std::fs::read_to_string(out.join("selected.jsonl")).unwrap();
        for (line, &i) in chosen.lines().zip(&selected) {
            assert_eq!(line, lines[i]);
        }
    }
    let t = std::time::Instant::now();
    let w = run(bin()
        .args(["warmup", "--device", "cpu", "--quiet", "--epochs", "2", "--lr", "1e-3", "--out"])
        .arg(base.join("warmup")));
    assert!(w.status.success());
    let r = run(bin()
        .args(["select", "--device", "cpu", "--quiet", "--method", "less", "--out"])
        .arg(base.join("less-ckpt"))
        .arg("--checkpoints")
        .arg(base.join("warmup/checkpoint-1"))
        .arg(base.join("warmup/checkpoint-2")));
    eprintln!("warmup + LESS over 2 checkpoints: {:.1} s", t.elapsed().as_secs_f64());
    assert!(r.status.success());
    // The same pool features made by `featurize --grad-type adam` at each checkpoint, taken by
    // select through --pool-features: the same scores.
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(base.join("less-ckpt/manifest.json")).unwrap()).unwrap();
    let (model, pool) = (manifest["model"].as_str().unwrap(), manifest["pool"]["files"][0]["path"].as_str().unwrap());
    for i in 1..=2 {
        let r = run(bin()
            .args(["featurize", "--device", "cpu", "--quiet", "--grad-type", "adam", "--model", model, "--data", pool])
            .arg("--adapter")
            .arg(base.join(format!("warmup/checkpoint-{i}")))
            .arg("--out")
            .arg(base.join(format!("adam-{i}"))));
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    }
    let r = run(bin()
        .args(["select", "--device", "cpu", "--quiet", "--method", "less", "--out"])
        .arg(base.join("less-taken"))
        .arg("--checkpoints")
        .arg(base.join("warmup/checkpoint-1"))
        .arg(base.join("warmup/checkpoint-2"))
        .arg("--pool-features")
        .arg(base.join("adam-2"))
        .arg(base.join("adam-1")));
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let scores = |d: &str| std::fs::read(base.join(d).join("scores.csv")).unwrap();
    assert!(scores("less-ckpt") == scores("less-taken"), "select with featurize's Adam stores scored otherwise");
    // The TIF family on the demo preference pool, after a DPO warmup; without one, a clear error.
    let r = run(bin()
        .args(["select", "--device", "cpu", "--quiet", "--method", "irm", "--out"])
        .arg(base.join("irm-cold")));
    assert!(!r.status.success() && String::from_utf8_lossy(&r.stderr).contains("gradsift warmup --loss dpo"));
    let t = std::time::Instant::now();
    let w = run(bin()
        .args([
            "warmup",
            "--device",
            "cpu",
            "--quiet",
            "--loss",
            "dpo",
            "--fraction",
            "1",
            "--epochs",
            "1",
            "--lr",
            "1e-3",
            "--out",
        ])
        .arg(base.join("dpo")));
    assert!(w.status.success());
    eprintln!("DPO warmup: {:.1} s", t.elapsed().as_secs_f64());
    for m in ["tif", "lossdiff", "irm", "fusion"] {
        let t = std::time::Instant::now();
        let out = base.join(m);
        let r = run(bin()
            .args(["select", "--device", "cpu", "--quiet", "--method", m, "--out"])
            .arg(&out)
            .arg("--checkpoints")
            .arg(base.join("dpo/checkpoint-1")));
        eprintln!("method {m}: {:.1} s", t.elapsed().as_secs_f64());
        assert!(r.status.success(), "--method {m} failed");
        let kept: Vec<usize> =
            serde_json::from_str(&std::fs::read_to_string(out.join("selected.json")).unwrap()).unwrap();
        assert!(!kept.is_empty() && kept.len() < 400, "--method {m} kept {}", kept.len());
    }
    let _ = std::fs::remove_dir_all(&base);
}

/// make-data → select → eval → plot through the CLI on a small generated suite.
#[test]
fn make_data_select_eval_and_plot_chain_through_the_cli() {
    let base = common::tmp("test", "chain");
    let data = base.join("data");
    let r = run(bin().args(["make-data", "--pool", "60", "--test", "4", "--base", "10", "--out"]).arg(&data));
    assert!(r.status.success());
    let model = gradsift::assets::materialize().unwrap().model_dir;
    let sel = base.join("picked");
    let r = run(bin()
        .args(["select", "--device", "cpu", "--quiet", "--method", "random", "--model"])
        .arg(&model)
        .arg("--pool")
        .arg(data.join("pool.jsonl"))
        .arg("--out")
        .arg(&sel));
    assert!(r.status.success());
    let ev = base.join("eval");
    let r = run(bin()
        .args(["eval", "--device", "cpu", "--seeds", "1,2", "--steps", "2", "--selection"])
        .arg(&sel)
        .arg("--test")
        .arg(data.join("test.jsonl"))
        .arg("--out")
        .arg(&ev));
    assert!(r.status.success());
    let table = String::from_utf8_lossy(&r.stdout);
    for row in ["| base model |", "| random (picked) | 3 | 2 |", "| random | 3 | 2 |"] {
        assert!(table.contains(row), "no `{row}` in\n{table}");
    }
    assert!(table.contains("vs random of its size"), "{table}");
    let r = run(bin().arg("plot").arg(&ev));
    assert!(r.status.success());
    assert!(String::from_utf8_lossy(&r.stdout).contains("eval-test-loss.png"));
    // Testing on pool prompts is refused; --allow-overlap reports it with the overlap printed.
    let leaky = |extra: &[&str]| {
        run(bin()
            .args(["eval", "--device", "cpu", "--seeds", "1,2", "--steps", "1", "--selection"])
            .arg(&sel)
            .arg("--test")
            .arg(data.join("pool.jsonl"))
            .args(extra)
            .arg("--out")
            .arg(base.join("eval-leaky")))
    };
    let r = leaky(&[]);
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success() && stderr.contains("leak") && stderr.contains("--allow-overlap"), "{stderr}");
    let r = leaky(&["--allow-overlap"]);
    assert!(r.status.success());
    assert!(String::from_utf8_lossy(&r.stdout).contains("Overlap (allowed)"));
    // A directory that is not a selection: the error names the missing file.
    let r = run(bin()
        .args(["eval", "--device", "cpu", "--selection"])
        .arg(&data)
        .arg("--test")
        .arg(data.join("test.jsonl")));
    assert!(!r.status.success() && String::from_utf8_lossy(&r.stderr).contains("selected.json"));
    let _ = std::fs::remove_dir_all(&base);
}

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
    let base = common::tmp("test", "hub");
    let snapshot = hub_cache(
        &base,
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
    let _ = std::fs::remove_dir_all(&base);
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
    let base = common::tmp("test", "chat");
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
    let _ = std::fs::remove_dir_all(&base);
}

/// A pool of several files, one of them Parquet (message-list columns, as the Hub stores chat
/// datasets), scored by a model resolved in the local Hugging Face cache: `select --method less`
/// end to end. scores.csv and the manifest say which file and line (Parquet: row) each candidate
/// came from, and selected.jsonl holds each chosen record.
#[test]
fn parquet_and_jsonl_pool_files_with_a_cached_model_run_less() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let base = common::tmp("test", "parquet");
    let files = ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja"];
    let snapshot = hub_cache(&base, "tiny-qwen3", &root.join("hf-arch/tiny-qwen3"), &files);
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
    let _ = std::fs::remove_dir_all(&base);
}

/// `--pool`/`--target` without `--model`: the embedded model scores the user's files, and says so.
#[test]
fn own_data_without_a_model_uses_the_embedded_one() {
    let out = common::tmp("test", "own-data");
    let data = fixtures().join("instruction.jsonl");
    let r = run(bin()
        .args(["select", "--device", "cpu", "--method", "less", "--count", "1", "--proj-dim", "64", "--pool"])
        .arg(&data)
        .arg("--target")
        .arg(&data)
        .arg("--out")
        .arg(&out));
    assert!(r.status.success());
    assert!(String::from_utf8_lossy(&r.stderr).contains("using the embedded demo model"));
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["pool"]["files"][0]["path"].as_str().unwrap(), data.to_str().unwrap());
    let _ = std::fs::remove_dir_all(&out);
}

/// `gradsift doctor --quick`: every device is checked and report.json parses; with a wrong
/// result planted in one check (the test-only hook), that check fails, the others pass, and
/// the exit status is non-zero.
#[test]
fn doctor_checks_every_device_and_fails_a_planted_error() {
    let out = common::tmp("test", "doctor");
    let read = |dir: &Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap()
    };
    let r = run(bin().args(["doctor", "--quick", "--out"]).arg(out.join("clean")));
    assert!(r.status.success(), "doctor failed on this machine");
    let report = read(&out.join("clean"));
    assert_eq!(report["passed"], true);
    let devices = report["devices"].as_array().unwrap();
    let gpu_rows = devices.iter().filter(|d| d["facts"].is_object()).count();
    match common::gpu() {
        Some(_) => assert!(gpu_rows >= 1, "no wgpu adapter in the report"),
        None => eprintln!("SKIPPED: the doctor's wgpu rows (no adapter); the CPU row was checked"),
    }
    for d in devices {
        assert!(d["checks"].as_array().unwrap().iter().all(|c| c["passed"] == true), "{d}");
        assert!(d["throughput"]["examples_per_second"].as_f64().unwrap() > 0.0);
    }
    if gpu_rows > 0 {
        let names: Vec<&str> =
            devices[1]["checks"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
        assert_eq!(
            names,
            [
                "projection",
                "sparse projection",
                "scoring",
                "knn top-k",
                "sft gradients",
                "dpo gradients",
                "select less"
            ]
        );
    }

    // The CPU row checks its gradients against NdArray in builds that have it, and says so
    // where they have not.
    let cpu_checks = devices[0]["checks"].as_array().unwrap().len();
    assert_eq!(cpu_checks > 0, cfg!(feature = "ndarray"), "{}", devices[0]);
    assert_eq!(devices[0]["unchecked"].is_string(), !cfg!(feature = "ndarray"), "{}", devices[0]);

    // A wrong WGSL projection where there is an adapter; else a wrong gradient (the CPU row).
    let planted = match (gpu_rows > 0, cpu_checks > 0) {
        (true, _) => "projection",
        (false, true) => "sft gradients",
        (false, false) => {
            eprintln!("SKIPPED: a planted error (no adapter, and no second CPU backend in this build)");
            return;
        }
    };
    let r =
        run(bin().env("GRADSIFT_DOCTOR_PLANT", planted).args(["doctor", "--quick", "--out"]).arg(out.join("planted")));
    assert!(!r.status.success(), "a planted error must fail the run");
    assert!(String::from_utf8_lossy(&r.stderr).contains("checks failed"));
    let report = read(&out.join("planted"));
    assert_eq!(report["passed"], false);
    let mut failed = 0;
    for d in report["devices"].as_array().unwrap() {
        for c in d["checks"].as_array().unwrap() {
            assert_eq!(c["passed"] == true, c["name"] != planted, "{c}");
            failed += usize::from(c["passed"] == false);
        }
    }
    assert!(failed >= 1, "the planted check did not run");
    let _ = std::fs::remove_dir_all(&out);
}

/// `featurize` in four shards, run as four processes at once with the variables a Slurm job
/// array and a Kubernetes Indexed Job set, then `merge`: the merged store is bit-identical to
/// one unsharded run, and a shard made with other arguments is refused, naming the field. Then
/// `select --pool-features` with the shards: the same scores as a select that computes them.
#[test]
fn four_shards_merge_into_the_unsharded_store() {
    let base = common::tmp("test", "shards");
    let model = fixtures().join("tiny-llama");
    let data = fixtures().join("instruction.jsonl");
    let featurize = |out: &Path, seed: &str| {
        let mut cmd = bin();
        cmd.args(["featurize", "--device", "cpu", "--quiet", "--loss", "sft", "--proj-dim", "64", "--chunk-size", "1"])
            .args(["--batch-size", "2", "--seed", seed, "--model"])
            .arg(&model)
            .arg("--adapter")
            .arg(model.join("adapter"))
            .arg("--data")
            .arg(&data)
            .arg("--out")
            .arg(out);
        cmd
    };
    assert!(run(&mut featurize(&base.join("whole"), "5")).status.success());
    let shard = |i: usize| base.join(format!("shard-{i}"));
    let mut jobs = Vec::new();
    for i in 0..4 {
        let mut cmd = featurize(&shard(i), "5");
        match i {
            // Slurm arrays may start at 1 (--array=1-4).
            0 | 1 => cmd
                .env("SLURM_ARRAY_TASK_ID", (i + 1).to_string())
                .env("SLURM_ARRAY_TASK_MIN", "1")
                .env("SLURM_ARRAY_TASK_COUNT", "4"),
            2 => cmd.env("JOB_COMPLETION_INDEX", "2").args(["--shards", "4"]),
            _ => cmd.args(["--shard", "3/4"]),
        };
        jobs.push(cmd.spawn().unwrap());
    }
    for mut j in jobs {
        assert!(j.wait().unwrap().success(), "a shard failed");
    }
    let merged = base.join("merged");
    let r = run(bin().args(["merge", "--out"]).arg(&merged).args((0..4).rev().map(shard)));
    assert!(r.status.success());
    for f in ["features.npy", "losses.npy"] {
        let (a, b) = (std::fs::read(base.join("whole").join(f)).unwrap(), std::fs::read(merged.join(f)).unwrap());
        assert!(a == b, "{f}: merged shards differ from the unsharded run");
    }
    let manifest = |d: &Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(d.join("manifest.json")).unwrap()).unwrap()
    };
    let (whole, m) = (manifest(&base.join("whole")), manifest(&merged));
    assert_eq!(whole["key"], m["key"]);
    assert_eq!(whole["rows"], m["rows"]);
    // A shard made with another seed does not merge.
    assert!(run(bin()
        .args(["featurize", "--shard", "1/4"])
        .args(["--device", "cpu", "--quiet", "--loss", "sft"])
        .args(["--proj-dim", "64", "--chunk-size", "1", "--batch-size", "2", "--seed", "6", "--model"])
        .arg(&model)
        .arg("--adapter")
        .arg(model.join("adapter"))
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(base.join("other-seed")))
    .status
    .success());
    let r = run(bin()
        .args(["merge", "--out"])
        .arg(base.join("bad"))
        .arg(shard(0))
        .arg(base.join("other-seed"))
        .arg(shard(2))
        .arg(shard(3)));
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success() && stderr.contains("seed"), "{stderr}");

    // select takes the four shard stores for its pool features: scores and features equal a
    // select that computes them; a store made with another seed is refused, naming the seed.
    let select = |out: &Path, stores: &[PathBuf]| {
        let mut cmd = bin();
        cmd.args(["select", "--method", "less", "--device", "cpu", "--quiet", "--proj-dim", "64", "--chunk-size", "1"])
            .args(["--batch-size", "2", "--seed", "5", "--fraction", "0.5", "--model"])
            .arg(&model)
            .arg("--adapter")
            .arg(model.join("adapter"))
            .arg("--pool")
            .arg(&data)
            .arg("--target")
            .arg(&data)
            .arg("--out")
            .arg(out);
        if !stores.is_empty() {
            cmd.arg("--pool-features").args(stores);
        }
        run(&mut cmd)
    };
    let (computed, taken) = (base.join("select-computed"), base.join("select-shards"));
    assert!(select(&computed, &[]).status.success());
    let r = select(&taken, &(0..4).rev().map(shard).collect::<Vec<_>>());
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let bytes = |d: &Path, f: &str| std::fs::read(d.join(f)).unwrap();
    assert!(bytes(&computed, "scores.csv") == bytes(&taken, "scores.csv"), "scores differ");
    let pool_features = "features/model/pool/features.npy";
    assert!(bytes(&computed, pool_features) == bytes(&taken, pool_features), "pool features differ");
    assert!(bytes(&taken, pool_features) == bytes(&base.join("whole"), "features.npy"));
    let r = select(&base.join("select-bad"), &[base.join("other-seed")]);
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success() && stderr.contains("seed"), "{stderr}");
    // A method that featurizes no pool says so rather than ignoring the stores silently.
    let r = run(bin()
        .args(["select", "--method", "random", "--device", "cpu", "--quiet", "--model"])
        .arg(&model)
        .arg("--pool")
        .arg(&data)
        .arg("--out")
        .arg(base.join("select-random"))
        .arg("--pool-features")
        .arg(shard(0)));
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(r.status.success() && stderr.contains("the stores were not used"), "{stderr}");
    let _ = std::fs::remove_dir_all(&base);
}
