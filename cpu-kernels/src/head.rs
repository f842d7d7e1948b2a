//! The output head's log-probabilities of target tokens and their gradients with respect to the
//! hidden states, in one pass over the vocabulary: no `[rows, V]` logits, probabilities or
//! gradients exist, only a tile of `ROWS` rows' logits over one chunk of the vocabulary at a
//! time.
//!
//! For a row with hidden state h, head W `[d, V]`, bias b, logits z = s(h·W + b) (s the optional
//! soft cap c·tanh(·/c)), target y and p = softmax(z):
//!   log p(y) = z_y − logsumexp(z),   ∂log p(y)/∂h = s′_y·W[:, y] − Σ_v p_v·s′_v·W[:, v].
//! The sums over the vocabulary run a chunk at a time with a running maximum m (an online
//! softmax): each chunk adds e^{z − m} to the row's normaliser and e^{z − m}·s′·W[:, chunk]ᵀ to its
//! gradient sum, both rescaled by e^{m_old − m} when the maximum grows.

use rayon::prelude::*;

use crate::matmul::{product, View};
use crate::rows;

/// Rows a tile holds, each tile a task: its `ROWS × chunk` logits stay in cache.
const ROWS: usize = 128;

/// What one row has seen of the vocabulary so far.
#[derive(Clone, Copy)]
struct Row {
    /// The largest logit, and Σ e^{z − max} under it.
    max: f32,
    norm: f32,
    /// z_y and s′_y once the target's chunk has passed (s′ = 1 without a soft cap).
    z_y: f32,
    s_y: f32,
}

/// Vocabulary entries `first..first + entries` of the head's weight W `[dim, V]`, read where
/// they lie: W[i, first + j] is `data[i·dim_stride + j·entry_stride]`. A tied head is the
/// embedding `[V, dim]` transposed, so its entries are contiguous rows ([`Chunk::rows`]); an
/// untied one kept `[dim, V]` row-major has its chunk's columns a row apart
/// ([`Chunk::columns_of`]); neither is copied.
#[derive(Clone, Copy, Debug)]
pub struct Chunk<'a> {
    data: &'a [f32],
    entries: usize,
    dim_stride: usize,
    entry_stride: usize,
}

impl<'a> Chunk<'a> {
    /// The chunk's columns gathered `[dim, c]` row-major.
    ///
    /// # Panics
    /// When `data` is not whole columns of `dim`.
    pub fn columns(data: &'a [f32], dim: usize) -> Self {
        let entries = data.len() / dim.max(1);
        assert_eq!(entries * dim, data.len(), "a chunk of whole columns");
        Chunk { data, entries, dim_stride: entries, entry_stride: 1 }
    }

    /// The entries' rows of W's transpose `[V, dim]`, `[c, dim]` row-major.
    ///
    /// # Panics
    /// When `data` is not whole rows of `dim`.
    pub fn rows(data: &'a [f32], dim: usize) -> Self {
        let entries = data.len() / dim.max(1);
        assert_eq!(entries * dim, data.len(), "a chunk of whole rows");
        Chunk { data, entries, dim_stride: 1, entry_stride: dim }
    }

    /// Columns `first..first + c` of the whole W `[dim, V]` row-major in `w`.
    ///
    /// # Panics
    /// When `w` is not `dim × vocab` or the columns run past it.
    pub fn columns_of(w: &'a [f32], dim: usize, vocab: usize, first: usize, c: usize) -> Self {
        assert_eq!(w.len(), dim * vocab, "the head's weight");
        assert!(first + c <= vocab, "columns past the vocabulary");
        Chunk { data: &w[first.min(w.len())..], entries: c, dim_stride: vocab, entry_stride: 1 }
    }

    /// W[i, first + j].
    fn at(&self, i: usize, j: usize) -> f32 {
        self.data[i * self.dim_stride + j * self.entry_stride]
    }

    /// The chunk as a `dim × entries` matrix.
    fn view(&self, dim: usize) -> View<'a> {
        View::strided(self.data, dim, self.entries, self.dim_stride, self.entry_stride)
    }
}

/// The head's log-probabilities of `targets` and their gradients with respect to `hidden`
/// (`[n, dim]` row-major), taken over the vocabulary a chunk of columns at a time
/// ([`Self::chunk`]): the caller hands each chunk of the head's weight as it is read, so no
/// copy of the whole head is ever made.
pub struct HeadPass<'a> {
    hidden: &'a [f32],
    targets: &'a [usize],
    dim: usize,
    softcap: Option<f32>,
    /// Whether the gradients are wanted.
    grad: bool,
    rows: Vec<Row>,
    /// Per row, Σ e^{z − max}·s′·W[:, v] over the chunks seen (`[n, dim]`).
    sums: Vec<f32>,
    /// Per row, W[:, y] once seen (`[n, dim]`).
    w_y: Vec<f32>,
}

impl<'a> HeadPass<'a> {
    /// A pass over `hidden` `[n, dim]` whose rows predict `targets` (`n` of them), logits
    /// soft-capped at `softcap`, with the gradients when `grad`.
    ///
    /// # Panics
    /// When `hidden` is not `n × dim`.
    pub fn new(hidden: &'a [f32], targets: &'a [usize], dim: usize, softcap: Option<f32>, grad: bool) -> Self {
        let n = targets.len();
        assert_eq!(hidden.len(), n * dim, "hidden states");
        let row = Row { max: f32::NEG_INFINITY, norm: 0.0, z_y: f32::NAN, s_y: 1.0 };
        // Both stay zero without `grad`; they pace the tiles either way.
        let (sums, w_y) = (vec![0.0; n * dim], vec![0.0; n * dim]);
        HeadPass { hidden, targets, dim, softcap, grad, rows: vec![row; n], sums, w_y }
    }

    /// Takes vocabulary entries `first..first + c`: the head's `weight` for them, and their
    /// `bias` where the head has one.
    ///
    /// # Panics
    /// When `bias` is not of `c` entries, or `weight` does not hold `dim` features of each
    /// entry.
    pub fn chunk(&mut self, first: usize, weight: Chunk<'_>, bias: Option<&[f32]>) {
        let d = self.dim;
        if d == 0 || self.targets.is_empty() {
            return;
        }
        let c = weight.entries;
        let last = (d - 1) * weight.dim_stride + c.saturating_sub(1) * weight.entry_stride;
        assert!(c == 0 || last < weight.data.len(), "the chunk's weights lie in its slice");
        assert!(bias.is_none_or(|b| b.len() == c), "bias of the chunk's columns");
        let (hidden, targets, softcap, grad) = (self.hidden, self.targets, self.softcap, self.grad);
        self.rows
            .par_chunks_mut(ROWS)
            .zip(self.sums.par_chunks_mut(ROWS * d))
            .zip(self.w_y.par_chunks_mut(ROWS * d))
            .enumerate()
            .for_each_init(
                || (Vec::new(), Vec::new()),
                |(z, slope), (i, ((rows, sums), w_y))| {
                    let span = i * ROWS..i * ROWS + rows.len();
                    let tile = Tile { first, weight, bias, softcap, grad, d, c };
                    tile.take(&hidden[span.start * d..span.end * d], &targets[span], rows, sums, w_y, z, slope);
                },
            );
    }

    /// log p(target) of every row and, when asked for, ∂log p(target)/∂h `[n, dim]` row-major.
    ///
    /// # Panics
    /// When a row's target was in no chunk.
    pub fn finish(self) -> (Vec<f32>, Option<Vec<f32>>) {
        assert!(self.rows.iter().all(|r| !r.z_y.is_nan()), "a target outside the chunks taken");
        let logp = self.rows.iter().map(|r| r.z_y - r.max - r.norm.ln()).collect();
        let grad = self.grad.then(|| {
            let mut g = self.sums;
            // s′_y·W[:, y] − (Σ e^{z − max}·s′·W[:, v]) / normaliser.
            for ((row, w_y), r) in g.chunks_exact_mut(self.dim).zip(self.w_y.chunks_exact(self.dim)).zip(&self.rows) {
                row.iter_mut().zip(w_y).for_each(|(x, w)| *x = r.s_y * w - *x / r.norm);
            }
            g
        });
        (logp, grad)
    }
}

/// One chunk of the vocabulary, as one tile of rows takes it.
struct Tile<'a> {
    first: usize,
    weight: Chunk<'a>,
    bias: Option<&'a [f32]>,
    softcap: Option<f32>,
    grad: bool,
    d: usize,
    c: usize,
}

impl Tile<'_> {
    /// Adds the chunk to what rows `h` `[m, d]` with targets `y` have `seen`; `z` and `slope`
    /// are scratch.
    #[allow(clippy::too_many_arguments)]
    fn take(
        &self,
        h: &[f32],
        y: &[usize],
        seen: &mut [Row],
        sums: &mut [f32],
        w_y: &mut [f32],
        z: &mut Vec<f32>,
        slope: &mut Vec<f32>,
    ) {
        let (d, c, m) = (self.d, self.c, y.len());
        z.resize(m * c, 0.0);
        let slopes = self.softcap.is_some() && self.grad;
        slope.resize(if slopes { m * c } else { 0 }, 0.0);
        let w = self.weight.view(d);
        product(z, false, View::rows(h, 0, m, d), w, 1.0);
        let chunk = self.first..self.first + c;
        for (r, row) in z.chunks_exact_mut(c).enumerate() {
            if let Some(b) = self.bias {
                row.iter_mut().zip(b).for_each(|(x, b)| *x += b);
            }
            if let Some(cap) = self.softcap {
                rows::soft_cap(row, cap, slopes.then(|| &mut slope[r * c..(r + 1) * c]));
            }
            let state = &mut seen[r];
            if chunk.contains(&y[r]) {
                let j = y[r] - self.first;
                state.z_y = row[j];
                if slopes {
                    state.s_y = slope[r * c + j];
                }
                if self.grad {
                    w_y[r * d..(r + 1) * d].iter_mut().enumerate().for_each(|(i, x)| *x = self.weight.at(i, j));
                }
            }
            // e^{z − max} under the new maximum; what was summed under the old one is rescaled.
            let top = state.max.max(rows::max(row));
            let rescale = (state.max - top).exp();
            state.norm = state.norm * rescale + rows::exp_sum(row, top);
            state.max = top;
            if self.grad {
                sums[r * d..(r + 1) * d].iter_mut().for_each(|x| *x *= rescale);
                if slopes {
                    row.iter_mut().zip(&slope[r * c..(r + 1) * c]).for_each(|(e, s)| *e *= s);
                }
            }
        }
        if self.grad {
            product(sums, true, View::rows(z, 0, m, c), w.t(), 1.0);
        }
    }
}

#[cfg(test)]
mod tests;
