//! The first two principal components of a feature matrix, by power iteration with deflation on
//! the centred data (f64). Enough for a picture; signs are fixed so the map does not mirror
//! between runs.

/// Projects `rows × dim` row-major `data` onto its top two principal directions.
pub fn pca2(data: &[f32], rows: usize, dim: usize) -> Vec<(f64, f64)> {
    let mut mean = vec![0f64; dim];
    for r in 0..rows {
        for (m, &x) in mean.iter_mut().zip(&data[r * dim..(r + 1) * dim]) {
            *m += x as f64;
        }
    }
    mean.iter_mut().for_each(|m| *m /= rows.max(1) as f64);
    let centred: Vec<f64> = (0..rows * dim).map(|i| data[i] as f64 - mean[i % dim]).collect();
    let mut comps: Vec<Vec<f64>> = Vec::new();
    for c in 0..2 {
        // Deterministic start, not orthogonal to any particular axis.
        let mut v: Vec<f64> = (0..dim).map(|j| 1.0 + ((j * 7 + c * 13) % 11) as f64 / 11.0).collect();
        for _ in 0..100 {
            // w = Xᵀ X v, minus the earlier components.
            let xv: Vec<f64> = (0..rows).map(|r| dot(&centred[r * dim..(r + 1) * dim], &v)).collect();
            let mut w = vec![0f64; dim];
            for r in 0..rows {
                for (wj, &x) in w.iter_mut().zip(&centred[r * dim..(r + 1) * dim]) {
                    *wj += x * xv[r];
                }
            }
            for u in &comps {
                let p = dot(&w, u);
                w.iter_mut().zip(u).for_each(|(a, b)| *a -= p * b);
            }
            let norm = dot(&w, &w).sqrt();
            if norm == 0.0 {
                break;
            }
            v = w.into_iter().map(|x| x / norm).collect();
        }
        // Fix the sign: the largest-magnitude coordinate is positive.
        let big = v.iter().copied().fold(0f64, |a, x| if x.abs() > a.abs() { x } else { a });
        if big < 0.0 {
            v.iter_mut().for_each(|x| *x = -*x);
        }
        comps.push(v);
    }
    (0..rows)
        .map(|r| {
            let row = &centred[r * dim..(r + 1) * dim];
            (dot(row, &comps[0]), dot(row, &comps[1]))
        })
        .collect()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}
