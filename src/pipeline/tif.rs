//! The TIF family: influence, LossDiff, IRM and their fusion, each a percentile band.

use std::path::Path;

use serde_json::json;

use super::{reference_checkpoint, Band, Checkpoint, Chosen, Context, Method, Scored, ValTraining};
use crate::choice::Choice;
use crate::data::{Dataset, Tokenized};
use crate::error::{Error, Result, Setting};
use crate::features::Transform;
use crate::loss::{self, DpoStats, LossKind};
use crate::methods::tif;
use crate::model::LoraAdapter;
use crate::train::{self, DpoReference, WarmupOptions};

/// What the family reads besides the pool.
pub(super) struct Inputs<'a> {
    /// The validation pairs (all but IRM need them).
    pub validation: Option<&'a Dataset>,
    /// The DPO warmup checkpoint θ; None = the loaded adapter.
    pub checkpoint: Option<&'a Path>,
    pub beta: f64,
    /// DPO's reference policy (the context's reference, loaded).
    pub dpo_reference: &'a DpoReference,
    /// θ_val's training on the validation set.
    pub val: ValTraining,
    /// Fusion: compute IF and its band too (the overlap with TIF in the report).
    pub with_if: bool,
}

/// What the family computes at the reference checkpoint θ, and the report it builds up.
struct Family<'a> {
    cx: &'a Context<'a>,
    pool: &'a Dataset,
    inputs: &'a Inputs<'a>,
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
        let (model, device) = (&self.cx.loaded.model, &self.cx.compute.device);
        let mut out = Vec::with_capacity(self.pairs.len());
        for chunk in self.pairs.chunks(self.cx.opts.batch_size.max(1)) {
            out.extend(loss::dpo_stats(model, adapter, self.cx.reference, chunk, self.inputs.beta, device)?);
        }
        Ok(out)
    }

    /// IF(d) = ⟨∇ℓ_DPO(d; θ), ∇L_DPO(D_val; θ)⟩ of every pool pair.
    fn influence(&mut self, val: &Dataset) -> Result<Vec<f64>> {
        let dir = self.cx.out.join("features/tif");
        let loss = LossKind::Dpo { beta: self.inputs.beta };
        let f = self.cx.featurizer(&self.theta);
        let pf = f.run_pool(self.pool, loss, &Transform::Identity, &dir.join("pool"))?;
        let vf = f.run(val, loss, &Transform::Identity, &dir.join("validation"))?;
        let v = tif::influence(&pf, &vf.load()?)?;
        self.columns.push(("if".into(), v.clone()));
        Ok(v)
    }

    /// LossDiff(d) = ℓ_DPO(d; θ) − ℓ_DPO(d; θ_val), θ_val = θ trained on `val` (one epoch by
    /// default, with its own rate, batch size and schedule).
    fn lossdiff(&mut self, val: &Dataset) -> Result<Vec<f64>> {
        let (cx, inputs) = (self.cx, self.inputs);
        let t = inputs.val;
        if t.epochs == 0 {
            return Err(Error::setting(Setting::ValEpochs, "LossDiff: θ_val needs at least one epoch"));
        }
        if t.batch_size == 0 {
            return Err(Error::setting(Setting::ValBatchSize, "LossDiff: θ_val needs a positive batch size"));
        }
        let opts = WarmupOptions {
            fraction: 1.0,
            epochs: t.epochs,
            lr: t.lr,
            batch_size: t.batch_size,
            warmup_ratio: 0.0,
            schedule: t.schedule,
            adamw: Default::default(),
            loss: LossKind::Dpo { beta: inputs.beta },
            reference: Some(inputs.dpo_reference.clone()),
            seed: cx.opts.seed,
            max_len: cx.opts.max_len,
        };
        let dirs = train::warmup(
            &cx.loaded.model,
            self.theta.adapter.clone(),
            &cx.loaded.tokenizer,
            val,
            &opts,
            cx.compute,
            &cx.out.join("theta-val"),
        )?;
        let last = dirs.last().expect("at least one epoch");
        let theta_val = LoraAdapter::load(last, &cx.loaded.model.linears)?;
        let at_val = self.stats(&theta_val)?;
        let v: Vec<f64> = self.at_theta.iter().zip(&at_val).map(|(a, b)| a.loss - b.loss).collect();
        self.columns.push(("lossdiff".into(), v.clone()));
        self.details["theta_val"] = json!({
            "checkpoint": format!("theta-val/checkpoint-{}", t.epochs),
            "lr": t.lr, "batch_size": t.batch_size, "epochs": t.epochs, "schedule": t.schedule,
            "examples": val.len(),
        });
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
    cx: &Context<'_>,
    pool: &Dataset,
    band: Band,
    method: Method,
    inputs: &Inputs<'_>,
) -> Result<Scored> {
    let theta = reference_checkpoint(cx.loaded, inputs.checkpoint)?;
    let details = json!({ "checkpoint": theta.label(), "beta": inputs.beta });
    let (pairs, _) = cx.loaded.tokenizer.examples(&pool.examples, cx.opts.max_len)?;
    let mut family = Family { cx, pool, inputs, theta, pairs, at_theta: Vec::new(), columns: Vec::new(), details };
    family.at_theta = family.stats(&family.theta.adapter)?;
    let irm: Vec<f64> = family.at_theta.iter().map(|s| s.margin).collect();
    family.columns.push(("irm".into(), irm.clone()));
    let need_val = || inputs.validation.ok_or(Error::MissingTarget { method: method.name() });
    let (scores, kept, score_name) = match band {
        Band::Tif(b) => {
            let v = family.influence(need_val()?)?;
            let kept = family.band("tif", &v, b);
            (v, kept, "if")
        }
        Band::Irm(b) => {
            let kept = family.band("irm", &irm, b);
            (irm, kept, "irm")
        }
        Band::Lossdiff(b) => {
            let v = family.lossdiff(need_val()?)?;
            let kept = family.band("lossdiff", &v, b);
            (v, kept, "lossdiff")
        }
        Band::Fusion { lossdiff, irm: irm_band, tif: tif_band } => {
            let val = need_val()?;
            let ld = family.lossdiff(val)?;
            let by_lossdiff = family.band("lossdiff", &ld, lossdiff);
            let by_irm = family.band("irm", &irm, irm_band);
            let fused = tif::intersect(&by_lossdiff, &by_irm);
            family.details["fusion"] = json!({
                "retained": fused.len(), "retained_fraction": fused.len() as f64 / pool.len() as f64,
            });
            // IF only on request: it is the report's overlap with TIF, not part of the fusion.
            if inputs.with_if {
                let influence = family.influence(val)?;
                let tif_kept = family.band("tif", &influence, tif_band);
                let (jaccard, share) = tif::overlap(&fused, &tif_kept);
                family.details["fusion"]["overlap_with_tif"] =
                    json!({ "jaccard": jaccard, "share_of_fusion_in_tif": share });
            }
            (irm, fused, "irm")
        }
    };
    let (lo, hi) = scores.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| (a.min(x), b.max(x)));
    if lo == hi {
        return Err(Error::NoSpread { method: method.name(), value: lo });
    }
    let mut details = family.details;
    details["score"] = json!(score_name);
    details["selection"] = json!("a band: the budget does not apply; selected.json lists the kept pairs in pool order");
    Ok(Scored { scores, columns: family.columns, chosen: Chosen::List(kept), details })
}
