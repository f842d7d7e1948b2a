//! The TIF family: influence, LossDiff, IRM and their fusion, each a percentile band.

use serde_json::json;

use super::{featurize_with, method_name, Chosen, Loaded, Scored, SelectSpec};
use super::{reference_checkpoint, Method};
use crate::data::Dataset;
use crate::device::Compute;
use crate::error::{Error, Result};
use crate::features::{self, LossKind, Transform};
use crate::methods::tif;
use crate::model::LoraAdapter;
use crate::train::{self, WarmupOptions};

/// TIF, LossDiff, IRM and their fusion over a preference pool. The selection is a band, so the
/// budget does not apply.
pub(super) fn tif_family(
    loaded: &Loaded,
    spec: &SelectSpec<'_>,
    pool: &Dataset,
    val: Option<&Dataset>,
    compute: &Compute,
) -> Result<Scored> {
    let (theta, theta_key, checkpoint) =
        reference_checkpoint(loaded, spec, "the TIF family takes one DPO warmup checkpoint")?;
    let t = &spec.tif;
    let (pairs, _) = loaded.tokenizer.examples(&pool.examples, spec.opts.max_len)?;
    let stats = |adapter: &LoraAdapter| -> Result<Vec<features::DpoStats>> {
        let mut out = Vec::with_capacity(pairs.len());
        for chunk in pairs.chunks(spec.opts.batch_size.max(1)) {
            out.extend(features::dpo_stats(&loaded.model, adapter, chunk, spec.beta, &compute.device)?);
        }
        Ok(out)
    };
    let at_theta = stats(&theta)?;
    let irm: Vec<f64> = at_theta.iter().map(|s| s.margin).collect();
    let mut columns = vec![("irm".to_string(), irm.clone())];
    let mut details = json!({ "checkpoint": checkpoint, "beta": spec.beta });

    let want_if = matches!(spec.method, Method::Tif | Method::Fusion);
    let want_lossdiff = matches!(spec.method, Method::Lossdiff | Method::Fusion);
    let influence = if want_if {
        let val = val.expect("validation set checked");
        let dir = spec.out.join("features/tif");
        let loss = LossKind::Dpo { beta: spec.beta };
        let pf = featurize_with(
            loaded,
            &theta,
            &theta_key,
            pool,
            loss,
            &Transform::Sgd,
            spec.opts,
            compute,
            &dir.join("pool"),
        )?;
        let vf = featurize_with(
            loaded,
            &theta,
            &theta_key,
            val,
            loss,
            &Transform::Sgd,
            spec.opts,
            compute,
            &dir.join("validation"),
        )?;
        let v = tif::influence(&pf, &vf.load()?)?;
        columns.push(("if".into(), v.clone()));
        Some(v)
    } else {
        None
    };
    let lossdiff = if want_lossdiff {
        let val = val.expect("validation set checked");
        let opts = WarmupOptions {
            fraction: 1.0,
            epochs: 1,
            lr: t.val_lr,
            batch_size: spec.opts.batch_size,
            warmup_ratio: 0.0,
            adamw: Default::default(),
            loss: LossKind::Dpo { beta: spec.beta },
            seed: spec.opts.seed,
            max_len: spec.opts.max_len,
            verbose: spec.opts.verbose,
        };
        let dirs = train::warmup(
            &loaded.model,
            theta.clone(),
            &loaded.tokenizer,
            val,
            &opts,
            compute,
            &spec.out.join("theta-val"),
        )?;
        let theta_val = LoraAdapter::load(&dirs[0], &loaded.model.linears)?;
        let at_val = stats(&theta_val)?;
        let v: Vec<f64> = at_theta.iter().zip(&at_val).map(|(a, b)| a.loss - b.loss).collect();
        columns.push(("lossdiff".into(), v.clone()));
        details["theta_val"] = json!({ "checkpoint": "theta-val/checkpoint-1", "lr": t.val_lr, "epochs": 1 });
        Some(v)
    } else {
        None
    };
    let n = pool.len() as f64;
    let report = |kept: &[usize], lo: f64, hi: f64, a: f64, b: f64| json!({ "band_percentiles": [lo, hi], "thresholds": [a, b], "retained": kept.len(), "retained_fraction": kept.len() as f64 / n });
    let tif_kept = influence.as_ref().map(|v| {
        let (k, a, b) = tif::band(v, t.band.0, t.band.1);
        details["tif"] = report(&k, t.band.0, t.band.1, a, b);
        k
    });
    let (scores, kept) = match spec.method {
        Method::Tif => (influence.expect("computed"), tif_kept.clone().expect("computed")),
        Method::Irm => {
            let (k, a, b) = tif::band(&irm, t.irm_band.0, t.irm_band.1);
            details["irm"] = report(&k, t.irm_band.0, t.irm_band.1, a, b);
            (irm, k)
        }
        Method::Lossdiff => {
            let v = lossdiff.expect("computed");
            let (k, a, b) = tif::band(&v, t.lossdiff_band.0, t.lossdiff_band.1);
            details["lossdiff"] = report(&k, t.lossdiff_band.0, t.lossdiff_band.1, a, b);
            (v, k)
        }
        _ => {
            let v = lossdiff.expect("computed");
            let (kl, a, b) = tif::band(&v, t.lossdiff_band.0, t.lossdiff_band.1);
            details["lossdiff"] = report(&kl, t.lossdiff_band.0, t.lossdiff_band.1, a, b);
            let (ki, a, b) = tif::band(&irm, t.irm_band.0, t.irm_band.1);
            details["irm"] = report(&ki, t.irm_band.0, t.irm_band.1, a, b);
            let fused = tif::intersect(&kl, &ki);
            details["fusion"] = json!({ "retained": fused.len(), "retained_fraction": fused.len() as f64 / n });
            if let Some(tk) = &tif_kept {
                let (jaccard, share) = tif::overlap(&fused, tk);
                details["fusion"]["overlap_with_tif"] = json!({ "jaccard": jaccard, "share_of_fusion_in_tif": share });
            }
            (irm, fused)
        }
    };
    let (lo, hi) = scores.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| (a.min(x), b.max(x)));
    if lo == hi {
        return Err(Error::Invalid(format!(
            "--method {}: every pair has the same score ({lo}), so no band can be formed; the adapter \
             likely still equals the reference model: run `gradsift warmup --loss dpo` and pass its checkpoint \
             with --checkpoints",
            method_name(spec.method)
        )));
    }
    details["score"] = json!(match spec.method {
        Method::Tif => "if",
        Method::Lossdiff => "lossdiff",
        _ => "irm",
    });
    details["selection"] =
        json!("a band: --fraction/--count do not apply; selected.json lists the kept pairs in pool order");
    Ok((scores, columns, Chosen::List(kept), details))
}
