//! Root-mean-square norm over rows of `d` features, y = x·r·w with r = 1/√(mean(x²) + ε), and
//! its backward with respect to x for a weight w that is not trained:
//!   ∂L/∂x = r·(w ⊙ dy) − x·r³·⟨w ⊙ dy, x⟩/d.
//!
//! Why a kernel: Burn's CPU backend computes the norm as seven tensor operations and its
//! backward as a dozen more, each a pass over the `[tokens, hidden]` activations that allocates
//! its output and runs on the calling thread; every block has two or three norms. Here each is one
//! pass over the rows, on rayon's threads, and the backward needs only x and r.

use rayon::prelude::*;

use crate::rows::{self, vectorised};

/// Floats of rows one task takes at least.
const CHUNK: usize = 1 << 14;

/// `y` ← the norm of each row of `x` (`[n, d]` row-major, `d` = `w.len()`) and `inv` ← its r.
///
/// # Panics
/// When `x` and `y` are not `inv.len()` rows of `w.len()` floats.
pub fn rms_norm(x: &[f32], w: &[f32], eps: f32, y: &mut [f32], inv: &mut [f32]) {
    let d = w.len();
    assert!(x.len() == inv.len() * d && y.len() == x.len(), "x and y of inv.len() rows of w.len() floats");
    if d == 0 {
        return;
    }
    let rows = (CHUNK / d).max(1);
    y.par_chunks_mut(rows * d).zip(x.par_chunks(rows * d)).zip(inv.par_chunks_mut(rows)).for_each(|((y, x), inv)| {
        for ((y, x), r) in y.chunks_exact_mut(d).zip(x.chunks_exact(d)).zip(inv) {
            *r = 1.0 / (rows::dot(x, x) / d as f32 + eps).sqrt();
            scale(x, w, *r, y);
        }
    });
}

/// `dx` ← the gradient of x from the output's gradient `dy`, given x, the weight and each row's
/// r as [`rms_norm`] returned it.
///
/// # Panics
/// When `x`, `dy` and `dx` are not `inv.len()` rows of `w.len()` floats.
pub fn rms_norm_backward(x: &[f32], w: &[f32], inv: &[f32], dy: &[f32], dx: &mut [f32]) {
    let d = w.len();
    assert!(
        x.len() == inv.len() * d && dy.len() == x.len() && dx.len() == x.len(),
        "x, dy and dx of inv.len() rows of w.len() floats"
    );
    if d == 0 {
        return;
    }
    let rows = (CHUNK / d).max(1);
    dx.par_chunks_mut(rows * d)
        .zip(x.par_chunks(rows * d).zip(dy.par_chunks(rows * d)))
        .zip(inv.par_chunks(rows))
        .for_each(|((dx, (x, dy)), inv)| {
            for (((dx, x), dy), &r) in dx.chunks_exact_mut(d).zip(x.chunks_exact(d)).zip(dy.chunks_exact(d)).zip(inv) {
                // dx holds w ⊙ dy until the row's sum is known.
                scale(dy, w, 1.0, dx);
                let c = rows::dot(dx, x) * r * r * r / d as f32;
                backward_row(x, r, c, dx);
            }
        });
}

vectorised! {
    /// y ← x·r·w.
    fn scale(x: &[f32], w: &[f32], r: f32, y: &mut [f32]) {
        for ((y, &x), &w) in y.iter_mut().zip(x).zip(w) {
            *y = x * r * w;
        }
    }
}

vectorised! {
    /// g ← r·g − c·x.
    fn backward_row(x: &[f32], r: f32, c: f32, g: &mut [f32]) {
        for (g, &x) in g.iter_mut().zip(x) {
            *g = r * *g - c * x;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{fresh_seed, uniform};

    /// Against the formulas in f64 on fresh random inputs, at widths below and above a task's
    /// share and rows that leave a short last task.
    #[test]
    fn rms_norm_matches_f64() {
        let mut state = fresh_seed("rms-norm");
        for (n, d, eps) in [(37, 576, 1e-5), (300, 64, 1e-6), (5, 5000, 1e-6), (3, 7, 1e-2)] {
            let (x, w, dy) =
                (uniform(&mut state, n * d, 4.0), uniform(&mut state, d, 2.0), uniform(&mut state, n * d, 1.0));
            let (mut y, mut inv, mut dx) = (vec![0f32; n * d], vec![0f32; n], vec![0f32; n * d]);
            rms_norm(&x, &w, eps, &mut y, &mut inv);
            rms_norm_backward(&x, &w, &inv, &dy, &mut dx);
            let (mut worst_y, mut worst_dx) = (0f64, 0f64);
            for i in 0..n {
                let row = |v: &[f32]| v[i * d..(i + 1) * d].iter().map(|&a| a as f64).collect::<Vec<_>>();
                let (xr, dyr) = (row(&x), row(&dy));
                let r = 1.0 / (xr.iter().map(|a| a * a).sum::<f64>() / d as f64 + eps as f64).sqrt();
                let dot: f64 = (0..d).map(|j| w[j] as f64 * dyr[j] * xr[j]).sum();
                let (scale_y, scale_dx) = (r * 2.0, r * 2.0 + r * r * r * dot.abs() * 4.0 / d as f64);
                for j in 0..d {
                    let want_y = xr[j] * r * w[j] as f64;
                    let want_dx = r * w[j] as f64 * dyr[j] - xr[j] * r * r * r * dot / d as f64;
                    worst_y = worst_y.max((y[i * d + j] as f64 - want_y).abs() / scale_y);
                    worst_dx = worst_dx.max((dx[i * d + j] as f64 - want_dx).abs() / scale_dx);
                }
            }
            assert!(worst_y < 1e-6 && worst_dx < 1e-6, "n {n}, d {d}: worst errors {worst_y:e}, {worst_dx:e}");
        }
    }
}
