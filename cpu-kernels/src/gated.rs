//! The SiLU-gated product in the middle of a gated MLP (Llama, Qwen, Mistral, Phi-3 and their
//! kin), h = silu(g)·u = g·σ(g)·u, and its backward
//!   ∂L/∂u = ∂L/∂h · g·σ(g),   ∂L/∂g = ∂L/∂h · u·σ(g)·(1 + g·(1 − σ(g))).
//!
//! Why a kernel: Burn's CPU backend computes this as a sigmoid and two products forward and, in
//! the backward pass, a sigmoid recomputed from g and four more products, each a pass over the
//! `[tokens, intermediate]` activations that allocates its output and runs on the calling thread
//! with the C library's scalar `expf` (docs/performance.md). Here it is one pass forward and one
//! backward, on rayon's threads, with the crate's vectorised exponential.

use rayon::prelude::*;

use crate::rows::{self, vectorised};

/// Elements one task takes: 64 KiB of each array, enough to outweigh rayon's cost per task.
const CHUNK: usize = 1 << 14;

/// `out` ← silu(g)·u element-wise.
///
/// # Panics
/// When the three slices differ in length.
pub fn silu_gated(gate: &[f32], up: &[f32], out: &mut [f32]) {
    assert!(gate.len() == up.len() && up.len() == out.len(), "gate, up and output of one length");
    out.par_chunks_mut(CHUNK)
        .zip(gate.par_chunks(CHUNK).zip(up.par_chunks(CHUNK)))
        .for_each(|(out, (gate, up))| forward(gate, up, out));
}

/// `d_gate` and `d_up`, the gradients of g and u, from the output's gradient `d_out`.
///
/// # Panics
/// When the five slices differ in length.
pub fn silu_gated_backward(gate: &[f32], up: &[f32], d_out: &[f32], d_gate: &mut [f32], d_up: &mut [f32]) {
    let n = gate.len();
    assert!(
        [up.len(), d_out.len(), d_gate.len(), d_up.len()].iter().all(|&l| l == n),
        "gate, up and the three gradients of one length"
    );
    d_gate
        .par_chunks_mut(CHUNK)
        .zip(d_up.par_chunks_mut(CHUNK))
        .zip(gate.par_chunks(CHUNK).zip(up.par_chunks(CHUNK)).zip(d_out.par_chunks(CHUNK)))
        .for_each(|((d_gate, d_up), ((gate, up), d_out))| backward(gate, up, d_out, d_gate, d_up));
}

/// σ(x) = 1/(1 + e^{−x}) and 1 − σ(x) = e^{−x}·σ(x), the latter without the cancellation of
/// subtracting σ from 1 (which loses a digit of it for every factor of ten σ comes nearer 1). For
/// x below −88 the exponential saturates at e^{88} and σ comes out about 10^−38 instead of
/// smaller: products with it stay below 10^−36 in magnitude either way.
#[inline(always)]
fn sigmoid(x: f32) -> (f32, f32) {
    let e = rows::exp(-x);
    let s = 1.0 / (1.0 + e);
    (s, e * s)
}

vectorised! {
    /// One task's share of [`silu_gated`].
    fn forward(gate: &[f32], up: &[f32], out: &mut [f32]) {
        for ((o, &g), &u) in out.iter_mut().zip(gate).zip(up) {
            *o = g * sigmoid(g).0 * u;
        }
    }
}

vectorised! {
    /// One task's share of [`silu_gated_backward`].
    fn backward(gate: &[f32], up: &[f32], d_out: &[f32], d_gate: &mut [f32], d_up: &mut [f32]) {
        for ((((dg, du), &g), &u), &d) in d_gate.iter_mut().zip(d_up.iter_mut()).zip(gate).zip(up).zip(d_out) {
            let (s, one_minus_s) = sigmoid(g);
            *du = d * g * s;
            *dg = d * u * s * (1.0 + g * one_minus_s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{fresh_seed, uniform};

    /// Against the formulas in f64, on fresh random inputs that reach both tails of the
    /// sigmoid, at a length that leaves a short last task.
    #[test]
    fn silu_gated_matches_f64() {
        let mut state = fresh_seed("silu-gated");
        let n = 3 * CHUNK + 77;
        let (gate, up, d_out) =
            (uniform(&mut state, n, 30.0), uniform(&mut state, n, 3.0), uniform(&mut state, n, 2.0));
        let mut out = vec![0f32; n];
        silu_gated(&gate, &up, &mut out);
        let (mut d_gate, mut d_up) = (vec![0f32; n], vec![0f32; n]);
        silu_gated_backward(&gate, &up, &d_out, &mut d_gate, &mut d_up);
        let mut worst = [0f64; 3];
        for i in 0..n {
            let (g, u, d) = (gate[i] as f64, up[i] as f64, d_out[i] as f64);
            let s = 1.0 / (1.0 + (-g).exp());
            let want = [g * s * u, d * u * s * (1.0 + g * (1.0 - s)), d * g * s];
            for (w, (&got, want)) in worst.iter_mut().zip([out[i], d_gate[i], d_up[i]].iter().zip(want)) {
                *w = w.max((got as f64 - want).abs() / want.abs().max(1.0));
            }
        }
        assert!(worst.iter().all(|&w| w < 1e-6), "worst errors (output, d_gate, d_up): {worst:?}");
    }
}
