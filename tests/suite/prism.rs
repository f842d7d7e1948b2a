//! PRISM on cases with a known answer: a candidate equal to a target's preferred response ranks
//! above one equal to its rejected response; π weights differ from uniform as their formula says;
//! the covariance and repair options run end to end.

use std::path::{Path, PathBuf};

use crate::common;
use gradsift::device::Compute;
use gradsift::features::Dtype;
use gradsift::methods::prism::{Hessian, PairWeights};
use gradsift::pipeline::{self, FeatureOptions, Loaded, Method, MethodOptions, MethodSpec, PrismOptions, SelectSpec};
use gradsift::select::Budget;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hf-tiny")
}

fn load(c: &Compute) -> Loaded {
    common::load_with_adapter("tiny-llama", c)
}

fn opts(proj_dim: usize) -> FeatureOptions {
    FeatureOptions {
        seed: 2,
        proj_dim,
        dtype: Dtype::F32,
        max_len: 512,
        batch_size: 8,
        chunk_size: 64,
        overwrite: true,
        ..FeatureOptions::default()
    }
}

/// PRISM on `pool` against `target` with the model and backend of `at`; its scores and manifest.
fn run(
    at: (&Loaded, &Compute),
    pool: &Path,
    target: &Path,
    out: &Path,
    prism: PrismOptions,
    budget: Budget,
    proj: usize,
) -> (Vec<f64>, serde_json::Value) {
    let o = opts(proj);
    let options = MethodOptions { beta: 0.1, prism, ..Default::default() };
    let spec = SelectSpec {
        pool: &[pool.to_path_buf()],
        method: MethodSpec::new(Method::Prism, Some(target), &[], &options).unwrap(),
        budget,
        opts: &o,
        out,
        pool_features: &[],
    };
    pipeline::select(at.0, &spec, at.1).unwrap();
    let csv = std::fs::read_to_string(out.join("scores.csv")).unwrap();
    let scores = csv.lines().skip(1).map(|l| l.split(',').nth(1).unwrap().parse().unwrap()).collect();
    let m = serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    (scores, m)
}

#[test]
fn preferred_response_outranks_rejected_response() {
    let c = Compute::cpu();
    let loaded = load(&c);
    let pairs = std::fs::read_to_string(fixtures().join("preference.jsonl")).unwrap();
    for (i, line) in pairs.lines().enumerate() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let dir_tmp = common::tmp("prism", &format!("pair{i}"));
        let dir = dir_tmp.path();
        std::fs::write(dir.join("target.jsonl"), format!("{line}\n")).unwrap();
        let cand =
            |resp: &serde_json::Value| serde_json::json!({"prompt": v["prompt"], "completion": resp}).to_string();
        std::fs::write(dir.join("pool.jsonl"), format!("{}\n{}\n", cand(&v["chosen"]), cand(&v["rejected"]))).unwrap();
        for proj in [0, 512] {
            let (s, _) = run(
                (&loaded, &c),
                &dir.join("pool.jsonl"),
                &dir.join("target.jsonl"),
                &dir.join("out"),
                PrismOptions::default(),
                Budget::Count(1),
                proj,
            );
            eprintln!("pair {i}, k={proj}: s(y+) = {:.4e}, s(y-) = {:.4e}", s[0], s[1]);
            assert!(s[0] > s[1], "pair {i} (k={proj}): candidate = y+ scored {} <= candidate = y- {}", s[0], s[1]);
        }
    }
}

#[test]
fn pi_weights_follow_the_length_normalised_likelihoods() {
    let c = Compute::cpu();
    let loaded = load(&c);
    let dir_tmp = common::tmp("prism", "pi");
    let dir = dir_tmp.path();
    let pool = fixtures().join("instruction.jsonl");
    let target = fixtures().join("preference.jsonl");
    let (s_pi, m_pi) =
        run((&loaded, &c), &pool, &target, &dir.join("pi"), PrismOptions::default(), Budget::Count(2), 0);
    let uniform = PrismOptions { weights: PairWeights::Uniform, ..Default::default() };
    let (s_u, m_u) = run((&loaded, &c), &pool, &target, &dir.join("uniform"), uniform, Budget::Count(2), 0);
    // π from the stored token-mean losses, by hand.
    let losses = |side: &str| -> Vec<f64> {
        let (l, _, _) =
            gradsift::features::npy::read(&dir.join(format!("pi/features/prism/target-{side}/losses.npy"))).unwrap();
        l.iter().map(|&x| x as f64).collect()
    };
    let (lp, ln) = (losses("chosen"), losses("rejected"));
    let pi: Vec<f64> = m_pi["details"]["pi"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
    for q in 0..pi.len() {
        let want = (-lp[q]).exp() / ((-lp[q]).exp() + (-ln[q]).exp());
        assert!((pi[q] - want).abs() < 1e-9, "pair {q}: pi {} vs {want}", pi[q]);
    }
    assert!(m_u["details"]["pi"].as_array().unwrap().iter().all(|x| x.as_f64() == Some(0.5)));
    // Different weights, different direction: the score vectors are not proportional.
    let dot: f64 = s_pi.iter().zip(&s_u).map(|(a, b)| a * b).sum();
    let cos = dot / (s_pi.iter().map(|x| x * x).sum::<f64>().sqrt() * s_u.iter().map(|x| x * x).sum::<f64>().sqrt());
    eprintln!("pi = {pi:?}; cosine(scores with pi, scores uniform) = {cos:.6}");
    assert!(cos < 1.0 - 1e-6, "pi and uniform weights gave the same direction");
}

#[test]
fn covariance_repair_and_unpaired_run_end_to_end() {
    let c = Compute::cpu();
    let loaded = load(&c);
    let dir_tmp = common::tmp("prism", "modes");
    let dir = dir_tmp.path();
    let pool = fixtures().join("instruction.jsonl");
    let target = fixtures().join("preference.jsonl");
    let cov = PrismOptions { hessian: Hessian::Covariance { damping: 0.1 }, repair: true, ..Default::default() };
    let (s, m) = run((&loaded, &c), &pool, &target, &dir.join("cov"), cov, Budget::Count(2), 64);
    let kept: Vec<usize> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("cov/selected.json")).unwrap()).unwrap();
    assert_eq!(kept.len(), 4, "repair removes 2 of 6");
    let mut order: Vec<usize> = (0..6).collect();
    order.sort_by(|&a, &b| s[a].partial_cmp(&s[b]).unwrap());
    for removed in &order[..2] {
        assert!(!kept.contains(removed), "the lowest-scoring candidate {removed} was kept");
    }
    assert_eq!(m["details"]["removed"], 2);
    let unpaired = PrismOptions { unpaired: true, ..Default::default() };
    let (_, m) = run((&loaded, &c), &pool, &target, &dir.join("unpaired"), unpaired, Budget::Count(2), 64);
    assert_eq!(m["details"]["weights"], "unpaired");
    assert!(!dir.join("unpaired/features/prism/target-rejected").exists());
}
