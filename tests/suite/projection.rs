//! The WGSL projection kernel against the plain-Rust reference, on fresh random inputs whose
//! sizes are not multiples of the tile sizes (including |θ| > 65,535 and several passes), and
//! the Johnson–Lindenstrauss property of the projection on both backends; the same for the
//! sparse projection, whose kernel must equal the Rust one bit for bit.

use crate::common;

use gradsift::features::sparse::{GpuSparseProjector, SparseJl};
use gradsift::features::{project_cpu, rng, ProjectionKind, Projector};

/// The definition, one element at a time, in f64: P[r, c] = ±1/√k from (seed, r, c).
fn naive(g: &[f32], e: usize, n: usize, seed: u64, k: usize) -> Vec<f64> {
    let mut out = vec![0f64; e * k];
    for r in 0..k {
        for c in 0..n {
            let p = rng::rademacher(seed, r as u32, c as u32) as f64 / (k as f64).sqrt();
            for i in 0..e {
                out[i * k + r] += p * g[i * n + c] as f64;
            }
        }
    }
    out
}

#[test]
fn cpu_projection_equals_the_definition() {
    let seed = common::fresh_seed("cpu_projection_equals_the_definition");
    for (e, n, k) in [(1, 1, 1), (3, 1000, 67), (5, 4099, 130)] {
        let g = common::random_vec(e * n, seed ^ n as u64);
        let got: Vec<f64> = project_cpu(&g, e, n, seed, k).iter().map(|&x| x as f64).collect();
        let err = common::rel_err(&got, &naive(&g, e, n, seed, k));
        assert!(err <= 1e-6, "e={e} n={n} k={k}: rel err {err:.3e}");
    }
}

/// The sparse P's definition in f64: column c has ±1/√nnz at `slot(c, b)` for each block b.
fn naive_sparse(g: &[f32], e: usize, n: usize, jl: &SparseJl, nnz: usize) -> Vec<f64> {
    let k = jl.k();
    let mut out = vec![0f64; e * k];
    for c in 0..n {
        for b in 0..nnz {
            let (r, neg) = jl.slot(c as u32, b);
            let p = if neg { -1.0 } else { 1.0 } / (nnz as f64).sqrt();
            for i in 0..e {
                out[i * k + r] += p * g[i * n + c] as f64;
            }
        }
    }
    out
}

#[test]
fn sparse_projection_has_one_nonzero_per_block_and_equals_the_definition() {
    let seed = common::fresh_seed("sparse_projection_equals_the_definition");
    // k < nnz caps the nonzeros at k; k not a multiple of nnz gives blocks of two sizes.
    for (e, n, k, nnz) in [(1, 1, 1, 8), (3, 1000, 67, 8), (5, 4099, 130, 4), (2, 500, 3, 8)] {
        let jl = SparseJl::new(seed, k, nnz).unwrap();
        let used = nnz.min(k);
        let mut hits = vec![0usize; k];
        for c in 0..n as u32 {
            for b in 0..used {
                let (r, _) = jl.slot(c, b);
                assert!(
                    r >= b * k / used && r < (b + 1) * k / used,
                    "column {c}, block {b}: row {r} outside its block"
                );
                hits[r] += 1;
            }
        }
        // Rows are hit about equally: n·nnz/k each (a loose bound: a fault skews it badly).
        let mean = (n * used) as f64 / k as f64;
        if mean >= 50.0 {
            let worst = hits.iter().map(|&h| (h as f64 - mean).abs()).fold(0.0, f64::max);
            assert!(worst <= 6.0 * mean.sqrt() + 1.0, "k={k}: a row is hit {worst} away from the mean {mean}");
        }
        let g = common::random_vec(e * n, seed ^ n as u64);
        let got: Vec<f64> = jl.project_cpu(&g, e, n).unwrap().iter().map(|&x| x as f64).collect();
        let err = common::rel_err(&got, &naive_sparse(&g, e, n, &jl, used));
        // f32 sums of `terms` signed values against f64 ones: rounding grows like √terms·ε (a
        // fixed 1e-6 failed at k = 3, 500 terms a row, with a relative 1.06e-6). A wrong row or
        // sign errs by O(1).
        let terms = (n * used).div_ceil(k) as f64;
        let tol = 4.0 * terms.sqrt() * f32::EPSILON as f64;
        assert!(err <= tol, "e={e} n={n} k={k} nnz={nnz}: rel err {err:.3e} > {tol:.1e}");
    }
}

#[test]
fn wgsl_sparse_projection_equals_rust_bit_for_bit() {
    let Some(c) = common::gpu() else { return };
    let kernel = GpuSparseProjector::new(c.gpu.clone().unwrap());
    let seed = common::fresh_seed("wgsl_sparse_projection_equals_rust_bit_for_bit");
    // 32 examples a dispatch; at k = 64 and nnz = 8 a slab holds 131,072 columns, so the last
    // case runs three slabs. The kernel is called twice with one P (its lists are reused).
    for (e, n, k, nnz) in [(1, 1, 1, 8), (3, 1000, 67, 8), (37, 2_053, 65, 2), (2, 300_001, 64, 8), (3, 300_001, 64, 8)]
    {
        let jl = SparseJl::new(seed, k, nnz).unwrap();
        let g = common::random_vec(e * n, seed.wrapping_add((e * n) as u64));
        let got = kernel.project(&jl, &g, e, n).unwrap();
        let want = jl.project_cpu(&g, e, n).unwrap();
        let differ = got.iter().zip(&want).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
        assert_eq!(differ, 0, "e={e} n={n} k={k} nnz={nnz}: {differ} of {} features differ on {}", want.len(), c.label);
    }
}

#[test]
fn wgsl_projection_equals_rust_reference() {
    let Some(c) = common::gpu() else { return };
    let kernel = gradsift::features::GpuProjector::new(c.gpu.clone().unwrap());
    let seed = common::fresh_seed("wgsl_projection_equals_rust_reference");
    // Sizes straddle the kernel's tiles: 64 rows per workgroup, 8 examples per invocation,
    // 32 examples per group, 2,048 columns per chunk, 131,072 columns per pass.
    for (e, n, k) in [(1, 1, 1), (3, 1000, 67), (9, 70_001, 130), (37, 2_053, 65), (2, 140_003, 257)] {
        let g = common::random_vec(e * n, seed.wrapping_add((e * n) as u64));
        let got: Vec<f64> = kernel.project(&g, e, n, seed, k).unwrap().iter().map(|&x| x as f64).collect();
        let want: Vec<f64> = project_cpu(&g, e, n, seed, k).iter().map(|&x| x as f64).collect();
        let err = common::rel_err(&got, &want);
        eprintln!("e={e} n={n} k={k}: rel err {err:.2e}");
        assert!(err <= 1e-5, "e={e} n={n} k={k}: rel err {err:.3e} on {}", c.label);
    }
}

common::each_backend! {
    /// Johnson–Lindenstrauss, on 200 random unit vectors (fixed seeds, so the check is
    /// deterministic). For unit u ≠ v the projected inner product has standard deviation ≈ 1/√k,
    /// and a norm ‖Pu‖² has ≈ √2/√k. Checked: the 200 inner products ⟨u_i, u_(i+1 mod 200)⟩ each
    /// within 4/√k; the RMS error over all 19,900 pairs within 10% of 1/√k and over the 200 norms
    /// within 15% of √2/√k (a correlated or biased generator would inflate them). The worst pair
    /// is printed: over 19,900 pairs it is expected near 4.5/√k, so 4/√k does not bound it.
    fn projection_preserves_inner_products(c) {
        for kind in [ProjectionKind::Dense, ProjectionKind::Sparse] {
            let proj = Projector::new(c.gpu.as_ref(), kind, 7, 1024, 8).unwrap();
            johnson_lindenstrauss(&proj, &format!("{} P on {}", gradsift::choice::Choice::name(kind), c.label));
        }
    }
}

/// See `projection_preserves_inner_products`.
fn johnson_lindenstrauss(proj: &Projector, label: &str) {
    let (m, n, k) = (200usize, 3000usize, 1024usize);
    let mut g = common::random_vec(m * n, 12345);
    for row in g.chunks_mut(n) {
        let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt();
        row.iter_mut().for_each(|x| *x /= norm);
    }
    let sigma = 1.0 / (k as f64).sqrt();
    let f = proj.apply(g.clone(), m, n).unwrap();
    let dot = |a: &[f32], i: usize, j: usize, d: usize| -> f64 {
        (0..d).map(|t| a[i * d + t] as f64 * a[j * d + t] as f64).sum()
    };
    let (mut worst, mut sq, mut norm_sq) = (0f64, 0f64, 0f64);
    for i in 0..m {
        for j in i..m {
            let err = (dot(&g, i, j, n) - dot(&f, i, j, k)).abs();
            if j == i {
                norm_sq += err * err;
                continue;
            }
            if j == i + 1 || (i == 0 && j == m - 1) {
                assert!(err <= 4.0 * sigma, "⟨u{i},u{j}⟩ off by {err} > 4/√k on {}", label);
            }
            worst = worst.max(err);
            sq += err * err;
        }
    }
    let rms = (sq / (m * (m - 1) / 2) as f64).sqrt();
    let norm_rms = (norm_sq / m as f64).sqrt();
    eprintln!(
        "JL on {}: pair RMS {:.3}/√k, norm RMS {:.3}/√k, worst pair {:.2}/√k",
        label,
        rms / sigma,
        norm_rms / sigma,
        worst / sigma
    );
    assert!((rms / sigma - 1.0).abs() <= 0.1, "pair RMS error {rms} is not ~1/√k on {}", label);
    assert!(
        (norm_rms / sigma / 2f64.sqrt() - 1.0).abs() <= 0.15,
        "norm RMS error {norm_rms} is not ~√2/√k on {}",
        label
    );
}
