//! Causal attention a block of queries at a time, with its backward written out, so that no
//! `[B, H, T, T]` tensor ever exists. Why: differentiating [`super::nn::attention`] keeps its
//! score and probability tensors, each `B·H·T²` floats, for every layer until the backward pass
//! (at T = 2048 on SmolLM2-135M's shape, 151 MB per copy per layer, 30 layers). Here a block
//! of `n` queries sees the keys up to its last query (the causal mask hides the rest, and their
//! softmax weight is exactly 0 in f32 either way), holds `B·H·n·T` scores at most, and the
//! backward recomputes them block by block from q, k, v, the output and each row's log-sum-exp
//! (kept by the forward pass, so that the probabilities come back as p = exp(z − lse) without
//! a second softmax): memory linear in T.
//!
//! With s = scale·q·kᵀ, z = c·tanh(s/c) where the layer soft-caps (else z = s), masked, p =
//! softmax(z) over keys and o = p·v, the backward of a loss with ∂L/∂o = dO is, per query row:
//!   dV = pᵀ·dO,   dP = dO·vᵀ,   dZ = p ⊙ (dP − rowsum(dO ⊙ o)),   dS = dZ ⊙ sech²(s/c),
//!   dQ = scale·dS·k,   dK = scale·dSᵀ·q,
//! and grouped-query heads sum dK and dV over the query heads that share a key head.

use burn::prelude::*;
use burn::tensor::activation;

#[cfg(not(target_family = "wasm"))]
use super::flex_attention::{self, Kernels};
use super::nn;

/// Most scores one block holds (16 MiB of f32); a block's backward keeps four such tensors.
/// Chosen on the CPU at T = 2048 (SmolLM2-135M's shape), where blocks of 2^21 to 2^22 scores ran
/// 4–8% faster than 2^23 and blocks of 2^19 or fewer slower, before our kernels took over there
/// (docs/performance.md); not measured on a GPU.
pub(crate) const BLOCK: usize = 1 << 22;

/// Queries per block when `rows` score rows (batch × heads) each see up to `t` keys and a
/// block may hold `budget` scores.
fn block_len(budget: usize, rows: usize, t: usize) -> usize {
    (budget / (rows * t).max(1)).clamp(1, t.max(1))
}

/// Masked (soft-capped) scores of scaled queries `scale·q: [B, H, n, hd]` at positions `q0..q0 +
/// n` against keys `k: [B, H, q0 + n, hd]`, and, when asked, the soft cap's slope sech²(s/c).
/// The scale is applied to the queries, once for all blocks, not to every block's scores.
fn scores(
    q: Tensor<4>,
    k: Tensor<4>,
    mask: &Tensor<4>,
    q0: usize,
    softcap: Option<f64>,
    slope: bool,
) -> (Tensor<4>, Option<Tensor<4>>) {
    let (n, end) = (q.dims()[2], k.dims()[2]);
    let s = q.matmul(k.swap_dims(2, 3));
    let (z, slope) = match softcap {
        Some(c) => {
            let u = s.div_scalar(c);
            // sech²(u) = 4a/(1 + a)² with a = e^{−2|u|}: no cancellation where tanh saturates.
            let slope = slope.then(|| {
                let a = u.clone().abs().mul_scalar(-2.0).exp();
                let d = a.clone().add_scalar(1.0);
                a.mul_scalar(4.0) / (d.clone() * d)
            });
            (activation::tanh(u).mul_scalar(c), slope)
        }
        None => (s, None),
    };
    (z + mask.clone().narrow(2, q0, n).narrow(3, 0, end), slope)
}

/// Which keys each query sees: its own and those before it, within `window` on a sliding
/// layer; `mask` says the same as an additive `[1, 1, T, T]` tensor (0 seen, −10⁹ hidden).
#[derive(Clone)]
pub struct Causal {
    pub mask: Tensor<4>,
    pub window: Option<usize>,
}

impl Causal {
    /// The same with its mask off autodiff, for the functions here, which take values.
    pub fn values(&self) -> Causal {
        Causal { mask: self.mask.clone().without_autodiff(), window: self.window }
    }
}

/// What [`forward`] computes: attention's output `[B, H, T, hd]` and the log-sum-exp `[B, H, T,
/// 1]` of each query's masked scores, from which [`backward`] recovers the probabilities with one
/// exponential, p = exp(z − lse), instead of a softmax's four passes.
pub struct Attended {
    pub out: Tensor<4>,
    pub lse: Tensor<4>,
}

/// The causal attention of `q: [B, H, T, hd]` and `k, v: [B, KV, T, hd]` (KV dividing H), the
/// same function as [`super::nn::attention`] before its heads are merged, with blocks of at most
/// `budget` scores ([`BLOCK`]). Used on tensors without autodiff; f32 values on the CPU backend
/// go through our kernels ([`super::flex_attention`]), the rest through tensor operations.
pub fn forward(
    budget: usize,
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    causal: &Causal,
    scale: f64,
    softcap: Option<f64>,
) -> Attended {
    #[cfg(not(target_family = "wasm"))]
    if let Some(kernels) = Kernels::on(&q, &k, &v) {
        let [out, lse] = kernels.forward([q, k, v], &flex_attention::scores(scale, softcap, causal.window));
        return Attended { out, lse };
    }
    forward_tensors(budget, q, k, v, &causal.mask, scale, softcap)
}

/// [`forward`] by tensor operations. Each block's output is normalised after its product with v
/// (`[n, hd]` divisions instead of `[n, T]`).
fn forward_tensors(
    budget: usize,
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    mask: &Tensor<4>,
    scale: f64,
    softcap: Option<f64>,
) -> Attended {
    let [b, h, t, _] = q.dims();
    let rep = h / k.dims()[1];
    let (q, k, v) = (q.mul_scalar(scale), nn::repeat_kv(k, rep), nn::repeat_kv(v, rep));
    let n = block_len(budget, b * h, t);
    let (mut out, mut lse) = (Vec::with_capacity(t.div_ceil(n)), Vec::with_capacity(t.div_ceil(n)));
    for q0 in (0..t).step_by(n) {
        let end = (q0 + n).min(t);
        let (z, _) = scores(q.clone().narrow(2, q0, end - q0), k.clone().narrow(2, 0, end), mask, q0, softcap, false);
        // Every row sees at least its own key (the masks are causal), so its maximum is finite.
        let max = z.clone().max_dim(3);
        let e = (z - max.clone()).exp();
        let sum = e.clone().sum_dim(3);
        out.push(e.matmul(v.clone().narrow(2, 0, end)) / sum.clone());
        lse.push(max + sum.log());
    }
    Attended { out: Tensor::cat(out, 2), lse: Tensor::cat(lse, 2) }
}

/// Gradients of q, k and v (shaped as they are) given what [`forward`] computed from them and the
/// loss's gradient `d_o` with respect to its output, with blocks of at most `budget` scores
/// (our kernels on the CPU backend, as in [`forward`]).
#[allow(clippy::too_many_arguments)]
pub fn backward(
    budget: usize,
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    attended: Attended,
    d_o: Tensor<4>,
    causal: &Causal,
    scale: f64,
    softcap: Option<f64>,
) -> (Tensor<4>, Tensor<4>, Tensor<4>) {
    #[cfg(not(target_family = "wasm"))]
    if let Some(kernels) = Kernels::on(&q, &k, &v) {
        let scores = flex_attention::scores(scale, softcap, causal.window);
        let [dq, dk, dv] = kernels.backward([q, k, v], [attended.out, attended.lse], d_o, &scores);
        return (dq, dk, dv);
    }
    backward_tensors(budget, q, k, v, attended, d_o, &causal.mask, scale, softcap)
}

/// [`backward`] by tensor operations.
#[allow(clippy::too_many_arguments)]
fn backward_tensors(
    budget: usize,
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    attended: Attended,
    d_o: Tensor<4>,
    mask: &Tensor<4>,
    scale: f64,
    softcap: Option<f64>,
) -> (Tensor<4>, Tensor<4>, Tensor<4>) {
    let [b, h, t, hd] = q.dims();
    let kv = k.dims()[1];
    let rep = h / kv;
    // Scaled once: the scores' queries, and dK = scale·dSᵀ·q = dSᵀ·(scale·q).
    let (q, k, v) = (q.mul_scalar(scale), nn::repeat_kv(k, rep), nn::repeat_kv(v, rep));
    let device = q.device();
    let Attended { out: o, lse } = attended;
    // rowsum(dO ⊙ o) = Σ_j p_ij·dP_ij, the softmax backward's subtrahend, for every query.
    let delta = (d_o.clone() * o).sum_dim(3);
    let (mut dk, mut dv) = (Tensor::<4>::zeros([b, h, t, hd], &device), Tensor::<4>::zeros([b, h, t, hd], &device));
    let n = block_len(budget, b * h, t);
    let mut dq = Vec::with_capacity(t.div_ceil(n));
    for q0 in (0..t).step_by(n) {
        let end = (q0 + n).min(t);
        let (qb, keys, values) =
            (q.clone().narrow(2, q0, end - q0), k.clone().narrow(2, 0, end), v.clone().narrow(2, 0, end));
        let (z, slope) = scores(qb.clone(), keys.clone(), mask, q0, softcap, true);
        let p = (z - lse.clone().narrow(2, q0, end - q0)).exp();
        let dob = d_o.clone().narrow(2, q0, end - q0);
        let dv_part = p.clone().swap_dims(2, 3).matmul(dob.clone());
        let dp = dob.matmul(values.swap_dims(2, 3));
        let dz = p * (dp - delta.clone().narrow(2, q0, end - q0));
        let ds = match slope {
            Some(slope) => dz * slope,
            None => dz,
        };
        dq.push(ds.clone().matmul(keys).mul_scalar(scale));
        let dk_part = ds.swap_dims(2, 3).matmul(qb);
        let range = [0..b, 0..h, 0..end, 0..hd];
        dk = dk.clone().slice_assign(range.clone(), dk.slice(range.clone()) + dk_part);
        dv = dv.clone().slice_assign(range.clone(), dv.slice(range) + dv_part);
    }
    // Query heads h·rep..(h+1)·rep read key head h: their gradients add up there.
    let fold = |g: Tensor<4>| match rep {
        1 => g,
        _ => g.reshape([b, kv, rep, t, hd]).sum_dim(2).reshape([b, kv, t, hd]),
    };
    (Tensor::cat(dq, 2), fold(dk), fold(dv))
}

#[cfg(test)]
mod tests {
    use super::super::testing::{fresh_seed, uniform};
    use super::*;
    use crate::device::Compute;

    /// The blocked forward and the written-out backward, both by tensor operations and by the
    /// CPU kernels, against autodiff through the whole score tensors, on random inputs with
    /// grouped-query heads, a sliding window, soft-capping and padding rows, at lengths that
    /// make several blocks and a short last one.
    #[test]
    fn blocked_attention_matches_autodiff_through_whole_scores() {
        let values = Compute::cpu().device.without_autodiff();
        let seed = fresh_seed("blocked attention");
        let mut draws = 0u32;
        // (batch, heads, kv heads, length, head dim, window, soft cap, scale)
        let cases = [
            (2, 4, 2, 37, 8, None, None, 0.35),
            (1, 6, 1, 50, 4, Some(7), Some(3.0), 0.5),
            (3, 2, 2, 23, 16, Some(30), None, 0.25),
        ];
        for (b, h, kv, t, hd, window, softcap, scale) in cases {
            // Uniform on [−2, 2), a fresh stream of the seed's hashes for each.
            let mut random = |heads: usize| {
                draws += 1;
                uniform(seed, draws, [b, heads, t, hd], 2.0, &values)
            };
            let (q, k, v, d_o) = (random(h), random(kv), random(kv), random(h));
            let mask = nn::causal_mask(t, window, &values);
            // Whole scores, differentiated by autodiff.
            let leaf = |x: &Tensor<4>| x.clone().autodiff().require_grad();
            let (ql, kl, vl) = (leaf(&q), leaf(&k), leaf(&v));
            let rep = h / kv;
            let want = nn::attention(
                ql.clone(),
                nn::repeat_kv(kl.clone(), rep),
                nn::repeat_kv(vl.clone(), rep),
                &mask,
                scale,
                softcap,
            );
            let grads = (want.clone() * d_o.clone().autodiff()).sum().backward();
            let grad = |x: &Tensor<4>| x.grad(&grads).expect("reached");
            // Blocks of 6 queries: several per length, and a shorter last one.
            let budget = 6 * b * h * t;
            let tensors = forward_tensors(budget, q.clone(), k.clone(), v.clone(), &mask, scale, softcap);
            let out_tensors = tensors.out.clone();
            let (dq_t, dk_t, dv_t) =
                backward_tensors(budget, q.clone(), k.clone(), v.clone(), tensors, d_o.clone(), &mask, scale, softcap);
            let causal = Causal { mask: mask.clone(), window };
            assert!(Kernels::on(&q, &k, &v).is_some(), "f32 values on the CPU backend take the kernels");
            let attended = forward(budget, q.clone(), k.clone(), v.clone(), &causal, scale, softcap);
            let out = attended.out.clone();
            let (dq, dk, dv) = backward(budget, q, k, v, attended, d_o, &causal, scale, softcap);
            let close = |name: &str, got: Tensor<4>, want: Tensor<4>| {
                let (got, want): (Vec<f32>, Vec<f32>) =
                    (got.into_data().iter().collect(), want.into_data().iter().collect());
                let scale = want.iter().fold(0f32, |m, x| m.max(x.abs()));
                let err = got.iter().zip(&want).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
                assert!(err <= 1e-5 * scale.max(1.0), "{name} (b {b}, h {h}, kv {kv}, t {t}): max error {err:e}");
            };
            close("output (tensors)", out_tensors, want.clone().without_autodiff());
            close("dq (tensors)", dq_t, grad(&ql));
            close("dk (tensors)", dk_t, grad(&kl));
            close("dv (tensors)", dv_t, grad(&vl));
            close("output (kernels)", out, want.without_autodiff());
            close("dq (kernels)", dq, grad(&ql));
            close("dk (kernels)", dk, grad(&kl));
            close("dv (kernels)", dv, grad(&vl));
        }
    }
}
