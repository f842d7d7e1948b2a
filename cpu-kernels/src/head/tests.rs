//! The head kernel against the definition in f64, on fresh random inputs.

use super::{Chunk, HeadPass, ROWS};
use crate::testing::{fresh_seed, uniform};

/// Rows past one tile and a short last one; vocabularies in several chunks with a short last
/// one, and in one; with and without bias and soft cap; logits spread wide enough that the
/// running maximum moves between chunks. Each weight layout a caller hands: the chunk's columns
/// gathered, the rows of W's transpose (a tied head), the columns of the whole W in place.
#[test]
fn head_kernel_matches_the_definition_in_f64() {
    let mut state = fresh_seed("cpu head kernel");
    // (rows, dim, vocab, chunk, bias, soft cap)
    let cases = [
        (ROWS + 37, 24, 2349, 1024, true, Some(5.0f32)),
        (9, 40, 515, 1024, false, None),
        (2 * ROWS + 1, 16, 3072, 512, true, None),
    ];
    for (n, d, v, chunk, with_bias, softcap) in cases {
        let weight = uniform(&mut state, d * v, 1.0);
        let bias = with_bias.then(|| uniform(&mut state, v, 2.0));
        let hidden = uniform(&mut state, n * d, 1.5);
        let targets: Vec<usize> =
            uniform(&mut state, n, 1.0).iter().map(|x| ((x + 1.0) / 2.0 * v as f32) as usize % v).collect();
        let transposed: Vec<f32> = (0..v).flat_map(|j| (0..d).map(|i| weight[i * v + j]).collect::<Vec<_>>()).collect();
        // The caller's side, in each layout.
        let pass = |layout: usize, grad: bool| {
            let mut pass = HeadPass::new(&hidden, &targets, d, softcap, grad);
            for c0 in (0..v).step_by(chunk) {
                let c = chunk.min(v - c0);
                let gathered: Vec<f32> = (0..d).flat_map(|i| weight[i * v + c0..i * v + c0 + c].to_vec()).collect();
                let w = match layout {
                    0 => Chunk::columns(&gathered, d),
                    1 => Chunk::rows(&transposed[c0 * d..(c0 + c) * d], d),
                    _ => Chunk::columns_of(&weight, d, v, c0, c),
                };
                pass.chunk(c0, w, bias.as_ref().map(|b| &b[c0..c0 + c]));
            }
            pass.finish()
        };
        for layout in 0..3 {
            let (logp, grad) = pass(layout, true);
            let grad = grad.expect("asked for");
            assert_eq!(pass(layout, false).0, logp, "log-probs without the gradient");
            let (mut worst_lp, mut worst_g, mut top) = (0f64, 0f64, 0f64);
            for r in 0..n {
                let h = &hidden[r * d..(r + 1) * d];
                let raw: Vec<f64> = (0..v)
                    .map(|j| {
                        let b = bias.as_ref().map_or(0.0, |b| b[j] as f64);
                        (0..d).map(|i| h[i] as f64 * weight[i * v + j] as f64).sum::<f64>() + b
                    })
                    .collect();
                let z: Vec<f64> =
                    raw.iter().map(|&x| softcap.map_or(x, |c| c as f64 * (x / c as f64).tanh())).collect();
                let slope: Vec<f64> =
                    raw.iter().map(|&x| softcap.map_or(1.0, |c| 1.0 / (x / c as f64).cosh().powi(2))).collect();
                let m = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let lse = m + z.iter().map(|x| (x - m).exp()).sum::<f64>().ln();
                let y = targets[r];
                worst_lp = worst_lp.max((logp[r] as f64 - (z[y] - lse)).abs());
                for i in 0..d {
                    let sum: f64 = (0..v).map(|j| (z[j] - lse).exp() * slope[j] * weight[i * v + j] as f64).sum();
                    let want = slope[y] * weight[i * v + y] as f64 - sum;
                    top = top.max(want.abs());
                    worst_g = worst_g.max((grad[r * d + i] as f64 - want).abs());
                }
            }
            assert!(worst_lp <= 2e-5, "log p (n {n}, d {d}, v {v}, layout {layout}): max error {worst_lp:e}");
            assert!(
                worst_g <= 2e-6 * top.max(1.0),
                "gradient (n {n}, d {d}, v {v}, layout {layout}): max error {worst_g:e} of {top:e}"
            );
        }
    }
}
