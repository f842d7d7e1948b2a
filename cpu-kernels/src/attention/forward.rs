//! The forward pass: each tile's scores, softmax and product with v, tiles on rayon's threads.

use rayon::prelude::*;

use super::{Scores, Shape, Tile, TILE};
use crate::matmul::{product, View};
use crate::rows;

/// Attention's output `out: [B, H, T, d]` and each query's log-sum-exp of its scores `lse: [B,
/// H, T]` (for [`super::backward`]) from `q: [B, H, T, d]` and `k, v: [B, KV, T, d]`.
///
/// # Panics
/// When a slice's length is not the shape's.
pub fn forward(shape: &Shape, scores: &Scores, q: &[f32], k: &[f32], v: &[f32], out: &mut [f32], lse: &mut [f32]) {
    shape.check();
    let (t, d) = (shape.len, shape.head_dim);
    assert_eq!(q.len(), shape.queries(), "queries");
    assert_eq!((k.len(), v.len()), (shape.keys(), shape.keys()), "keys and values");
    assert_eq!((out.len(), lse.len()), (shape.queries(), shape.queries() / d.max(1)), "output");
    if t == 0 || d == 0 {
        return;
    }
    out.par_chunks_mut(t * d).zip(lse.par_chunks_mut(t)).enumerate().for_each(|(bh, (out, lse))| {
        out.par_chunks_mut(TILE * d).zip(lse.par_chunks_mut(TILE)).enumerate().for_each_init(
            || (Vec::new(), Vec::new()),
            |(buf, sums), (i, (out, lse))| {
                let tile = Tile::new(shape, scores, bh, i * TILE);
                forward_tile(&tile, scores, d, (q, k, v), buf, sums, out, lse);
            },
        );
    });
}

/// One tile: `out` and `lse` are its rows; `buf` and `sums` are scratch.
#[allow(clippy::too_many_arguments)]
fn forward_tile(
    tile: &Tile,
    scores: &Scores,
    d: usize,
    (q, k, v): (&[f32], &[f32], &[f32]),
    buf: &mut Vec<f32>,
    sums: &mut Vec<f32>,
    out: &mut [f32],
    lse: &mut [f32],
) {
    let (m, n) = (tile.rows(), tile.keys());
    buf.resize(m * n, 0.0);
    sums.resize(m, 0.0);
    let keys = |x| View::rows(x, tile.kv_head + tile.k0 * d, n, d);
    product(buf, false, View::rows(q, tile.q_head + tile.q0 * d, m, d), keys(k).t(), scores.scale);
    for r in 0..m {
        let (a, e) = tile.visible(scores, r);
        let (max, sum) = rows::softmax_numerators(&mut buf[r * n..(r + 1) * n], a, e, scores.softcap);
        sums[r] = sum;
        lse[r] = max + sum.ln();
    }
    product(out, false, View::rows(buf, 0, m, n), keys(v), 1.0);
    // Normalised after the product with v: d divisions a row instead of one a key.
    for (row, sum) in out.chunks_exact_mut(d).zip(sums.iter()) {
        row.iter_mut().for_each(|x| *x /= sum);
    }
}
