//! The output head on Burn's CPU backend through our kernel (`gradsift-cpu-kernels`'s `head`)
//! instead of tensor operations: one pass over the vocabulary a tile of rows at a time, where
//! the tensor operations took a dozen passes over every block of `[rows, V]` logits (on
//! SmolLM2-135M's shape at 2,048 tokens, 2.1 s of an 11 s gradient pass; docs/performance.md).
//! Checked against the definition in f64 in its crate and, through [`super::head::head_pass`]
//! on the CPU (the head whole: this kernel; in parts: the tensor operations), in
//! `tests/suite/head.rs`. A head in parts, in 16 bits or on another device, and the browser
//! build (no such module), keep the tensor operations.

use burn::prelude::*;

use gradsift_cpu_kernels::head::HeadPass;

use crate::host;
use crate::model::OutputHead;

/// Vocabulary entries whose columns of the head are copied to the host at a time: 2.25 MiB of
/// SmolLM2-135M's head (576 wide), 16 MiB of Llama-3-8B's (4,096 wide), never the whole head.
const CHUNK: usize = 1024;

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
    let h = host::floats(hidden.clone());
    let mut pass = HeadPass::new(&h, targets, dim, out.softcap.map(|c| c as f32), with_grad);
    for first in (0..vocab).step_by(CHUNK) {
        let c = CHUNK.min(vocab - first);
        let w = host::floats(weight.clone().narrow(1, first, c));
        let bias = out.bias.as_ref().map(|b| host::floats(b.clone().narrow(0, first, c)));
        pass.chunk(first, &w, bias.as_deref());
    }
    Some(pass.finish())
}
