//! Gradients one block at a time, for sequences whose whole autodiff graph would not fit.
//!
//! Differentiating the network as one graph keeps every block's activations until the
//! backward pass, attention's `[B, H, T, T]` scores and probabilities among them: memory that
//! grows with the square of the length, for every layer at once. [`Backprop::Layerwise`]
//! instead runs the forward pass on values, keeping only each block's input `[B, T, H]` and its
//! attention's output and log-sum-exps (as large again), then walks the blocks from the last: it
//! recomputes one block's forward from its kept input with the LoRA leaves tracked (attention
//! aside: its kept output stands in), and differentiates it in two steps. First the block's output
//! against the gradient arriving from above, with attention's output standing in as a leaf
//! (this reaches the output projection, the MLP, the residual path and attention's output);
//! then attention's q, k, v against the gradients [`super::blocked_attention::backward`] finds
//! for them a block of queries at a time (this reaches the q/k/v projections and the input
//! through them). The two parts of the input's gradient add up and flow to the block below.
//! The result is the gradient one graph gives, exactly (summation order aside), for one more
//! forward pass of everything but attention; at most one block's activations and one block of
//! attention scores are alive.

use burn::prelude::*;

use super::block::{Attend, Recorded};
use super::blocked_attention;
use super::linear::LoraRuntime;
use super::positions::Positions;
use super::CausalLm;

/// How per-example gradients keep what their backward pass needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backprop {
    /// Layerwise when one graph's attention tensors would pass 1 GiB, else whole.
    #[default]
    Auto,
    /// One autodiff graph over the network: the fastest on short sequences; attention memory
    /// grows with T² (and its cost with it: on the CPU as fast as layerwise at 1,024 tokens,
    /// slower at 2,048).
    Whole,
    /// Block by block, recomputing each block's forward: memory linear in T. Each block's
    /// forward is recomputed from its kept input (attention's output too is kept, not
    /// recomputed) and differentiated in two steps: the block's output with attention's kept
    /// output standing in as a leaf, then attention's q, k, v against the gradients its
    /// hand-written backward finds a block of queries at a time.
    Layerwise,
}

/// Bytes of attention scores and probabilities a whole graph may keep before
/// [`Backprop::Auto`] goes layerwise.
const AUTO_LIMIT: usize = 1 << 30;

crate::choice::choice!(Backprop {
    Auto => "auto": "layerwise where one graph's attention tensors would pass 1 GiB, else whole",
    Whole => "whole": "one autodiff graph: the fastest on short sequences; attention memory grows with the square of the length",
    Layerwise => "layerwise": "a block at a time, recomputing its forward: memory linear in the length, one more forward pass (attention aside)",
});

impl Backprop {
    /// Whether a gradient pass over `rows` sequences of `t` positions goes layerwise.
    pub fn layerwise(self, model: &CausalLm, rows: usize, t: usize) -> bool {
        match self {
            Backprop::Whole => false,
            Backprop::Layerwise => true,
            // A whole graph keeps two `[rows, heads, t, t]` f32 tensors per layer (the scores
            // entering the softmax and its output).
            Backprop::Auto => 2 * 4 * rows * model.config.heads * t * t * model.config.layers > AUTO_LIMIT,
        }
    }
}

impl CausalLm {
    /// The largest activation, in bytes, of a gradient pass over `rows` sequences of `t`
    /// positions: the widest linear layer's output ([`super::ModelConfig::widest_layer`]) or,
    /// through a whole graph, one layer's `[rows, heads, t, t]` attention scores. Layerwise,
    /// attention and the output head go a block at a time within what the device binds. A GPU
    /// cannot bind a larger tensor (see [`crate::device::binding_limit`]).
    pub fn largest_activation(&self, rows: usize, t: usize, layerwise: bool) -> usize {
        let scores = if layerwise { 0 } else { rows * self.config.heads * t * t };
        4 * (rows * t * self.config.widest_layer()).max(scores)
    }
}

/// A forward pass that kept every block's input and attention, for [`CausalLm::backward_kept`].
pub(crate) struct KeptPass {
    /// The input of each block, then the final norm's input: values, nothing tracked.
    inputs: Vec<Tensor<3>>,
    /// Each block's attention output and log-sum-exps (`[B, H, T, hd + 1]` a block, the size
    /// of its input): its backward needs them, and computing them again would cost a third of
    /// the block's attention work.
    attended: Vec<blocked_attention::Attended>,
    pos: Positions,
}

impl CausalLm {
    /// Final hidden states `[B, T, H]` of `ids` (rows holding `lengths` real tokens) as values,
    /// `lora`'s branches used detached, with each block's input kept for
    /// [`Self::backward_kept`].
    pub(crate) fn forward_kept(
        &self,
        ids: Tensor<2, Int>,
        lengths: &[usize],
        lora: &LoraRuntime,
    ) -> (Tensor<3>, KeptPass) {
        let lora = lora.detached();
        let (mut x, pos) = self.body.embed(ids, lengths);
        let blocks = self.body.blocks();
        let mut inputs = Vec::with_capacity(blocks.len() + 1);
        let mut attended = Vec::with_capacity(blocks.len());
        for blk in blocks {
            inputs.push(x.clone());
            let mut slot = None;
            x = blk.forward(x, &pos, Some(&lora), Attend::Keep(&mut slot));
            attended.push(slot.expect("a kept attention keeps"));
        }
        inputs.push(x.clone());
        (self.body.final_norm().forward(x), KeptPass { inputs, attended, pos })
    }

    /// The gradients of `Σ h ⊙ seed`, h the final hidden states of `kept`, with respect to each
    /// of `leaves` (None where it does not reach one), computed a block at a time from the last
    /// (see [`Backprop::Layerwise`]). `lora`'s branches are tracked back to `leaves`; each is
    /// read by one block, whose backward pass consumes it.
    pub(crate) fn backward_kept(
        &self,
        kept: KeptPass,
        seed: Tensor<3>,
        lora: &LoraRuntime,
        leaves: &[Tensor<3>],
    ) -> Vec<Option<Tensor<3>>> {
        let KeptPass { mut inputs, attended, pos } = kept;
        let mut grads: Vec<Option<Tensor<3>>> = (0..leaves.len()).map(|_| None).collect();
        let mut collect = |g: &mut _| {
            for (acc, leaf) in grads.iter_mut().zip(leaves) {
                if let Some(d) = leaf.grad_remove(g) {
                    *acc = Some(match acc.take() {
                        Some(a) => a + d,
                        None => d,
                    });
                }
            }
        };
        // A block's input reaches its output through the residual and through attention.
        let reached = "a block's input reaches its output";
        let x = inputs.pop().expect("the final norm's input is kept").detach().require_grad();
        let mut g = (self.body.final_norm().forward(x.clone()) * seed).sum().backward();
        let mut dx = x.grad_remove(&mut g).expect("the final norm's input reaches its output");
        for ((blk, x), attended) in self.body.blocks().iter().zip(inputs).zip(attended).rev() {
            let x = x.detach().require_grad();
            let mut slot = None;
            let out = blk.forward(x.clone(), &pos, Some(lora), Attend::Recorded(attended, &mut slot));
            let Recorded { q, k, v, out: attn_out, attended } = slot.expect("a recorded attention records");

            let mut g = (out * dx).sum().backward();
            let d_attn = attn_out.grad_remove(&mut g).expect("attention's output reaches the block's output");
            let dx_rest = x.grad_remove(&mut g).expect(reached);
            collect(&mut g);
            drop(g);

            let attn = &blk.attn;
            let values = |t: &Tensor<4>| t.clone().without_autodiff();
            let (dq, dk, dv) = blocked_attention::backward(
                blocked_attention::BLOCK,
                values(&q),
                values(&k),
                values(&v),
                attended,
                d_attn,
                &attn.mask(&pos).clone().without_autodiff(),
                attn.scale,
                attn.softcap,
            );
            let mut g = ((q * dq).sum() + (k * dk).sum() + (v * dv).sum()).backward();
            dx = dx_rest + x.grad_remove(&mut g).expect(reached);
            collect(&mut g);
        }
        grads
    }
}
