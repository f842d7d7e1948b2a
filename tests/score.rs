//! The WGSL scoring kernel against the plain-Rust scoring, on fresh random features whose sizes
//! are off the kernel's tiles (including more candidates than one chunk).

mod common;

use gradsift::features::{Dtype, Features, FileHash, LossKind, Manifest, StoreKey};
use gradsift::methods::{gpu_score::GpuScorer, less};

fn features(data: Vec<f32>, rows: usize, dim: usize, tasks: Vec<Option<String>>) -> Features {
    let key = StoreKey {
        model: vec![],
        adapter: serde_json::Value::Null,
        loss: LossKind::Sft,
        transform: String::new(),
        seed: 0,
        proj_dim: dim,
        dtype: Dtype::F32,
        max_len: 0,
        source: FileHash { path: String::new(), sha256: String::new() },
        view: String::new(),
        chunk_size: 1,
    };
    let manifest = Manifest {
        format: String::new(),
        key,
        complete: true,
        num_examples: rows,
        feature_dim: dim,
        grad_dim: dim,
        chunks_done: 1,
        truncated: 0,
        rows: (1..=rows).collect(),
        tasks,
        layout: vec![],
        device: String::new(),
    };
    Features { rows, dim, data, losses: vec![0.0; rows], manifest }
}

#[test]
fn wgsl_scoring_equals_rust_scoring() {
    let Some(c) = common::gpu() else { return };
    let scorer = GpuScorer::new(c.gpu.clone().unwrap());
    let seed = common::fresh_seed("wgsl_scoring_equals_rust_scoring");
    for (n, m, dim) in [(1usize, 1usize, 1usize), (301, 7, 517), (4100, 3, 65)] {
        let tasks: Vec<Option<String>> =
            (0..m).map(|j| if j % 3 == 2 { None } else { Some(format!("t{}", j % 2)) }).collect();
        let pool = features(common::random_vec(n * dim, seed + n as u64), n, dim, vec![None; n]);
        let target = features(common::random_vec(m * dim, seed + 7), m, dim, tasks);
        let want = less::subtask_cosines(&pool, &target);
        let got = scorer.subtask_cosines(&pool, &target).unwrap();
        assert_eq!(got.iter().map(|(n, _)| n).collect::<Vec<_>>(), want.iter().map(|(n, _)| n).collect::<Vec<_>>());
        let flat = |v: &Vec<(String, Vec<f64>)>| v.iter().flat_map(|(_, s)| s.clone()).collect::<Vec<f64>>();
        let err = common::rel_err(&flat(&got), &flat(&want));
        eprintln!("n={n} m={m} k={dim}: rel err {err:.2e}");
        assert!(err <= 1e-5, "n={n} m={m} k={dim}: rel err {err:.3e} on {}", c.label);
    }
}
