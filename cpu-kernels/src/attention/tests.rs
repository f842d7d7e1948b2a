//! The kernels against attention written out plainly in f64, on fresh random inputs.

use super::{backward, forward, Saved, Scores, Shape};
use crate::testing::{fresh_seed, uniform};

/// Output, dq, dk, dv by the definitions, in f64, one query at a time.
fn reference(s: &Shape, c: &Scores, q: &[f32], k: &[f32], v: &[f32], d_out: &[f32]) -> [Vec<f64>; 4] {
    let (t, d, rep) = (s.len, s.head_dim, s.heads / s.kv_heads);
    let mut out = vec![0f64; q.len()];
    let (mut dq, mut dk, mut dv) = (vec![0f64; q.len()], vec![0f64; k.len()], vec![0f64; k.len()]);
    for b in 0..s.batch {
        for h in 0..s.heads {
            let qh = (b * s.heads + h) * t * d;
            let kh = (b * s.kv_heads + h / rep) * t * d;
            for i in 0..t {
                let seen: Vec<usize> = (c.first_key(i)..=i).collect();
                let raw: Vec<f64> = seen
                    .iter()
                    .map(|&j| {
                        (0..d).map(|x| q[qh + i * d + x] as f64 * k[kh + j * d + x] as f64).sum::<f64>()
                            * c.scale as f64
                    })
                    .collect();
                let z: Vec<f64> =
                    raw.iter().map(|&r| c.softcap.map_or(r, |cap| cap as f64 * (r / cap as f64).tanh())).collect();
                let m = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let sum: f64 = z.iter().map(|x| (x - m).exp()).sum();
                let p: Vec<f64> = z.iter().map(|x| (x - m).exp() / sum).collect();
                for x in 0..d {
                    out[qh + i * d + x] = seen.iter().zip(&p).map(|(&j, p)| p * v[kh + j * d + x] as f64).sum();
                }
                let g = |x: usize| d_out[qh + i * d + x] as f64;
                let dp: Vec<f64> =
                    seen.iter().map(|&j| (0..d).map(|x| g(x) * v[kh + j * d + x] as f64).sum()).collect();
                let delta: f64 = p.iter().zip(&dp).map(|(p, g)| p * g).sum();
                for (n, &j) in seen.iter().enumerate() {
                    let slope = c.softcap.map_or(1.0, |cap| 1.0 / (raw[n] / cap as f64).cosh().powi(2));
                    let ds = p[n] * (dp[n] - delta) * slope;
                    for x in 0..d {
                        dq[qh + i * d + x] += c.scale as f64 * ds * k[kh + j * d + x] as f64;
                        dk[kh + j * d + x] += c.scale as f64 * ds * q[qh + i * d + x] as f64;
                        dv[kh + j * d + x] += p[n] * g(x);
                    }
                }
            }
        }
    }
    [out, dq, dk, dv]
}

/// Grouped-query heads, windows, soft-capping, lengths that end in a short tile and one shorter
/// than a tile; errors relative to each tensor's largest magnitude.
#[test]
fn kernels_match_attention_written_out_in_f64() {
    let mut state = fresh_seed("cpu attention kernels");
    let cases = [
        (
            Shape { batch: 2, heads: 4, kv_heads: 2, len: 150, head_dim: 8 },
            Scores { scale: 0.35, softcap: None, window: None },
        ),
        (
            Shape { batch: 1, heads: 6, kv_heads: 1, len: 131, head_dim: 4 },
            Scores { scale: 0.5, softcap: Some(3.0), window: Some(70) },
        ),
        (
            Shape { batch: 3, heads: 2, kv_heads: 2, len: 23, head_dim: 16 },
            Scores { scale: 0.25, softcap: None, window: Some(5) },
        ),
        (
            Shape { batch: 1, heads: 3, kv_heads: 3, len: 200, head_dim: 64 },
            Scores { scale: 0.125, softcap: Some(50.0), window: None },
        ),
    ];
    for (shape, scores) in cases {
        let (nq, nk) = (shape.queries(), shape.keys());
        let (q, k, v, d_out) = (
            uniform(&mut state, nq, 2.0),
            uniform(&mut state, nk, 2.0),
            uniform(&mut state, nk, 2.0),
            uniform(&mut state, nq, 2.0),
        );
        let (mut out, mut lse) = (vec![0f32; nq], vec![0f32; nq / shape.head_dim]);
        forward(&shape, &scores, &q, &k, &v, &mut out, &mut lse);
        let (mut dq, mut dk, mut dv) = (vec![0f32; nq], vec![0f32; nk], vec![0f32; nk]);
        let saved = Saved { q: &q, k: &k, v: &v, out: &out, lse: &lse };
        backward(&shape, &scores, saved, &d_out, &mut dq, &mut dk, &mut dv);
        let want = reference(&shape, &scores, &q, &k, &v, &d_out);
        for (name, got, want) in
            [("output", &out, &want[0]), ("dq", &dq, &want[1]), ("dk", &dk, &want[2]), ("dv", &dv, &want[3])]
        {
            let top = want.iter().fold(0f64, |m, x| m.max(x.abs()));
            let err = got.iter().zip(want).fold(0f64, |m, (&a, b)| m.max((a as f64 - b).abs()));
            assert!(err <= 2e-6 * top.max(1.0), "{name} ({shape:?}, {scores:?}): max error {err:e} of {top:e}");
        }
    }
}
