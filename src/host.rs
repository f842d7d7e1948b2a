//! f32 tensors of Burn's CPU backend as host vectors and back: how our CPU kernels (the
//! `gradsift-cpu-kernels` crate) read their inputs and hand back their results. Moving a tensor
//! costs a copy of its values, small beside the work of a kernel that reads it. The fused
//! element-wise operations (`model::flex_gated` and its siblings) take Burn's primitives instead
//! ([`Primitive`]): they read a contiguous tensor in place and record their own autodiff steps.

#[cfg(not(target_family = "wasm"))]
use burn::backend::flex::FlexTensor;
use burn::prelude::*;

/// Whether our CPU kernels can take `x`: f32 values on the CPU backend.
#[cfg(not(target_family = "wasm"))]
pub(crate) fn on_cpu_f32<const D: usize>(x: &Tensor<D>) -> bool {
    x.device() == Device::flex() && x.dtype() == burn::tensor::DType::F32
}

/// Whether `device` is the CPU backend (autodiff or not) in a native build: where our CPU
/// kernels compute.
pub(crate) fn is_cpu(device: &Device) -> bool {
    cfg!(not(target_family = "wasm")) && device.clone().without_autodiff() == Device::flex()
}

/// The values of an f32 tensor.
#[cfg(not(target_family = "wasm"))]
pub(crate) fn floats<const D: usize>(x: Tensor<D>) -> Vec<f32> {
    x.into_data().try_into_vec::<f32>().expect("an f32 tensor's data are f32")
}

/// A tensor of the CPU backend holding `data`.
#[cfg(not(target_family = "wasm"))]
pub(crate) fn tensor<const D: usize>(data: Vec<f32>, dims: [usize; D]) -> Tensor<D> {
    Tensor::from_data(TensorData::new(data, dims), &Device::flex())
}

/// Burn's CPU backend under autodiff: where the fused operations of [`crate::model`] record
/// their own backward steps.
#[cfg(not(target_family = "wasm"))]
pub(crate) type TrackedCpu = burn::backend::Autodiff<burn::backend::Flex>;

/// An f32 tensor of the CPU backend as our fused operations take it: Flex's own primitive for a
/// value, autodiff's over it for a tensor of the autodiff device.
#[cfg(not(target_family = "wasm"))]
pub(crate) enum Primitive {
    Values(FlexTensor),
    Tracked(burn::backend::tensor::FloatTensor<TrackedCpu>),
}

/// `x`'s primitive when it is an f32 tensor of the CPU backend (autodiff or not), else None.
#[cfg(not(target_family = "wasm"))]
pub(crate) fn primitive<const D: usize>(x: &Tensor<D>) -> Option<Primitive> {
    if !is_cpu(&x.device()) || x.dtype() != burn::tensor::DType::F32 {
        return None;
    }
    match x.is_autodiff() {
        true => x.clone().try_into_primitive::<TrackedCpu>().ok().map(Primitive::Tracked),
        false => x.clone().try_into_primitive::<burn::backend::Flex>().ok().map(Primitive::Values),
    }
}

/// `x`'s values as the CPU backend stores them (a strided view stays one), when it is an f32
/// tensor of the CPU backend (autodiff or not, read as a constant: nothing is recorded), else
/// None.
#[cfg(not(target_family = "wasm"))]
pub(crate) fn stored<const D: usize>(x: &Tensor<D>) -> Option<FlexTensor> {
    Some(match primitive(x)? {
        Primitive::Values(v) => v,
        Primitive::Tracked(v) => v.into_primitive(),
    })
}

/// The values of `x`, contiguous, when it is an f32 tensor of the CPU backend (as [`stored`]),
/// else None.
#[cfg(not(target_family = "wasm"))]
pub(crate) fn constant<const D: usize>(x: &Tensor<D>) -> Option<FlexTensor> {
    stored(x).map(|t| contiguous(&t))
}

/// `t` with its values in one contiguous run (a copy where it is a strided view, such as one
/// half of a fused projection's output).
#[cfg(not(target_family = "wasm"))]
pub(crate) fn contiguous(t: &FlexTensor) -> FlexTensor {
    match t.as_slice::<f32>() {
        Some(_) => t.clone(),
        None => t.to_contiguous(),
    }
}

/// The values of a tensor [`contiguous`] returned.
#[cfg(not(target_family = "wasm"))]
pub(crate) fn values(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>().expect("a contiguous f32 tensor")
}

/// A Flex tensor of `shape` holding `data`.
#[cfg(not(target_family = "wasm"))]
pub(crate) fn flex(data: Vec<f32>, shape: &burn::tensor::Shape) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(data, shape.clone()))
}
