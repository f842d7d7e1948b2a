//! `select` on the embedded default: its outputs, resumption, and every method.

use super::{bin, run};
use crate::common;

#[test]
fn select_on_embedded_default_writes_outputs_and_resumes() {
    let out_tmp = common::tmp("test", "default");
    let out = out_tmp.path();
    let first = run(bin().args(["select", "--method", "less", "--out"]).arg(out));
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

    let second = run(bin().args(["select", "--method", "less", "--out"]).arg(out));
    assert!(second.status.success());
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(stderr.contains("is complete, reusing it"), "second run did not reuse the store");
    let again: Vec<usize> = serde_json::from_str(&std::fs::read_to_string(out.join("selected.json")).unwrap()).unwrap();
    assert_eq!(again, selected);
}

/// Every method through the CLI on the embedded default, timed; the selected lines are pool
/// lines; warmup checkpoints feed LESS.
#[test]
fn every_method_runs_on_the_embedded_default() {
    let base_tmp = common::tmp("test", "methods");
    let base = base_tmp.path();
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
}
