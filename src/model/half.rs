//! Frozen weights in 16 bits. A checkpoint published in bf16 or f16 needs twice its file size
//! once widened to f32: 12 GB for a 3B model, 32 GB for an 8B one, before any activation. With
//! [`WeightsDtype`] the large frozen matrices (every linear layer, the embedding, the output
//! head) stay in 16 bits on the device, and each product with them runs as PyTorch's autocast
//! runs it: the activation rounded to the weight's type, the product accumulated in f32 by the
//! kernel, the result widened back to f32. Everything else (LoRA matrices and their gradients,
//! norms, biases, attention's softmax, the loss, the head's log-softmax) stays f32, and so does
//! every weight of a model built for training. Backends without a 16-bit type get f32 (`auto`)
//! or a clear error (an explicit `f16`/`bf16`); wgpu has f16 only where the adapter has
//! `shader-f16` and never bf16, so `auto` puts a bf16 checkpoint in f16 there, keeping in f32
//! any tensor whose values f16 cannot hold (past ±65,504) and saying which.

use burn::prelude::*;
use burn::tensor::{DType, FloatDType};

use super::dtype::FloatKind;
use super::weights::HostTensor;
use crate::error::{Error, Result, Setting};

/// Which float type the frozen weights are kept in on the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WeightsDtype {
    /// Widened to f32: the exact path, the same answer on every device.
    #[default]
    F32,
    /// The checkpoint's own type where the device has it: f16 for a bf16 checkpoint on a GPU
    /// without bf16, f32 where the device has no 16-bit type at all.
    Auto,
    F16,
    Bf16,
}

crate::choice::choice!(WeightsDtype {
    F32 => "f32": "widen every weight to f32: exact, the same answer on every device",
    Auto => "auto": "the checkpoint's own 16-bit type where the device has it (f16 on a GPU without bf16), else f32",
    F16 => "f16": "16-bit floats with 10 mantissa bits; products accumulate in f32",
    Bf16 => "bf16": "bfloat16 (f32's range, 7 mantissa bits), as LESS runs its model; the CPU backend only",
});

fn burn_dtype(kind: FloatKind) -> FloatDType {
    match kind {
        FloatKind::F32 => FloatDType::F32,
        FloatKind::F16 => FloatDType::F16,
        FloatKind::Bf16 => FloatDType::BF16,
    }
}

impl WeightsDtype {
    /// The type the frozen weights of a checkpoint stored in `checkpoint` get on `device`.
    pub fn resolve(self, checkpoint: FloatKind, device: &Device) -> Result<FloatKind> {
        let has = |kind: FloatKind| device.supports_dtype(DType::from(burn_dtype(kind)));
        let asked = match self {
            WeightsDtype::F32 => return Ok(FloatKind::F32),
            WeightsDtype::F16 => FloatKind::F16,
            WeightsDtype::Bf16 => FloatKind::Bf16,
            WeightsDtype::Auto => {
                return Ok(match checkpoint {
                    FloatKind::F32 => FloatKind::F32,
                    kind if has(kind) => kind,
                    FloatKind::Bf16 if has(FloatKind::F16) => FloatKind::F16,
                    _ => FloatKind::F32,
                })
            }
        };
        match has(asked) {
            true => Ok(asked),
            false => Err(Error::setting(
                Setting::WeightsDtype,
                format!(
                    "weights in {}: this device has no {} arithmetic (a GPU has f16 only with shader-f16, and no \
                     GPU backend has bf16); auto and f32 work on every device",
                    asked.name(),
                    asked.name()
                ),
            )),
        }
    }
}

/// Values f16 can hold: past this a bf16 or f32 weight becomes infinite.
const F16_MAX: f32 = 65_504.0;

/// True when f16 holds every value of `t` (none past ±65,504); a matrix that fails stays f32.
pub(crate) fn fits_f16(t: &HostTensor) -> bool {
    t.data.iter().all(|x| x.abs() <= F16_MAX)
}

/// Uploads a checkpoint tensor in `kind` (f16 only for a tensor [`fits_f16`] accepts).
pub(crate) fn upload_as<const D: usize>(t: HostTensor, kind: FloatKind, device: &Device) -> Tensor<D> {
    let data = match kind {
        FloatKind::F32 => TensorData::new(t.data, t.shape),
        FloatKind::F16 => TensorData::new(t.data.iter().map(|&x| half::f16::from_f32(x)).collect::<Vec<_>>(), t.shape),
        FloatKind::Bf16 => {
            TensorData::new(t.data.iter().map(|&x| half::bf16::from_f32(x)).collect::<Vec<_>>(), t.shape)
        }
    };
    Tensor::from_data(data, (device, DType::from(burn_dtype(kind))))
}

/// Most bytes of f32 a bf16 weight is widened to for one product (see [`matmul`]).
const WIDENED_BYTES: usize = 64 << 20;

/// `x · w` for an f32 activation `x: [N, in]` and a frozen weight `w: [in, out]` of either
/// precision: with a 16-bit `w`, `x` is rounded to its type and the kernel accumulates in f32
/// (autocast's rule), and the product comes back as f32.
///
/// Burn's CPU backend, the only one with bf16, multiplies bf16 matrices by widening both
/// operands to f32: a whole output head would be widened for every product (Qwen2.5's 151,936
/// × 896 to 0.55 GB, Llama-3's to 2.1 GB), more than the 16-bit weights save. A bf16 weight is
/// therefore multiplied a block of output columns at a time, each block widened to at most
/// [`WIDENED_BYTES`]; every output column is the same rounded dot product either way.
pub(crate) fn matmul(x: Tensor<2>, w: &Tensor<2>) -> Tensor<2> {
    matmul_widening_at_most(x, w, WIDENED_BYTES)
}

/// [`matmul`] with a bf16 weight widened at most `widened_bytes` at a time.
fn matmul_widening_at_most(x: Tensor<2>, w: &Tensor<2>, widened_bytes: usize) -> Tensor<2> {
    let dtype = w.dtype();
    if dtype == DType::F32 {
        return x.matmul(w.clone());
    }
    let [inputs, outputs] = w.dims();
    let cols = (widened_bytes / (4 * inputs).max(1)).max(1);
    if dtype != DType::BF16 || cols >= outputs {
        return x.cast(dtype).matmul(w.clone()).cast(FloatDType::F32);
    }
    // What the backend's bf16 product computes, with the activation widened once rather than
    // for every block (in the head's backward it is the [rows, vocabulary] gradient): the
    // activation rounded to bf16, each block of the weight widened, the f32 product rounded to
    // bf16.
    let x = x.cast(FloatDType::BF16).cast(FloatDType::F32);
    let blocks = (0..outputs)
        .step_by(cols)
        .map(|c0| {
            let block = w.clone().narrow(1, c0, cols.min(outputs - c0)).cast(FloatDType::F32);
            x.clone().matmul(block).cast(FloatDType::BF16).cast(FloatDType::F32)
        })
        .collect();
    Tensor::cat(blocks, 1)
}

/// `t` as f32 (rows looked up in a 16-bit embedding, say).
pub(crate) fn widen<const D: usize>(t: Tensor<D>) -> Tensor<D> {
    match t.dtype() {
        DType::F32 => t,
        _ => t.cast(FloatDType::F32),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::linear::LinearBuilder;
    use crate::model::weights::Weights;

    #[test]
    fn auto_keeps_the_checkpoint_type_where_the_cpu_has_it() {
        let cpu = crate::device::Compute::cpu().device;
        for (choice, stored, want) in [
            (WeightsDtype::Auto, FloatKind::Bf16, FloatKind::Bf16),
            (WeightsDtype::Auto, FloatKind::F16, FloatKind::F16),
            (WeightsDtype::Auto, FloatKind::F32, FloatKind::F32),
            (WeightsDtype::F32, FloatKind::Bf16, FloatKind::F32),
            (WeightsDtype::F16, FloatKind::Bf16, FloatKind::F16),
            (WeightsDtype::Bf16, FloatKind::F32, FloatKind::Bf16),
        ] {
            assert_eq!(choice.resolve(stored, &cpu).unwrap(), want, "{choice:?} of a {stored:?} checkpoint");
        }
    }

    /// A bf16 weight multiplied a block of columns at a time (as is, and transposed, as the
    /// backward pass takes it) gives the product and the input gradient of the whole weight,
    /// and the product is the f64 product of the bf16-rounded operands, rounded to bf16 (the
    /// product's type, as under autocast).
    #[test]
    fn bf16_products_in_column_blocks_equal_the_whole_product() {
        use burn::tensor::Distribution;
        let c = crate::device::Compute::cpu();
        let ad = c.device.clone().autodiff();
        let (n, k, m) = (5, 24, 70);
        for transposed in [false, true] {
            let x: Tensor<2> = Tensor::random([n, k], Distribution::Default, &c.device);
            let w32: Tensor<2> = match transposed {
                false => Tensor::random([k, m], Distribution::Default, &c.device),
                true => Tensor::<2>::random([m, k], Distribution::Default, &c.device).transpose(),
            };
            let w = w32.cast(FloatDType::BF16);
            // 4·24·16 bytes: blocks of 16 columns, the last of 6.
            let grad = |bytes: usize| {
                let x = Tensor::from_data(x.to_data(), &ad).require_grad();
                let y = matmul_widening_at_most(x.clone(), &Tensor::from_data(w.to_data(), &ad), bytes);
                let g = y.clone().sum().backward();
                (y.to_data().try_to_vec::<f32>().unwrap(), x.grad(&g).unwrap().to_data().try_to_vec::<f32>().unwrap())
            };
            let (blocked, blocked_dx) = grad(4 * k * 16);
            let (whole, whole_dx) = grad(usize::MAX);
            assert_eq!(blocked, whole, "transposed: {transposed}");
            assert_eq!(blocked_dx, whole_dx, "transposed: {transposed}");
            let round = |t: Tensor<2>| -> Vec<f64> {
                t.cast(FloatDType::BF16).cast(FloatDType::F32).to_data().iter::<f32>().map(f64::from).collect()
            };
            let (xs, ws) = (round(x.clone()), round(w.clone().cast(FloatDType::F32)));
            for (i, got) in blocked.iter().enumerate() {
                let (r, col) = (i / m, i % m);
                let want: f64 = (0..k).map(|j| xs[r * k + j] * ws[j * m + col]).sum();
                // One bf16 step (2⁻⁸ relative) for the result's rounding.
                assert!((f64::from(*got) - want).abs() <= want.abs().max(1.0) / 256.0, "{i}: {got} vs {want}");
            }
        }
    }

    /// A matrix f16 cannot hold stays f32 and is named; the layer computes what the f32 layer
    /// does. One that fits becomes f16, within f16's rounding of the f32 result.
    #[test]
    fn a_matrix_past_f16s_range_stays_f32() {
        let device = crate::device::Compute::cpu().device;
        let w = |big: f32| HostTensor { shape: vec![2, 3], data: vec![1.0, -2.0, 0.5, big, 0.25, 3.0] };
        let weights = Weights::from_tensors(
            vec![("big.weight".into(), w(70_000.0)), ("small.weight".into(), w(7.0))],
            std::path::Path::new("test.safetensors"),
        );
        let mut lb = LinearBuilder {
            weights: &weights,
            device: &device,
            infos: Vec::new(),
            trainable: false,
            leaves: Vec::new(),
            matrices: FloatKind::F16,
            kept_f32: Vec::new(),
            binding_limit: None,
        };
        let big = lb.linear("big", 3, 2).unwrap();
        let small = lb.linear("small", 3, 2).unwrap();
        assert_eq!(lb.kept_f32, ["big.weight"]);
        let x = || Tensor::<3>::from_data(TensorData::new(vec![0.1f32, 0.2, 0.3001], [1, 1, 3]), &device);
        let y = |l: &crate::model::linear::Linear| l.forward(x(), None).into_data().iter::<f32>().collect::<Vec<_>>();
        // W is [out, in] in the file: y_j = Σ_i x_i W[j][i].
        let exact = |big: f32| [0.1 - 0.4 + 0.5 * 0.3001, 0.1 * big + 0.05 + 0.9003];
        for (got, want) in y(&big).iter().zip(exact(70_000.0)) {
            assert!((got - want).abs() <= 1e-6 * want.abs().max(1.0), "{got} vs {want}");
        }
        for (got, want) in y(&small).iter().zip(exact(7.0)) {
            assert!((got - want).abs() <= 2e-3 * want.abs().max(1.0), "{got} vs {want}");
        }
    }
}
