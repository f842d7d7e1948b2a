//! The WGSL scoring kernel against the plain-Rust scoring, on fresh random features whose sizes
//! are off the kernel's chunks (including more candidates than one chunk), with several
//! checkpoints so that the in-shader weighted sum and maximum over subtasks are checked too.

use crate::common;

use gradsift::methods::gpu_score::{GpuScorer, WeightedFeatures};
use gradsift::methods::less;

#[test]
fn wgsl_scoring_equals_rust_scoring() {
    let Some(c) = common::gpu() else { return };
    let scorer = GpuScorer::new(c.gpu.clone().unwrap());
    let seed = common::fresh_seed("wgsl_scoring_equals_rust_scoring");
    for (n, m, dim, weights) in
        [(1usize, 1usize, 1usize, vec![1.0]), (301, 7, 517, vec![0.2, 0.5, 0.3]), (4100, 3, 65, vec![0.75, 0.25])]
    {
        let tasks: Vec<Option<String>> =
            (0..m).map(|j| if j % 3 == 2 { None } else { Some(format!("t{}", j % 2)) }).collect();
        let feats: Vec<_> = (0..weights.len() as u64)
            .map(|s| {
                let pool = common::random_vec(n * dim, seed + 100 * s + n as u64);
                let target = common::random_vec(m * dim, seed + 100 * s + 7);
                (common::features(pool, n, dim, vec![None; n]), common::features(target, m, dim, tasks.clone()))
            })
            .collect();
        let want_per: Vec<_> = feats.iter().map(|(p, t)| less::subtask_cosines(p, t).unwrap()).collect();
        let want = less::combine(&want_per, &weights);
        let stages: Vec<WeightedFeatures<'_>> = feats
            .iter()
            .zip(&weights)
            .map(|((p, t), &weight)| WeightedFeatures { pool: p, target: t, weight })
            .collect();
        let got = scorer.score(&stages).unwrap();
        let flat = |v: &Vec<(String, Vec<f64>)>| v.iter().flat_map(|(_, s)| s.clone()).collect::<Vec<f64>>();
        let names = |v: &Vec<(String, Vec<f64>)>| v.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
        let mut worst = 0f64;
        for (g, w) in got.per_checkpoint.iter().zip(&want_per) {
            assert_eq!(names(g), names(w));
            worst = worst.max(common::rel_err(&flat(g), &flat(w)));
        }
        assert_eq!(names(&got.combined.per_task), names(&want.per_task));
        worst = worst.max(common::rel_err(&flat(&got.combined.per_task), &flat(&want.per_task)));
        worst = worst.max(common::rel_err(&got.combined.score, &want.score));
        eprintln!("n={n} m={m} k={dim} checkpoints={}: worst rel err {worst:.2e} on {}", weights.len(), c.label);
        assert!(worst <= 1e-5, "n={n} m={m} k={dim}: rel err {worst:.3e} on {}", c.label);
    }
}
