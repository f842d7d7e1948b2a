//! The WGSL projection kernel against the plain-Rust reference, on fresh random inputs whose
//! sizes are not multiples of the tile sizes (including |θ| > 65,535 and several passes), and
//! the Johnson–Lindenstrauss property of the projection on both backends.

mod common;

use gradsift::features::{project_cpu, rng, GpuProjector, Projector};

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

#[test]
fn wgsl_projection_equals_rust_reference() {
    let Some(c) = common::gpu() else { return };
    let kernel = GpuProjector::new(c.gpu.clone().unwrap());
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

#[test]
fn projection_preserves_inner_products() {
    let (m, n, k) = (200usize, 3000usize, 1024usize);
    let mut g = common::random_vec(m * n, 12345);
    for row in g.chunks_mut(n) {
        let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt();
        row.iter_mut().for_each(|x| *x /= norm);
    }
    let bound = 4.0 / (k as f64).sqrt();
    for c in common::devices() {
        let proj = match &c.gpu {
            Some(gpu) => Projector::Gpu { kernel: std::sync::Arc::new(GpuProjector::new(gpu.clone())), seed: 7, k },
            None => Projector::Cpu { seed: 7, k },
        };
        let f = proj.apply(g.clone(), m, n).unwrap();
        let mut worst: f64 = 0.0;
        for i in 0..m {
            for j in i..m {
                let exact: f64 = (0..n).map(|t| g[i * n + t] as f64 * g[j * n + t] as f64).sum();
                let approx: f64 = (0..k).map(|t| f[i * k + t] as f64 * f[j * k + t] as f64).sum();
                worst = worst.max((exact - approx).abs());
            }
        }
        eprintln!("JL on {}: max |Δ⟨u,v⟩| = {worst:.4} (bound 4/√k = {bound:.4})", c.label);
        assert!(worst <= bound, "inner products off by {worst} > {bound} on {}", c.label);
    }
}
