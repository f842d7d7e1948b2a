//! Position information of a forward pass: rotary tables and the causal mask. Both depend only
//! on the sequence length (and the device), so they are built once for the longest length seen
//! and narrowed for shorter passes, instead of being rebuilt on the host at every forward.

use std::sync::Mutex;

use burn::prelude::*;

use super::config::{FloatKind, RopeScaling};
use super::nn;

/// What every block of one forward pass shares: the rotary tables (None for learned
/// positions) and the causal masks, for the pass's sequence length.
#[derive(Clone)]
pub struct Positions {
    pub rope: Option<(Tensor<4>, Tensor<4>)>,
    /// The causal mask of full-attention layers.
    pub mask: Tensor<4>,
    /// The causal mask of sliding-window layers, when the model has a window.
    pub window_mask: Option<Tensor<4>>,
}

impl Positions {
    /// The first `t` positions.
    fn narrow(&self, t: usize) -> Positions {
        let square = |m: &Tensor<4>| m.clone().narrow(2, 0, t).narrow(3, 0, t);
        Positions {
            rope: self.rope.as_ref().map(|(c, s)| (c.clone().narrow(2, 0, t), s.clone().narrow(2, 0, t))),
            mask: square(&self.mask),
            window_mask: self.window_mask.as_ref().map(square),
        }
    }
}

/// The rotary embedding's settings.
#[derive(Debug, Clone, Copy)]
pub struct Rope {
    pub head_dim: usize,
    pub theta: f64,
    pub scaling: RopeScaling,
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
    /// The sliding attention window of the layers that have one.
    window: Option<usize>,
    built: Mutex<Option<Built>>,
}

impl PositionCache {
    pub fn new(rope: Option<Rope>, window: Option<usize>) -> Self {
        PositionCache { rope, window, built: Mutex::new(None) }
    }

    /// The positions of a `t`-token pass on `device`.
    pub fn positions(&self, t: usize, device: &Device) -> Positions {
        let mut built = self.built.lock().expect("position cache");
        let fits = built.as_ref().is_some_and(|b| b.len >= t && b.device == *device);
        if !fits {
            let rope = self.rope.map(|r| nn::rope_tables(t, r.head_dim, r.theta, r.scaling, r.inv_freq_dtype, device));
            *built = Some(Built {
                device: device.clone(),
                len: t,
                positions: Positions {
                    rope,
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
