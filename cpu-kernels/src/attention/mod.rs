//! Causal softmax attention, forward and backward, a tile of queries at a time.
//!
//! Layouts are row-major: queries `[B, H, T, d]`, keys and values `[B, KV, T, d]` with KV
//! dividing H (grouped-query heads: query head h reads key head h / (H / KV)), the output `[B,
//! H, T, d]`, the log-sum-exps `[B, H, T]`. Query i sees key j when j ≤ i and, with a window w,
//! i − j < w. With s = scale·q·kᵀ, z = c·tanh(s/c) where the layer soft-caps (else z = s), p =
//! softmax(z) over the keys a query sees and o = p·v, the backward of a loss with ∂L/∂o = dO is,
//! per query row:
//!   dV = pᵀ·dO,   dP = dO·vᵀ,   dZ = p ⊙ (dP − rowsum(dO ⊙ o)),   dS = dZ ⊙ sech²(s/c),
//!   dQ = scale·dS·k,   dK = scale·dSᵀ·q,
//! and grouped-query heads sum dK and dV over the query heads that share a key head.

mod backward;
mod forward;

pub use backward::{backward, Saved};
pub use forward::forward;

/// Query rows a tile holds: its scores, `TILE × T` floats (512 KiB at T = 2,048), stay in the
/// second-level cache while the softmax passes over them.
const TILE: usize = 64;

/// The sizes of one attention call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub batch: usize,
    /// Query heads.
    pub heads: usize,
    /// Key and value heads; divides `heads`.
    pub kv_heads: usize,
    /// Sequence length (queries and keys).
    pub len: usize,
    pub head_dim: usize,
}

/// What the scores are: `scale·q·kᵀ`, soft-capped at `softcap`, causal, within `window` keys.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scores {
    pub scale: f32,
    /// Gemma-2's soft cap c: z = c·tanh(s/c).
    pub softcap: Option<f32>,
    /// A sliding window: query i sees keys i − w + 1 ..= i.
    pub window: Option<usize>,
}

impl Shape {
    fn check(&self) {
        assert!(
            self.kv_heads > 0 && self.heads.is_multiple_of(self.kv_heads),
            "{} query heads on {} key heads",
            self.heads,
            self.kv_heads
        );
    }

    fn queries(&self) -> usize {
        self.batch * self.heads * self.len * self.head_dim
    }

    fn keys(&self) -> usize {
        self.batch * self.kv_heads * self.len * self.head_dim
    }
}

impl Scores {
    /// The keys query `i` sees: `first..=i`.
    fn first_key(&self, i: usize) -> usize {
        self.window.map_or(0, |w| (i + 1).saturating_sub(w))
    }
}

/// One tile's place: query head `head` of batch row `row`, queries `q0..q1`, and the keys
/// `k0..q1` any of them sees.
#[derive(Debug, Clone, Copy)]
struct Tile {
    /// Offset of the query head's `[T, d]` block in the queries.
    q_head: usize,
    /// Offset of its key head's `[T, d]` block in the keys and values.
    kv_head: usize,
    q0: usize,
    q1: usize,
    k0: usize,
}

impl Tile {
    fn new(shape: &Shape, scores: &Scores, bh: usize, q0: usize) -> Tile {
        let (t, d) = (shape.len, shape.head_dim);
        let (b, h) = (bh / shape.heads, bh % shape.heads);
        let kvh = b * shape.kv_heads + h / (shape.heads / shape.kv_heads);
        let q1 = (q0 + TILE).min(t);
        Tile { q_head: bh * t * d, kv_head: kvh * t * d, q0, q1, k0: scores.first_key(q0) }
    }

    fn rows(&self) -> usize {
        self.q1 - self.q0
    }

    fn keys(&self) -> usize {
        self.q1 - self.k0
    }

    /// Row `r`'s visible keys as columns of the tile's scores: `a..e`.
    fn visible(&self, scores: &Scores, r: usize) -> (usize, usize) {
        let i = self.q0 + r;
        (scores.first_key(i) - self.k0, i + 1 - self.k0)
    }
}

#[cfg(test)]
mod tests;
