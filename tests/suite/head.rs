//! The blocked output head with its hand-written backward (src/loss/head.rs) against the
//! definition in f64, on fresh random inputs with padding, masked prompts, a bias and a soft cap
//! that saturates, on both backends (on the CPU the head whole goes through our CPU kernel, in
//! parts through tensor operations); and the full-logits `response_logps` against the same.

use burn::prelude::*;

use crate::common;
use gradsift::data::Sequence;
use gradsift::loss::head::head_pass;
use gradsift::loss::SeqBatch;
use gradsift::model::{HostTensor, Matrix, OutputHead};

/// log p(y) summed per sequence and its gradient with respect to every hidden state, in f64;
/// `w` is `[d, v]`.
fn naive(
    h: &[f32],
    (w, d, v): (&[f32], usize, usize),
    bias: Option<&[f32]>,
    seqs: &[Sequence],
    t: usize,
    cap: Option<f64>,
) -> (Vec<f64>, Vec<f64>) {
    let mut logps = vec![0f64; seqs.len()];
    let mut grad = vec![0f64; seqs.len() * t * d];
    for (s, q) in seqs.iter().enumerate() {
        for j in 0..q.ids.len() - 1 {
            if q.mask[j + 1] == 0 {
                continue;
            }
            let y = q.ids[j + 1] as usize;
            let x = &h[(s * t + j) * d..(s * t + j + 1) * d];
            let b = |c: usize| bias.map_or(0.0, |b| b[c] as f64);
            let raw: Vec<f64> =
                (0..v).map(|c| (0..d).map(|i| x[i] as f64 * w[i * v + c] as f64).sum::<f64>() + b(c)).collect();
            let z: Vec<f64> = raw.iter().map(|&r| cap.map_or(r, |c| c * (r / c).tanh())).collect();
            let slope: Vec<f64> = raw.iter().map(|&r| cap.map_or(1.0, |c| 1.0 - (r / c).tanh().powi(2))).collect();
            let m = z.iter().cloned().fold(f64::MIN, f64::max);
            let lse = m + z.iter().map(|&zi| (zi - m).exp()).sum::<f64>().ln();
            logps[s] += z[y] - lse;
            for i in 0..d {
                let g: f64 = (0..v)
                    .map(|c| slope[c] * (f64::from(u8::from(c == y)) - (z[c] - lse).exp()) * w[i * v + c] as f64)
                    .sum();
                grad[(s * t + j) * d + i] = g;
            }
        }
    }
    (logps, grad)
}

common::each_backend! {
    fn head_pass_equals_the_definition(c) {
        let seed = common::fresh_seed("head_pass_equals_the_definition");
        let (d, v) = (16usize, 37usize);
        let lens = [7usize, 4, 6];
        let t = *lens.iter().max().unwrap();
        let seqs: Vec<Sequence> = lens
            .iter()
            .enumerate()
            .map(|(s, &n)| {
                let r = common::random_vec(n, seed ^ (s as u64 + 1));
                let ids = r.iter().map(|x| ((x.abs() * 1000.0) as u32) % v as u32).collect();
                // The first two tokens are the prompt.
                let mask = (0..n).map(|j| u8::from(j >= 2)).collect();
                Sequence { ids, mask }
            })
            .collect();
        let refs: Vec<&Sequence> = seqs.iter().collect();
        let batch = SeqBatch::new(&refs, &c.device);
        // Large enough hidden states that the cap saturates.
        let h: Vec<f32> = common::random_vec(lens.len() * t * d, seed ^ 0xAB).iter().map(|x| 3.0 * x).collect();
        let w = common::random_vec(d * v, seed ^ 0xCD);
        let bias = common::random_vec(v, seed ^ 0xEF);
        // The head whole, and in three parts along the vocabulary (13 + 13 + 11 columns), as
        // it is kept past a GPU's binding limit.
        let cases = [(None, false), (Some(2.0), false), (None, true), (Some(2.0), true)];
        for ((cap, with_bias), parts) in cases.into_iter().flat_map(|case| [(case, 1), (case, 3)]) {
            let ht = Tensor::<3>::from_data(TensorData::new(h.clone(), [lens.len(), t, d]), &c.device);
            let limit = (parts > 1).then_some(256 + d * 4 * 13);
            let wt = Matrix::from_host(HostTensor { shape: vec![d, v], data: w.clone() }, 1, limit, &c.device);
            assert_eq!(wt.parts(), parts);
            let bt = with_bias.then(|| Tensor::<1>::from_data(TensorData::new(bias.clone(), [v]), &c.device));
            let head = OutputHead { weight: wt, bias: bt, softcap: cap };
            let pass = head_pass(&head, ht, &batch, true);
            let b = with_bias.then_some(&bias[..]);
            let (want_lp, want_g) = naive(&h, (&w, d, v), b, &seqs, t, cap);
            let got_g: Vec<f64> = pass.grad.unwrap().iter().map(|&x| x as f64).collect();
            let (e_lp, e_g) = (common::rel_err(&pass.logps, &want_lp), common::rel_err(&got_g, &want_g));
            eprintln!(
                "head on {}, cap {cap:?}, bias {with_bias}, {parts} parts: logps rel err {e_lp:.2e}, gradient rel err {e_g:.2e}",
                c.label
            );
            assert!(
                e_lp <= 1e-5 && e_g <= 1e-5,
                "cap {cap:?}, bias {with_bias}, {parts} parts on {}: logps {e_lp:.2e}, gradient {e_g:.2e}",
                c.label
            );
            // The full-logits path (base-model training) agrees with the definition too.
            let ht = Tensor::<3>::from_data(TensorData::new(h.clone(), [lens.len(), t, d]), &c.device);
            let logits = head.logits(ht.reshape([lens.len() * t, d])).reshape([lens.len(), t, v]);
            let full: Vec<f64> = batch.response_logps(logits).into_data().iter::<f32>().map(f64::from).collect();
            let e_full = common::rel_err(&full, &want_lp);
            assert!(e_full <= 1e-5, "response_logps, cap {cap:?} on {}: {e_full:.2e}", c.label);
        }
    }
}
