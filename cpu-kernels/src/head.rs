//! The output head's log-probabilities of target tokens and their gradients with respect to the
//! hidden states, in one pass over the vocabulary: no `[rows, V]` logits, probabilities or
//! gradients exist, only a tile of `ROWS × CHUNK` logits at a time.
//!
//! For a row with hidden state h, head W `[d, V]`, bias b, logits z = s(h·W + b) (s the optional
//! soft cap c·tanh(·/c)), target y and p = softmax(z):
//!   log p(y) = z_y − logsumexp(z),   ∂log p(y)/∂h = s′_y·W[:, y] − Σ_v p_v·s′_v·W[:, v].
//! The sums over the vocabulary run a chunk at a time with a running maximum m (an online
//! softmax): each chunk adds e^{z − m} to the row's normaliser and e^{z − m}·s′·W[:, chunk]ᵀ to its
//! gradient sum, both rescaled by e^{m_old − m} when the maximum grows.

use rayon::prelude::*;

use crate::matmul::{product, View};
use crate::rows;

/// Rows a tile holds: every tile reads all of W twice, so more rows read it fewer times.
const ROWS: usize = 128;

/// Vocabulary entries a chunk holds: a tile's `ROWS × CHUNK` logits (512 KiB) stay in cache.
const CHUNK: usize = 1024;

/// The output head: `weight` `[dim, vocab]` row-major, an optional `bias` `[vocab]` and soft
/// cap.
#[derive(Clone, Copy)]
pub struct Head<'a> {
    pub weight: &'a [f32],
    pub bias: Option<&'a [f32]>,
    pub softcap: Option<f32>,
    pub dim: usize,
    pub vocab: usize,
}

/// For each row of `hidden` `[n, dim]` and its target token: `logp` `[n]` = log p(target) and,
/// when given, `grad` `[n, dim]` = its gradient with respect to the row.
///
/// # Panics
/// When a slice's length is not what the head and `targets` say, or a target is not in the
/// vocabulary.
pub fn log_probs(head: &Head<'_>, hidden: &[f32], targets: &[usize], logp: &mut [f32], grad: Option<&mut [f32]>) {
    let (d, v, n) = (head.dim, head.vocab, targets.len());
    assert_eq!(head.weight.len(), d * v, "weight");
    assert!(head.bias.is_none_or(|b| b.len() == v), "bias");
    assert_eq!((hidden.len(), logp.len()), (n * d, n), "hidden states");
    assert!(targets.iter().all(|&y| y < v), "a target past the vocabulary");
    assert!(grad.as_ref().is_none_or(|g| g.len() == n * d), "gradient");
    if n == 0 || d == 0 {
        return;
    }
    let tiles = logp.par_chunks_mut(ROWS).zip(hidden.par_chunks(ROWS * d)).zip(targets.par_chunks(ROWS));
    match grad {
        Some(grad) => {
            tiles.zip(grad.par_chunks_mut(ROWS * d)).for_each(|(((logp, h), y), g)| tile(head, h, y, logp, Some(g)))
        }
        None => tiles.for_each(|((logp, h), y)| tile(head, h, y, logp, None)),
    }
}

/// One tile of rows: `h` `[m, d]`, targets `y`, its `logp` and `grad` rows.
fn tile(head: &Head<'_>, h: &[f32], y: &[usize], logp: &mut [f32], mut grad: Option<&mut [f32]>) {
    let (d, v, m) = (head.dim, head.vocab, y.len());
    // Per row: the running maximum, the normaliser under it, and z_y once seen.
    let (mut max, mut norm, mut z_y) = (vec![f32::NEG_INFINITY; m], vec![0f32; m], vec![0f32; m]);
    let mut z = vec![0f32; m * CHUNK];
    let mut slope = match (head.softcap, grad.is_some()) {
        (Some(_), true) => vec![0f32; m * CHUNK],
        _ => Vec::new(),
    };
    let mut s_y = vec![1f32; m];
    if let Some(g) = grad.as_deref_mut() {
        g.fill(0.0);
    }
    for c0 in (0..v).step_by(CHUNK) {
        let c = CHUNK.min(v - c0);
        let z = &mut z[..m * c];
        let w = View::strided(head.weight, c0, d, c, v, 1);
        product(z, false, View::rows(h, 0, m, d), w, 1.0);
        for (r, row) in z.chunks_exact_mut(c).enumerate() {
            if let Some(b) = head.bias {
                row.iter_mut().zip(&b[c0..c0 + c]).for_each(|(x, b)| *x += b);
            }
            if let Some(cap) = head.softcap {
                let slopes = (!slope.is_empty()).then(|| &mut slope[r * c..(r + 1) * c]);
                rows::soft_cap(row, cap, slopes);
            }
            if (c0..c0 + c).contains(&y[r]) {
                z_y[r] = row[y[r] - c0];
                if !slope.is_empty() {
                    s_y[r] = slope[r * c + y[r] - c0];
                }
            }
            // e^{z − m} under the new maximum; what was summed under the old one is rescaled.
            let top = max[r].max(rows::max(row));
            let rescale = (max[r] - top).exp();
            norm[r] = norm[r] * rescale + rows::exp_sum(row, top);
            max[r] = top;
            if let Some(g) = grad.as_deref_mut() {
                g[r * d..(r + 1) * d].iter_mut().for_each(|x| *x *= rescale);
                if !slope.is_empty() {
                    row.iter_mut().zip(&slope[r * c..(r + 1) * c]).for_each(|(e, s)| *e *= s);
                }
            }
        }
        if let Some(g) = grad.as_deref_mut() {
            product(g, true, View::rows(z, 0, m, c), w.t(), 1.0);
        }
    }
    for r in 0..m {
        logp[r] = z_y[r] - max[r] - norm[r].ln();
    }
    if let Some(g) = grad {
        // s′_y·W[:, y] − (Σ e^{z − m}·s′·W[:, v]) / normaliser.
        for (r, row) in g.chunks_exact_mut(d).enumerate() {
            for (i, x) in row.iter_mut().enumerate() {
                *x = s_y[r] * head.weight[i * v + y[r]] - *x / norm[r];
            }
        }
    }
}

#[cfg(test)]
mod tests;
