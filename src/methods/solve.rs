//! The damped covariance solve PRISM needs: x = (ĜᵀĜ/N + λI)⁻¹ d for features Ĝ (N × k), with
//! λ = damping × mean eigenvalue of ĜᵀĜ/N (= damping × trace / k), as LoGra's "raw" Hessian.
//! It is solved in whichever dimension is smaller: directly (k × k) when k ≤ N, else through
//! the Woodbury identity, x = (d − Ĝᵀ (NλI + ĜĜᵀ)⁻¹ Ĝ d) / λ, an N × N system. Cholesky in f64.

/// Cholesky solve of the symmetric positive definite `a` (n × n, row-major) with `b`; `None`
/// if `a` is not positive definite.
pub(crate) fn cholesky_solve(mut a: Vec<f64>, n: usize, b: &[f64]) -> Option<Vec<f64>> {
    for j in 0..n {
        let mut d = a[j * n + j];
        for k in 0..j {
            d -= a[j * n + k] * a[j * n + k];
        }
        if d <= 0.0 {
            return None;
        }
        let d = d.sqrt();
        a[j * n + j] = d;
        for i in j + 1..n {
            let mut s = a[i * n + j];
            for k in 0..j {
                s -= a[i * n + k] * a[j * n + k];
            }
            a[i * n + j] = s / d;
        }
    }
    let mut y = b.to_vec();
    for i in 0..n {
        for k in 0..i {
            y[i] -= a[i * n + k] * y[k];
        }
        y[i] /= a[i * n + i];
    }
    for i in (0..n).rev() {
        for k in i + 1..n {
            y[i] -= a[k * n + i] * y[k];
        }
        y[i] /= a[i * n + i];
    }
    Some(y)
}

/// λ for `g` (N × k): damping × trace(ĜᵀĜ/N) / k.
pub(crate) fn damping_lambda(g: &[f32], n: usize, k: usize, damping: f64) -> f64 {
    let trace: f64 = g.iter().map(|&x| (x as f64) * (x as f64)).sum::<f64>() / n as f64;
    damping * trace / k as f64
}

/// Solves (ĜᵀĜ/N + λI) x = d.
pub(crate) fn damped_covariance_solve(g: &[f32], n: usize, k: usize, lambda: f64, d: &[f64]) -> Vec<f64> {
    assert_eq!(g.len(), n * k);
    assert!(lambda > 0.0, "damping must be positive");
    let at = |i: usize, j: usize| g[i * k + j] as f64;
    if k <= n {
        let mut h = vec![0f64; k * k];
        for r in 0..n {
            for a in 0..k {
                let ga = at(r, a);
                if ga == 0.0 {
                    continue;
                }
                for b in a..k {
                    h[a * k + b] += ga * at(r, b);
                }
            }
        }
        for a in 0..k {
            for b in a..k {
                let v = h[a * k + b] / n as f64 + if a == b { lambda } else { 0.0 };
                h[a * k + b] = v;
                h[b * k + a] = v;
            }
        }
        cholesky_solve(h, k, d).expect("damped covariance is positive definite")
    } else {
        // Woodbury: (ĜᵀĜ/N + λI)⁻¹ = (1/λ)(I − Ĝᵀ(NλI + ĜĜᵀ)⁻¹Ĝ).
        let gd: Vec<f64> = (0..n).map(|r| (0..k).map(|j| at(r, j) * d[j]).sum()).collect();
        let mut m = vec![0f64; n * n];
        for a in 0..n {
            for b in a..n {
                let v: f64 =
                    (0..k).map(|j| at(a, j) * at(b, j)).sum::<f64>() + if a == b { n as f64 * lambda } else { 0.0 };
                m[a * n + b] = v;
                m[b * n + a] = v;
            }
        }
        let y = cholesky_solve(m, n, &gd).expect("Woodbury system is positive definite");
        (0..k).map(|j| (d[j] - (0..n).map(|r| at(r, j) * y[r]).sum::<f64>()) / lambda).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Gaussian elimination on the explicitly formed k × k matrix, both branches.
    #[test]
    fn matches_a_direct_solve_in_both_regimes() {
        for (n, k) in [(9usize, 4usize), (3, 7)] {
            let g: Vec<f32> = (0..n * k).map(|i| ((i * 37 % 11) as f32 - 5.0) / 3.0).collect();
            let d: Vec<f64> = (0..k).map(|i| (i as f64 - 1.5) * 0.7).collect();
            let lambda = damping_lambda(&g, n, k, 0.1);
            let x = damped_covariance_solve(&g, n, k, lambda, &d);
            let mut a = vec![vec![0f64; k + 1]; k];
            for i in 0..k {
                for j in 0..k {
                    a[i][j] = (0..n).map(|r| g[r * k + i] as f64 * g[r * k + j] as f64).sum::<f64>() / n as f64;
                }
                a[i][i] += lambda;
                a[i][k] = d[i];
            }
            for c in 0..k {
                let p = (c..k).max_by(|&x, &y| a[x][c].abs().partial_cmp(&a[y][c].abs()).unwrap()).unwrap();
                a.swap(c, p);
                let pivot = a[c].clone();
                for (_, row) in a.iter_mut().enumerate().filter(|(r, _)| *r != c) {
                    let f = row[c] / pivot[c];
                    for (x, p) in row[c..].iter_mut().zip(&pivot[c..]) {
                        *x -= f * p;
                    }
                }
            }
            for i in 0..k {
                let want = a[i][k] / a[i][i];
                assert!((x[i] - want).abs() < 1e-9 * want.abs().max(1.0), "n={n} k={k}: {} vs {want}", x[i]);
            }
        }
    }
}
