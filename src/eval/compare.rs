//! Paired comparisons of an arm with the random arm of its size. Both arms run with the same
//! seeds (one adapter initialisation and data order per seed), so the per-seed difference
//! removes the variance they share; "beats" asks the mean difference to exceed two standard
//! errors of it.

use serde::{Deserialize, Serialize};

use super::{Arm, Metrics, Run, Subset};

/// An arm against the random subsets of its size, seed by seed.
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

/// The random arms that give every fixed arm a reference of its own size: one per distinct
/// size, named `random` when there is one size and `random (k=N)` otherwise.
pub fn random_arms(fixed: &[Arm]) -> Vec<Arm> {
    let mut sizes: Vec<usize> = fixed
        .iter()
        .filter_map(|a| match &a.subset {
            Subset::Fixed(ix) => Some(ix.len()),
            Subset::Random(_) => None,
        })
        .collect();
    sizes.sort_unstable();
    sizes.dedup();
    let name = |k: usize| if sizes.len() == 1 { "random".to_string() } else { format!("random (k={k})") };
    sizes.iter().map(|&k| Arm { name: name(k), subset: Subset::Random(k) }).collect()
}

/// Every fixed arm against the random arm of its size (when the runs have one).
pub fn compare(arms: &[Arm], runs: &[Run]) -> Vec<Comparison> {
    let reference = |k: usize| arms.iter().find(|a| matches!(a.subset, Subset::Random(r) if r == k));
    arms.iter()
        .filter_map(|a| match &a.subset {
            Subset::Fixed(ix) => reference(ix.len()).and_then(|r| paired(&a.name, &r.name, runs)),
            Subset::Random(_) => None,
        })
        .collect()
}

/// The metric a comparison uses: test loss where measured, else preference accuracy.
fn advantage(arm: &Metrics, reference: &Metrics) -> Option<(&'static str, f64)> {
    match (arm.test_loss, reference.test_loss, arm.pref_accuracy, reference.pref_accuracy) {
        (Some(a), Some(r), _, _) => Some(("test loss", r - a)),
        (_, _, Some(a), Some(r)) => Some(("preference accuracy", a - r)),
        _ => None,
    }
}

fn paired(arm: &str, reference: &str, runs: &[Run]) -> Option<Comparison> {
    let mut metric = "";
    let differences: Vec<(u64, f64)> = runs
        .iter()
        .filter(|r| r.arm == arm)
        .filter_map(|a| {
            let r = runs.iter().find(|r| r.arm == reference && r.seed == a.seed)?;
            let (m, d) = advantage(&a.metrics, &r.metrics)?;
            metric = m;
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
        reference: reference.to_string(),
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

    fn run(arm: &str, seed: u64, loss: f64) -> Run {
        Run {
            arm: arm.into(),
            seed,
            subset: vec![],
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
