//! Position information of a forward pass: rotary tables and the causal mask. Both depend only
//! on the sequence length (and the device), so they are built once for the longest length seen
//! and narrowed for shorter passes, instead of being rebuilt on the host at every forward.

use std::sync::Mutex;

use burn::prelude::*;

use super::config::{FloatKind, RopeSpec};
use super::nn;

/// What every block of one forward pass shares: the rotary tables (None for learned
/// positions) and the causal masks, for the pass's sequence length.
#[derive(Clone)]
pub struct Positions {
    /// cos and sin of the full-attention layers.
    pub rope: Option<(Tensor<4>, Tensor<4>)>,
    /// cos and sin of the sliding-window layers, where their RoPE differs (Gemma-3).
    pub window_rope: Option<(Tensor<4>, Tensor<4>)>,
    /// The causal mask of full-attention layers.
    pub mask: Tensor<4>,
    /// The causal mask of sliding-window layers, when the model has a window.
    pub window_mask: Option<Tensor<4>>,
}

impl Positions {
    /// The first `t` positions.
    fn narrow(&self, t: usize) -> Positions {
        let square = |m: &Tensor<4>| m.clone().narrow(2, 0, t).narrow(3, 0, t);
        let rows = |(c, s): &(Tensor<4>, Tensor<4>)| (c.clone().narrow(2, 0, t), s.clone().narrow(2, 0, t));
        Positions {
            rope: self.rope.as_ref().map(rows),
            window_rope: self.window_rope.as_ref().map(rows),
            mask: square(&self.mask),
            window_mask: self.window_mask.as_ref().map(square),
        }
    }
}

/// The rotary embedding's settings.
#[derive(Debug, Clone, Copy)]
pub struct Rope {
    pub head_dim: usize,
    pub spec: RopeSpec,
    /// The dtype Transformers rounds the inverse frequencies to.
    pub inv_freq_dtype: FloatKind,
}

struct Built {
    device: Device,
    len: usize,
    positions: Positions,
}

/// [`Positions`] on demand, cached for the longest length asked for.
pub struct PositionCache {
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

    /// The positions of a `t`-token pass on `device`.
    pub fn positions(&self, t: usize, device: &Device) -> Positions {
        let mut built = self.built.lock().expect("position cache");
        let fits = built.as_ref().is_some_and(|b| b.len >= t && b.device == *device);
        if !fits {
            let tables =
                |r: Rope| nn::rope_tables(t, r.head_dim, r.spec.theta, r.spec.scaling, r.inv_freq_dtype, device);
            *built = Some(Built {
                device: device.clone(),
                len: t,
                positions: Positions {
                    rope: self.rope.map(tables),
                    window_rope: self.window_rope.map(tables),
                    mask: nn::causal_mask(t, None, device),
                    window_mask: self.window.map(|w| nn::causal_mask(t, Some(w), device)),
                },
            });
        }
        let b = built.as_ref().expect("built above");
        if b.len == t {
            b.positions.clone()
        } else {
            b.positions.narrow(t)
        }
    }
}
