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
//! attention scores are alive. [`Backprop::Blocks`] walks the blocks the same way but keeps
//! each block's graph from the forward pass (its input a fresh leaf, its output cut from the
//! next block's input) instead of recomputing it: no forward pass repeated, every block's
//! activations alive until its turn, and attention's scores still never whole.

use burn::prelude::*;

use super::block::{Attend, Recorded};
use super::blocked_attention;
use super::linear::LoraRuntime;
use super::lora::LoraAdapter;
use super::positions::Positions;
use super::CausalLm;

/// How per-example gradients keep what their backward pass needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backprop {
    /// On the CPU backend [`Backprop::Blocks`] where every block's activations would stay
    /// within 4 GiB, else [`Backprop::Layerwise`]; elsewhere [`Backprop::Whole`] where one
    /// graph's attention tensors would stay within 1 GiB, else layerwise. Why the two: on the
    /// CPU attention a block of queries at a time runs through our fused kernels and is the
    /// faster at every length measured; on a GPU it runs as tensor operations, and no GPU
    /// measurement says which is faster there.
    #[default]
    Auto,
    /// One autodiff graph over the network; attention memory grows with T² (and its cost with
    /// it).
    Whole,
    /// Block by block, recomputing each block's forward: the least memory, linear in T. Each
    /// block's forward is recomputed from its kept input (attention's output too is kept, not
    /// recomputed) and differentiated in two steps: the block's output with attention's kept
    /// output standing in as a leaf, then attention's q, k, v against the gradients its
    /// hand-written backward finds a block of queries at a time.
    Layerwise,
    /// Block by block as [`Backprop::Layerwise`], each block's graph kept from the forward
    /// pass instead of recomputed: memory linear in T holding every block's activations, no
    /// forward pass repeated.
    Blocks,
}

/// Bytes of attention scores and probabilities a whole graph may keep before
/// [`Backprop::Auto`] goes layerwise.
const AUTO_LIMIT: usize = 1 << 30;

/// Bytes of activations [`Backprop::Blocks`] may keep before [`Backprop::Auto`] goes layerwise.
const AUTO_BLOCKS_LIMIT: usize = 4 << 30;

crate::choice::choice!(Backprop {
    Auto => "auto": "on the CPU blocks where every block's activations stay within 4 GiB, else layerwise; on a GPU whole where one graph's attention tensors stay within 1 GiB, else layerwise",
    Whole => "whole": "one autodiff graph: attention memory grows with the square of the length",
    Layerwise => "layerwise": "a block at a time, recomputing its forward: the least memory, linear in the length, for one more forward pass (attention aside)",
    Blocks => "blocks": "a block at a time, each block's graph kept from the forward pass: memory linear in the length holding every block's activations",
});

impl Backprop {
    /// How a gradient pass of `adapter`'s branches over `rows` sequences of `t` positions on
    /// `device` goes: [`Backprop::Auto`] resolved.
    pub fn resolve(self, model: &CausalLm, adapter: &LoraAdapter, rows: usize, t: usize, device: &Device) -> Backprop {
        let c = &model.config;
        match self {
            Backprop::Auto if crate::host::is_cpu(device) => {
                match model.kept_activations(adapter, rows, t) > AUTO_BLOCKS_LIMIT {
                    true => Backprop::Layerwise,
                    false => Backprop::Blocks,
                }
            }
            // A whole graph keeps two `[rows, heads, t, t]` f32 tensors per layer (the scores
            // entering the softmax and its output).
            Backprop::Auto => match 2 * 4 * rows * c.heads * t * t * c.layers > AUTO_LIMIT {
                true => Backprop::Layerwise,
                false => Backprop::Whole,
            },
            other => other,
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

/// What the forward pass kept of one block for [`CausalLm::backward_kept`].
// One per block, pushed once and taken once: boxing the larger variant would buy nothing.
#[allow(clippy::large_enum_variant)]
enum KeptBlock {
    /// Its input (a value, nothing tracked) and its attention's output and log-sum-exps
    /// (`[B, H, T, hd + 1]`, the size of the input): the backward recomputes the rest of the
    /// block, whose attention would cost a third of its work to compute again.
    Input(Tensor<3>, blocked_attention::Attended),
    /// Its graph: its input as a gradient leaf, its output tracked to it, and what its
    /// attention's backward needs.
    Graph { x: Tensor<3>, out: Tensor<3>, recorded: Recorded },
}

/// A forward pass that kept every block for [`CausalLm::backward_kept`].
pub(crate) struct KeptPass {
    blocks: Vec<KeptBlock>,
    /// The final norm's input, a value.
    last: Tensor<3>,
    pos: Positions,
}

impl CausalLm {
    /// Final hidden states `[B, T, H]` of `ids` (rows holding `lengths` real tokens) as values,
    /// with what [`Self::backward_kept`] needs of each block: its input, `lora`'s branches used
    /// detached, when `recompute`; else its graph, the branches tracked.
    pub(crate) fn forward_kept(
        &self,
        ids: Tensor<2, Int>,
        lengths: &[usize],
        lora: &LoraRuntime,
        recompute: bool,
    ) -> (Tensor<3>, KeptPass) {
        let detached = lora.detached();
        let (mut x, pos) = self.body.embed(ids, lengths);
        let mut blocks = Vec::with_capacity(self.body.blocks().len());
        for blk in self.body.blocks() {
            if recompute {
                let mut slot = None;
                let out = blk.forward(x.clone(), &pos, Some(&detached), Attend::Keep(&mut slot));
                blocks.push(KeptBlock::Input(x, slot.expect("a kept attention keeps")));
                x = out;
            } else {
                let input = x.detach().require_grad();
                let mut slot = None;
                let out = blk.forward(input.clone(), &pos, Some(lora), Attend::Record(&mut slot));
                x = out.clone().detach();
                blocks.push(KeptBlock::Graph { x: input, out, recorded: slot.expect("a recorded attention records") });
            }
        }
        (self.body.final_norm().forward(x.clone()), KeptPass { blocks, last: x, pos })
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
        let KeptPass { blocks, last, pos } = kept;
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
        let x = last.detach().require_grad();
        let mut g = (self.body.final_norm().forward(x.clone()) * seed).sum().backward();
        let mut dx = x.grad_remove(&mut g).expect("the final norm's input reaches its output");
        for (blk, kept) in self.body.blocks().iter().zip(blocks).rev() {
            let (x, out, recorded) = match kept {
                KeptBlock::Input(x, attended) => {
                    let x = x.detach().require_grad();
                    let mut slot = None;
                    let out = blk.forward(x.clone(), &pos, Some(lora), Attend::Recorded(attended, &mut slot));
                    (x, out, slot.expect("a recorded attention records"))
                }
                KeptBlock::Graph { x, out, recorded } => (x, out, recorded),
            };
            let Recorded { q, k, v, out: attn_out, attended } = recorded;

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
                &attn.causal(&pos).values(),
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
