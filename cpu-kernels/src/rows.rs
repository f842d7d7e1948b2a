//! The element-wise work on one row of a tile's scores, vectorised: an exponential written as
//! a polynomial (the C library's `expf` is scalar, and was a tenth of a layerwise gradient
//! pass), and maxima and sums over 16 lanes. Each function is compiled for AVX-512 and for
//! AVX2 with FMA besides the baseline, and chooses at run time.

/// Defines `pub(crate) fn $name` from a body compiled three times on x86-64 (AVX-512, AVX2 +
/// FMA, baseline) and chosen by the CPU it runs on; once elsewhere.
macro_rules! vectorised {
    ($(#[$doc:meta])* fn $name:ident($($arg:ident: $ty:ty),*) $(-> $ret:ty)? $body:block) => {
        $(#[$doc])*
        pub(crate) fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn body($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                fn avx512($($arg: $ty),*) $(-> $ret)? { body($($arg),*) }
                #[target_feature(enable = "avx2,fma")]
                fn avx2($($arg: $ty),*) $(-> $ret)? { body($($arg),*) }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU has AVX-512F.
                    return unsafe { avx512($($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                    // SAFETY: the CPU has AVX2 and FMA.
                    return unsafe { avx2($($arg),*) };
                }
            }
            body($($arg),*)
        }
    };
}
pub(crate) use vectorised;

/// e^x for x ≤ 88, within 2 ulp where the result is a normal float, as Cephes' `expf` computes
/// it: x = n·ln 2 + r with |r| ≤ ln 2 / 2, a degree-7 polynomial in r, 2^n from the exponent
/// bits. For x below −87 it returns about 2^−126 instead of a subnormal: a softmax weight under
/// 10^−37, which no sum of weights holding a 1 can tell from 0.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    // Adding 1.5·2^23 rounds to an integer, which the low bits of the sum then hold.
    const ROUND: f32 = 12_582_912.0;
    let x = if x < -87.0 { -87.0 } else { x };
    let x = if x > 88.0 { 88.0 } else { x };
    let t = x * std::f32::consts::LOG2_E + ROUND;
    let n = t - ROUND;
    // ln 2 in two parts, the first exact in few bits so that n times it is exact.
    let r = x - n * 0.693_359_4 + n * 2.121_944_4e-4;
    let p = (((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r + 1.666_666_5e-1)
        * r
        + 0.5)
        * (r * r)
        + r
        + 1.0;
    let n = (t.to_bits() as i32).wrapping_sub(ROUND.to_bits() as i32);
    p * f32::from_bits(((n + 127) << 23) as u32)
}

/// Lanes of the reductions: a vector of AVX-512, two of AVX2.
const LANES: usize = 16;

#[inline(always)]
fn lanes_max(xs: &[f32]) -> f32 {
    let mut m = [f32::NEG_INFINITY; LANES];
    let chunks = xs.chunks_exact(LANES);
    let rest = chunks.remainder();
    for c in chunks {
        for l in 0..LANES {
            m[l] = if c[l] > m[l] { c[l] } else { m[l] };
        }
    }
    rest.iter().chain(&m).fold(f32::NEG_INFINITY, |a, &b| if b > a { b } else { a })
}

#[inline(always)]
fn lanes_exp_sum(xs: &mut [f32], shift: f32) -> f32 {
    let mut sum = [0f32; LANES];
    let mut chunks = xs.chunks_exact_mut(LANES);
    for c in &mut chunks {
        for l in 0..LANES {
            c[l] = exp(c[l] - shift);
            sum[l] += c[l];
        }
    }
    let mut total = 0f32;
    for x in chunks.into_remainder() {
        *x = exp(*x - shift);
        total += *x;
    }
    total + sum.iter().sum::<f32>()
}

vectorised! {
    /// The softmax numerators of one row of scores `s` whose keys `a..e` are seen: s_j ←
    /// e^{z_j − max z} there (z = c·tanh(s/c) with a soft cap c, else s), 0 elsewhere; returns
    /// the maximum and the sum.
    fn softmax_numerators(s: &mut [f32], a: usize, e: usize, softcap: Option<f32>) -> (f32, f32) {
        if let Some(c) = softcap {
            soft_cap(&mut s[a..e], c, None);
        }
        let m = lanes_max(&s[a..e]);
        let sum = lanes_exp_sum(&mut s[a..e], m);
        s[..a].fill(0.0);
        s[e..].fill(0.0);
        (m, sum)
    }
}

vectorised! {
    /// One row of the softmax's backward: from the raw scores `s` and `dp = dO·vᵀ` of a query
    /// whose keys `a..e` are seen, with its log-sum-exp `lse` and δ = rowsum(dO ⊙ o), s ← p =
    /// e^{z − lse} and dp ← dS = p ⊙ (dp − δ) ⊙ sech²(s/c) (the last factor with a soft cap c
    /// only), both 0 outside `a..e`.
    fn softmax_backward(s: &mut [f32], dp: &mut [f32], a: usize, e: usize, lse: f32, delta: f32, softcap: Option<f32>) {
        match softcap {
            None => {
                for (x, g) in s[a..e].iter_mut().zip(&mut dp[a..e]) {
                    *x = exp(*x - lse);
                    *g = *x * (*g - delta);
                }
            }
            Some(c) => {
                for (x, g) in s[a..e].iter_mut().zip(&mut dp[a..e]) {
                    let u = *x / c;
                    // sech²(u) = 4a/(1 + a)² with a = e^{−2|u|}: no cancellation where tanh
                    // saturates.
                    let w = (-2.0 * u.abs()).exp();
                    *x = (c * u.tanh() - lse).exp();
                    *g = *x * (*g - delta) * (4.0 * w / ((1.0 + w) * (1.0 + w)));
                }
            }
        }
        for buf in [s, dp] {
            buf[..a].fill(0.0);
            buf[e..].fill(0.0);
        }
    }
}

vectorised! {
    /// The largest of `xs` (−∞ for none).
    fn max(xs: &[f32]) -> f32 {
        lanes_max(xs)
    }
}

vectorised! {
    /// xs ← e^{x − shift}; returns their sum.
    fn exp_sum(xs: &mut [f32], shift: f32) -> f32 {
        lanes_exp_sum(xs, shift)
    }
}

/// xs ← c·tanh(x/c) and, when given, `slopes` ← its derivative sech²(x/c) (= 4a/(1 + a)² with a
/// = e^{−2|x/c|}: no cancellation where tanh saturates). Scalar: only Gemma-2 soft-caps.
pub(crate) fn soft_cap(xs: &mut [f32], c: f32, slopes: Option<&mut [f32]>) {
    if let Some(slopes) = slopes {
        for (x, s) in xs.iter().zip(slopes.iter_mut()) {
            let a = (-2.0 * (x / c).abs()).exp();
            *s = 4.0 * a / ((1.0 + a) * (1.0 + a));
        }
    }
    xs.iter_mut().for_each(|x| *x = c * (*x / c).tanh());
}

vectorised! {
    /// Σ xᵢ·yᵢ.
    fn dot(x: &[f32], y: &[f32]) -> f32 {
        let mut acc = [0f32; LANES];
        let (cx, cy) = (x.chunks_exact(LANES), y.chunks_exact(LANES));
        let tail: f32 = cx.remainder().iter().zip(cy.remainder()).map(|(a, b)| a * b).sum();
        for (a, b) in cx.zip(cy) {
            for l in 0..LANES {
                acc[l] += a[l] * b[l];
            }
        }
        tail + acc.iter().sum::<f32>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Relative error against f64 over the whole range a softmax uses, tiny arguments included.
    #[test]
    fn exp_is_within_two_ulp_of_f64() {
        let grid = (0..=350_000).map(|i| -87.0 + 175.0 * i as f32 / 350_000.0);
        let tiny = (-40..=-1).flat_map(|p| [10f32.powi(p), -(10f32.powi(p))]);
        let worst = grid.chain(tiny).fold(0f64, |w, x| {
            let want = (x as f64).exp();
            w.max((exp(x) as f64 - want).abs() / want)
        });
        // Two ulp of f32 is at most 2.4e-7 relative.
        assert!(worst < 2.4e-7, "worst relative error {worst:e}");
    }
}
