//! The output head and the token log-softmax, a block of rows at a time, with their backward
//! written out. Why: differentiating through `[S, T, V]` logits keeps several of them alive
//! for the backward pass (logits, log-softmax, their gradients: at SmolLM2's 49k vocabulary,
//! 38 MB per copy per 192-token example), and computes them for prompt and padding positions
//! whose weight is 0. Here only response positions reach the head, at most `BLOCK` logits
//! exist at once, and nothing of them outlives its block.
//!
//! For a response position with hidden state h, head W `[H, V]` and bias b, logits
//! z = s(h·W + b) (s the optional soft cap c·tanh(·/c)), target y and p = softmax(z):
//!   log p(y) = z_y − logsumexp(z),   ∂log p(y)/∂h = (s′ ⊙ (e_y − p))·Wᵀ = s′_y·W[:, y] − (s′ ⊙ p)·Wᵀ.
//! The caller turns these per-position gradients into the loss's gradient by the chain rule
//! through the per-sequence sums and backpropagates them into the network with one
//! `Σ h ⊙ g` (see the `pergrad` module): the same gradient autodiff would give, exactly.

use burn::prelude::*;
use burn::tensor::activation;

use super::batch::SeqBatch;
use crate::blocking::block_on;
use crate::model::OutputHead;

/// Most logits one block holds (32 MiB of f32), fewer where the device binds less.
const BLOCK: usize = 1 << 23;

/// What one pass through the head computed.
pub struct HeadPass {
    /// Σ over response positions of log p(target), per sequence.
    pub logps: Vec<f64>,
    /// `[S·T, H]` row-major: ∂logps[s]/∂h at each position of sequence s (0 off the response),
    /// when asked for.
    pub grad: Option<Vec<f32>>,
}

/// Response log-probabilities of a batch from its final hidden states `h: [S, T, H]` (used
/// detached) and, with `with_grad`, their gradients with respect to `h`.
pub fn head_pass(head: &OutputHead, h: Tensor<3>, batch: &SeqBatch, with_grad: bool) -> HeadPass {
    block_on(head_pass_async(head, h, batch, with_grad))
}

/// [`head_pass`] for callers that can await (the browser page): each block's values are
/// read back as they are needed.
pub(crate) async fn head_pass_async(out: &OutputHead, h: Tensor<3>, batch: &SeqBatch, with_grad: bool) -> HeadPass {
    let [s, t, d] = h.dims();
    let out = out.without_autodiff();
    let head = out.weight.clone();
    let v = head.dims()[1];
    let device = h.device().without_autodiff();
    let rows: Vec<usize> = (0..s * t).filter(|&r| batch.row_weights[r] != 0.0).collect();
    let mut logps = vec![0f64; s];
    let mut grad = with_grad.then(|| vec![0f32; s * t * d]);
    if rows.is_empty() {
        return HeadPass { logps, grad };
    }
    let index = |r: &[usize]| {
        Tensor::<1, Int>::from_data(TensorData::new(r.iter().map(|&x| x as i64).collect(), [r.len()]), &device)
    };
    let hidden = h.without_autodiff().reshape([s * t, d]).select(0, index(&rows));
    #[cfg(not(target_family = "wasm"))]
    if let Some((logp, g)) = super::flex_head::log_probs(&out, &hidden, &targets(batch, &rows), with_grad) {
        for (i, &r) in rows.iter().enumerate() {
            let w = batch.row_weights[r];
            logps[r / t] += w as f64 * logp[i] as f64;
            if let (Some(grad), Some(g)) = (grad.as_mut(), g.as_ref()) {
                grad[r * d..(r + 1) * d].iter_mut().zip(&g[i * d..(i + 1) * d]).for_each(|(o, &x)| *o = w * x);
            }
        }
        return HeadPass { logps, grad };
    }
    let head_t = with_grad.then(|| head.transpose());
    let most = crate::device::binding_limit(&device).map_or(BLOCK, |bytes| BLOCK.min(bytes / 4));
    let step = (most / v).clamp(1, rows.len());
    for (b, block) in rows.chunks(step).enumerate() {
        let n = block.len();
        let targets: Vec<i64> = block.iter().map(|&r| batch.row_targets[r] as i64).collect();
        let y = Tensor::<1, Int>::from_data(TensorData::new(targets, [n]), &device);
        let raw = out.raw(hidden.clone().narrow(0, b * step, n));
        // s′ = sech²(raw/c) = 4a/(1 + a)² with a = e^{−2|raw/c|}: no cancellation where tanh
        // saturates (1 − tanh² loses every digit there in f32).
        let (z, slope) = match out.softcap {
            Some(c) => {
                let u = raw.div_scalar(c);
                let a = u.clone().abs().mul_scalar(-2.0).exp();
                let slope = with_grad.then(|| {
                    let d = a.clone().add_scalar(1.0);
                    a.clone().mul_scalar(4.0) / (d.clone() * d)
                });
                (activation::tanh(u).mul_scalar(c), slope)
            }
            None => (raw, None),
        };
        let shifted = z.clone() - z.clone().max_dim(1);
        let exp = shifted.clone().exp();
        let total = exp.clone().sum_dim(1);
        let logp = shifted.gather(1, y.clone().reshape([n, 1])) - total.clone().log();
        for (&r, lp) in block.iter().zip(read(logp).await.iter::<f32>()) {
            logps[r / t] += batch.row_weights[r] as f64 * lp as f64;
        }
        let (Some(grad), Some(head_t)) = (grad.as_mut(), head_t.as_ref()) else { continue };
        let p = exp / total;
        let (p, slope_y) = match slope {
            Some(slope) => {
                let slope_y = slope.clone().gather(1, y.clone().reshape([n, 1]));
                (p * slope, Some(slope_y))
            }
            None => (p, None),
        };
        // W[:, y] scaled by s′_y, [H, n], then transposed: Burn's wgpu backend (0.22.1)
        // multiplies a transposed [n, H] view by an [n, 1] column wrongly (tests/suite/head.rs).
        let w_y = head.select(1, y);
        let w_y = match slope_y {
            Some(sy) => w_y * sy.reshape([1, n]),
            None => w_y,
        }
        .transpose();
        let g = w_y - head_t.matmul(p);
        for (&r, row) in block.iter().zip(read(g).await.iter::<f32>().collect::<Vec<_>>().chunks_exact(d)) {
            let w = batch.row_weights[r];
            grad[r * d..(r + 1) * d].iter_mut().zip(row).for_each(|(o, &x)| *o = w * x);
        }
    }
    HeadPass { logps, grad }
}

/// The target token of each of `rows`.
#[cfg(not(target_family = "wasm"))]
fn targets(batch: &SeqBatch, rows: &[usize]) -> Vec<usize> {
    rows.iter().map(|&r| batch.row_targets[r] as usize).collect()
}

/// A block's values on the host. A failed read is as fatal here as in Burn's own
/// `into_data`: the device is gone.
async fn read(t: Tensor<2>) -> TensorData {
    t.into_data_async().await.expect("reading a tensor back from the device")
}
