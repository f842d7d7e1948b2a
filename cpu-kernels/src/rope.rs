//! Rotary position embedding as Transformers applies it ("rotate half"), and its transpose for
//! the backward pass. For a head's features x with the first `r` rotating (r even, h = r/2),
//! position cosines c and sines s (`r` each):
//!   y_j = x_j·c_j − x_{j+h}·s_j,   y_{j+h} = x_{j+h}·c_{j+h} + x_j·s_{j+h}   (j < h),
//! and the features from `r` on pass through. The backward applies the transpose:
//!   dx_j = dy_j·c_j + dy_{j+h}·s_{j+h},   dx_{j+h} = dy_{j+h}·c_{j+h} − dy_j·s_j.
//!
//! Why a kernel: Burn's CPU backend computes the rotation as two slices, a negation, a
//! concatenation, two products and a sum, and autodiff as many again backward, each a pass over
//! q or k that allocates and runs on the calling thread. Here it is one pass each way.

use rayon::prelude::*;

use crate::rows::vectorised;

/// Rows (one position of one head each) one task takes at least, in floats.
const CHUNK: usize = 1 << 14;

/// The shape of what [`rotate`] takes: x `[batch, heads, len, head_dim]`, cos and sin
/// `[cos_batch, len, rotary]` with `cos_batch` 1 (every sequence at positions 0..len) or `batch`.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub batch: usize,
    pub heads: usize,
    pub len: usize,
    pub head_dim: usize,
    pub rotary: usize,
    pub cos_batch: usize,
}

/// `out` ← x rotated (or, with `transpose`, the rotation's transpose applied: the backward of a
/// gradient).
///
/// # Panics
/// When the slices do not have the lengths `shape` gives, `rotary` is odd or above `head_dim`,
/// or `cos_batch` is neither 1 nor `batch`.
pub fn rotate(shape: &Shape, cos: &[f32], sin: &[f32], x: &[f32], transpose: bool, out: &mut [f32]) {
    let Shape { batch, heads, len, head_dim: d, rotary: r, cos_batch } = *shape;
    assert!(r % 2 == 0 && r <= d, "an even number of rotating features within the head");
    assert!(cos_batch == 1 || cos_batch == batch, "one set of positions, or one per sequence");
    assert!(cos.len() == cos_batch * len * r && sin.len() == cos.len(), "cos and sin of [cos_batch, len, rotary]");
    assert!(x.len() == batch * heads * len * d && out.len() == x.len(), "x and out of [batch, heads, len, head_dim]");
    if x.is_empty() {
        return;
    }
    let rows = (CHUNK / d.max(1)).max(1);
    out.par_chunks_mut(rows * d).zip(x.par_chunks(rows * d)).enumerate().for_each(|(task, (out, x))| {
        for (i, (y, x)) in out.chunks_exact_mut(d).zip(x.chunks_exact(d)).enumerate() {
            let row = task * rows + i;
            let (b, t) = (row / (heads * len), row % len);
            let at = ((b % cos_batch) * len + t) * r;
            let (c, s) = (&cos[at..at + r], &sin[at..at + r]);
            match transpose {
                false => forward(x, c, s, y),
                true => backward(x, c, s, y),
            }
        }
    });
}

vectorised! {
    /// One row of the rotation.
    fn forward(x: &[f32], c: &[f32], s: &[f32], y: &mut [f32]) {
        let (r, h) = (c.len(), c.len() / 2);
        let (y_rot, y_pass) = y.split_at_mut(r);
        let (y1, y2) = y_rot.split_at_mut(h);
        let (x1, x2) = x[..r].split_at(h);
        for j in 0..h {
            y1[j] = x1[j] * c[j] - x2[j] * s[j];
            y2[j] = x2[j] * c[h + j] + x1[j] * s[h + j];
        }
        y_pass.copy_from_slice(&x[r..]);
    }
}

vectorised! {
    /// One row of the rotation's transpose.
    fn backward(dy: &[f32], c: &[f32], s: &[f32], dx: &mut [f32]) {
        let (r, h) = (c.len(), c.len() / 2);
        let (dx_rot, dx_pass) = dx.split_at_mut(r);
        let (dx1, dx2) = dx_rot.split_at_mut(h);
        let (dy1, dy2) = dy[..r].split_at(h);
        for j in 0..h {
            dx1[j] = dy1[j] * c[j] + dy2[j] * s[h + j];
            dx2[j] = dy2[j] * c[h + j] - dy1[j] * s[j];
        }
        dx_pass.copy_from_slice(&dy[r..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{fresh_seed, uniform};

    /// Against the formulas in f64 on fresh random inputs, with cosines and sines that differ
    /// between the halves (the kernel does not assume Transformers' duplicated halves), partial
    /// rotation, per-sequence positions; and the transpose against ⟨rotate(x), dy⟩ = ⟨x,
    /// rotateᵀ(dy)⟩.
    #[test]
    fn rotation_and_its_transpose_match_f64() {
        let mut state = fresh_seed("rope");
        for (batch, heads, len, head_dim, rotary, cos_batch) in [(2, 3, 41, 64, 64, 1), (3, 2, 17, 96, 32, 3)] {
            let shape = Shape { batch, heads, len, head_dim, rotary, cos_batch };
            let n = batch * heads * len * head_dim;
            let (x, dy) = (uniform(&mut state, n, 3.0), uniform(&mut state, n, 1.0));
            let (cos, sin) = (
                uniform(&mut state, cos_batch * len * rotary, 1.0),
                uniform(&mut state, cos_batch * len * rotary, 1.0),
            );
            let (mut y, mut dx) = (vec![0f32; n], vec![0f32; n]);
            rotate(&shape, &cos, &sin, &x, false, &mut y);
            rotate(&shape, &cos, &sin, &dy, true, &mut dx);
            let h = rotary / 2;
            let mut worst = 0f64;
            for row in 0..batch * heads * len {
                let at = ((row / (heads * len) % cos_batch) * len + row % len) * rotary;
                let (c, s) = (|j: usize| cos[at + j] as f64, |j: usize| sin[at + j] as f64);
                let xv = |j: usize| x[row * head_dim + j] as f64;
                for j in 0..head_dim {
                    let want = match j {
                        j if j < h => xv(j) * c(j) - xv(j + h) * s(j),
                        j if j < rotary => xv(j) * c(j) + xv(j - h) * s(j),
                        j => xv(j),
                    };
                    worst = worst.max((y[row * head_dim + j] as f64 - want).abs() / want.abs().max(1.0));
                }
            }
            let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(&a, &b)| a as f64 * b as f64).sum::<f64>();
            let (lhs, rhs) = (dot(&y, &dy), dot(&x, &dx));
            assert!(worst < 1e-6, "{shape:?}: worst error {worst:e}");
            assert!((lhs - rhs).abs() < 1e-5 * lhs.abs().max(1.0), "{shape:?}: ⟨Rx, dy⟩ = {lhs}, ⟨x, Rᵀdy⟩ = {rhs}");
        }
    }
}
