//! The gated MLP's SiLU product, silu(gate)·up, on Burn's CPU backend as one of our kernels
//! (`gradsift_cpu_kernels::gated`) with its backward recorded as one autodiff step, instead of
//! the sigmoid and products Burn runs one pass at a time on the calling thread (and, backward, a
//! sigmoid recomputed and four more products). The same function: checked against the tensor
//! operations under autodiff in this module's test, and against PyTorch by every reference
//! fixture of a SiLU-gated family.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::Flex;
use burn::prelude::*;

use gradsift_cpu_kernels::gated;

use crate::host::{self, Primitive, TrackedCpu};

/// silu(gate)·up when both are f32 tensors of the CPU backend of one shape, both values or both
/// of the autodiff device; None otherwise (the caller then composes tensor operations).
pub(super) fn silu_gated(gate: &Tensor<3>, up: &Tensor<3>) -> Option<Tensor<3>> {
    if gate.dims() != up.dims() {
        return None;
    }
    match (host::primitive(gate)?, host::primitive(up)?) {
        (Primitive::Values(g), Primitive::Values(u)) => {
            Some(Tensor::from_primitive::<Flex>(forward(&host::contiguous(&g), &host::contiguous(&u))))
        }
        (Primitive::Tracked(g), Primitive::Tracked(u)) => Some(Tensor::from_primitive::<TrackedCpu>(tracked(g, u))),
        _ => None,
    }
}

/// The product of contiguous `gate` and `up`.
fn forward(gate: &FlexTensor, up: &FlexTensor) -> FlexTensor {
    let mut out = vec![0f32; gate.layout().num_elements()];
    gated::silu_gated(host::values(gate), host::values(up), &mut out);
    host::flex(out, gate.layout().shape())
}

/// The product under autodiff: its backward keeps gate and up, nothing else.
fn tracked(gate: FloatTensor<TrackedCpu>, up: FloatTensor<TrackedCpu>) -> FloatTensor<TrackedCpu> {
    let (g, u) = (host::contiguous(gate.primitive()), host::contiguous(up.primitive()));
    let out = forward(&g, &u);
    match SiluGated.prepare::<NoCheckpointing>([gate.node(), up.node()]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => prep.finish((g, u), out),
        OpsKind::UnTracked(prep) => prep.finish(out),
    }
}

/// The backward step of [`tracked`]: both gradients from one pass.
#[derive(Debug)]
struct SiluGated;

impl Backward<Flex, 2> for SiluGated {
    /// Gate and up, contiguous.
    type State = (FlexTensor, FlexTensor);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (gate, up) = ops.state;
        let d_out = host::contiguous(&grads.consume::<Flex>(&ops.node));
        let n = gate.layout().num_elements();
        let (mut d_gate, mut d_up) = (vec![0f32; n], vec![0f32; n]);
        gated::silu_gated_backward(
            host::values(&gate),
            host::values(&up),
            host::values(&d_out),
            &mut d_gate,
            &mut d_up,
        );
        let shape = gate.layout().shape();
        let [gate_node, up_node] = ops.parents;
        if let Some(node) = gate_node {
            grads.register::<Flex>(node.id, host::flex(d_gate, shape));
        }
        if let Some(node) = up_node {
            grads.register::<Flex>(node.id, host::flex(d_up, shape));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{check_against_tensor_operations, fresh_seed, uniform};
    use super::*;
    use crate::device::Compute;

    /// Against Burn's tensor operations, values and gradients under autodiff, on fresh random
    /// inputs reaching both tails of the sigmoid, through gate and through up, with up a
    /// strided view (a fused projection's second half, as Phi-3 splits it).
    #[test]
    fn silu_gated_matches_tensor_operations() {
        let seed = fresh_seed("silu gated");
        let values = Compute::cpu().device.without_autodiff();
        let [b, t, i] = [2, 37, 300];
        let gate = uniform(seed, 1, [b, t, i], 12.0, &values);
        let up = uniform(seed, 2, [b, t, 2 * i], 3.0, &values).narrow(2, i, i);
        let dy = uniform(seed, 3, [b, t, i], 1.0, &values);
        let product = |g: Tensor<3>, u: Tensor<3>| burn::tensor::activation::silu(g) * u;
        // The other input on the same kind of device as the one checked.
        let on =
            |x: &Tensor<3>, other: &Tensor<3>| if x.is_autodiff() { other.clone().autodiff() } else { other.clone() };
        check_against_tensor_operations(
            "silu gated, through gate",
            &gate,
            &dy,
            |g| silu_gated(g, &on(g, &up)),
            |g| {
                let u = on(&g, &up);
                product(g, u)
            },
        );
        check_against_tensor_operations(
            "silu gated, through up",
            &up,
            &dy,
            |u| silu_gated(&on(u, &gate), u),
            |u| product(on(&u, &gate), u),
        );
    }
}
