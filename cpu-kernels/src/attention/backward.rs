//! The backward pass: each tile's probabilities recovered from the log-sum-exps (no second
//! softmax), and the products for dq, dk and dv; a query head's tiles in order on one thread
//! (they add into the same dk and dv rows), the heads on rayon's threads.

use rayon::prelude::*;

use super::{Scores, Shape, Tile, TILE};
use crate::matmul::{product, View};
use crate::rows;

/// What [`super::forward`] read and wrote, for [`backward`].
#[derive(Clone, Copy)]
pub struct Saved<'a> {
    pub q: &'a [f32],
    pub k: &'a [f32],
    pub v: &'a [f32],
    pub out: &'a [f32],
    pub lse: &'a [f32],
}

/// The gradients `dq: [B, H, T, d]` and `dk, dv: [B, KV, T, d]` of a loss whose gradient with
/// respect to attention's output is `d_out: [B, H, T, d]`, from what the forward pass `saved`.
///
/// # Panics
/// When a slice's length is not the shape's.
pub fn backward(
    shape: &Shape,
    scores: &Scores,
    saved: Saved<'_>,
    d_out: &[f32],
    dq: &mut [f32],
    dk: &mut [f32],
    dv: &mut [f32],
) {
    shape.check();
    let (t, d) = (shape.len, shape.head_dim);
    let Saved { q, k, v, out, lse } = saved;
    for (name, x) in [("queries", q), ("output", out), ("output's gradient", d_out), ("dq", dq)] {
        assert_eq!(x.len(), shape.queries(), "{name}");
    }
    for (name, x) in [("keys", k), ("values", v), ("dk", dk), ("dv", dv)] {
        assert_eq!(x.len(), shape.keys(), "{name}");
    }
    assert_eq!(lse.len(), shape.queries() / d.max(1), "log-sum-exps");
    if t == 0 || d == 0 {
        return;
    }
    // dk and dv per query head, summed over the heads of a group below.
    let (mut dk_heads, mut dv_heads) = (vec![0f32; shape.queries()], vec![0f32; shape.queries()]);
    dq.par_chunks_mut(t * d)
        .zip(dk_heads.par_chunks_mut(t * d))
        .zip(dv_heads.par_chunks_mut(t * d))
        .enumerate()
        .for_each(|(bh, ((dq, dk), dv))| {
            let mut scratch = Scratch::default();
            for q0 in (0..t).step_by(TILE) {
                let tile = Tile::new(shape, scores, bh, q0);
                backward_tile(&tile, scores, d, saved, d_out, &mut scratch, dq, dk, dv);
            }
        });
    let rep = shape.heads / shape.kv_heads;
    for (grad, heads) in [(dk, dk_heads), (dv, dv_heads)] {
        grad.par_chunks_mut(t * d).enumerate().for_each(|(group, grad)| {
            let first = (group / shape.kv_heads * shape.heads + group % shape.kv_heads * rep) * t * d;
            grad.copy_from_slice(&heads[first..first + t * d]);
            for h in 1..rep {
                let part = &heads[first + h * t * d..first + (h + 1) * t * d];
                grad.iter_mut().zip(part).for_each(|(g, x)| *g += x);
            }
        });
    }
}

/// A thread's buffers: the tile's scores (then probabilities), dP (then dS), and δ.
#[derive(Default)]
struct Scratch {
    p: Vec<f32>,
    ds: Vec<f32>,
    delta: Vec<f32>,
}

/// One tile of query head `tile`: its rows of `dq`, and what it adds to the head's `dk`, `dv`
/// (each `[T, d]`, the head's own).
#[allow(clippy::too_many_arguments)]
fn backward_tile(
    tile: &Tile,
    scores: &Scores,
    d: usize,
    saved: Saved<'_>,
    d_out: &[f32],
    scratch: &mut Scratch,
    dq: &mut [f32],
    dk: &mut [f32],
    dv: &mut [f32],
) {
    let Saved { q, k, v, out, lse } = saved;
    let (m, n) = (tile.rows(), tile.keys());
    let Scratch { p, ds, delta } = scratch;
    p.resize(m * n, 0.0);
    ds.resize(m * n, 0.0);
    let at = tile.q_head + tile.q0 * d;
    // δ = rowsum(dO ⊙ o), the softmax backward's subtrahend.
    delta.clear();
    delta.extend((0..m).map(|r| rows::dot(&d_out[at + r * d..at + (r + 1) * d], &out[at + r * d..at + (r + 1) * d])));
    let queries = |x| View::rows(x, at, m, d);
    let keys = |x| View::rows(x, tile.kv_head + tile.k0 * d, n, d);
    product(p, false, queries(q), keys(k).t(), scores.scale);
    product(ds, false, queries(d_out), keys(v).t(), 1.0);
    let lse = &lse[at / d..at / d + m];
    for r in 0..m {
        let (a, e) = tile.visible(scores, r);
        let row = r * n..(r + 1) * n;
        rows::softmax_backward(&mut p[row.clone()], &mut ds[row], a, e, lse[r], delta[r], scores.softcap);
    }
    let (rows_q, rows_k) = (tile.q0 * d..tile.q1 * d, tile.k0 * d..tile.q1 * d);
    product(&mut dq[rows_q], false, View::rows(ds, 0, m, n), keys(k), scores.scale);
    product(&mut dk[rows_k.clone()], true, View::rows(ds, 0, m, n).t(), queries(q), scores.scale);
    product(&mut dv[rows_k], true, View::rows(p, 0, m, n).t(), queries(d_out), 1.0);
}
