//! The WGSL scoring kernel against the plain-Rust scoring, on fresh random features whose sizes
//! are off the kernel's tiles (including more candidates than one chunk).

use crate::common;

use gradsift::methods::{gpu_score::GpuScorer, less};

#[test]
fn wgsl_scoring_equals_rust_scoring() {
    let Some(c) = common::gpu() else { return };
    let scorer = GpuScorer::new(c.gpu.clone().unwrap());
    let seed = common::fresh_seed("wgsl_scoring_equals_rust_scoring");
    for (n, m, dim) in [(1usize, 1usize, 1usize), (301, 7, 517), (4100, 3, 65)] {
        let tasks: Vec<Option<String>> =
            (0..m).map(|j| if j % 3 == 2 { None } else { Some(format!("t{}", j % 2)) }).collect();
        let pool = common::features(common::random_vec(n * dim, seed + n as u64), n, dim, vec![None; n]);
        let target = common::features(common::random_vec(m * dim, seed + 7), m, dim, tasks);
        let want = less::subtask_cosines(&pool, &target);
        let got = scorer.subtask_cosines(&pool, &target).unwrap();
        assert_eq!(got.iter().map(|(n, _)| n).collect::<Vec<_>>(), want.iter().map(|(n, _)| n).collect::<Vec<_>>());
        let flat = |v: &Vec<(String, Vec<f64>)>| v.iter().flat_map(|(_, s)| s.clone()).collect::<Vec<f64>>();
        let err = common::rel_err(&flat(&got), &flat(&want));
        eprintln!("n={n} m={m} k={dim}: rel err {err:.2e}");
        assert!(err <= 1e-5, "n={n} m={m} k={dim}: rel err {err:.3e} on {}", c.label);
    }
}
