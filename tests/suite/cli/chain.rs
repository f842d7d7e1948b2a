//! The commands chained as a user runs them: make-data, select, eval, plot.

use super::{bin, run};
use crate::common;

/// make-data → select → eval → plot through the CLI on a small generated suite.
#[test]
fn make_data_select_eval_and_plot_chain_through_the_cli() {
    let base_tmp = common::tmp("test", "chain");
    let base = base_tmp.path();
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
}
