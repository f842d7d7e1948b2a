//! LESS (Adam preconditioning, checkpoint weighting, mean over shots, max over subtasks) against
//! a by-hand f64 computation; warmup checkpoints that load back; ROSE end to end.

use crate::common;

use std::path::{Path, PathBuf};

use gradsift::device::Compute;
use gradsift::features::{Dtype, Transform};
use gradsift::loss::{LossKind, SeqBatch};
use gradsift::methods::less;
use gradsift::model::{read_safetensors, CausalLm, LoraAdapter};
use gradsift::pipeline::{self, FeatureOptions, GradType, Method, MethodOptions, MethodSpec, SelectSpec};
use gradsift::select::{ranking, Budget};
use gradsift::train::{AdamW, AdamWConfig, WarmupOptions};

#[test]
fn less_scores_match_a_hand_computation() {
    let seed = common::fresh_seed("less_scores_match_a_hand_computation");
    let (n_pool, n_target, dim, n_ckpt) = (40usize, 7usize, 23usize, 3usize);
    let tasks: Vec<Option<String>> =
        (0..n_target).map(|j| if j % 3 == 0 { None } else { Some(format!("t{}", j % 2)) }).collect();
    let lrs = [3e-4, 2e-4, 1e-4];
    let cfg = AdamWConfig::default();
    let mut per_ckpt = Vec::new();
    let mut hand_ckpt: Vec<Vec<Vec<f64>>> = Vec::new(); // [ckpt][pool][target] cosine
    for c in 0..n_ckpt {
        let s = seed.wrapping_add(c as u64 * 1000);
        let g_pool = common::random_vec(n_pool * dim, s + 1);
        let g_target = common::random_vec(n_target * dim, s + 2);
        let m = common::random_vec(dim, s + 3).iter().map(|x| x * 0.01).collect::<Vec<f32>>();
        let v = common::random_vec(dim, s + 4).iter().map(|x| x * x * 1e-4).collect::<Vec<f32>>();
        // Ours: the library's Adam transform, then cosine scoring.
        let opt = AdamW { config: cfg, m: m.clone(), v: v.clone(), step: 10 };
        let mut transformed = g_pool.clone();
        Transform::adam(&opt, "x".into()).apply(&mut transformed, dim);
        let pf = common::features(transformed, n_pool, dim, vec![None; n_pool]);
        let tf = common::features(g_target.clone(), n_target, dim, tasks.clone());
        per_ckpt.push(less::subtask_cosines(&pf, &tf).unwrap());
        // By hand, f64: Γ = m'/sqrt(v' + eps), no bias correction.
        let gamma: Vec<Vec<f64>> = (0..n_pool)
            .map(|i| {
                (0..dim)
                    .map(|d| {
                        let g = g_pool[i * dim + d] as f64;
                        let mm = 0.9 * m[d] as f64 + 0.1 * g;
                        let vv = 0.999 * v[d] as f64 + 0.001 * g * g;
                        mm / (vv + 1e-8).sqrt()
                    })
                    .collect()
            })
            .collect();
        let cos = |a: &[f64], b: &[f64]| {
            let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
            dot / (a.iter().map(|x| x * x).sum::<f64>().sqrt() * b.iter().map(|x| x * x).sum::<f64>().sqrt())
        };
        hand_ckpt.push(
            (0..n_pool)
                .map(|i| {
                    (0..n_target)
                        .map(|j| {
                            let t: Vec<f64> = g_target[j * dim..(j + 1) * dim].iter().map(|&x| x as f64).collect();
                            cos(&gamma[i], &t)
                        })
                        .collect()
                })
                .collect(),
        );
    }
    let weights = less::checkpoint_weights(&lrs);
    let ours = less::combine(&per_ckpt, &weights);
    // By hand: weights lr/Σlr; per subtask mean over its examples of Σ_i w_i cos_i; max.
    let total: f64 = lrs.iter().sum();
    let names = ["t0", "t1", "target"];
    let mut hand = vec![f64::NEG_INFINITY; n_pool];
    for name in names {
        let members: Vec<usize> =
            (0..n_target).filter(|&j| tasks[j].clone().unwrap_or_else(|| "target".into()) == name).collect();
        for i in 0..n_pool {
            let s: f64 = members
                .iter()
                .map(|&j| (0..n_ckpt).map(|c| lrs[c] / total * hand_ckpt[c][i][j]).sum::<f64>())
                .sum::<f64>()
                / members.len() as f64;
            hand[i] = hand[i].max(s);
        }
    }
    let err = ours.score.iter().zip(&hand).map(|(a, b)| (a - b).abs()).fold(0f64, f64::max);
    assert!(err <= 1e-6, "max |ours - hand| = {err}");
    let k = 8;
    assert_eq!(ranking(&ours.score)[..k], ranking(&hand)[..k], "top-{k} order differs");
    assert_eq!(ours.per_task.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), names);
}

fn llama() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hf-tiny/tiny-llama")
}

fn warmup_opts(loss: LossKind) -> WarmupOptions {
    WarmupOptions {
        fraction: 1.0,
        epochs: 2,
        lr: 1e-2,
        batch_size: 2,
        warmup_ratio: 0.25,
        schedule: gradsift::train::Schedule::Linear,
        adamw: AdamWConfig { weight_decay: 0.01, ..Default::default() },
        loss,
        reference: None,
        seed: 5,
        max_len: 512,
    }
}

/// A warmup checkpoint has PEFT's files, keys, shapes and dtypes (those of the fixture adapters,
/// which Python peft wrote), loads back with identical logits, and its moments round-trip.
#[test]
fn warmup_checkpoints_load_back() {
    let c = Compute::cpu();
    let loaded = common::load_with_adapter("tiny-llama", &c);
    let out_tmp = common::tmp("methods", "warmup");
    let out = out_tmp.path();
    let data = llama().parent().unwrap().join("instruction.jsonl");
    let ckpts = pipeline::warmup(&loaded, std::slice::from_ref(&data), &warmup_opts(LossKind::Sft), &c, out).unwrap();
    assert_eq!(ckpts.len(), 2);
    let last = &ckpts[1];
    let reloaded = LoraAdapter::load(last, &loaded.model.linears).unwrap();
    assert_ne!(reloaded.flat_params(), loaded.adapter.flat_params(), "training changed nothing");
    // Same key set, shapes and dtype as the PEFT-written fixture adapter.
    let ours: Vec<(String, Vec<usize>)> = read_safetensors(&last.join("adapter_model.safetensors"))
        .unwrap()
        .into_iter()
        .map(|(n, t)| (n, t.shape))
        .collect();
    let theirs: Vec<(String, Vec<usize>)> = read_safetensors(&llama().join("adapter/adapter_model.safetensors"))
        .unwrap()
        .into_iter()
        .map(|(n, t)| (n, t.shape))
        .collect();
    let sorted = |mut v: Vec<(String, Vec<usize>)>| {
        v.sort();
        v
    };
    assert_eq!(sorted(ours), sorted(theirs));
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(last.join("adapter_config.json")).unwrap()).unwrap();
    for k in ["peft_type", "task_type", "r", "lora_alpha", "target_modules", "fan_in_fan_out", "bias", "use_rslora"] {
        assert!(cfg.get(k).is_some(), "adapter_config.json lacks {k}");
    }
    // Logits of the reloaded adapter equal those of the trained one.
    let state = gradsift::train::read_state(last).unwrap();
    assert_eq!(state.epoch, 2);
    assert!(state.mean_lr > 0.0);
    let seq = gradsift::data::Sequence { ids: vec![0, 35, 70, 70, 223, 19, 20, 1], mask: vec![0, 0, 0, 0, 0, 1, 1, 1] };
    let b = SeqBatch::new(&[&seq], &c.device);
    let run = |a: &LoraAdapter| -> Vec<f32> {
        let rt = a.runtime(loaded.model.linears.len(), 1, &c.device);
        loaded.model.logits(b.ids.clone(), &b.lengths, Some(&rt)).into_data().iter::<f32>().collect()
    };
    let fresh_model = CausalLm::load(&llama(), &c.device).unwrap();
    let again = LoraAdapter::load(last, &fresh_model.linears).unwrap();
    assert_eq!(run(&reloaded), run(&again));
    assert_ne!(run(&reloaded), run(&loaded.adapter));
    // Moments round-trip.
    let opt = AdamW::load(&last.join("optimizer.safetensors"), &reloaded.layout()).unwrap();
    assert_eq!(opt.step, 6, "3 batches of 2 per epoch, 2 epochs");
    assert!(opt.v.iter().all(|&x| x >= 0.0) && opt.v.iter().any(|&x| x > 0.0));
}

/// ROSE on preference targets after a DPO warmup, LESS with sign gradients: both run through
/// the library end to end and write a selection.
#[test]
fn rose_and_less_run_on_checkpoints() {
    let c = Compute::cpu();
    let loaded = common::load_with_adapter("tiny-llama", &c);
    let fixtures = llama().parent().unwrap().to_path_buf();
    let out_tmp = common::tmp("methods", "rose");
    let out = out_tmp.path();
    let ckpts = pipeline::warmup(
        &loaded,
        &[fixtures.join("preference.jsonl")],
        &warmup_opts(LossKind::Dpo { beta: 0.1 }),
        &c,
        &out.join("warmup"),
    )
    .unwrap();
    let opts = FeatureOptions {
        seed: 1,
        proj_dim: 128,
        dtype: Dtype::F32,
        max_len: 512,
        batch_size: 4,
        chunk_size: 8,
        overwrite: false,
        ..FeatureOptions::default()
    };
    for (method, target, grad_type) in
        [(Method::Rose, "preference.jsonl", GradType::Adam), (Method::Less, "instruction.jsonl", GradType::Sign)]
    {
        let dir = out.join(format!("{method:?}"));
        let target = fixtures.join(target);
        let options = MethodOptions { grad_type: Some(grad_type), beta: 0.1, ..Default::default() };
        let s = SelectSpec {
            pool: &[fixtures.join("instruction.jsonl")],
            method: MethodSpec::new(method, Some(&target), &ckpts, &options).unwrap(),
            budget: Budget::Count(2),
            opts: &opts,
            out: &dir,
            pool_features: &[],
        };
        let sel = pipeline::select(&loaded, &s, &c).unwrap();
        assert_eq!(sel.selected.len(), 2);
        let m: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
        assert_eq!(m["details"]["checkpoints"].as_array().unwrap().len(), 2);
        let target_store: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join("features/0-checkpoint-1/target/manifest.json")).unwrap(),
        )
        .unwrap();
        let want_loss = if method == Method::Rose { "dpo" } else { "sft" };
        assert_eq!(target_store["key"]["loss"]["kind"], want_loss);
    }
}

/// TSDS at a warmup checkpoint compares features as LESS does: its pool rows are LESS's Adam
/// features of that checkpoint and its query rows LESS's plain target gradients, to the bit.
/// (Adam features on both sides share the checkpoint's momentum term, which swamps distances.)
#[test]
fn tsds_at_a_checkpoint_uses_less_features() {
    let c = Compute::cpu();
    let loaded = common::load_with_adapter("tiny-llama", &c);
    let fixtures = llama().parent().unwrap().to_path_buf();
    let out_tmp = common::tmp("methods", "tsds-ckpt");
    let out = out_tmp.path();
    let data = fixtures.join("instruction.jsonl");
    let ckpts =
        pipeline::warmup(&loaded, std::slice::from_ref(&data), &warmup_opts(LossKind::Sft), &c, &out.join("warmup"))
            .unwrap();
    let last = &ckpts[ckpts.len() - 1..];
    let opts = FeatureOptions { seed: 3, proj_dim: 64, chunk_size: 8, ..FeatureOptions::default() };
    let options = MethodOptions { grad_type: Some(GradType::Adam), ..Default::default() };
    let mut stores = Vec::new();
    for method in [Method::Less, Method::Tsds] {
        let dir = out.join(format!("{method:?}"));
        let s = SelectSpec {
            pool: std::slice::from_ref(&data),
            method: MethodSpec::new(method, Some(&data), last, &options).unwrap(),
            budget: Budget::Count(2),
            opts: &opts,
            out: &dir,
            pool_features: &[],
        };
        pipeline::select(&loaded, &s, &c).unwrap();
        stores.push(dir);
    }
    let read = |p: PathBuf| gradsift::features::npy::read(&p.join("features.npy")).unwrap().0;
    let (less, tsds) = (stores[0].join("features/0-checkpoint-2"), stores[1].join("features/tsds"));
    let (pool, queries) = (read(tsds.join("pool")), read(tsds.join("target")));
    assert_eq!(pool, read(less.join("pool")), "TSDS's candidates are not LESS's Adam features");
    assert_eq!(queries, read(less.join("target")), "TSDS's queries are not LESS's target gradients");
    assert_ne!(pool, queries, "pool and target are one file here: the two transforms must differ");
    // Its density estimate measures near-duplicates on the pool's plain gradients.
    assert_eq!(read(tsds.join("pool-plain")), queries, "TSDS's density rows are not the pool's plain gradients");
    let manifest = |d: &PathBuf| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(d.join("manifest.json")).unwrap()).unwrap()
    };
    let density = &manifest(&stores[1])["details"]["density"];
    assert!(density["features"].as_str().unwrap().starts_with("plain gradients"), "{density}");
    assert!(density["rho"]["min"].as_f64().unwrap() >= 1.0, "{density}");
    // `--grad-type sgd` at the checkpoint: plain gradients on both sides, recorded as such.
    let dir = out.join("tsds-sgd");
    let sgd = MethodOptions { grad_type: Some(GradType::Sgd), ..Default::default() };
    let s = SelectSpec {
        pool: std::slice::from_ref(&data),
        method: MethodSpec::new(Method::Tsds, Some(&data), last, &sgd).unwrap(),
        budget: Budget::Count(2),
        opts: &opts,
        out: &dir,
        pool_features: &[],
    };
    pipeline::select(&loaded, &s, &c).unwrap();
    let plain = dir.join("features/tsds");
    assert_eq!(read(plain.join("pool")), queries, "--grad-type sgd: TSDS's candidates are not plain gradients");
    let m = manifest(&dir);
    assert_eq!(m["details"]["source"]["grad_type"], "sgd", "{}", m["details"]["source"]);
    // Plain candidates are their own density rows: no second pass.
    assert_eq!(m["details"]["density"]["features"], "the candidate vectors");
    assert!(!plain.join("pool-plain").exists());
}
