//! Paired comparisons of an arm with the random arm of its size. Both arms run with the same
//! seeds (one adapter initialisation and data order per seed), so the per-seed difference
//! removes the variance they share; "beats" asks the mean difference to exceed two standard
//! errors of it.

use serde::{Deserialize, Serialize};

use super::{Arm, Metrics, Run, Subset};

/// An arm against the random subsets of its size, seed by seed (each seed's run against the
/// random run of that seed and of that run's subset size).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Comparison {
    pub arm: String,
    pub reference: String,
    /// `test loss` (lower is better) or `preference accuracy` (higher is better).
    pub metric: String,
    /// Per seed: the arm's advantage (reference − arm for a loss, arm − reference for an
    /// accuracy; positive means the arm did better).
    pub differences: Vec<(u64, f64)>,
    pub mean: f64,
    /// Standard error of the mean difference: sample std / √n (0 for one seed).
    pub std_error: f64,
    /// Seeds where the arm did better.
    pub wins: usize,
    pub n: usize,
    /// The mean advantage exceeds two standard errors (needs at least two seeds).
    pub beats: bool,
}

/// The random arms that give every selection arm a reference of its own size: one per distinct
/// size of the arms whose size is the same at every seed (`random` when there is one size,
/// `random (k=N)` otherwise), and for a per-seed arm whose size varies (a band), random subsets
/// of its size at each seed (`random (sized as NAME)`).
pub fn random_arms(arms: &[Arm]) -> Vec<Arm> {
    let varies = |a: &Arm| match &a.subset {
        Subset::PerSeed(by_seed) => by_seed.values().any(|ix| ix.len() != by_seed.values().next().map_or(0, Vec::len)),
        _ => false,
    };
    let mut sizes: Vec<usize> =
        arms.iter().filter(|a| !varies(a)).flat_map(|a| a.subset.selections()).map(<[usize]>::len).collect();
    sizes.sort_unstable();
    sizes.dedup();
    let name = |k: usize| if sizes.len() == 1 { "random".to_string() } else { format!("random (k={k})") };
    let mut out: Vec<Arm> = sizes.iter().map(|&k| Arm { name: name(k), subset: Subset::Random(k) }).collect();
    for a in arms.iter().filter(|a| varies(a)) {
        if let Subset::PerSeed(by_seed) = &a.subset {
            let sized = by_seed.iter().map(|(&s, ix)| (s, ix.len())).collect();
            out.push(Arm { name: format!("random (sized as {})", a.name), subset: Subset::RandomSized(sized) });
        }
    }
    out
}

/// Every selection arm against the random runs of its size and seed (when the runs have them).
pub fn compare(arms: &[Arm], runs: &[Run]) -> Vec<Comparison> {
    arms.iter().filter(|a| !a.subset.is_random()).filter_map(|a| paired(&a.name, arms, runs)).collect()
}

/// The metric a comparison uses: test loss where measured, else preference accuracy.
fn advantage(arm: &Metrics, reference: &Metrics) -> Option<(&'static str, f64)> {
    match (arm.test_loss, reference.test_loss, arm.pref_accuracy, reference.pref_accuracy) {
        (Some(a), Some(r), _, _) => Some(("test loss", r - a)),
        (_, _, Some(a), Some(r)) => Some(("preference accuracy", a - r)),
        _ => None,
    }
}

fn paired(arm: &str, arms: &[Arm], runs: &[Run]) -> Option<Comparison> {
    // The random arm of a run's size: a fixed-size one, else one sized per seed to match.
    let random_of = |k: usize, seed: u64| {
        arms.iter()
            .find(|a| matches!(a.subset, Subset::Random(r) if r == k))
            .or_else(|| arms.iter().find(|a| matches!(&a.subset, Subset::RandomSized(m) if m.get(&seed) == Some(&k))))
    };
    let mut metric = "";
    let mut references: Vec<&str> = Vec::new();
    let differences: Vec<(u64, f64)> = runs
        .iter()
        .filter(|r| r.arm == arm)
        .filter_map(|a| {
            let reference = random_of(a.subset.len(), a.seed)?;
            let r = runs.iter().find(|r| r.arm == reference.name && r.seed == a.seed)?;
            let (m, d) = advantage(&a.metrics, &r.metrics)?;
            metric = m;
            if !references.contains(&reference.name.as_str()) {
                references.push(&reference.name);
            }
            Some((a.seed, d))
        })
        .collect();
    let n = differences.len();
    if n == 0 {
        return None;
    }
    let mean = differences.iter().map(|d| d.1).sum::<f64>() / n as f64;
    let std_error = if n > 1 {
        let var = differences.iter().map(|d| (d.1 - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        (var / n as f64).sqrt()
    } else {
        0.0
    };
    Some(Comparison {
        arm: arm.to_string(),
        reference: references.join(", "),
        metric: metric.to_string(),
        wins: differences.iter().filter(|d| d.1 > 0.0).count(),
        beats: n > 1 && mean > 2.0 * std_error,
        differences,
        mean,
        std_error,
        n,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run on a subset of two (the size of the test's arms).
    fn run(arm: &str, seed: u64, loss: f64) -> Run {
        Run {
            arm: arm.into(),
            seed,
            subset: vec![0, 1],
            train_loss: 0.0,
            metrics: Metrics { test_loss: Some(loss), accuracy: None, pref_accuracy: None },
        }
    }

    #[test]
    fn random_arms_match_every_size() {
        let fixed = |n: &str, k: usize| Arm { name: n.into(), subset: Subset::Fixed((0..k).collect()) };
        let one = random_arms(&[fixed("less", 5), fixed("rds", 5)]);
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].name, "random");
        let two = random_arms(&[fixed("less", 5), fixed("prism", 3), fixed("rds", 5)]);
        assert_eq!(two.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(), ["random (k=3)", "random (k=5)"]);
    }

    #[test]
    fn a_band_of_varying_size_gets_random_subsets_sized_per_seed() {
        let by_seed = [(1, vec![0, 1, 2]), (2, vec![3, 4])].into_iter().collect();
        let arms = [Arm { name: "fusion".into(), subset: Subset::PerSeed(by_seed) }];
        let random = random_arms(&arms);
        assert_eq!(random.len(), 1);
        assert_eq!(random[0].name, "random (sized as fusion)");
        let Subset::RandomSized(sizes) = &random[0].subset else { panic!("not sized per seed") };
        assert_eq!(sizes.iter().map(|(&s, &k)| (s, k)).collect::<Vec<_>>(), [(1, 3), (2, 2)]);
        let run = |arm: &str, seed: u64, n: usize, loss: f64| Run {
            arm: arm.into(),
            seed,
            subset: (0..n).collect(),
            train_loss: 0.0,
            metrics: Metrics { test_loss: Some(loss), accuracy: None, pref_accuracy: None },
        };
        let all = [arms[0].clone(), random[0].clone()];
        let runs = [
            run("fusion", 1, 3, 1.0),
            run("fusion", 2, 2, 1.0),
            run(&random[0].name, 1, 3, 2.0),
            run(&random[0].name, 2, 2, 1.5),
        ];
        let c = &compare(&all, &runs)[0];
        assert_eq!(c.differences, [(1, 1.0), (2, 0.5)]);
        assert_eq!(c.reference, "random (sized as fusion)");
    }

    #[test]
    fn paired_differences_standard_error_and_verdict() {
        let arms = [
            Arm { name: "less".into(), subset: Subset::Fixed(vec![0, 1]) },
            Arm { name: "random".into(), subset: Subset::Random(2) },
        ];
        // A consistent 0.5 advantage with a little noise: beats. Seeds pair up even out of order.
        let runs = [
            run("less", 1, 1.0),
            run("less", 2, 1.2),
            run("less", 3, 0.9),
            run("random", 3, 1.45),
            run("random", 1, 1.5),
            run("random", 2, 1.6),
        ];
        let c = &compare(&arms, &runs)[0];
        assert_eq!((c.n, c.wins, c.metric.as_str()), (3, 3, "test loss"));
        let d: Vec<f64> = c.differences.iter().map(|x| x.1).collect();
        assert!((d[0] - 0.5).abs() < 1e-12 && (d[1] - 0.4).abs() < 1e-12 && (d[2] - 0.55).abs() < 1e-12);
        let mean = (0.5 + 0.4 + 0.55) / 3.0;
        let var = ((0.5f64 - mean).powi(2) + (0.4f64 - mean).powi(2) + (0.55f64 - mean).powi(2)) / 2.0;
        assert!((c.mean - mean).abs() < 1e-12 && (c.std_error - (var / 3.0).sqrt()).abs() < 1e-12);
        assert!(c.beats);
        // Differences of both signs: no verdict for the arm.
        let mixed = [run("less", 1, 1.0), run("less", 2, 2.0), run("random", 1, 1.5), run("random", 2, 1.5)];
        let c = &compare(&arms, &mixed)[0];
        assert_eq!((c.wins, c.beats), (1, false));
    }
}
