//! Rows scaled to unit length: cosine similarity is their dot product.

/// Rows of `data` (`[rows, dim]`) scaled to unit L2 norm, in f64; zero rows stay zero.
pub fn unit_rows(data: &[f32], rows: usize, dim: usize) -> Vec<f64> {
    let mut out = vec![0f64; rows * dim];
    for r in 0..rows {
        let row = &data[r * dim..(r + 1) * dim];
        let norm = row.iter().map(|&x| (x as f64) * (x as f64)).sum::<f64>().sqrt();
        if norm > 0.0 {
            for (o, &x) in out[r * dim..(r + 1) * dim].iter_mut().zip(row) {
                *o = x as f64 / norm;
            }
        }
    }
    out
}

/// [`unit_rows`] rounded to f32, for upload to a GPU kernel.
pub(crate) fn unit_rows_f32(data: &[f32], rows: usize, dim: usize) -> Vec<f32> {
    unit_rows(data, rows, dim).into_iter().map(|x| x as f32).collect()
}
