//! RMSNorm on Burn's CPU backend as one of our kernels (`gradsift_cpu_kernels::rms_norm`) with
//! its backward recorded as one autodiff step, instead of the seven tensor operations forward and
//! the dozen backward that Burn runs one pass at a time on the calling thread. The weight is
//! frozen (a norm's weight is never a LoRA leaf); a tracked weight takes the tensor operations.
//! The same function: checked against the tensor operations under autodiff in this module's
//! test, and against PyTorch by every reference fixture of an RMSNorm family.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::Flex;
use burn::prelude::*;

use gradsift_cpu_kernels::rms_norm as kernel;

use crate::host::{self, Primitive, TrackedCpu};

/// The norm of `x` over its last dimension with weight `w` when both are f32 tensors of the CPU
/// backend and `w` is not tracked; None otherwise (the caller then composes tensor operations).
pub(super) fn rms_norm<const D: usize>(x: &Tensor<D>, w: &Tensor<1>, eps: f64) -> Option<Tensor<D>> {
    if w.is_tracked() || x.dims()[D - 1] != w.dims()[0] {
        return None;
    }
    let w = host::constant(w)?;
    let eps = eps as f32;
    match host::primitive(x)? {
        Primitive::Values(x) => Some(Tensor::from_primitive::<Flex>(forward(&host::contiguous(&x), &w, eps).0)),
        Primitive::Tracked(x) => Some(Tensor::from_primitive::<TrackedCpu>(tracked(x, w, eps))),
    }
}

/// The norm of contiguous `x` and each row's 1/√(mean(x²) + ε).
fn forward(x: &FlexTensor, w: &FlexTensor, eps: f32) -> (FlexTensor, Vec<f32>) {
    let n = x.layout().num_elements();
    let (mut y, mut inv) = (vec![0f32; n], vec![0f32; n / w.layout().num_elements().max(1)]);
    kernel::rms_norm(host::values(x), host::values(w), eps, &mut y, &mut inv);
    (host::flex(y, x.layout().shape()), inv)
}

/// The norm under autodiff: its backward keeps x and each row's scale.
fn tracked(x: FloatTensor<TrackedCpu>, w: FlexTensor, eps: f32) -> FloatTensor<TrackedCpu> {
    let values = host::contiguous(x.primitive());
    let (y, inv) = forward(&values, &w, eps);
    match RmsNorm.prepare::<NoCheckpointing>([x.node()]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => prep.finish(Saved { x: values, w, inv }, y),
        OpsKind::UnTracked(prep) => prep.finish(y),
    }
}

/// What the backward step needs.
#[derive(Debug, Clone)]
struct Saved {
    /// The input, contiguous.
    x: FlexTensor,
    w: FlexTensor,
    /// Each row's 1/√(mean(x²) + ε).
    inv: Vec<f32>,
}

/// The backward step of [`tracked`].
#[derive(Debug)]
struct RmsNorm;

impl Backward<Flex, 1> for RmsNorm {
    type State = Saved;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let Saved { x, w, inv } = ops.state;
        let dy = host::contiguous(&grads.consume::<Flex>(&ops.node));
        let [parent] = ops.parents;
        if let Some(node) = parent {
            let mut dx = vec![0f32; x.layout().num_elements()];
            kernel::rms_norm_backward(host::values(&x), host::values(&w), &inv, host::values(&dy), &mut dx);
            grads.register::<Flex>(node.id, host::flex(dx, x.layout().shape()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::nn::rms_norm_tensors;
    use super::super::testing::{check_against_tensor_operations, fresh_seed, uniform};
    use super::*;
    use crate::device::Compute;

    /// Against the tensor operations ([`rms_norm_tensors`]), values and gradients under
    /// autodiff, on fresh random inputs, with x a strided view (heads split from a projection, as
    /// the per-head q/k norms take them); a tracked weight takes the tensor operations.
    #[test]
    fn rms_norm_matches_tensor_operations() {
        let seed = fresh_seed("rms norm");
        let values = Compute::cpu().device.without_autodiff();
        let [b, t, h, hd] = [2, 29, 3, 40];
        let x = uniform(seed, 1, [b, t, h * hd], 5.0, &values).reshape([b, t, h, hd]).swap_dims(1, 2);
        let (w, dy) = (uniform(seed, 2, [hd], 2.0, &values), uniform(seed, 3, [b, h, t, hd], 1.0, &values));
        let eps = 1e-6;
        let wa = w.clone().autodiff();
        check_against_tensor_operations(
            "rms norm",
            &x,
            &dy,
            |x| rms_norm(x, if x.is_autodiff() { &wa } else { &w }, eps),
            |x| {
                let w = if x.is_autodiff() { wa.clone() } else { w.clone() };
                rms_norm_tensors(x, &w, eps)
            },
        );
        let tracked = w.autodiff().require_grad();
        assert!(rms_norm(&x.autodiff(), &tracked, eps).is_none(), "a tracked weight takes the tensor operations");
    }
}
