//! TSDS against a plain, naive transcription of the reference algorithm's steps (full sorts,
//! a linear scan for the smallest entry instead of a heap), on small random embeddings with
//! near-duplicates, to 1e-9; and seeded sampling.

use crate::common;

use gradsift::methods::knn::{Exact, GpuKnn};
use gradsift::methods::tsds::{probabilities, probabilities_with, sample_with_replacement, Density, TsdsParams};

/// The reference's steps, written out plainly; `p` gives K and kde_K (already capped) and σ, α, C.
fn naive(x: &[f32], n: usize, q: &[f32], m: usize, dim: usize, p: &TsdsParams) -> Vec<f64> {
    let (big_k, kde_k) = (p.neighbours.expect("K"), p.kde_neighbours.expect("kde_K"));
    let (sigma, alpha, c) = (p.sigma, p.alpha, p.c);
    let d2 = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(u, v)| (*u as f64 - *v as f64).powi(2)).sum::<f64>();
    let row = |a: &[f32], i: usize| a[i * dim..(i + 1) * dim].to_vec();
    let mut top_d = vec![];
    let mut top_i = vec![];
    for j in 0..m {
        let mut all: Vec<(f64, usize)> = (0..n).map(|i| (d2(&row(q, j), &row(x, i)), i)).collect();
        all.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap().then(a.1.cmp(&b.1)));
        top_d.push(all[..big_k].iter().map(|p| p.0.sqrt()).collect::<Vec<_>>());
        top_i.push(all[..big_k].iter().map(|p| p.1).collect::<Vec<_>>());
    }
    let mut set: Vec<usize> = top_i.iter().flatten().copied().collect();
    set.sort();
    set.dedup();
    let kde = |u: usize| -> f64 {
        if sigma == 0.0 {
            return 1.0;
        }
        let mut ds: Vec<f64> = set.iter().map(|&l| d2(&row(x, u), &row(x, l))).collect();
        ds.sort_by(|a, b| a.partial_cmp(b).unwrap());
        ds.iter().take(kde_k).map(|d| (1.0 - d / (sigma * sigma)).max(0.0)).sum()
    };
    let kdes: Vec<Vec<f64>> = top_i.iter().map(|r| r.iter().map(|&i| kde(i)).collect()).collect();
    let mut active: Vec<(f64, usize, usize)> = (0..m).map(|j| (1.0 / kdes[j][0], 0, j)).collect();
    let mut dws: Vec<f64> = (0..m).map(|j| top_d[j][0] / kdes[j][0]).collect();
    let mut cost = vec![0.0; m];
    let mut last = vec![0usize; m];
    let (mut total, mut s) = (0.0, 0.0);
    while !active.is_empty() {
        let pos = (0..active.len())
            .min_by(|&a, &b| {
                let (x, y) = (active[a], active[b]);
                x.0.partial_cmp(&y.0).unwrap().then(x.1.cmp(&y.1)).then(x.2.cmp(&y.2))
            })
            .unwrap();
        let (count, k, j) = active.remove(pos);
        s = count;
        total -= cost[j];
        cost[j] = top_d[j][k + 1] * count - dws[j];
        total += cost[j];
        if alpha / c * total >= (1.0 - alpha) * m as f64 {
            break;
        }
        last[j] = k;
        if k < big_k - 2 {
            active.push((count + 1.0 / kdes[j][k + 1], k + 1, j));
            dws[j] += top_d[j][k + 1] / kdes[j][k + 1];
        }
    }
    let mut p = vec![0.0; n];
    for j in 0..m {
        let mut sum = 0.0;
        for k in 0..=last[j] {
            p[top_i[j][k]] += 1.0 / m as f64 / s / kdes[j][k];
            sum += 1.0 / m as f64 / s / kdes[j][k];
        }
        p[top_i[j][last[j] + 1]] += (1.0 / m as f64 - sum).max(0.0);
    }
    p
}

#[test]
fn probabilities_match_the_reference_steps() {
    let seed = common::fresh_seed("tsds probabilities");
    let (n, m, dim) = (400usize, 9usize, 5usize);
    let mut x = common::random_vec(n * dim, seed);
    // Near-duplicates: rows 1..10 copy row 0 with tiny noise, so the KDE matters.
    let noise = common::random_vec(10 * dim, seed + 1);
    for r in 1..10 {
        for d in 0..dim {
            x[r * dim + d] = x[d] + 0.01 * noise[r * dim + d];
        }
    }
    let q = common::random_vec(m * dim, seed + 2);
    for (k, kde_k, sigma, alpha, c) in
        [(12, 12, 0.75, 0.5, 5.0), (30, 7, 1.5, 0.3, 2.0), (5, 5, 0.0, 0.5, 5.0), (120, 120, 0.75, 0.9, 5.0)]
    {
        let params =
            TsdsParams { neighbours: Some(k), kde_neighbours: Some(kde_k), sigma, alpha, c, ..Default::default() };
        let ours = probabilities(&x, n, &q, m, dim, &params).unwrap();
        // The reference caps both at N/10 = 40.
        let capped = TsdsParams { neighbours: Some(k.min(n / 10)), kde_neighbours: Some(kde_k.min(n / 10)), ..params };
        let want = naive(&x, n, &q, m, dim, &capped);
        let err = ours.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f64, f64::max);
        let total: f64 = ours.iter().sum();
        eprintln!("K={k} kde_K={kde_k} sigma={sigma} alpha={alpha} C={c}: max |diff| {err:.2e}, sum p = {total:.12}");
        assert!(err <= 1e-9, "max |diff| {err}");
        assert!((total - 1.0).abs() <= 1e-9, "probabilities sum to {total}");
    }
    // Defaults: K = kde_K = N/10.
    let d = probabilities(&x, n, &q, m, dim, &TsdsParams::default()).unwrap();
    let tenth = TsdsParams { neighbours: Some(40), kde_neighbours: Some(40), ..TsdsParams::default() };
    let want = naive(&x, n, &q, m, dim, &tenth);
    assert!(d.iter().zip(&want).all(|(a, b)| (a - b).abs() <= 1e-9));
}

#[test]
fn sampling_is_reproducible_by_seed() {
    let p = vec![0.1, 0.0, 0.6, 0.3];
    let a = sample_with_replacement(&p, 1000, 7);
    assert_eq!(a, sample_with_replacement(&p, 1000, 7));
    assert_ne!(a, sample_with_replacement(&p, 1000, 8));
    assert!(!a.contains(&1), "an index with p = 0 was drawn");
    let share = a.iter().filter(|&&i| i == 2).count() as f64 / 1000.0;
    assert!((share - 0.6).abs() < 0.06, "index 2 drawn {share} of the time, p = 0.6");
}

#[test]
fn gpu_neighbours_give_the_same_probabilities() {
    let Some(c) = common::gpu() else { return };
    let knn = Exact::Gpu(GpuKnn::new(c.gpu.clone().unwrap()));
    let seed = common::fresh_seed("gpu_neighbours_give_the_same_probabilities");
    // More candidates than one 4,096-row tile.
    let (n, m, dim) = (4500usize, 6usize, 19usize);
    let x = common::random_vec(n * dim, seed);
    let q = common::random_vec(m * dim, seed + 1);
    for params in [
        TsdsParams::default(),
        TsdsParams { neighbours: Some(40), kde_neighbours: Some(9), sigma: 1.2, ..Default::default() },
    ] {
        let cpu = probabilities(&x, n, &q, m, dim, &params).unwrap();
        let gpu = probabilities_with(&x, n, &q, m, dim, Density::Candidates, &params, &knn).unwrap().probabilities;
        assert_eq!(cpu, gpu, "GPU neighbours changed the probabilities on {}", c.label);
    }
}

/// Brute force: every candidate of `subset`, full sort by (f64 squared distance, index).
fn brute_nearest(x: &[f32], subset: &[usize], qj: &[f32], dim: usize, k: usize) -> Vec<(f64, usize)> {
    let mut all: Vec<(f64, usize)> = subset
        .iter()
        .map(|&i| {
            let d: f64 = x[i * dim..(i + 1) * dim].iter().zip(qj).map(|(a, b)| (*a as f64 - *b as f64).powi(2)).sum();
            (d, i)
        })
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    all.truncate(k);
    all
}

#[test]
fn gpu_top_k_equals_brute_force() {
    let Some(c) = common::gpu() else { return };
    let knn = GpuKnn::new(c.gpu.clone().unwrap());
    let seed = common::fresh_seed("gpu_top_k_equals_brute_force");
    // (candidates, queries, dim, k): one tile; several tiles with k past one tile's worth of
    // sorted slots; TSDS's largest default K; k above the candidate count.
    for (n, m, dim, k) in [(37usize, 3usize, 5usize, 4usize), (9000, 4, 7, 700), (6000, 2, 3, 5000), (50, 2, 4, 80)] {
        let mut x = common::random_vec(n * dim, seed ^ n as u64);
        // Exact duplicates of row 0, so that ties must fall to the lower index.
        for r in [3usize, 11, n - 1] {
            let row0 = x[..dim].to_vec();
            x[r * dim..(r + 1) * dim].copy_from_slice(&row0);
        }
        let mut q = common::random_vec(m * dim, seed + 3);
        q[..dim].copy_from_slice(&x[..dim]);
        // Every other candidate: a subset, as the KDE step passes.
        for subset in [(0..n).collect::<Vec<_>>(), (0..n).filter(|i| i % 2 == 1 || *i == 0).collect()] {
            let got = knn.nearest(&x, &subset, &q, m, dim, k).unwrap();
            for j in 0..m {
                let want = brute_nearest(&x, &subset, &q[j * dim..(j + 1) * dim], dim, k);
                assert_eq!(got[j], want, "n={n} k={k} query {j}: GPU neighbours differ on {}", c.label);
            }
        }
        eprintln!("n={n} m={m} dim={dim} k={k}: equal on {}", c.label);
    }
}

/// `n` points around `clusters` random centres (spread 0.3 per coordinate, centres ±3).
fn clustered(n: usize, clusters: usize, dim: usize, seed: u64) -> Vec<f32> {
    let centres = common::random_vec(clusters * dim, seed);
    let noise = common::random_vec(n * dim, seed + 1);
    (0..n * dim).map(|i| 3.0 * centres[(i / dim % clusters) * dim + i % dim] + 0.3 * noise[i]).collect()
}

#[test]
fn ivf_scanning_every_cell_is_exact_and_default_probes_recall_most() {
    use gradsift::methods::knn::{IvfIndex, IvfParams};
    let seed = common::fresh_seed("ivf_scanning_every_cell_is_exact_and_default_probes_recall_most");
    let (n, m, dim, k) = (5000usize, 12usize, 16usize, 20usize);
    let x = clustered(n, 30, dim, seed);
    let q = clustered(m, 7, dim, seed + 5);
    let all: Vec<usize> = (0..n).collect();
    let exact: Vec<_> = (0..m).map(|j| brute_nearest(&x, &all, &q[j * dim..(j + 1) * dim], dim, k)).collect();
    let gpu = common::gpu().map(|c| Exact::Gpu(GpuKnn::new(c.gpu.unwrap())));
    let p = IvfParams { seed: seed % 1000, ..Default::default() };
    let cpu_index = IvfIndex::build(&x, &all, dim, &p, &Exact::Cpu).unwrap();
    assert_eq!(cpu_index.nlist(), 35, "√5000 / 2 cells");
    // Every cell probed: exact.
    assert_eq!(cpu_index.search(&x, &q, m, k, 35, &Exact::Cpu).unwrap(), exact);
    // The reference's 10 probes: approximate, every query still gets k neighbours.
    let approx = cpu_index.search(&x, &q, m, k, 10, &Exact::Cpu).unwrap();
    assert!(approx.iter().all(|a| a.len() == k), "every query gets k neighbours");
    // Recall is a property of the data, not a law: measured on fixed inputs, so the assertion
    // cannot fail on an unlucky draw.
    let (fx, fq) = (clustered(n, 30, dim, 17), clustered(m, 7, dim, 22));
    let fixed_exact: Vec<_> = (0..m).map(|j| brute_nearest(&fx, &all, &fq[j * dim..(j + 1) * dim], dim, k)).collect();
    let fixed = IvfIndex::build(&fx, &all, dim, &IvfParams { seed: 3, ..Default::default() }, &Exact::Cpu).unwrap();
    let found: usize = fixed
        .search(&fx, &fq, m, k, 10, &Exact::Cpu)
        .unwrap()
        .iter()
        .zip(&fixed_exact)
        .map(|(a, e)| a.iter().filter(|(_, i)| e.iter().any(|(_, j)| j == i)).count())
        .sum();
    let recall = found as f64 / (m * k) as f64;
    eprintln!("IVF nlist 35, nprobe 10, fixed inputs: recall@{k} = {recall:.3}");
    assert!(recall >= 0.9, "recall {recall}");
    // The same index and answers when the assignments run on the GPU.
    if let Some(g) = gpu.as_ref() {
        let gpu_index = IvfIndex::build(&x, &all, dim, &p, g).unwrap();
        assert_eq!(gpu_index.search(&x, &q, m, k, 10, g).unwrap(), approx, "GPU-built index differs");
    }
}

#[test]
fn tsds_with_an_ivf_index_probing_every_cell_equals_exact() {
    use gradsift::methods::knn::IvfParams;
    use gradsift::methods::tsds::KnnIndex;
    let seed = common::fresh_seed("tsds_with_an_ivf_index_probing_every_cell_equals_exact");
    let (n, m, dim) = (600usize, 5usize, 6usize);
    let x = clustered(n, 9, dim, seed);
    let q = clustered(m, 3, dim, seed + 2);
    let exact = TsdsParams { neighbours: Some(40), kde_neighbours: Some(12), ..Default::default() };
    let ivf = |nprobe| TsdsParams { index: KnnIndex::Ivf(IvfParams { nlist: Some(8), nprobe, seed: 1 }), ..exact };
    let want = probabilities(&x, n, &q, m, dim, &exact).unwrap();
    assert_eq!(probabilities(&x, n, &q, m, dim, &ivf(8)).unwrap(), want);
    let approx = probabilities(&x, n, &q, m, dim, &ivf(2)).unwrap();
    let total: f64 = approx.iter().sum();
    assert!((total - 1.0).abs() < 1e-9, "probabilities sum to {total}");
}

/// A float64 `.npy` file, as NumPy writes by default (through npyz's writer).
fn write_f64_npy(path: &std::path::Path, data: &[f32], rows: usize, cols: usize) {
    use npyz::WriterBuilder;
    let file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut w = npyz::WriteOptions::<f64>::new()
        .default_dtype()
        .shape(&[rows as u64, cols as u64])
        .writer(file)
        .begin_nd()
        .unwrap();
    w.extend(data.iter().map(|&x| x as f64)).unwrap();
    w.finish().unwrap();
}

/// The reference's interface: two float64 `.npy` matrices, no model, pool or target file.
/// The probabilities equal the library's on the same matrices (used as given), and the draw
/// is written as row indices.
#[test]
fn tsds_runs_on_npy_embeddings_alone() {
    let dir_tmp = common::tmp("tsds", "npy-only");
    let dir = dir_tmp.path();
    let seed = common::fresh_seed("tsds_runs_on_npy_embeddings_alone");
    let (n, m, dim) = (200usize, 5usize, 8usize);
    let (x, q) = (common::random_vec(n * dim, seed), common::random_vec(m * dim, seed + 1));
    // f64 on disk: compare with the library on the values rounded as the reader returns them.
    write_f64_npy(&dir.join("x.npy"), &x, n, dim);
    write_f64_npy(&dir.join("q.npy"), &q, m, dim);
    let out = dir.join("out");
    let r = std::process::Command::new(env!("CARGO_BIN_EXE_gradsift"))
        .args(["select", "--device", "cpu", "--method", "tsds", "--count", "7", "--no-replacement", "--pool-npy"])
        .arg(dir.join("x.npy"))
        .arg("--target-npy")
        .arg(dir.join("q.npy"))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let (probs, rows, cols) = gradsift::features::npy::read(&out.join("probabilities.npy")).unwrap();
    assert_eq!((rows, cols), (n, 1));
    let want = probabilities(&x, n, &q, m, dim, &TsdsParams::default()).unwrap();
    let err = probs.iter().zip(&want).map(|(&a, &b)| (a as f64 - b).abs()).fold(0f64, f64::max);
    assert!(err < 1e-6, "probabilities differ from the library's by {err}");
    let selected: Vec<usize> =
        serde_json::from_str(&std::fs::read_to_string(out.join("selected.json")).unwrap()).unwrap();
    assert_eq!(selected.len(), 7);
    assert!(!out.join("selected.jsonl").exists(), "no pool lines to copy");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["details"]["neighbours_used"]["k"], 20, "K capped at N/10");
    assert_eq!(manifest["details"]["source"]["npy"].as_array().unwrap().len(), 2);
}

/// Rows of `x` (`[n, dim]`) scaled to unit norm.
fn unit_rows(x: &[f32], dim: usize) -> Vec<f32> {
    x.chunks_exact(dim)
        .flat_map(|r| {
            let norm = r.iter().map(|v| v * v).sum::<f32>().sqrt();
            r.iter().map(move |v| v / norm)
        })
        .collect()
}

/// The density estimate discounts near-duplicates as the reference's does: a planted group of
/// six near-identical candidates next to the query together gets the probability of ONE
/// unrelated candidate of the query's list (each copy a sixth), where without the estimate
/// (σ = 0) it gets six times as much; the reference's steps give the same numbers. Then every
/// candidate gets a large shared component, as LESS's Adam features share the checkpoint's
/// m/√v: measured on those vectors every pair falls inside σ and the discount is lost;
/// measured on the same candidates' own features ([`Density::Rows`], as the pipeline's plain
/// gradients) it is back. Fixed inputs: the margins are properties, not tolerances.
#[test]
fn planted_near_duplicates_weigh_as_one_candidate() {
    let (spread, dups, dim) = (300usize, 6usize, 32usize);
    let q = unit_rows(&common::random_vec(dim, 41), dim);
    // The group near the query (near-copies of one vector), then unrelated unit vectors.
    let near: Vec<f32> = q.iter().zip(common::random_vec(dim, 42)).map(|(a, b)| a + 0.3 * b).collect();
    let mut x = Vec::new();
    for k in 0..dups {
        let noise = common::random_vec(dim, 100 + k as u64);
        x.extend(near.iter().zip(noise).map(|(a, b)| a + 1e-3 * b));
    }
    x.extend_from_slice(&common::random_vec(spread * dim, 43));
    let x = unit_rows(&x, dim);
    let n = dups + spread;
    let params = |sigma| TsdsParams { neighbours: Some(30), kde_neighbours: Some(30), sigma, ..TsdsParams::default() };
    // The group's total over the largest probability of one unrelated candidate.
    let weight = |p: &[f64]| p[..dups].iter().sum::<f64>() / p[dups..].iter().copied().fold(0.0, f64::max);

    let with_kde = probabilities(&x, n, &q, 1, dim, &params(0.75)).unwrap();
    let without = probabilities(&x, n, &q, 1, dim, &params(0.0)).unwrap();
    for (ours, sigma) in [(&with_kde, 0.75), (&without, 0.0)] {
        let want = naive(&x, n, &q, 1, dim, &params(sigma));
        assert!(ours.iter().zip(&want).all(|(a, b)| (a - b).abs() <= 1e-9), "σ = {sigma}: not the reference's");
    }
    eprintln!(
        "group of {dups} weighs {:.3} candidates with the KDE, {:.3} without",
        weight(&with_kde),
        weight(&without)
    );
    assert!((weight(&with_kde) - 1.0).abs() <= 0.05, "with the KDE the group weighs {}", weight(&with_kde));
    assert!(weight(&without) >= 5.0, "without the KDE the group weighs {}", weight(&without));

    // A shared component three times a row's own norm, on every candidate.
    let shared = unit_rows(&common::random_vec(dim, 44), dim);
    let shifted: Vec<f32> = x.iter().enumerate().map(|(i, v)| v + 3.0 * shared[i % dim]).collect();
    let shifted = unit_rows(&shifted, dim);
    let p = &params(0.75);
    let on_shifted = probabilities(&shifted, n, &q, 1, dim, p).unwrap();
    let on_own = probabilities_with(&shifted, n, &q, 1, dim, Density::Rows { data: &x, dim }, p, &Exact::Cpu).unwrap();
    let rho = &on_own.densities;
    eprintln!(
        "shared component: the group weighs {:.3} candidates on the shifted vectors, {:.3} on their own (rho {:.2}..{:.2})",
        weight(&on_shifted),
        weight(&on_own.probabilities),
        rho[0],
        rho[rho.len() - 1]
    );
    assert!(weight(&on_shifted) >= 3.0, "the shared component should hide the duplicates: {}", weight(&on_shifted));
    assert!((weight(&on_own.probabilities) - 1.0).abs() <= 0.05, "{}", weight(&on_own.probabilities));
}
