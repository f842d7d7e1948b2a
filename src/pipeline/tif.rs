//! The TIF family: influence, LossDiff, IRM and their fusion, each a percentile band.

use serde_json::json;

use super::{reference_checkpoint, Checkpoint, Chosen, Featurizer, Loaded, Scored, SelectSpec};
use crate::choice::Choice;
use crate::data::{Dataset, Tokenized};
use crate::device::Compute;
use crate::error::{Error, Result};
use crate::features::Transform;
use crate::loss::{self, DpoStats, LossKind};
use crate::methods::tif;
use crate::model::LoraAdapter;
use crate::train::{self, WarmupOptions};

/// The members of the family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Member {
    Tif,
    Lossdiff,
    Irm,
    Fusion,
}

/// What the family computes at the reference checkpoint θ, and the report it builds up.
struct Family<'a> {
    loaded: &'a Loaded,
    spec: &'a SelectSpec<'a>,
    pool: &'a Dataset,
    compute: &'a Compute,
    theta: Checkpoint,
    /// The pool's pairs, tokenized once.
    pairs: Vec<Tokenized>,
    /// DPO statistics of every pool pair at θ.
    at_theta: Vec<DpoStats>,
    columns: Vec<(String, Vec<f64>)>,
    details: serde_json::Value,
}

impl Family<'_> {
    /// DPO statistics of every pool pair under `adapter`.
    fn stats(&self, adapter: &LoraAdapter) -> Result<Vec<DpoStats>> {
        let mut out = Vec::with_capacity(self.pairs.len());
        for chunk in self.pairs.chunks(self.spec.opts.batch_size.max(1)) {
            out.extend(loss::dpo_stats(&self.loaded.model, adapter, chunk, self.spec.beta, &self.compute.device)?);
        }
        Ok(out)
    }

    /// IF(d) = ⟨∇ℓ_DPO(d; θ), ∇L_DPO(D_val; θ)⟩ of every pool pair.
    fn influence(&mut self, val: &Dataset) -> Result<Vec<f64>> {
        let dir = self.spec.out.join("features/tif");
        let loss = LossKind::Dpo { beta: self.spec.beta };
        let f =
            Featurizer { loaded: self.loaded, checkpoint: &self.theta, opts: self.spec.opts, compute: self.compute };
        let pf = f.run(self.pool, loss, &Transform::Identity, &dir.join("pool"))?;
        let vf = f.run(val, loss, &Transform::Identity, &dir.join("validation"))?;
        let v = tif::influence(&pf, &vf.load()?)?;
        self.columns.push(("if".into(), v.clone()));
        Ok(v)
    }

    /// LossDiff(d) = ℓ_DPO(d; θ) − ℓ_DPO(d; θ_val), θ_val = θ trained one epoch on `val`.
    fn lossdiff(&mut self, val: &Dataset) -> Result<Vec<f64>> {
        let spec = self.spec;
        let opts = WarmupOptions {
            fraction: 1.0,
            epochs: 1,
            lr: spec.tif.val_lr,
            batch_size: spec.opts.batch_size,
            warmup_ratio: 0.0,
            adamw: Default::default(),
            loss: LossKind::Dpo { beta: spec.beta },
            seed: spec.opts.seed,
            max_len: spec.opts.max_len,
        };
        let dirs = train::warmup(
            &self.loaded.model,
            self.theta.adapter.clone(),
            &self.loaded.tokenizer,
            val,
            &opts,
            self.compute,
            &spec.out.join("theta-val"),
        )?;
        let theta_val = LoraAdapter::load(&dirs[0], &self.loaded.model.linears)?;
        let at_val = self.stats(&theta_val)?;
        let v: Vec<f64> = self.at_theta.iter().zip(&at_val).map(|(a, b)| a.loss - b.loss).collect();
        self.columns.push(("lossdiff".into(), v.clone()));
        self.details["theta_val"] =
            json!({ "checkpoint": "theta-val/checkpoint-1", "lr": spec.tif.val_lr, "epochs": 1 });
        Ok(v)
    }

    /// The pairs whose `values` fall strictly inside the percentile band, reported as `name`.
    fn band(&mut self, name: &str, values: &[f64], (lo, hi): (f64, f64)) -> Vec<usize> {
        let (kept, a, b) = tif::band(values, lo, hi);
        self.details[name] = json!({
            "band_percentiles": [lo, hi], "thresholds": [a, b], "retained": kept.len(),
            "retained_fraction": kept.len() as f64 / self.pool.len() as f64,
        });
        kept
    }
}

/// One member of the TIF family over a preference pool. The selection is a band, so the
/// budget does not apply.
pub(super) fn tif_family(
    member: Member,
    loaded: &Loaded,
    spec: &SelectSpec<'_>,
    pool: &Dataset,
    val: Option<&Dataset>,
    compute: &Compute,
) -> Result<Scored> {
    let theta = reference_checkpoint(loaded, spec)?;
    let details = json!({ "checkpoint": theta.label(), "beta": spec.beta });
    let (pairs, _) = loaded.tokenizer.examples(&pool.examples, spec.opts.max_len)?;
    let mut family =
        Family { loaded, spec, pool, compute, theta, pairs, at_theta: Vec::new(), columns: Vec::new(), details };
    family.at_theta = family.stats(&family.theta.adapter)?;
    let irm: Vec<f64> = family.at_theta.iter().map(|s| s.margin).collect();
    family.columns.push(("irm".into(), irm.clone()));
    let need_val = || val.ok_or(Error::MissingTarget { method: spec.method.name() });
    let t = spec.tif;
    let (scores, kept, score_name) = match member {
        Member::Tif => {
            let v = family.influence(need_val()?)?;
            let kept = family.band("tif", &v, t.band);
            (v, kept, "if")
        }
        Member::Irm => {
            let kept = family.band("irm", &irm, t.irm_band);
            (irm, kept, "irm")
        }
        Member::Lossdiff => {
            let v = family.lossdiff(need_val()?)?;
            let kept = family.band("lossdiff", &v, t.lossdiff_band);
            (v, kept, "lossdiff")
        }
        Member::Fusion => {
            let val = need_val()?;
            // The IF band is computed for the report's overlap with TIF.
            let influence = family.influence(val)?;
            let tif_kept = family.band("tif", &influence, t.band);
            let lossdiff = family.lossdiff(val)?;
            let by_lossdiff = family.band("lossdiff", &lossdiff, t.lossdiff_band);
            let by_irm = family.band("irm", &irm, t.irm_band);
            let fused = tif::intersect(&by_lossdiff, &by_irm);
            let (jaccard, share) = tif::overlap(&fused, &tif_kept);
            family.details["fusion"] = json!({
                "retained": fused.len(), "retained_fraction": fused.len() as f64 / pool.len() as f64,
                "overlap_with_tif": { "jaccard": jaccard, "share_of_fusion_in_tif": share },
            });
            (irm, fused, "irm")
        }
    };
    let (lo, hi) = scores.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| (a.min(x), b.max(x)));
    if lo == hi {
        return Err(Error::NoSpread { method: spec.method.name(), value: lo });
    }
    let mut details = family.details;
    details["score"] = json!(score_name);
    details["selection"] = json!("a band: the budget does not apply; selected.json lists the kept pairs in pool order");
    Ok(Scored { scores, columns: family.columns, chosen: Chosen::List(kept), details })
}
