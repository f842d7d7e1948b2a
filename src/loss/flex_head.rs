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

use burn::backend::flex::FlexTensor;
use gradsift_cpu_kernels::head::{Chunk, HeadPass};

use crate::host;
use crate::model::{half, OutputHead};

/// Vocabulary entries the kernel takes at a time. An f32 head is read where it lies; a 16-bit
/// head is widened, and a head of another layout gathered, this many columns at a time (2.25
/// MiB of SmolLM2-135M's head, 576 wide; 16 MiB of Llama-3-8B's, 4,096 wide), never whole.
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
    let stored = host::stored(weight);
    let layout = stored.as_ref().and_then(|t| layout(t, dim, vocab));
    for first in (0..vocab).step_by(CHUNK) {
        let c = CHUNK.min(vocab - first);
        let bias = out.bias.as_ref().map(|b| host::floats(b.clone().narrow(0, first, c)));
        let gathered;
        let w = match layout {
            Some(Layout::Rows(w)) => Chunk::rows(&w[first * dim..(first + c) * dim], dim),
            Some(Layout::Columns(w)) => Chunk::columns_of(w, dim, vocab, first, c),
            None => {
                gathered = host::floats(half::widen(weight.clone().narrow(1, first, c)));
                Chunk::columns(&gathered, dim)
            }
        };
        pass.chunk(first, w, bias.as_deref());
    }
    Some(pass.finish())
}

/// How an f32 head `[dim, vocab]` lies in its storage, where the kernel reads a chunk in
/// place instead of gathering its columns.
#[derive(Clone, Copy)]
enum Layout<'a> {
    /// The transpose of `[vocab, dim]` row-major (a tied head: the embedding, transposed as a
    /// view): each entry's weights are a row.
    Rows(&'a [f32]),
    /// `[dim, vocab]` row-major.
    Columns(&'a [f32]),
}

/// `t`'s layout when it is one of [`Layout`]'s; None for any other (a chunk is then gathered).
fn layout(t: &FlexTensor, dim: usize, vocab: usize) -> Option<Layout<'_>> {
    let l = t.layout();
    let start = l.start_offset();
    let values = t.storage::<f32>().get(start..start + dim * vocab)?;
    match *l.strides() {
        [1, s] if s == dim as isize => Some(Layout::Rows(values)),
        [s, 1] if s == vocab as isize => Some(Layout::Columns(values)),
        _ => None,
    }
}
