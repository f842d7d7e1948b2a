//! The selection methods, and what each needs: the kind of pool it scores, the target set it
//! matches against, and how it uses warmup checkpoints. Every caller (select, the demo, the
//! embedded default, the CLI) asks here instead of keeping its own table.

use crate::choice::choice;
use crate::data::RecordKind;

/// Selection methods available through `select`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Less,
    Rose,
    Prism,
    Tsds,
    Random,
    Loss,
    Rds,
    RdsPlus,
    Dsir,
    Tif,
    Lossdiff,
    Irm,
    Fusion,
}

choice!(Method {
    Less => "less": "LESS: gradient cosine to SFT-loss target gradients, mean over shots, max over subtasks",
    Rose => "rose": "ROSE: LESS with DPO-loss gradients of a preference target set",
    Prism => "prism": "PRISM: preference-aware influence toward the targets' chosen and away from their rejected",
    Tsds => "tsds": "TSDS: optimal-transport sampling toward the target distribution, near-duplicates discounted",
    Random => "random": "Baseline: a seeded uniformly random subset",
    Loss => "loss": "Baseline: highest token-mean loss (perplexity) first, or the lowest",
    Rds => "rds": "Baseline: RDS, last-token hidden-state cosine, mean over shots, max over subtasks",
    RdsPlus => "rds-plus": "Baseline: RDS+, position-weighted mean pooling, round-robin over target examples",
    Dsir => "dsir": "Baseline: DSIR, hashed n-gram importance weights, Gumbel top-k",
    Tif => "tif": "TIF: preference pairs whose DPO influence on the validation set is in the middle band",
    Lossdiff => "lossdiff": "LossDiff: middle band of l_DPO(theta) - l_DPO(theta_val), theta_val trained on the validation set",
    Irm => "irm": "IRM: middle band of the implicit reward margin (no validation set needed)",
    Fusion => "fusion": "Fusion: the intersection of the LossDiff and IRM bands",
});

/// How a method uses warmup checkpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointUse {
    /// Any number, weighted by their mean learning rates (LESS, ROSE).
    Weighted,
    /// At most one: the reference model the method works at.
    One,
    /// None: the loaded adapter only.
    Unused,
}

impl Method {
    /// The records of the pool it scores.
    pub fn pool_kind(self) -> RecordKind {
        match self {
            Method::Tif | Method::Lossdiff | Method::Irm | Method::Fusion => RecordKind::Preferences,
            _ => RecordKind::Instructions,
        }
    }

    /// The records of the target (or validation) set it requires; None for a method that takes
    /// no target.
    pub fn target_kind(self) -> Option<RecordKind> {
        use RecordKind::*;
        match self {
            Method::Random | Method::Loss | Method::Irm => None,
            Method::Rose | Method::Prism | Method::Tif | Method::Lossdiff | Method::Fusion => Some(Preferences),
            Method::Less | Method::Tsds | Method::Rds | Method::RdsPlus | Method::Dsir => Some(Instructions),
        }
    }

    /// Whether its candidates are gradient features that a gradient type transforms (LESS, ROSE
    /// and TSDS over gradients); the other methods refuse `--grad-type` rather than ignore it.
    pub fn uses_grad_type(self) -> bool {
        matches!(self, Method::Less | Method::Rose | Method::Tsds)
    }

    /// Whether it computes a DPO loss, which measures the policy against a reference policy:
    /// ROSE's target gradients and the TIF family. The others refuse `--dpo-reference`.
    pub fn uses_dpo(self) -> bool {
        matches!(self, Method::Rose | Method::Tif | Method::Lossdiff | Method::Irm | Method::Fusion)
    }

    /// How it uses warmup checkpoints.
    pub fn checkpoint_use(self) -> CheckpointUse {
        match self {
            Method::Less | Method::Rose => CheckpointUse::Weighted,
            Method::Prism | Method::Tif | Method::Lossdiff | Method::Irm | Method::Fusion | Method::Tsds => {
                CheckpointUse::One
            }
            Method::Random | Method::Loss | Method::Rds | Method::RdsPlus | Method::Dsir => CheckpointUse::Unused,
        }
    }
}
