//! Learning-rate schedules of the LoRA trainer.

use serde::{Deserialize, Serialize};

/// How the learning rate moves over a run's steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    /// Linear warmup, then linear decay to 0 (Transformers' `get_linear_schedule_with_warmup`).
    #[default]
    Linear,
    /// Linear warmup, then the peak rate to the end: a short run (LossDiff's one epoch on a
    /// small validation set) is not spent decaying.
    Constant,
}

crate::choice::choice!(Schedule {
    Linear => "linear": "linear warmup, then linear decay to 0",
    Constant => "constant": "linear warmup, then the peak rate to the end",
});

/// A peak rate, the share of steps warming up to it, and what follows.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub(crate) struct LrSchedule {
    pub peak: f64,
    pub warmup_ratio: f64,
    pub kind: Schedule,
}

impl LrSchedule {
    /// The rate at `step` (0-based) of `total`.
    pub fn at(&self, step: usize, total: usize) -> f64 {
        let warm = (self.warmup_ratio * total as f64).ceil() as usize;
        if step < warm {
            return self.peak * step as f64 / warm.max(1) as f64;
        }
        match self.kind {
            Schedule::Linear => {
                self.peak * (total.saturating_sub(step)) as f64 / (total.saturating_sub(warm)).max(1) as f64
            }
            Schedule::Constant => self.peak,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_decay_or_hold() {
        let linear = LrSchedule { peak: 1.0, warmup_ratio: 0.2, kind: Schedule::Linear };
        let rates: Vec<f64> = (0..10).map(|s| linear.at(s, 10)).collect();
        assert_eq!(rates[..3], [0.0, 0.5, 1.0]);
        assert!((rates[9] - 0.125).abs() < 1e-12, "decays towards 0: {rates:?}");
        let constant = LrSchedule { kind: Schedule::Constant, ..linear };
        assert_eq!(
            (0..10).map(|s| constant.at(s, 10)).collect::<Vec<_>>()[1..],
            [0.5, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
        );
    }
}
