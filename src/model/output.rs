//! The output head: logits = h·W (+ b where the checkpoint has a bias, as Phi-1/1.5/2's
//! `lm_head` does), soft-capped where the config says so (Gemma-2). One value carries all
//! three, so every path that turns hidden states into logits (the blocked per-example head,
//! training, generation) computes the same function.

use burn::prelude::*;

use super::nn;
use super::Matrix;

/// The output projection and what follows it.
pub struct OutputHead {
    /// `[H, V]` (the embedding, transposed, where they are tied). Frozen; f32 or the 16-bit
    /// type of [`super::WeightsDtype`], in parts along the vocabulary past the device's
    /// binding limit.
    pub weight: Matrix,
    /// `[V]`, added to every row of logits.
    pub bias: Option<Tensor<1>>,
    /// Logits become `c·tanh(z / c)`.
    pub softcap: Option<f64>,
}

impl OutputHead {
    /// `h·W + b` of `h: [N, H]`, before the soft-cap.
    pub fn raw(&self, h: Tensor<2>) -> Tensor<2> {
        let z = self.weight.matmul(h);
        match &self.bias {
            Some(b) => z + b.clone().unsqueeze::<2>(),
            None => z,
        }
    }

    /// Logits of `h: [N, H]`.
    pub fn logits(&self, h: Tensor<2>) -> Tensor<2> {
        let z = self.raw(h);
        match self.softcap {
            Some(c) => nn::soft_cap(z, c),
            None => z,
        }
    }

    /// The same head detached from autodiff (the blocked head's hand-written backward).
    pub fn without_autodiff(&self) -> OutputHead {
        OutputHead {
            weight: self.weight.without_autodiff(),
            bias: self.bias.clone().map(|b| b.without_autodiff()),
            softcap: self.softcap,
        }
    }
}
