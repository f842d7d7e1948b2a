//! What `select` is asked to do: the pool, a method with exactly the inputs it uses, the budget.
//! A [`MethodSpec`] cannot lack a method's required target, and a method that works at one
//! checkpoint holds one `Option`, not a list; [`MethodSpec::new`] builds one from the flat
//! options a front end collects, and says what is missing or unused.

use std::path::{Path, PathBuf};

use super::method::{CheckpointUse, Method};
use crate::choice::{choice, Choice};
use crate::error::{Error, Result, Setting};
use crate::features::{FeatureOptions, Pooling};
use crate::methods::prism::{Hessian, PairWeights};
use crate::methods::tsds::TsdsParams;
use crate::select::Budget;
use crate::train::DpoReference;

/// How candidate gradients are transformed when checkpoints with optimizer moments are used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GradType {
    Adam,
    Sgd,
    Sign,
}

choice!(GradType {
    Adam => "adam": "Adam-preconditioned with the checkpoint's moments (LESS's default)",
    Sgd => "sgd": "the plain gradient",
    Sign => "sign": "its sign",
});

/// PRISM's options.
#[derive(Debug, Clone, Copy)]
pub struct PrismOptions {
    pub hessian: Hessian,
    pub weights: PairWeights,
    /// Use only the targets' chosen responses.
    pub unpaired: bool,
    /// Remove the budget's count of lowest-scoring candidates instead of keeping the top.
    pub repair: bool,
}

impl Default for PrismOptions {
    fn default() -> Self {
        PrismOptions { hessian: Hessian::Identity, weights: PairWeights::Pi, unpaired: false, repair: false }
    }
}

/// Where TSDS's candidate and query vectors come from.
#[derive(Debug, Clone, Default)]
pub enum TsdsSource {
    /// SFT gradient features of the pool and the targets (the default).
    #[default]
    Gradients,
    /// Hidden-state embeddings, pooled.
    Embeddings(Pooling),
    /// Precomputed `[N, d]` and `[M, d]` .npy matrices (the reference tool's inputs).
    Npy { pool: PathBuf, target: PathBuf },
}

/// The features TSDS's density estimate finds near-duplicates on, over gradient features.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TsdsDensity {
    /// The candidate features themselves, as the reference does.
    Candidates,
    /// The pool's plain gradients, where distance still means something (one more gradient
    /// pass over the pool when the candidates are Adam or sign features).
    Plain,
}

choice!(TsdsDensity {
    Candidates => "candidates": "the candidate features themselves (the reference's choice)",
    Plain => "plain": "the pool's plain gradients (one more pass when the candidates are adam or sign features)",
});

/// TSDS's options.
#[derive(Debug, Clone, Default)]
pub struct TsdsOptions {
    pub params: TsdsParams,
    pub source: TsdsSource,
    /// Where the density estimate measures distances; None = plain gradients over gradient
    /// features, the vectors themselves over embeddings and .npy matrices (the only choice
    /// there).
    pub density: Option<TsdsDensity>,
    /// Keep the top by probability instead of sampling with replacement.
    pub no_replacement: bool,
}

/// Options of the TIF family (bands are percentiles).
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct TifOptions {
    /// TIF's band of IF.
    pub band: (f64, f64),
    pub lossdiff_band: (f64, f64),
    pub irm_band: (f64, f64),
    /// How θ_val (LossDiff's reference) is trained on the validation set.
    pub val: ValTraining,
    /// Fusion: also compute the influence (IF) and its band, for the overlap report. Off by
    /// default: the fused selection does not use it and IF costs a gradient pass over the pool.
    pub with_if: bool,
}

/// θ_val's training: its own settings, not the selection's batch size (a speed knob).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct ValTraining {
    pub lr: f64,
    pub batch_size: usize,
    pub epochs: usize,
    pub schedule: crate::train::Schedule,
}

impl Default for ValTraining {
    /// The paper's one epoch; a constant rate, so the few steps of a small validation set are
    /// not spent decaying to 0.
    fn default() -> Self {
        ValTraining { lr: 1e-4, batch_size: 8, epochs: 1, schedule: crate::train::Schedule::Constant }
    }
}

impl Default for TifOptions {
    fn default() -> Self {
        TifOptions {
            band: (20.0, 80.0),
            lossdiff_band: (20.0, 80.0),
            irm_band: (20.0, 80.0),
            val: ValTraining::default(),
            with_if: false,
        }
    }
}

/// Every method's options in one flat set, as a front end collects them; [`MethodSpec::new`]
/// keeps what the chosen method uses.
#[derive(Debug, Clone)]
pub struct MethodOptions {
    /// How candidate gradients are transformed (LESS, ROSE, TSDS over gradients); None takes
    /// the method's default: Adam at warmup checkpoints, the plain gradient without.
    pub grad_type: Option<GradType>,
    /// DPO temperature (ROSE's target loss, the TIF family).
    pub beta: f64,
    /// DPO's reference policy; None = the one the policy's warmup trained against (its
    /// checkpoint's trainer_state.json), else the base model. Used by the methods with a DPO
    /// loss ([`Method::uses_dpo`]) and refused by the others.
    pub dpo_reference: Option<DpoReference>,
    pub prism: PrismOptions,
    pub tsds: TsdsOptions,
    pub tif: TifOptions,
    /// Loss baseline: prefer the lowest loss.
    pub low_loss: bool,
}

impl Default for MethodOptions {
    fn default() -> Self {
        MethodOptions {
            grad_type: None,
            beta: 0.1,
            dpo_reference: None,
            prism: PrismOptions::default(),
            tsds: TsdsOptions::default(),
            tif: TifOptions::default(),
            low_loss: false,
        }
    }
}

/// The member of the TIF family and its band(s).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Band {
    /// TIF: the middle band of the influence on the validation set.
    Tif((f64, f64)),
    /// LossDiff: the band of ℓ_DPO(θ) − ℓ_DPO(θ_val).
    Lossdiff((f64, f64)),
    /// IRM: the band of the implicit reward margin.
    Irm((f64, f64)),
    /// Fusion: the intersection of the LossDiff and IRM bands (TIF's band for the overlap report).
    Fusion { lossdiff: (f64, f64), irm: (f64, f64), tif: (f64, f64) },
}

/// A method with the inputs it uses.
#[derive(Debug, Clone)]
pub enum MethodSpec<'a> {
    /// LESS: SFT target gradients; ROSE: DPO target gradients of preference pairs (`dpo_beta`,
    /// against `dpo_reference`).
    Less {
        target: &'a Path,
        checkpoints: &'a [PathBuf],
        grad_type: GradType,
        dpo_beta: Option<f64>,
        dpo_reference: Option<DpoReference>,
    },
    Prism {
        target: &'a Path,
        checkpoint: Option<&'a Path>,
        options: PrismOptions,
    },
    Tsds {
        target: &'a Path,
        /// The warmup checkpoint: the pool's features of `grad_type` (Adam by default, as LESS)
        /// against plain gradients of the targets.
        checkpoint: Option<&'a Path>,
        /// The pool's gradient transform (plain without a checkpoint unless given).
        grad_type: GradType,
        options: TsdsOptions,
    },
    Random,
    Loss {
        lowest: bool,
    },
    Rds {
        target: &'a Path,
        pooling: Pooling,
    },
    Dsir {
        target: &'a Path,
    },
    /// The TIF family; `validation` is required by all but IRM.
    PreferenceBand {
        band: Band,
        validation: Option<&'a Path>,
        checkpoint: Option<&'a Path>,
        beta: f64,
        /// DPO's reference policy; None = as [`MethodOptions::dpo_reference`] says.
        dpo_reference: Option<DpoReference>,
        val: ValTraining,
        with_if: bool,
    },
}

impl<'a> MethodSpec<'a> {
    /// The spec of `method` from flat inputs: an error names a missing target, checkpoints the
    /// method does not use, or several where it takes one.
    pub fn new(
        method: Method,
        target: Option<&'a Path>,
        checkpoints: &'a [PathBuf],
        o: &MethodOptions,
    ) -> Result<Self> {
        let name = method.name();
        let target = match (method.target_kind(), target) {
            (Some(_), None) => return Err(Error::MissingTarget { method: name }),
            (None, _) => None,
            (_, t) => t,
        };
        match (method.checkpoint_use(), checkpoints.len()) {
            (CheckpointUse::Unused, 1..) => return Err(Error::CheckpointsUnused { method: name }),
            (CheckpointUse::One, 2..) => return Err(Error::OneCheckpoint { method: name }),
            _ => {}
        }
        let one = checkpoints.first().map(PathBuf::as_path);
        // A gradient type is used or refused, never ignored.
        let embedded = method == Method::Tsds && !matches!(o.tsds.source, TsdsSource::Gradients);
        let grad_type = match o.grad_type {
            Some(_) if !method.uses_grad_type() => {
                return Err(Error::GradTypeUnused { method: name, why: "its candidates are not gradient features" })
            }
            Some(_) if embedded => {
                return Err(Error::GradTypeUnused {
                    method: name,
                    why: "over hidden-state embeddings or given .npy matrices it uses no gradients",
                })
            }
            Some(g) => g,
            None if checkpoints.is_empty() => GradType::Sgd,
            None => GradType::Adam,
        };
        if let (Some(r), false) = (&o.dpo_reference, method.uses_dpo()) {
            return Err(Error::ReferenceUnused { reference: r.describe(), what: format!("the {name} method") });
        }
        if embedded && o.tsds.density == Some(TsdsDensity::Plain) {
            return Err(Error::setting(
                Setting::TsdsDensity,
                "TSDS over hidden-state embeddings or .npy matrices has no plain gradients for its density",
            ));
        }
        let dpo_reference = o.dpo_reference.clone();
        let need = || target.ok_or(Error::MissingTarget { method: name });
        let t = o.tif;
        let band = |band| MethodSpec::PreferenceBand {
            band,
            validation: target,
            checkpoint: one,
            beta: o.beta,
            dpo_reference: dpo_reference.clone(),
            val: t.val,
            with_if: t.with_if,
        };
        Ok(match method {
            Method::Less => {
                MethodSpec::Less { target: need()?, checkpoints, grad_type, dpo_beta: None, dpo_reference: None }
            }
            Method::Rose => {
                MethodSpec::Less { target: need()?, checkpoints, grad_type, dpo_beta: Some(o.beta), dpo_reference }
            }
            Method::Prism => MethodSpec::Prism { target: need()?, checkpoint: one, options: o.prism },
            Method::Tsds => MethodSpec::Tsds { target: need()?, checkpoint: one, grad_type, options: o.tsds.clone() },
            Method::Random => MethodSpec::Random,
            Method::Loss => MethodSpec::Loss { lowest: o.low_loss },
            Method::Rds => MethodSpec::Rds { target: need()?, pooling: Pooling::LastToken },
            Method::RdsPlus => MethodSpec::Rds { target: need()?, pooling: Pooling::Mean },
            Method::Dsir => MethodSpec::Dsir { target: need()? },
            Method::Tif => band(Band::Tif(t.band)),
            Method::Lossdiff => band(Band::Lossdiff(t.lossdiff_band)),
            Method::Irm => band(Band::Irm(t.irm_band)),
            Method::Fusion => band(Band::Fusion { lossdiff: t.lossdiff_band, irm: t.irm_band, tif: t.band }),
        })
    }

    /// Which method it is.
    pub fn method(&self) -> Method {
        match self {
            MethodSpec::Less { dpo_beta: None, .. } => Method::Less,
            MethodSpec::Less { dpo_beta: Some(_), .. } => Method::Rose,
            MethodSpec::Prism { .. } => Method::Prism,
            MethodSpec::Tsds { .. } => Method::Tsds,
            MethodSpec::Random => Method::Random,
            MethodSpec::Loss { .. } => Method::Loss,
            MethodSpec::Rds { pooling: Pooling::LastToken, .. } => Method::Rds,
            MethodSpec::Rds { pooling: Pooling::Mean, .. } => Method::RdsPlus,
            MethodSpec::Dsir { .. } => Method::Dsir,
            MethodSpec::PreferenceBand { band, .. } => match band {
                Band::Tif(_) => Method::Tif,
                Band::Lossdiff(_) => Method::Lossdiff,
                Band::Irm(_) => Method::Irm,
                Band::Fusion { .. } => Method::Fusion,
            },
        }
    }

    /// Whether it computes a DPO loss (ROSE's targets, the TIF family), which has a reference
    /// policy.
    pub fn uses_dpo(&self) -> bool {
        self.method().uses_dpo()
    }

    /// DPO's reference policy, when one was given.
    pub fn dpo_reference(&self) -> Option<&DpoReference> {
        match self {
            MethodSpec::Less { dpo_reference, .. } | MethodSpec::PreferenceBand { dpo_reference, .. } => {
                dpo_reference.as_ref()
            }
            _ => None,
        }
    }

    /// Where the policy a DPO loss is taken at was saved: the (first) checkpoint, else the
    /// loaded adapter's directory (None for a fresh adapter).
    pub(super) fn policy_dir<'b>(&'b self, loaded: &'b super::Loaded) -> Option<&'b Path> {
        let checkpoint = match self {
            MethodSpec::Less { checkpoints, .. } => checkpoints.first().map(PathBuf::as_path),
            MethodSpec::PreferenceBand { checkpoint, .. } => *checkpoint,
            _ => None,
        };
        checkpoint.or(loaded.adapter.dir.as_deref())
    }

    /// The target (or validation) file, when the method takes one.
    pub fn target(&self) -> Option<&'a Path> {
        match self {
            MethodSpec::Less { target, .. }
            | MethodSpec::Prism { target, .. }
            | MethodSpec::Tsds { target, .. }
            | MethodSpec::Rds { target, .. }
            | MethodSpec::Dsir { target } => Some(target),
            MethodSpec::PreferenceBand { validation, .. } => *validation,
            MethodSpec::Random | MethodSpec::Loss { .. } => None,
        }
    }
}

/// What `select` needs beyond the loaded model.
pub struct SelectSpec<'a> {
    /// The pool's files, read as one pool in this order.
    pub pool: &'a [PathBuf],
    pub method: MethodSpec<'a>,
    pub budget: Budget,
    /// Featurization settings (the projection's seed also seeds random and DSIR's noise).
    pub opts: &'a FeatureOptions,
    pub out: &'a Path,
    /// Feature stores of the pool made by `featurize` (whole, or the shards of a cluster job):
    /// each pool featurization takes the ones made with its own arguments instead of computing
    /// them, and is refused, naming what differs, when none is.
    pub pool_features: &'a [PathBuf],
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spec_has_the_inputs_its_method_needs() {
        let o = MethodOptions::default();
        let t = Path::new("target.jsonl");
        let two = [PathBuf::from("a"), PathBuf::from("b")];
        for m in Method::ALL {
            let needs_target = m.target_kind().is_some();
            let made = MethodSpec::new(*m, None, &[], &o);
            assert_eq!(made.is_err(), needs_target, "{}", m.name());
            let spec = MethodSpec::new(*m, Some(t), &[], &o).unwrap();
            assert_eq!(spec.method(), *m, "round trip of {}", m.name());
            assert_eq!(spec.target().is_some(), needs_target, "{}", m.name());
            let with_two = MethodSpec::new(*m, Some(t), &two, &o);
            match m.checkpoint_use() {
                CheckpointUse::Weighted => assert!(with_two.is_ok()),
                CheckpointUse::One => assert!(matches!(with_two, Err(Error::OneCheckpoint { .. }))),
                CheckpointUse::Unused => assert!(matches!(with_two, Err(Error::CheckpointsUnused { .. }))),
            }
        }
    }

    /// The gradient type a method runs with: its default, the one given, or an error; never
    /// silently dropped.
    #[test]
    fn a_gradient_type_is_used_or_refused() {
        let t = Path::new("target.jsonl");
        let one = [PathBuf::from("checkpoint")];
        let used = |m: Method, g: Option<GradType>, ckpts: &[PathBuf]| {
            let o = MethodOptions { grad_type: g, ..MethodOptions::default() };
            match MethodSpec::new(m, Some(t), ckpts, &o) {
                Ok(MethodSpec::Less { grad_type, .. } | MethodSpec::Tsds { grad_type, .. }) => Ok(grad_type),
                Ok(other) => panic!("{:?} has no gradient type", other.method()),
                Err(e) => Err(e),
            }
        };
        for m in [Method::Less, Method::Rose, Method::Tsds] {
            assert_eq!(used(m, None, &[]).unwrap(), GradType::Sgd, "{}", m.name());
            assert_eq!(used(m, None, &one).unwrap(), GradType::Adam, "{}", m.name());
            for g in [GradType::Sgd, GradType::Sign, GradType::Adam] {
                assert_eq!(used(m, Some(g), &one).unwrap(), g, "{}", m.name());
            }
        }
        for m in Method::ALL.iter().filter(|m| !m.uses_grad_type()) {
            let o = MethodOptions { grad_type: Some(GradType::Sgd), ..MethodOptions::default() };
            let e = MethodSpec::new(*m, Some(t), &[], &o).unwrap_err();
            assert!(matches!(e, Error::GradTypeUnused { .. }), "{}: {e}", m.name());
        }
        let embedded = MethodOptions {
            grad_type: Some(GradType::Sign),
            tsds: TsdsOptions { source: TsdsSource::Embeddings(Pooling::Mean), ..TsdsOptions::default() },
            ..MethodOptions::default()
        };
        let e = MethodSpec::new(Method::Tsds, Some(t), &[], &embedded).unwrap_err();
        assert!(e.to_string().contains("embeddings"), "{e}");
    }

    /// A DPO reference policy reaches the methods with a DPO loss and is refused by the rest;
    /// plain-gradient density is refused where TSDS has no gradients.
    #[test]
    fn a_dpo_reference_and_a_density_are_used_or_refused() {
        let t = Path::new("target.jsonl");
        let sft = DpoReference::Adapter(PathBuf::from("sft-adapter"));
        let o = MethodOptions { dpo_reference: Some(sft.clone()), ..MethodOptions::default() };
        for m in Method::ALL {
            match MethodSpec::new(*m, Some(t), &[], &o) {
                Ok(spec) => {
                    assert!(m.uses_dpo(), "{} took a DPO reference", m.name());
                    assert_eq!(spec.dpo_reference(), Some(&sft), "{}", m.name());
                }
                Err(e) => {
                    assert!(!m.uses_dpo(), "{}: {e}", m.name());
                    assert!(matches!(e, Error::ReferenceUnused { .. }), "{}: {e}", m.name());
                }
            }
        }
        for (source, plain_ok) in [
            (TsdsSource::Gradients, true),
            (TsdsSource::Embeddings(Pooling::Mean), false),
            (TsdsSource::Npy { pool: "x.npy".into(), target: "q.npy".into() }, false),
        ] {
            let tsds = TsdsOptions { source, density: Some(TsdsDensity::Plain), ..TsdsOptions::default() };
            let o = MethodOptions { tsds, ..MethodOptions::default() };
            assert_eq!(MethodSpec::new(Method::Tsds, Some(t), &[], &o).is_ok(), plain_ok);
        }
    }
}
