//! The output head on Burn's CPU backend through our kernel (`gradsift-cpu-kernels`'s `head`)
//! instead of tensor operations: one pass over the vocabulary a tile of rows at a time, where
//! the tensor operations took a dozen passes over every block of `[rows, V]` logits (on
//! SmolLM2-135M's shape at 2,048 tokens, 2.1 s of an 11 s gradient pass; docs/performance.md).
//! Checked against the definition in f64 in its crate and, through [`super::head::head_pass`]
//! on the CPU (the head whole: this kernel; in parts: the tensor operations), in
//! `tests/suite/head.rs`. A head in 16 bits is widened a chunk at a time, and multiplies the
//! hidden states rounded to its type, as every 16-bit product does ([`crate::model::half`]); its
//! logits stay f32 (the tensor operations round them to 16 bits, as the backend's 16-bit
//! product does, and hold several `[rows, V]` copies of them: 0.2 GB more at Qwen2.5-0.5B's
//! shape, docs/performance.md). A head in parts or on another device, and the browser build (no
//! such module), keep the tensor operations.

use burn::prelude::*;
use burn::tensor::{DType, FloatDType};

use gradsift_cpu_kernels::head::HeadPass;

use crate::host;
use crate::model::{half, OutputHead};

/// Vocabulary entries whose columns of the head are copied to the host at a time: 2.25 MiB of
/// SmolLM2-135M's head (576 wide), 16 MiB of Llama-3-8B's (4,096 wide), never the whole head.
const CHUNK: usize = 1024;

/// log p(target) of each row of `hidden` `[n, H]` and, with `with_grad`, its gradient `[n, H]`
/// row-major; `None` unless the rows are f32 values on the CPU backend and the head is whole
/// there (f32 or 16 bits).
pub(super) fn log_probs(
    out: &OutputHead,
    hidden: &Tensor<2>,
    targets: &[usize],
    with_grad: bool,
) -> Option<(Vec<f32>, Option<Vec<f32>>)> {
    let weight = out.weight.as_whole()?;
    let usable =
        host::is_cpu(&weight.device()) && host::on_cpu_f32(hidden) && out.bias.as_ref().is_none_or(host::on_cpu_f32);
    if !usable {
        return None;
    }
    let [dim, vocab] = weight.dims();
    let h = match weight.dtype() {
        DType::F32 => host::floats(hidden.clone()),
        narrow => host::floats(hidden.clone().cast(narrow).cast(FloatDType::F32)),
    };
    let mut pass = HeadPass::new(&h, targets, dim, out.softcap.map(|c| c as f32), with_grad);
    for first in (0..vocab).step_by(CHUNK) {
        let c = CHUNK.min(vocab - first);
        let w = host::floats(half::widen(weight.clone().narrow(1, first, c)));
        let bias = out.bias.as_ref().map(|b| host::floats(b.clone().narrow(0, first, c)));
        pass.chunk(first, &w, bias.as_deref());
    }
    Some(pass.finish())
}
