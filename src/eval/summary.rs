//! Means and standard deviations over seeds, and the table `eval` prints.

use serde::{Deserialize, Serialize};

use super::{Comparison, Metrics, Run};

/// Mean and sample standard deviation (n − 1) of one metric over seeds.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Stat {
    pub mean: f64,
    pub std: f64,
    pub n: usize,
}

impl Stat {
    fn of(xs: &[f64]) -> Option<Stat> {
        if xs.is_empty() {
            return None;
        }
        let n = xs.len();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = if n > 1 { xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64 } else { 0.0 };
        Some(Stat { mean, std: var.sqrt(), n })
    }
}

/// One arm over its seeds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    pub arm: String,
    /// Subset size (of the first run; every run of an arm has the same size).
    pub size: usize,
    pub test_loss: Option<Stat>,
    pub accuracy: Option<Stat>,
    pub pref_accuracy: Option<Stat>,
}

/// Groups runs by arm, in the order arms first appear.
pub(crate) fn summarize(runs: &[Run]) -> Vec<Summary> {
    let mut arms: Vec<&str> = Vec::new();
    for r in runs {
        if !arms.contains(&r.arm.as_str()) {
            arms.push(&r.arm);
        }
    }
    arms.into_iter()
        .map(|arm| {
            let rs: Vec<&Run> = runs.iter().filter(|r| r.arm == arm).collect();
            let pick =
                |f: fn(&Metrics) -> Option<f64>| Stat::of(&rs.iter().filter_map(|r| f(&r.metrics)).collect::<Vec<_>>());
            Summary {
                arm: arm.to_string(),
                size: rs[0].subset.len(),
                test_loss: pick(|m| m.test_loss),
                accuracy: pick(|m| m.accuracy),
                pref_accuracy: pick(|m| m.pref_accuracy),
            }
        })
        .collect()
}

fn cell(s: Option<Stat>, digits: usize) -> String {
    match s {
        Some(s) => format!("{:.*} ± {:.*}", digits, s.mean, digits, s.std),
        None => "–".into(),
    }
}

/// A Markdown table of the summaries; `base` is the model before fine-tuning. Each selection's
/// row says how it did against random subsets of its size, paired by seed (see
/// [`super::Comparison`]).
pub(crate) fn markdown_table(summaries: &[Summary], base: Option<&Metrics>, comparisons: &[Comparison]) -> String {
    let mut t = String::from(
        "| arm | size | seeds | test loss | exact match | preference acc. | vs random of its size: advantage ± SE (wins) | p (sign-flip) | p (Holm) | beats (Holm p ≤ 0.05) |\n",
    );
    t.push_str("|---|---|---|---|---|---|---|---|---|---|\n");
    if let Some(b) = base {
        let f = |x: Option<f64>, d: usize| x.map_or("–".to_string(), |v| format!("{v:.*}", d));
        t.push_str(&format!(
            "| base model | 0 | – | {} | {} | {} | – | – | – | – |\n",
            f(b.test_loss, 3),
            f(b.accuracy, 3),
            f(b.pref_accuracy, 3)
        ));
    }
    for s in summaries {
        let (versus, verdict) = match comparisons.iter().find(|c| c.arm == s.arm) {
            Some(c) => (
                format!("{:+.3} ± {:.3} ({}/{}, {})", c.mean, c.std_error, c.wins, c.n, c.metric),
                format!("{:.4} | {:.4} | {}", c.p_value, c.p_holm, if c.beats { "yes" } else { "no" }),
            ),
            None => ("–".into(), "– | – | –".into()),
        };
        let seeds = s.test_loss.or(s.pref_accuracy).map_or(0, |x| x.n);
        t.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
            s.arm,
            s.size,
            seeds,
            cell(s.test_loss, 3),
            cell(s.accuracy, 3),
            cell(s.pref_accuracy, 3),
            versus,
            verdict
        ));
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(arm: &str, loss: f64) -> Run {
        Run {
            arm: arm.into(),
            seed: 0,
            subset: vec![0, 1],
            train_loss: 0.0,
            metrics: Metrics { test_loss: Some(loss), accuracy: None, pref_accuracy: None },
        }
    }

    #[test]
    fn mean_and_sample_std_per_arm_in_first_seen_order() {
        let runs = [run("less", 1.0), run("random", 4.0), run("less", 2.0), run("less", 3.0), run("random", 6.0)];
        let s = summarize(&runs);
        assert_eq!(s.iter().map(|x| x.arm.as_str()).collect::<Vec<_>>(), ["less", "random"]);
        assert_eq!(s[0].test_loss, Some(Stat { mean: 2.0, std: 1.0, n: 3 }));
        let r = s[1].test_loss.unwrap();
        assert!((r.mean - 5.0).abs() < 1e-12 && (r.std - 2f64.sqrt()).abs() < 1e-12);
        let table = markdown_table(&s, None, &[]);
        assert!(table.contains("| less | 2 | 3 | 2.000 ± 1.000 |"), "{table}");
    }
}
