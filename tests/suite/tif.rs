//! The TIF family on a preference pool with a known share of flipped pairs (chosen and rejected
//! swapped) made by the generator below: after one epoch of DPO warmup, LossDiff, IRM, TIF and
//! their fusion each keep a set cleaner than the pool. The fractions are printed.

use std::path::PathBuf;

use gradsift::device::Compute;
use gradsift::features::Dtype;
use gradsift::loss::LossKind;
use gradsift::pipeline::{self, FeatureOptions, Method, MethodOptions, MethodSpec, ModelSpec, SelectSpec};
use gradsift::select::Budget;
use gradsift::train::{DpoReference, WarmupOptions};
use gradsift::util::SplitMix64;

use crate::common;

/// `n` arithmetic pairs, correct answer against an answer that ignores the question; a
/// `flip_rate` share swapped. Returns the JSONL text and which lines are flipped.
fn flipped_pairs(n: usize, flip_rate: f64, seed: u64) -> (String, Vec<bool>) {
    let mut rng = SplitMix64(seed);
    let mut text = String::new();
    let mut flipped = Vec::new();
    for _ in 0..n {
        let (a, b) = (rng.below(50), rng.below(50));
        let good = format!(" {}", a + b);
        let bad = " ok ok ok".to_string();
        let flip = rng.uniform() < flip_rate;
        let (c, r) = if flip { (bad, good) } else { (good, bad) };
        let line = serde_json::json!({"prompt": format!("Add {a} and {b}.\nAnswer:"), "chosen": c, "rejected": r});
        text.push_str(&format!("{line}\n"));
        flipped.push(flip);
    }
    (text, flipped)
}

/// `model_dir` with `adapter_dir`, or a fresh LoRA (r 8, α 32) without one.
fn model(model_dir: PathBuf, adapter_dir: Option<PathBuf>) -> ModelSpec {
    ModelSpec {
        model_dir,
        adapter_dir,
        lora_r: 8,
        lora_alpha: 32.0,
        lora_targets: vec![],
        seed: 0,
        chat_template: Default::default(),
        backprop: Default::default(),
        weights_dtype: Default::default(),
    }
}

/// One epoch of DPO over the whole pool at lr 1e-3, against the policy it starts from.
fn one_dpo_epoch(batch_size: usize) -> WarmupOptions {
    WarmupOptions {
        fraction: 1.0,
        epochs: 1,
        lr: 1e-3,
        batch_size,
        warmup_ratio: 0.0,
        schedule: gradsift::train::Schedule::Linear,
        adamw: Default::default(),
        loss: LossKind::Dpo { beta: 0.1 },
        reference: None,
        seed: 0,
        max_len: 512,
    }
}

#[test]
fn proxies_keep_cleaner_sets_than_the_pool() {
    let c = Compute::cpu();
    let assets = gradsift::assets::materialize().unwrap();
    let dir_tmp = common::tmp("tif", "methods");
    let dir = dir_tmp.path();
    let (pool_text, flipped) = flipped_pairs(160, 0.3, 11);
    let (val_text, _) = flipped_pairs(8, 0.0, 12);
    std::fs::write(dir.join("pool.jsonl"), pool_text).unwrap();
    std::fs::write(dir.join("val.jsonl"), val_text).unwrap();
    let clean_rate = flipped.iter().filter(|f| !**f).count() as f64 / flipped.len() as f64;

    let loaded = pipeline::load(&model(assets.model_dir.clone(), None), &c).unwrap();
    let warm = one_dpo_epoch(8);
    let ckpt = pipeline::warmup(&loaded, &[dir.join("pool.jsonl")], &warm, &c, &dir.join("warmup")).unwrap();
    let opts = FeatureOptions {
        seed: 0,
        proj_dim: 1024,
        dtype: Dtype::F32,
        max_len: 512,
        batch_size: 8,
        chunk_size: 256,
        overwrite: false,
        ..FeatureOptions::default()
    };
    eprintln!("pool: {} pairs, clean rate {clean_rate:.3}", flipped.len());
    let options = |with_if: bool| MethodOptions {
        beta: 0.1,
        tif: gradsift::pipeline::TifOptions {
            val: gradsift::pipeline::ValTraining { lr: 1e-3, ..Default::default() },
            with_if,
            ..Default::default()
        },
        ..Default::default()
    };
    let val = dir.join("val.jsonl");
    let mut fused_with_if = Vec::new();
    for method in [Method::Irm, Method::Lossdiff, Method::Tif, Method::Fusion] {
        let out = dir.join(format!("{method:?}"));
        let options = options(true);
        let s = SelectSpec {
            pool: &[dir.join("pool.jsonl")],
            method: MethodSpec::new(method, Some(&val), &ckpt, &options).unwrap(),
            budget: Budget::Fraction(1.0),
            opts: &opts,
            out: &out,
            pool_features: &[],
        };
        let sel = pipeline::select(&loaded, &s, &c).unwrap();
        let clean = sel.selected.iter().filter(|&&i| !flipped[i]).count() as f64 / sel.selected.len() as f64;
        eprintln!(
            "{method:?}: kept {} of {} ({:.3}), clean fraction {clean:.3}",
            sel.selected.len(),
            flipped.len(),
            sel.selected.len() as f64 / flipped.len() as f64
        );
        assert!(clean > clean_rate, "{method:?} kept a set no cleaner ({clean:.3}) than the pool ({clean_rate:.3})");
        if method == Method::Fusion {
            fused_with_if = sel.selected.clone();
            let m: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
            assert!(m["details"]["fusion"]["overlap_with_tif"]["jaccard"].is_number(), "--with-if reports the overlap");
            assert_eq!(m["details"]["theta_val"]["schedule"], "constant");
        }
    }
    // Without --with-if the fusion skips IF: the same kept set, no IF column, no overlap.
    let out = dir.join("fusion-without-if");
    let s = SelectSpec {
        pool: &[dir.join("pool.jsonl")],
        method: MethodSpec::new(Method::Fusion, Some(&val), &ckpt, &options(false)).unwrap(),
        budget: Budget::Fraction(1.0),
        opts: &opts,
        out: &out,
        pool_features: &[],
    };
    assert_eq!(pipeline::select(&loaded, &s, &c).unwrap().selected, fused_with_if);
    let header = std::fs::read_to_string(out.join("scores.csv")).unwrap().lines().next().unwrap().to_string();
    assert!(!header.split(',').any(|c| c == "if"), "{header}");
    assert!(!out.join("features/tif").exists(), "no gradient pass for IF");
}

/// IRM through `select` with a DPO reference policy: the policy is a checkpoint, the reference
/// the SFT adapter it started from, and each pair's score is PyTorch's implicit reward margin
/// under those two policies (tests/fixtures/dpo-reference). A DPO warmup that starts from the
/// SFT adapter trains against it and records it, and IRM at its checkpoint takes it from there;
/// the manifest says which reference and how it was chosen; a method without a DPO loss refuses
/// one.
#[test]
fn irm_measures_against_the_reference_policy() {
    let c = Compute::cpu();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let (tiny, fixture) = (root.join("hf-tiny"), root.join("dpo-reference/tiny-llama"));
    let sft = tiny.join("tiny-llama/adapter");
    let loaded = pipeline::load(&model(tiny.join("tiny-llama"), Some(sft.clone())), &c).unwrap();
    let dir_tmp = common::tmp("tif", "dpo-reference");
    let dir = dir_tmp.path();
    let opts = FeatureOptions { max_len: 512, ..FeatureOptions::default() };
    let pool = [tiny.join("preference.jsonl")];
    let irm = |name: &str, checkpoint: &std::path::Path, reference: Option<DpoReference>| {
        let options = MethodOptions { beta: 0.1, dpo_reference: reference, ..Default::default() };
        let checkpoints = [checkpoint.to_path_buf()];
        let out = dir.join(name);
        let s = SelectSpec {
            pool: &pool,
            method: MethodSpec::new(Method::Irm, None, &checkpoints, &options).unwrap(),
            budget: Budget::Fraction(1.0),
            opts: &opts,
            out: &out,
            pool_features: &[],
        };
        pipeline::select(&loaded, &s, &c).unwrap();
        let mut scores = csv::Reader::from_path(out.join("scores.csv")).unwrap();
        let column = scores.headers().unwrap().iter().position(|h| h == "irm").expect("an irm column");
        let margins: Vec<f64> = scores.records().map(|r| r.unwrap()[column].parse().unwrap()).collect();
        let m: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
        (margins, m["dpo_reference"].clone())
    };

    let (margins, reference) = irm("given", &fixture.join("policy"), Some(DpoReference::Adapter(sft.clone())));
    let want: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture.join("reference.json")).unwrap()).unwrap();
    for (i, got) in margins.iter().enumerate() {
        let margin = want["dpo"][i]["implicit_reward_margin"].as_f64().unwrap();
        assert!((got - margin).abs() <= 1e-5, "pair {i}: margin {got}, PyTorch {margin}");
    }
    assert_eq!(reference["policy"]["adapter"], sft.display().to_string(), "{reference}");
    assert_eq!(reference["chosen"], "given");
    let (against_base, reference) = irm("base", &fixture.join("policy"), Some(DpoReference::Base));
    assert_eq!(reference["policy"], "base");
    assert!(against_base.iter().zip(&margins).any(|(a, b)| (a - b).abs() > 1e-3), "the reference made no difference");

    // A DPO warmup from the SFT adapter trains against it and records it in its checkpoint.
    let ckpt = pipeline::warmup(&loaded, &pool, &one_dpo_epoch(2), &c, &dir.join("warmup")).unwrap().remove(0);
    let state = gradsift::train::read_state(&ckpt).unwrap();
    assert_eq!(state.dpo_reference, Some(DpoReference::Adapter(sft.clone())));
    let (recorded, reference) = irm("recorded", &ckpt, None);
    assert!(reference["chosen"].as_str().unwrap().starts_with("recorded in"), "{reference}");
    assert_eq!(recorded, irm("same", &ckpt, Some(DpoReference::Adapter(sft.clone()))).0);

    let less = MethodOptions { dpo_reference: Some(DpoReference::Adapter(sft)), ..Default::default() };
    let e = MethodSpec::new(Method::Less, Some(dir), &[], &less).unwrap_err();
    assert!(e.to_string().contains("no reference policy"), "{e}");
}
