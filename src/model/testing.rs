//! What the CPU kernels' tests in this module share: a fresh seed per run, random tensors
//! from it, and the comparison with the tensor operations they replace.

use burn::prelude::*;

/// The run's seed: `GRADSIFT_TEST_SEED`, else the clock (printed with `what`, to replay a
/// failure).
pub fn fresh_seed(what: &str) -> u32 {
    let seed = std::env::var("GRADSIFT_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u32)
    });
    eprintln!("{what}: seed {seed} (replay with GRADSIFT_TEST_SEED={seed})");
    seed
}

/// Values uniform on [−scale, scale) of shape `dims`, the `draw`-th stream of `seed` (splitmix64).
pub fn uniform<const D: usize>(seed: u32, draw: u32, dims: [usize; D], scale: f32, device: &Device) -> Tensor<D> {
    let mut state = (u64::from(seed) << 32) ^ u64::from(draw).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let n = dims.iter().product::<usize>();
    let data: Vec<f32> = (0..n)
        .map(|_| {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            (((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 23) as f32 - 1.0) * scale
        })
        .collect();
    Tensor::from_data(TensorData::new(data, dims), device)
}

/// Panics unless `got` and `want` agree within `tol`, relative to each value's size (at
/// least 1).
pub fn assert_close<const D: usize>(what: &str, got: Tensor<D>, want: Tensor<D>, tol: f32) {
    let (got, want): (Vec<f32>, Vec<f32>) = (got.into_data().iter().collect(), want.into_data().iter().collect());
    assert_eq!(got.len(), want.len(), "{what}: sizes");
    let err = got.iter().zip(&want).fold(0f32, |m, (a, b)| m.max((a - b).abs() / b.abs().max(1.0)));
    assert!(err < tol, "{what}: worst error {err:e}");
}

/// A fused operation `fused` of `x` against the tensor operations `tensors` it replaces: values,
/// then output and the gradient of ⟨output, dy⟩ with respect to x under autodiff. `fused`
/// returns None where it does not take its input, which fails the check.
pub fn check_against_tensor_operations<const D: usize>(
    what: &str,
    x: &Tensor<D>,
    dy: &Tensor<D>,
    fused: impl Fn(&Tensor<D>) -> Option<Tensor<D>>,
    tensors: impl Fn(Tensor<D>) -> Tensor<D>,
) {
    let got = fused(x).unwrap_or_else(|| panic!("{what}: f32 values on the CPU take the kernel"));
    assert_close(&format!("{what}: values"), got, tensors(x.clone()), 1e-5);
    let (x1, x2) = (x.clone().autodiff().require_grad(), x.clone().autodiff().require_grad());
    let got = fused(&x1).unwrap_or_else(|| panic!("{what}: f32 autodiff tensors on the CPU take the kernel"));
    let want = tensors(x2.clone());
    assert_close(&format!("{what}: output"), got.clone().without_autodiff(), want.clone().without_autodiff(), 1e-5);
    let mut g1 = (got * dy.clone().autodiff()).sum().backward();
    let mut g2 = (want * dy.clone().autodiff()).sum().backward();
    let grad = |x: &Tensor<D>, g: &mut _| x.grad_remove(g).expect("the input reaches the output");
    assert_close(&format!("{what}: gradient"), grad(&x1, &mut g1), grad(&x2, &mut g2), 1e-5);
}
