//! `gradsift doctor`.

use super::{bin, run};
use crate::common;
use std::path::Path;

/// `gradsift doctor --quick`: every device is checked and report.json parses; with a wrong
/// result planted in one check (the test-only hook), that check fails, the others pass, and
/// the exit status is non-zero; `--check` runs the checks named and no others.
#[test]
fn doctor_checks_every_device_and_fails_a_planted_error() {
    let out_tmp = common::tmp("test", "doctor");
    let out = out_tmp.path();
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
        // Each bench shape at two lengths; SmolLM2-135M's widest layer is its 1,536-wide MLP.
        let facts = &devices[1]["facts"];
        let batches = facts["batches"].as_array().unwrap();
        assert_eq!(batches.len(), 14, "{batches:?}");
        let binding = facts["max_storage_binding"].as_u64().unwrap().min(facts["max_buffer_size"].as_u64().unwrap());
        let smol = batches.iter().find(|b| b["shape"] == "smollm2-135m" && b["tokens"] == 512).unwrap();
        assert_eq!(smol["batch"].as_u64().unwrap(), binding / (4 * 512 * 1536), "{smol}");
    }

    // The CPU row checks its gradients against NdArray in builds that have it, and says so
    // where they have not.
    let cpu_checks = devices[0]["checks"].as_array().unwrap().len();
    assert_eq!(cpu_checks > 0, cfg!(feature = "ndarray"), "{}", devices[0]);
    assert_eq!(devices[0]["unchecked"].is_string(), !cfg!(feature = "ndarray"), "{}", devices[0]);

    // A wrong WGSL projection where there is an adapter; else a wrong gradient (the CPU row).
    // The planted run asks for that check and one more only (`--check`, as a user re-running a
    // failed check would): the clean run above has run them all.
    let (planted, other) = match (gpu_rows > 0, cpu_checks > 0) {
        (true, _) => ("projection", "scoring"),
        (false, true) => ("sft gradients", "dpo gradients"),
        (false, false) => {
            eprintln!("SKIPPED: a planted error (no adapter, and no second CPU backend in this build)");
            return;
        }
    };
    let r = run(bin()
        .env("GRADSIFT_DOCTOR_PLANT", planted)
        .args(["doctor", "--quick", "--check", planted, "--check", &other.replace(' ', "-"), "--out"])
        .arg(out.join("planted")));
    assert!(!r.status.success(), "a planted error must fail the run");
    assert!(String::from_utf8_lossy(&r.stderr).contains("checks failed"));
    let report = read(&out.join("planted"));
    assert_eq!(report["passed"], false);
    assert_eq!(report["only"], serde_json::json!([planted, other]));
    let mut failed = 0;
    for d in report["devices"].as_array().unwrap() {
        for c in d["checks"].as_array().unwrap() {
            assert!(c["name"] == planted || c["name"] == other, "a check not asked for ran: {c}");
            assert_eq!(c["passed"] == true, c["name"] != planted, "{c}");
            failed += usize::from(c["passed"] == false);
        }
        assert!(d["throughput"].is_null(), "a run with --check measures no throughput: {d}");
    }
    assert!(failed >= 1, "the planted check did not run");
}
