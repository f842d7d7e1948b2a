//! `gradsift bench`: which backends it times.

use super::{bin, run};
use crate::common;

/// `--gpu-only` times the wgpu adapters and not the CPU (the scoring bench, at a small size);
/// with no adapter it stops with an error rather than timing nothing; `--cpu-only` beside it
/// is refused. `--gpu-adapter` times the one named, and names no adapter that does not exist.
#[test]
fn bench_gpu_only_times_the_adapters_alone() {
    let small = ["bench", "--scoring", "--rows", "3000", "--dim", "64", "--targets", "4"];
    let r = run(bin().args(small).arg("--gpu-only"));
    let stdout = String::from_utf8_lossy(&r.stdout);
    assert!(!stdout.contains("cpu (burn"), "the CPU was timed:\n{stdout}");
    match common::gpu() {
        Some(_) => {
            assert!(r.status.success(), "--gpu-only failed with an adapter");
            let rows = stdout.lines().filter(|l| l.contains("candidates/s")).count();
            assert!(rows >= 1, "no adapter was timed:\n{stdout}");
            let one = run(bin().args(small).args(["--gpu-only", "--gpu-adapter", "0"]));
            assert!(one.status.success());
            let timed = String::from_utf8_lossy(&one.stdout).lines().filter(|l| l.contains("candidates/s")).count();
            assert_eq!(timed, 1, "{}", String::from_utf8_lossy(&one.stdout));
        }
        None => {
            assert!(!r.status.success(), "--gpu-only succeeded without an adapter:\n{stdout}");
            let stderr = String::from_utf8_lossy(&r.stderr);
            assert!(stderr.contains("--gpu-only: no wgpu adapter opened"), "{stderr}");
            eprintln!("SKIPPED: timing an adapter with --gpu-only (no adapter); its error was checked");
        }
    }
    let missing = run(bin().args(small).args(["--gpu-adapter", "no-such-adapter-name"]));
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("`no-such-adapter-name` matches no adapter"));
    let both = run(bin().args(small).args(["--gpu-only", "--cpu-only"]));
    assert!(!both.status.success());
    assert!(String::from_utf8_lossy(&both.stderr).contains("cannot be used with"));
}
