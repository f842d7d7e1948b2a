//! gradsift's CPU kernels: causal attention, forward and backward, a tile of queries at a time
//! ([`attention`]), the output head's log-softmax with its gradient in one pass over the
//! vocabulary ([`head`]), and the element-wise parts of a block that Burn's CPU backend runs as
//! chains of single-threaded passes: the gated MLP's SiLU product ([`gated`]), RMSNorm
//! ([`rms_norm`]) and the rotary position embedding ([`rope`]), forward and backward.
//!
//! Why a crate of its own: Burn's CPU backend computes each as a dozen tensor operations, each a
//! pass over every score or logit that allocates its output, with a scalar `expf`; on SmolLM2's
//! shape at 2,048 tokens attention was about half of a layerwise gradient pass and the head a
//! fifth of what remained. Here a tile of rows computes its scores with one matrix product into
//! a buffer that stays in cache and takes the softmax (or its backward) in one or two vectorised
//! passes over it. The crate is compiled with full optimisation even in the workspace's dev
//! profile (see the workspace's `Cargo.toml`), which keeps the gradsift crate itself at level 1
//! for quick rebuilds.

pub mod attention;
pub mod gated;
pub mod head;
mod matmul;
pub mod rms_norm;
pub mod rope;
mod rows;
#[cfg(test)]
mod testing;
