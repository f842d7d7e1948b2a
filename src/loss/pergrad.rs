//! Exact per-example gradients of the LoRA weights, for a whole batch in ONE backward pass.
//!
//! Why it works: every example gets its own copy of each LoRA matrix, `A: [E, in, r]`,
//! `B: [E, r, out]`, as gradient leaves; sequence s uses copy `owner[s]`. The loss we
//! differentiate is the SUM of per-example losses, and example e's loss depends only on copy e,
//! so `∂(Σ L)/∂A_e = ∂L_e/∂A`: the per-example gradient, exact, with no per-example loop.
//! A DPO pair's chosen and rejected sequences share their pair's copy. The memory cost is
//! E × |θ_LoRA| extra, small next to activations.

use burn::prelude::*;

use super::batch::SeqBatch;
use super::head::head_pass_async;
use crate::blocking::block_on;
use crate::data::{RecordKind, Sequence, Tokenized};
use crate::error::{Error, Result};
use crate::model::{Backprop, Branch, CausalLm, LoraAdapter, LoraRuntime};

/// Which loss a gradient is taken of.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum LossKind {
    /// Token-mean SFT loss over response tokens (HF causal-LM loss).
    Sft,
    /// Summed sequence loss −log p(y|x).
    SftSum,
    /// DPO loss of a preference pair, against the reference policy of [`Objective`].
    Dpo { beta: f64 },
}

impl LossKind {
    /// Short name used in manifests and on the command line.
    pub fn name(&self) -> &'static str {
        match self {
            LossKind::Sft => "sft",
            LossKind::SftSum => "sft-sum",
            LossKind::Dpo { .. } => "dpo",
        }
    }

    /// The records it is defined on.
    pub fn records(&self) -> RecordKind {
        match self {
            LossKind::Sft | LossKind::SftSum => RecordKind::Instructions,
            LossKind::Dpo { .. } => RecordKind::Preferences,
        }
    }
}

/// A loss with the policy it is measured against. DPO compares the policy with a reference
/// policy π_ref: the base model without adapter (TRL's reference when the policy is a PEFT
/// adapter and no other is named), or the base model with another adapter, the SFT policy a DPO
/// run starts from (TRL's `ref_model`, or its `ref_adapter_name`). The SFT losses have none.
#[derive(Clone, Copy)]
pub struct Objective<'a> {
    pub loss: LossKind,
    /// π_ref's adapter; None = the base model.
    pub reference: Option<&'a LoraAdapter>,
}

impl From<LossKind> for Objective<'_> {
    /// The loss against the base model.
    fn from(loss: LossKind) -> Self {
        Objective { loss, reference: None }
    }
}

/// Per-example results of one batch.
pub struct BatchGrads {
    /// `[E, |θ|]` gradients in the adapter's [`LoraAdapter::layout`] order (no autodiff).
    pub grads: Tensor<2>,
    /// Per-example loss values.
    pub losses: Vec<f64>,
}

/// The sequences of a batch and, for each, the example that owns it.
fn flatten(examples: &[Tokenized], loss: LossKind) -> Result<(Vec<&Sequence>, Vec<usize>)> {
    let mut seqs = Vec::new();
    let mut owner = Vec::new();
    match loss {
        LossKind::Dpo { .. } => {
            // chosen of every pair first, then rejected: halves of the batch line up.
            for (i, ex) in examples.iter().enumerate() {
                let Tokenized::Pair(p) = ex else {
                    return Err(Error::Records {
                        user: "the DPO loss".into(),
                        needs: RecordKind::Preferences.describe(),
                    });
                };
                seqs.push(&p.chosen);
                owner.push(i);
            }
            for ex in examples {
                if let Tokenized::Pair(p) = ex {
                    seqs.push(&p.rejected);
                }
            }
            owner.extend(0..examples.len());
        }
        _ => {
            for (i, ex) in examples.iter().enumerate() {
                let Tokenized::Single(s) = ex else {
                    return Err(Error::Records {
                        user: format!("the {} loss", loss.name()),
                        needs: RecordKind::Instructions.describe(),
                    });
                };
                seqs.push(s);
                owner.push(i);
            }
        }
    }
    Ok((seqs, owner))
}

/// Summed response log-probs of `seqs` under the model (with `adapter`, or the base model).
pub(crate) fn sequence_logps(
    model: &CausalLm,
    adapter: Option<&LoraAdapter>,
    seqs: &[&Sequence],
    device: &Device,
) -> Result<Vec<f64>> {
    block_on(sequence_logps_async(model, adapter, seqs, device))
}

/// [`sequence_logps`] for callers that can await.
async fn sequence_logps_async(
    model: &CausalLm,
    adapter: Option<&LoraAdapter>,
    seqs: &[&Sequence],
    device: &Device,
) -> Result<Vec<f64>> {
    let batch = SeqBatch::new(seqs, device);
    // A forward pass takes attention a block of queries at a time, as the layerwise backward does.
    check_binding(model, seqs.len(), batch.ids.dims()[1], true, device)?;
    let lora = adapter.map(|a| a.runtime(model.linears.len(), seqs.len(), device));
    let h = model.hidden(batch.ids.clone(), &batch.lengths, lora.as_ref());
    Ok(head_pass_async(model.head(), h, &batch, false).await.logps)
}

/// Refuses, before the pass, a batch of `rows` sequences of `t` positions whose largest
/// activation (see [`CausalLm::largest_activation`]) the GPU cannot bind, naming what fixes it.
fn check_binding(model: &CausalLm, rows: usize, t: usize, layerwise: bool, device: &Device) -> Result<()> {
    let Some(limit) = crate::device::binding_limit(device) else { return Ok(()) };
    let largest = model.largest_activation(rows, t, layerwise);
    if largest <= limit {
        return Ok(());
    }
    let mib = |bytes: usize| bytes as f64 / (1 << 20) as f64;
    let fix = match layerwise || model.largest_activation(rows, t, true) > limit {
        true => "lower --batch-size or --max-len",
        false => "choose --backprop layerwise (attention a block at a time)",
    };
    Err(Error::AdapterLimit(format!(
        "a batch of {rows} sequences of {t} positions makes a {:.2} MiB activation, past the {:.2} MiB this GPU \
         binds: {fix}",
        mib(largest),
        mib(limit)
    )))
}

/// −log σ(z) = log(1 + e^{−z}), computed stably.
fn neg_log_sigmoid(z: f64) -> f64 {
    if z > 0.0 {
        (-z).exp().ln_1p()
    } else {
        -z + z.exp().ln_1p()
    }
}

/// The loss of each example and its slope ∂L/∂logp for each sequence, from the sequences'
/// response log-probs (`reference`: π_ref's, for DPO).
fn loss_and_slopes(loss: LossKind, logps: &[f64], counts: &[usize], reference: Option<&[f64]>) -> (Vec<f64>, Vec<f64>) {
    match loss {
        LossKind::Sft => {
            let slopes: Vec<f64> = counts.iter().map(|&c| -1.0 / c.max(1) as f64).collect();
            (logps.iter().zip(&slopes).map(|(lp, k)| lp * k).collect(), slopes)
        }
        LossKind::SftSum => (logps.iter().map(|lp| -lp).collect(), vec![-1.0; logps.len()]),
        LossKind::Dpo { beta } => {
            // L = −log σ(z), z = β((πc − πr) − (rc − rr)); ∂L/∂z = σ(z) − 1.
            let reference = reference.expect("DPO needs the reference log-probs");
            let e = logps.len() / 2;
            let mut slopes = vec![0f64; 2 * e];
            let losses = (0..e)
                .map(|i| {
                    let z = beta * ((logps[i] - logps[e + i]) - (reference[i] - reference[e + i]));
                    let dz = 1.0 / (1.0 + (-z).exp()) - 1.0;
                    slopes[i] = beta * dz;
                    slopes[e + i] = -beta * dz;
                    neg_log_sigmoid(z)
                })
                .collect();
            (losses, slopes)
        }
    }
}

/// Computes the per-example gradients of `loss` for every example of `examples` at once.
/// `device` must have autodiff enabled and be the model's device.
pub fn per_example_grads<'a>(
    model: &CausalLm,
    adapter: &LoraAdapter,
    examples: &[Tokenized],
    objective: impl Into<Objective<'a>>,
    device: &Device,
) -> Result<BatchGrads> {
    block_on(per_example_grads_async(model, adapter, examples, objective, device))
}

/// [`per_example_grads`] for callers that can await (the browser page).
pub(crate) async fn per_example_grads_async<'a>(
    model: &CausalLm,
    adapter: &LoraAdapter,
    examples: &[Tokenized],
    objective: impl Into<Objective<'a>>,
    device: &Device,
) -> Result<BatchGrads> {
    let Objective { loss, reference } = objective.into();
    let e = examples.len();
    let (seqs, owner) = flatten(examples, loss)?;
    let batch = SeqBatch::new(&seqs, device);

    let reference = match loss {
        LossKind::Dpo { .. } => Some(sequence_logps_async(model, reference, &seqs, device).await?),
        _ => None,
    };

    let owner_t: Tensor<1, Int> =
        Tensor::from_data(TensorData::new(owner.iter().map(|&o| o as i64).collect::<Vec<_>>(), [owner.len()]), device);
    let identity = owner.len() == e;
    // Per module, A's copies `[E, in, r]` then B's `[E, r, out]`.
    let mut leaves = Vec::with_capacity(2 * adapter.modules.len());
    for m in &adapter.modules {
        let (a, b) = adapter.module_tensors(m, device);
        let (d_in, d_out, r) = (m.a.shape[1], m.b.shape[0], m.rank);
        leaves.push(a.reshape([1, d_in, r]).repeat_dim(0, e).detach().require_grad());
        leaves.push(b.reshape([1, r, d_out]).repeat_dim(0, e).detach().require_grad());
    }
    // The branches: sequence s reads its owner's copies.
    let mut branches: Vec<Option<Branch>> = (0..model.linears.len()).map(|_| None).collect();
    for (m, ab) in adapter.modules.iter().zip(leaves.chunks_exact(2)) {
        let per_seq = |leaf: &Tensor<3>| match identity {
            true => leaf.clone(),
            false => leaf.clone().select(0, owner_t.clone()),
        };
        branches[m.linear] = Some(Branch { a: per_seq(&ab[0]), b: per_seq(&ab[1]), scale: m.scale });
    }
    let lora = LoraRuntime::new(branches);
    let t = batch.ids.dims()[1];
    let backprop = model.backprop.resolve(model, adapter, seqs.len(), t, device);
    check_binding(model, seqs.len(), t, backprop != Backprop::Whole, device)?;
    let (h, kept) = match backprop {
        Backprop::Whole => (model.hidden(batch.ids.clone(), &batch.lengths, Some(&lora)), None),
        _ => {
            let recompute = backprop == Backprop::Layerwise;
            let (h, kept) = model.forward_kept(batch.ids.clone(), &batch.lengths, &lora, recompute);
            (h, Some(kept))
        }
    };
    let pass = head_pass_async(model.head(), h.clone(), &batch, true).await;
    let (losses, slopes) = loss_and_slopes(loss, &pass.logps, &batch.counts, reference.as_deref());
    // ∂(Σ L)/∂h = Σ_s slope_s · ∂logp_s/∂h; backpropagating Σ h ⊙ that from h gives the
    // leaves' gradients autodiff would give through the head.
    let mut seed = pass.grad.expect("asked for");
    let [_, t, d] = h.dims();
    for (row, g) in seed.chunks_exact_mut(d).enumerate() {
        let k = slopes[row / t] as f32;
        g.iter_mut().for_each(|x| *x *= k);
    }
    let seed = Tensor::<3>::from_data(TensorData::new(seed, h.dims()), device);
    let leaf_grads = match kept {
        Some(kept) => model.backward_kept(kept, seed, &lora, &leaves),
        None => {
            let mut grads = (h * seed).sum().backward();
            leaves.iter().map(|leaf| leaf.grad_remove(&mut grads)).collect()
        }
    };

    let mut parts = Vec::with_capacity(leaves.len());
    let mut leaf_grads = leaf_grads.into_iter();
    for m in &adapter.modules {
        let (d_in, d_out, r) = (m.a.shape[1], m.b.shape[0], m.rank);
        let mut next = |dims: [usize; 3]| {
            let g = leaf_grads.next().expect("two leaves per module");
            g.unwrap_or_else(|| Tensor::zeros(dims, &device.clone().without_autodiff()))
        };
        let (ga, gb) = (next([e, d_in, r]), next([e, r, d_out]));
        // PEFT layouts: A [r, in], B [out, r], row-major.
        parts.push(ga.swap_dims(1, 2).reshape([e, r * d_in]));
        parts.push(gb.swap_dims(1, 2).reshape([e, d_out * r]));
    }
    Ok(BatchGrads { grads: Tensor::cat(parts, 1), losses })
}

/// Log-probabilities and DPO quantities of one preference pair.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DpoStats {
    pub policy_chosen: f64,
    pub policy_rejected: f64,
    pub ref_chosen: f64,
    pub ref_rejected: f64,
    /// Implicit reward margin β·((πc − πr) − (rc − rr)).
    pub margin: f64,
    /// −log σ(margin).
    pub loss: f64,
}

/// DPO statistics of every pair (forward passes only): policy = model + `adapter`, reference =
/// model + `reference` (None: the base model, as [`Objective`] says).
pub fn dpo_stats(
    model: &CausalLm,
    adapter: &LoraAdapter,
    reference: Option<&LoraAdapter>,
    pairs: &[Tokenized],
    beta: f64,
    device: &Device,
) -> Result<Vec<DpoStats>> {
    let (seqs, _) = flatten(pairs, LossKind::Dpo { beta })?;
    let e = pairs.len();
    let policy = sequence_logps(model, Some(adapter), &seqs, device)?;
    let reference = sequence_logps(model, reference, &seqs, device)?;
    Ok((0..e)
        .map(|i| {
            let margin = beta * ((policy[i] - policy[e + i]) - (reference[i] - reference[e + i]));
            DpoStats {
                policy_chosen: policy[i],
                policy_rejected: policy[e + i],
                ref_chosen: reference[i],
                ref_rejected: reference[e + i],
                margin,
                loss: neg_log_sigmoid(margin),
            }
        })
        .collect())
}

/// Token-mean SFT loss of every instruction example (forward passes only, `batch` at a time).
pub fn sft_losses(
    model: &CausalLm,
    adapter: Option<&LoraAdapter>,
    examples: &[Tokenized],
    batch: usize,
    device: &Device,
) -> Result<Vec<f64>> {
    let (seqs, _) = flatten(examples, LossKind::Sft)?;
    let mut out = Vec::with_capacity(seqs.len());
    for chunk in seqs.chunks(batch.max(1)) {
        let logps = sequence_logps(model, adapter, chunk, device)?;
        for (lp, s) in logps.iter().zip(chunk) {
            out.push(-lp / s.mask.iter().skip(1).filter(|&&m| m == 1).count().max(1) as f64);
        }
    }
    Ok(out)
}
