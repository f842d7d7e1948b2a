//! Paired comparisons of an arm with the random arm of its size. Both arms run with the same
//! seeds (one adapter initialisation and data order per seed), so the per-seed difference
//! removes the variance they share. "Beats" is a test whose error rate is what it says: the
//! exact one-sided sign-flip (permutation) test of the mean difference, its p-values adjusted by
//! Holm's step-down over the arms of one table, at `ALPHA` (0.05). Under the null hypothesis (the arm
//! is no better than random subsets of its size) each seed's difference is as likely to have
//! either sign, so every one of the 2^n sign patterns is equally likely; the p-value is the
//! share of them whose mean advantage is at least the observed one. Its smallest value is
//! 2^-n: with m arms in a table, an arm can pass only with n ≥ log2(m / α) seeds.

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
    /// One-sided exact sign-flip p-value of the mean advantage.
    #[serde(default = "one")]
    pub p_value: f64,
    /// `p_value` after Holm's adjustment over the comparisons of its table.
    #[serde(default = "one")]
    pub p_holm: f64,
    /// The Holm-adjusted p-value is at most `ALPHA` (0.05).
    pub beats: bool,
}

/// The family-wise error rate of one table's "beats" verdicts.
pub(crate) const ALPHA: f64 = 0.05;

fn one() -> f64 {
    1.0
}

/// Most seeds the exact test enumerates (2^n sign patterns).
const MAX_EXACT: usize = 24;

/// One-sided exact sign-flip p-value of the mean of `d` (> 0 is better): the share of the 2^n
/// sign patterns of |d| whose sum is at least the observed sum. Past [`MAX_EXACT`] differences
/// it counts 2^20 seeded random patterns (plus the observed one, so the estimate is never 0).
pub(crate) fn sign_flip_p(d: &[f64]) -> f64 {
    let n = d.len();
    if n == 0 {
        return 1.0;
    }
    let observed: f64 = d.iter().sum();
    let abs: Vec<f64> = d.iter().map(|x| x.abs()).collect();
    // Sums equal to the observed one up to rounding count as "at least".
    let tol = 1e-12 * abs.iter().sum::<f64>().max(f64::MIN_POSITIVE);
    let sum = |signs: u64| abs.iter().enumerate().map(|(i, a)| if signs >> i & 1 == 1 { -a } else { *a }).sum::<f64>();
    if n <= MAX_EXACT {
        let total = 1u64 << n;
        let extreme = (0..total).filter(|&s| sum(s) >= observed - tol).count();
        return extreme as f64 / total as f64;
    }
    let draws = 1u64 << 20;
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut extreme = 1u64;
    for _ in 0..draws {
        let signs: f64 = abs
            .iter()
            .map(|a| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                if state >> 63 == 1 {
                    -a
                } else {
                    *a
                }
            })
            .sum();
        extreme += u64::from(signs >= observed - tol);
    }
    extreme as f64 / (draws + 1) as f64
}

/// Holm's step-down adjustment: the i-th smallest of m p-values is multiplied by m − i (from
/// 0), then made monotone; each is capped at 1. Rejecting where the adjusted value is ≤ α keeps
/// the chance of any false "beats" in the family at most α, whatever the dependence.
pub(crate) fn holm(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let mut adjusted = vec![0.0; m];
    let mut running: f64 = 0.0;
    for (rank, &i) in order.iter().enumerate() {
        running = running.max(((m - rank) as f64 * p[i]).min(1.0));
        adjusted[i] = running;
    }
    adjusted
}

/// The random arms that give every selection arm a reference of its own size: one per distinct
/// size of the arms whose size is the same at every seed (`random` when there is one size,
/// `random (k=N)` otherwise), and for a per-seed arm whose size varies (a band), random subsets
/// of its size at each seed (`random (sized as NAME)`).
pub(crate) fn random_arms(arms: &[Arm]) -> Vec<Arm> {
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

/// Every selection arm against the random runs of its size and seed (when the runs have them),
/// the verdicts Holm-adjusted over all of them (one table, one family).
pub fn compare(arms: &[Arm], runs: &[Run]) -> Vec<Comparison> {
    let mut out: Vec<Comparison> =
        arms.iter().filter(|a| !a.subset.is_random()).filter_map(|a| paired(&a.name, arms, runs)).collect();
    let adjusted = holm(&out.iter().map(|c| c.p_value).collect::<Vec<_>>());
    for (c, p) in out.iter_mut().zip(adjusted) {
        c.p_holm = p;
        c.beats = p <= ALPHA;
    }
    out
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
        p_value: sign_flip_p(&differences.iter().map(|d| d.1).collect::<Vec<_>>()),
        // Set over the whole table by `compare`.
        p_holm: 1.0,
        beats: false,
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
        // Three seeds, all won: one of 8 sign patterns is as extreme, p = 1/8, not enough.
        assert_eq!((c.p_value, c.beats), (0.125, false));
        // Six seeds, all won: p = 1/64 < 0.05.
        let six: Vec<Run> =
            (1..=6).flat_map(|s| [run("less", s, 1.0), run("random", s, 1.4 + 0.01 * s as f64)]).collect();
        let c = &compare(&arms, &six)[0];
        assert_eq!((c.wins, c.p_value, c.p_holm, c.beats), (6, 1.0 / 64.0, 1.0 / 64.0, true));
        // Differences of both signs: no verdict for the arm.
        let mixed = [run("less", 1, 1.0), run("less", 2, 2.0), run("random", 1, 1.5), run("random", 2, 1.5)];
        let c = &compare(&arms, &mixed)[0];
        assert_eq!((c.wins, c.beats), (1, false));
    }

    #[test]
    fn sign_flip_p_values_by_hand() {
        assert_eq!(sign_flip_p(&[1.0, 2.0, 3.0]), 1.0 / 8.0);
        // Sums of ±1 ± 1: 2, 0, 0, −2; three are ≥ the observed 0.
        assert_eq!(sign_flip_p(&[1.0, -1.0]), 3.0 / 4.0);
        // ±3 ± 1 ± 1 gives 5, 3, 3, 1, −1, −3, −3, −5: three reach the observed 3 − 1 + 1.
        assert_eq!(sign_flip_p(&[3.0, -1.0, 1.0]), 3.0 / 8.0);
        assert_eq!(sign_flip_p(&[]), 1.0);
        assert_eq!(sign_flip_p(&[0.0, 0.0]), 1.0, "no difference is no evidence");
    }

    /// Past the exact limit the p-value is a Monte-Carlo estimate: within four standard errors
    /// of the exact share of the 2^25 patterns, counted here the slow way.
    #[test]
    fn sign_flip_p_past_the_exact_limit_estimates_the_exact_one() {
        let d: Vec<f64> = (0..25).map(|i| ((i * 7 % 11) as f64 - 4.0) * 0.1 + 0.05).collect();
        let observed: f64 = d.iter().sum();
        let abs: Vec<f64> = d.iter().map(|x| x.abs()).collect();
        let extreme = (0u32..1 << 25)
            .filter(|&s| {
                abs.iter().enumerate().map(|(i, a)| if s >> i & 1 == 1 { -a } else { *a }).sum::<f64>()
                    >= observed - 1e-9
            })
            .count();
        let exact = extreme as f64 / (1u64 << 25) as f64;
        let estimate = sign_flip_p(&d);
        let se = (exact * (1.0 - exact) / (1u64 << 20) as f64).sqrt();
        assert!(exact > 0.01 && exact < 0.99, "a p-value away from the ends: {exact}");
        assert!((estimate - exact).abs() <= 4.0 * se, "estimate {estimate}, exact {exact} (SE {se:.1e})");
        // Every difference positive: the estimate is floored at one pattern in 2^20 + 1.
        assert_eq!(sign_flip_p(&[1.0; 30]), 1.0 / ((1u64 << 20) + 1) as f64);
    }

    #[test]
    fn holm_adjusts_step_down() {
        let a = holm(&[0.01, 0.04, 0.03]);
        let want = [0.03, 0.06, 0.06];
        assert!(a.iter().zip(want).all(|(x, w)| (x - w).abs() < 1e-12), "{a:?}");
        assert_eq!(holm(&[0.5, 0.9]), [1.0, 1.0]);
    }

    /// Under the null hypothesis (differences symmetric about 0) the share of "beats" is at most
    /// α, for one arm and for any arm of a seven-arm table (Holm), over many simulated tables.
    #[test]
    fn false_beats_happen_at_most_at_alpha() {
        let mut state = 12345u64;
        let mut normal = || {
            // Box–Muller on a 64-bit LCG.
            let mut u = || {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
            };
            let (a, b) = (u(), u());
            (-2.0 * a.ln()).sqrt() * (2.0 * std::f64::consts::PI * b).cos()
        };
        let (tables, arms, seeds) = (1500, 7, 8);
        let (mut single, mut family) = (0, 0);
        for _ in 0..tables {
            let p: Vec<f64> =
                (0..arms).map(|_| sign_flip_p(&(0..seeds).map(|_| normal()).collect::<Vec<_>>())).collect();
            single += usize::from(p[0] <= ALPHA);
            family += usize::from(holm(&p).iter().any(|&q| q <= ALPHA));
        }
        // Exactly: P(p ≤ 0.05) = 12/256 = 0.047 at 8 seeds; allow 4 binomial standard errors.
        let slack = 4.0 * (ALPHA * (1.0 - ALPHA) / tables as f64).sqrt();
        let (single, family) = (single as f64 / tables as f64, family as f64 / tables as f64);
        assert!(single <= ALPHA + slack, "one arm: {single}");
        assert!(family <= ALPHA + slack, "any of {arms} arms: {family}");
        assert!(single > 0.01, "the test never rejects: {single}");
    }
}
