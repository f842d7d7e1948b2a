//! The output head on Burn's CPU backend through our kernel (`gradsift-cpu-kernels`'s `head`)
//! instead of tensor operations: one pass over the vocabulary a tile of rows at a time, where
//! the tensor operations took a dozen passes over every block of `[rows, V]` logits (on
//! SmolLM2-135M's shape at 2,048 tokens, 2.1 s of an 11 s gradient pass; docs/performance.md).
//! Checked against the definition in f64 in its crate and, through [`super::head::head_pass`]
//! on the CPU (the head whole: this kernel; in parts: the tensor operations), in
//! `tests/suite/head.rs`. A head in parts, in 16 bits or on another device, and the browser
//! build (no such module), keep the tensor operations.

use burn::prelude::*;

use crate::host;
use crate::model::OutputHead;

/// log p(target) of each row of `hidden` `[n, H]` and, with `with_grad`, its gradient `[n, H]`
/// row-major; `None` when the head or the rows are not f32 values on the CPU backend, the head
/// whole.
pub(super) fn log_probs(
    out: &OutputHead,
    hidden: &Tensor<2>,
    targets: &[usize],
    with_grad: bool,
) -> Option<(Vec<f32>, Option<Vec<f32>>)> {
    let weight = out.weight.as_whole()?;
    let usable = host::on_cpu_f32(weight) && host::on_cpu_f32(hidden) && out.bias.as_ref().is_none_or(host::on_cpu_f32);
    if !usable {
        return None;
    }
    let [dim, vocab] = weight.dims();
    let (w, h) = (host::floats(weight.clone()), host::floats(hidden.clone()));
    let bias = out.bias.clone().map(host::floats);
    let head = gradsift_cpu_kernels::head::Head {
        weight: &w,
        bias: bias.as_deref(),
        softcap: out.softcap.map(|c| c as f32),
        dim,
        vocab,
    };
    let mut logp = vec![0f32; targets.len()];
    let mut grad = with_grad.then(|| vec![0f32; targets.len() * dim]);
    gradsift_cpu_kernels::head::log_probs(&head, &h, targets, &mut logp, grad.as_deref_mut());
    Some((logp, grad))
}
