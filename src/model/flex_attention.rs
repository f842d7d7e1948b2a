//! Attention on Burn's CPU backend through our fused kernels (the `gradsift-cpu-kernels`
//! crate) instead of tensor operations: on SmolLM2-135M's shape at 2,048 tokens the tensor
//! operations were about half of a layerwise gradient pass, a dozen passes over every block of
//! scores with a scalar exponential (docs/performance.md). The kernels compute the same
//! function (checked against attention written out in f64, and in
//! [`super::blocked_attention`]'s test against autodiff). Other devices, other float types and
//! the browser build (which has no threads for the tiles, and no such module) keep the tensor
//! operations.

use burn::prelude::*;

use gradsift_cpu_kernels::attention;

use crate::host;

/// The kernels, for q, k and v that are f32 values on the CPU backend.
pub(super) struct Kernels(attention::Shape);

impl Kernels {
    /// The kernels for q `[B, H, T, hd]`, k and v `[B, KV, T, hd]`, when they are f32 values on
    /// the CPU backend.
    pub fn on(q: &Tensor<4>, k: &Tensor<4>, v: &Tensor<4>) -> Option<Kernels> {
        let ([batch, heads, len, head_dim], kv_heads) = (q.dims(), k.dims()[1]);
        [q, k, v].iter().all(|x| host::on_cpu_f32(*x)).then_some(Kernels(attention::Shape {
            batch,
            heads,
            kv_heads,
            len,
            head_dim,
        }))
    }

    /// [`super::blocked_attention::forward`]: attention's output `[B, H, T, hd]` and the
    /// log-sum-exps `[B, H, T, 1]`.
    pub fn forward(&self, [q, k, v]: [Tensor<4>; 3], scores: &attention::Scores) -> [Tensor<4>; 2] {
        let dims = q.dims();
        let [q, k, v] = [q, k, v].map(read);
        let [q, k, v] = [&q, &k, &v].map(host::values);
        let (mut out, mut lse) = (vec![0f32; q.len()], vec![0f32; q.len() / self.0.head_dim.max(1)]);
        attention::forward(&self.0, scores, q, k, v, &mut out, &mut lse);
        [host::tensor(out, dims), host::tensor(lse, [dims[0], dims[1], dims[2], 1])]
    }

    /// [`super::blocked_attention::backward`] from what [`Self::forward`] returned (`out`,
    /// `lse`) and the output's gradient `d_o`: dq, dk, dv.
    pub fn backward(
        &self,
        [q, k, v]: [Tensor<4>; 3],
        [out, lse]: [Tensor<4>; 2],
        d_o: Tensor<4>,
        scores: &attention::Scores,
    ) -> [Tensor<4>; 3] {
        let (q_dims, k_dims) = (q.dims(), k.dims());
        let held = [q, k, v, out, lse, d_o].map(read);
        let [q, k, v, out, lse, d_o] = [&held[0], &held[1], &held[2], &held[3], &held[4], &held[5]].map(host::values);
        let (mut dq, mut dk, mut dv) = (vec![0f32; q.len()], vec![0f32; k.len()], vec![0f32; v.len()]);
        let saved = attention::Saved { q, k, v, out, lse };
        attention::backward(&self.0, scores, saved, d_o, &mut dq, &mut dk, &mut dv);
        [host::tensor(dq, q_dims), host::tensor(dk, k_dims), host::tensor(dv, k_dims)]
    }
}

/// `x`'s values in place (a copy only where it is a strided view, such as q after its swap of
/// axes), for a kernel that reads them: an f32 tensor of the CPU backend, as
/// [`Kernels::on`] checked of q, k and v and as the forward's results are.
fn read(x: Tensor<4>) -> burn::backend::flex::FlexTensor {
    host::constant(&x).expect("the attention kernels' inputs are f32 values of the CPU backend")
}

/// What the kernels need of a layer's scores: `scale·q·kᵀ`, soft-capped at `softcap`, within
/// `window` keys.
pub(super) fn scores(scale: f64, softcap: Option<f64>, window: Option<usize>) -> attention::Scores {
    attention::Scores { scale: scale as f32, softcap: softcap.map(|c| c as f32), window }
}
