//! Rotary position embedding on Burn's CPU backend as one of our kernels
//! (`gradsift_cpu_kernels::rope`) with its backward (the rotation's transpose) recorded as one
//! autodiff step, instead of the slices, negation, concatenation, products and sum Burn runs one
//! pass at a time on the calling thread, for q and for k in every layer. The same function:
//! checked against the tensor operations under autodiff in this module's test, and against
//! PyTorch by every reference fixture of a rotary family.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::Flex;
use burn::prelude::*;

use gradsift_cpu_kernels::rope::{self, Shape};

use crate::host::{self, Primitive, TrackedCpu};

/// `x: [B, H, T, hd]` rotated by `cos, sin: [1 or B, 1, T, r]` (see [`super::nn::apply_rope`])
/// when all are f32 tensors of the CPU backend and cos and sin are not tracked; None otherwise
/// (the caller then composes tensor operations).
pub(super) fn apply_rope(x: &Tensor<4>, cos: &Tensor<4>, sin: &Tensor<4>) -> Option<Tensor<4>> {
    let ([batch, heads, len, head_dim], [cos_batch, _, cos_len, rotary]) = (x.dims(), cos.dims());
    let fits = cos.dims() == sin.dims() && cos_len == len && (cos_batch == 1 || cos_batch == batch);
    if !fits || rotary % 2 != 0 || rotary > head_dim || cos.is_tracked() || sin.is_tracked() {
        return None;
    }
    let shape = Shape { batch, heads, len, head_dim, rotary, cos_batch };
    let angles = Angles { shape, cos: host::constant(cos)?, sin: host::constant(sin)? };
    match host::primitive(x)? {
        Primitive::Values(x) => Some(Tensor::from_primitive::<Flex>(angles.rotate(&host::contiguous(&x), false))),
        Primitive::Tracked(x) => Some(Tensor::from_primitive::<TrackedCpu>(tracked(x, angles))),
    }
}

/// A rotation: the shape it applies to and its cosines and sines, contiguous.
#[derive(Debug, Clone)]
struct Angles {
    shape: Shape,
    cos: FlexTensor,
    sin: FlexTensor,
}

impl Angles {
    /// Contiguous `x` rotated, or with `transpose` the rotation's transpose applied to it.
    fn rotate(&self, x: &FlexTensor, transpose: bool) -> FlexTensor {
        let mut out = vec![0f32; x.layout().num_elements()];
        let (cos, sin) = (host::values(&self.cos), host::values(&self.sin));
        rope::rotate(&self.shape, cos, sin, host::values(x), transpose, &mut out);
        host::flex(out, x.layout().shape())
    }
}

/// The rotation under autodiff: its backward keeps only the angles.
fn tracked(x: FloatTensor<TrackedCpu>, angles: Angles) -> FloatTensor<TrackedCpu> {
    let y = angles.rotate(&host::contiguous(x.primitive()), false);
    match Rotate.prepare::<NoCheckpointing>([x.node()]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => prep.finish(angles, y),
        OpsKind::UnTracked(prep) => prep.finish(y),
    }
}

/// The backward step of [`tracked`].
#[derive(Debug)]
struct Rotate;

impl Backward<Flex, 1> for Rotate {
    type State = Angles;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dy = host::contiguous(&grads.consume::<Flex>(&ops.node));
        let [parent] = ops.parents;
        if let Some(node) = parent {
            grads.register::<Flex>(node.id, ops.state.rotate(&dy, true));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::nn::apply_rope_tensors;
    use super::super::testing::{check_against_tensor_operations, fresh_seed, uniform};
    use super::*;
    use crate::device::Compute;

    /// Against the tensor operations ([`apply_rope_tensors`]), values and gradients under
    /// autodiff, on fresh random inputs: x a strided view (heads split from a projection, as
    /// attention takes them), whole and partial rotation (Phi-3), and positions per sequence
    /// (left padding).
    #[test]
    fn rope_matches_tensor_operations() {
        let seed = fresh_seed("rope");
        let values = Compute::cpu().device.without_autodiff();
        let [b, h, t] = [2, 3, 23];
        for (hd, r, cos_batch) in [(32, 32, 1), (48, 16, 2)] {
            let x = uniform(seed, 1, [b, t, h * hd], 3.0, &values).reshape([b, t, h, hd]).swap_dims(1, 2);
            let cos = uniform(seed, 2, [cos_batch, 1, t, r], 1.0, &values);
            let sin = uniform(seed, 3, [cos_batch, 1, t, r], 1.0, &values);
            let dy = uniform(seed, 4, [b, h, t, hd], 1.0, &values);
            let (cos_a, sin_a) = (cos.clone().autodiff(), sin.clone().autodiff());
            let angles = |x: &Tensor<4>| match x.is_autodiff() {
                true => (cos_a.clone(), sin_a.clone()),
                false => (cos.clone(), sin.clone()),
            };
            check_against_tensor_operations(
                &format!("rope, head {hd}, rotary {r}"),
                &x,
                &dy,
                |x| {
                    let (c, s) = angles(x);
                    apply_rope(x, &c, &s)
                },
                |x| {
                    let (c, s) = angles(&x);
                    apply_rope_tensors(x, &c, &s)
                },
            );
        }
    }
}
