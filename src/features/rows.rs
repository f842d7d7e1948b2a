//! Row blocks of a feature matrix, wherever it lives: the scorers read candidates through this
//! trait a block at a time, so the same code scores an in-memory matrix (tests, small pools) and
//! a store on disk without loading it (large pools, flat memory).

use std::borrow::Cow;

use super::npy::NpyFile;
use super::store::{FeatureFile, Features};
use crate::error::Result;

/// Candidate rows scored per block: the scorers hold one block of the pool at a time.
pub(crate) const BLOCK_ROWS: usize = 4096;

/// A `[rows, dim]` feature matrix read by blocks of rows.
pub trait FeatureRows {
    fn rows(&self) -> usize;
    fn dim(&self) -> usize;
    /// Rows `r0 .. r0 + n`, row-major.
    fn block(&self, r0: usize, n: usize) -> Result<Cow<'_, [f32]>>;
}

impl FeatureRows for Features {
    fn rows(&self) -> usize {
        self.rows
    }
    fn dim(&self) -> usize {
        self.dim
    }
    fn block(&self, r0: usize, n: usize) -> Result<Cow<'_, [f32]>> {
        Ok(Cow::Borrowed(&self.data[r0 * self.dim..(r0 + n) * self.dim]))
    }
}

impl FeatureRows for NpyFile {
    fn rows(&self) -> usize {
        self.rows
    }
    fn dim(&self) -> usize {
        self.cols
    }
    fn block(&self, r0: usize, n: usize) -> Result<Cow<'_, [f32]>> {
        Ok(Cow::Owned(self.read_rows(r0, n)?))
    }
}

impl FeatureRows for FeatureFile {
    fn rows(&self) -> usize {
        self.rows
    }
    fn dim(&self) -> usize {
        self.dim
    }
    fn block(&self, r0: usize, n: usize) -> Result<Cow<'_, [f32]>> {
        Ok(Cow::Owned(self.read_rows(r0, n)?))
    }
}

/// Each row dotted with `v`, in f64, a block of rows at a time (PRISM's g·H⁻¹d, TIF's IF).
pub(crate) fn dot_rows(rows: &dyn FeatureRows, v: &[f64]) -> Result<Vec<f64>> {
    let (n, k) = (rows.rows(), rows.dim());
    let mut out = Vec::with_capacity(n);
    for r0 in (0..n).step_by(BLOCK_ROWS) {
        let b = BLOCK_ROWS.min(n - r0);
        let block = rows.block(r0, b)?;
        out.extend(block.chunks(k.max(1)).take(b).map(|g| g.iter().zip(v).map(|(&g, x)| g as f64 * x).sum::<f64>()));
    }
    Ok(out)
}
