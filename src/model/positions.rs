//! Position information of a forward pass: rotary tables and the causal mask. Both depend only
//! on the sequence length (and the device), so they are built once for the longest length seen
//! and narrowed for shorter passes, instead of being rebuilt on the host at every forward.

use std::sync::Mutex;

use burn::prelude::*;

use super::blocked_attention::Causal;
use super::dtype::FloatKind;
use super::nn;
use super::rope::RopeSpec;

/// What every block of one forward pass shares: the rotary tables (None for learned
/// positions) and the causal masks, for the pass's sequence length.
#[derive(Clone)]
pub(crate) struct Positions {
    /// cos and sin of the full-attention layers, `[1 or B, 1, T, rotary_dim]`.
    pub rope: Option<(Tensor<4>, Tensor<4>)>,
    /// cos and sin of the sliding-window layers, where their RoPE differs (Gemma-3).
    pub window_rope: Option<(Tensor<4>, Tensor<4>)>,
    /// The keys the queries of full-attention layers see.
    pub causal: Causal,
    /// Those of sliding-window layers, when the model has a window.
    pub window_causal: Option<Causal>,
}

/// The rotary embedding's settings.
#[derive(Debug, Clone)]
pub(crate) struct Rope {
    /// How many features of each head rotate (the head dimension unless Phi-3's
    /// `partial_rotary_factor` says less).
    pub rotary_dim: usize,
    pub spec: RopeSpec,
    /// The dtype Transformers rounds the inverse frequencies to.
    pub inv_freq_dtype: FloatKind,
}

/// One rotary embedding's tables: the ones every sequence uses, and LongRoPE's set for
/// sequences past the original context.
struct RopeTables {
    short: (Tensor<4>, Tensor<4>),
    long: Option<(Tensor<4>, Tensor<4>)>,
}

impl RopeTables {
    fn build(r: &Rope, t: usize, device: &Device) -> Self {
        let table = |long| r.spec.tables(t, r.rotary_dim, long, r.inv_freq_dtype, device);
        RopeTables { short: table(false), long: r.spec.scaling.switches().then(|| table(true)) }
    }

    /// The first `t` positions, each row's set chosen by its own length (`lengths`): one
    /// shared `[1, 1, T, r]` table when every row takes the same set, else `[B, 1, T, r]`.
    fn select(&self, r: &Rope, t: usize, lengths: &[usize]) -> (Tensor<4>, Tensor<4>) {
        let rows = |(c, s): &(Tensor<4>, Tensor<4>)| (c.clone().narrow(2, 0, t), s.clone().narrow(2, 0, t));
        let short = rows(&self.short);
        let Some(long) = self.long.as_ref().map(rows) else { return short };
        let is_long: Vec<bool> = lengths.iter().map(|&n| r.spec.scaling.is_long(n)).collect();
        if is_long.iter().all(|&l| !l) {
            return short;
        }
        if is_long.iter().all(|&l| l) {
            return long;
        }
        let pick = |part: fn(&(Tensor<4>, Tensor<4>)) -> &Tensor<4>| {
            let per_row = is_long.iter().map(|&l| part(if l { &long } else { &short }).clone()).collect();
            Tensor::cat(per_row, 0)
        };
        (pick(|p| &p.0), pick(|p| &p.1))
    }
}

struct Built {
    device: Device,
    len: usize,
    rope: Option<RopeTables>,
    window_rope: Option<RopeTables>,
    mask: Tensor<4>,
    window_mask: Option<Tensor<4>>,
}

/// [`Positions`] on demand, cached for the longest length asked for.
pub(crate) struct PositionCache {
    rope: Option<Rope>,
    /// The sliding layers' rotary embedding, where it differs.
    window_rope: Option<Rope>,
    /// The sliding attention window of the layers that have one.
    window: Option<usize>,
    built: Mutex<Option<Built>>,
}

impl PositionCache {
    pub fn new(rope: Option<Rope>, window_rope: Option<Rope>, window: Option<usize>) -> Self {
        PositionCache { rope, window_rope, window, built: Mutex::new(None) }
    }

    /// The positions of a `t`-token pass on `device` whose rows hold `lengths` real tokens
    /// (right padding after them).
    pub fn positions(&self, t: usize, lengths: &[usize], device: &Device) -> Positions {
        let mut built = self.built.lock().expect("position cache");
        let fits = built.as_ref().is_some_and(|b| b.len >= t && b.device == *device);
        if !fits {
            *built = Some(Built {
                device: device.clone(),
                len: t,
                rope: self.rope.as_ref().map(|r| RopeTables::build(r, t, device)),
                window_rope: self.window_rope.as_ref().map(|r| RopeTables::build(r, t, device)),
                mask: nn::causal_mask(t, None, device),
                window_mask: self.window.map(|w| nn::causal_mask(t, Some(w), device)),
            });
        }
        let b = built.as_ref().expect("built above");
        let square = |m: &Tensor<4>| if b.len == t { m.clone() } else { m.clone().narrow(2, 0, t).narrow(3, 0, t) };
        let rope = |tables: &Option<RopeTables>, r: &Option<Rope>| {
            tables.as_ref().zip(r.as_ref()).map(|(tables, r)| tables.select(r, t, lengths))
        };
        Positions {
            rope: rope(&b.rope, &self.rope),
            window_rope: rope(&b.window_rope, &self.window_rope),
            causal: Causal { mask: square(&b.mask), window: None },
            window_causal: b
                .window_mask
                .as_ref()
                .zip(self.window)
                .map(|(m, w)| Causal { mask: square(m), window: Some(w) }),
        }
    }
}
