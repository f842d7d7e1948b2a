//! Featurizing in shards (Slurm, Kubernetes) and merging them.

use super::{bin, fixtures, run};
use crate::common;
use std::path::{Path, PathBuf};

/// `featurize` in four shards, run as four processes at once with the variables a Slurm job
/// array and a Kubernetes Indexed Job set, then `merge`: the merged store is bit-identical to
/// one unsharded run, and a shard made with other arguments is refused, naming the field. Then
/// `select --pool-features` with the shards: the same scores as a select that computes them.
#[test]
fn four_shards_merge_into_the_unsharded_store() {
    let base_tmp = common::tmp("test", "shards");
    let base = base_tmp.path();
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
}
