//! f32 tensors of Burn's CPU backend as host vectors and back: how our CPU kernels (the
//! `gradsift-cpu-kernels` crate) read their inputs and hand back their results. Moving a tensor
//! costs a copy of its values, small beside the work of a kernel that reads it.

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
