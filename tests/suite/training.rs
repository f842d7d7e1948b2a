//! Full-parameter training of the base model: the gradient of every weight against central finite
//! differences (on the CPU backend and on wgpu), and a short training run that lowers the loss
//! and writes a model that loads back. Greedy decoding of a padded batch against one prompt at a
//! time.

use std::path::{Path, PathBuf};

use burn::prelude::*;
use gradsift::data::{load_records, Sequence, TextTokenizer, Tokenized};
use gradsift::device::Compute;
use gradsift::loss::SeqBatch;
use gradsift::model::{read_safetensors, CausalLm, HostTensor, ModelConfig, Weights};
use gradsift::train::{train_base, BaseOptions};

use crate::common;

fn llama() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hf-tiny/tiny-llama")
}

fn sequences(dir: &Path, config: &ModelConfig) -> Vec<Sequence> {
    let tok = TextTokenizer::from_file(&dir.join("tokenizer.json"), config.eos_token_id).unwrap();
    let data = load_records(&dir.join("../instruction.jsonl")).unwrap();
    let (t, _) = tok.examples(&data.examples[..3], 64).unwrap();
    t.into_iter().map(|t| if let Tokenized::Single(s) = t { s } else { unreachable!() }).collect()
}

/// Token-mean response NLL of the batch.
fn loss(model: &CausalLm, seqs: &[Sequence], device: &Device) -> Tensor<1> {
    let refs: Vec<&Sequence> = seqs.iter().collect();
    let b = SeqBatch::new(&refs, device);
    let tokens = b.counts.iter().sum::<usize>() as f64;
    b.response_logps(model.logits(b.ids.clone(), &b.lengths, None)).sum().neg().div_scalar(tokens)
}

fn value(t: Tensor<1>) -> f64 {
    t.into_data().iter::<f32>().next().unwrap() as f64
}

common::each_backend! {
    fn weight_gradients_match_finite_differences(c) {
        let dir = llama();
        let config = ModelConfig::from_file(&dir.join("config.json")).unwrap();
        let params = read_safetensors(&dir.join("model.safetensors")).unwrap();
        let seqs = sequences(&dir, &config);
        let weights = Weights::from_tensors(params.clone(), &dir);
        let (model, leaves) = CausalLm::build(config.clone(), &weights, &dir, &c.device, true).unwrap();
        assert_eq!(leaves.len(), params.len(), "every checkpoint tensor is a leaf");
        let grads = loss(&model, &seqs, &c.device).backward();
        let mut worst = 0f64;
        for name in [
            "model.embed_tokens.weight",
            "model.layers.0.self_attn.q_proj.weight",
            "model.layers.1.mlp.down_proj.weight",
            "model.norm.weight",
            "lm_head.weight",
        ] {
            let leaf = leaves.iter().find(|l| l.name == name).unwrap();
            let g = leaf.tensor.grad(&grads).unwrap();
            let [r, cols] = g.dims();
            let mut host = HostTensor { shape: vec![r, cols], data: g.into_data().iter::<f32>().collect() };
            if leaf.transposed {
                host = host.transposed();
            }
            // The three largest entries, where the relative check is meaningful.
            let mut order: Vec<usize> = (0..host.data.len()).collect();
            order.sort_by(|&a, &b| host.data[b].abs().total_cmp(&host.data[a].abs()));
            for &i in &order[..3] {
                let eps = 1e-2f32;
                let at = |delta: f32| {
                    let mut p = params.clone();
                    p.iter_mut().find(|(n, _)| n == name).unwrap().1.data[i] += delta;
                    let w = Weights::from_tensors(p, &dir);
                    let (m, _) = CausalLm::build(config.clone(), &w, &dir, &c.device, false).unwrap();
                    value(loss(&m, &seqs, &c.device))
                };
                let fd = (at(eps) - at(-eps)) / (2.0 * eps as f64);
                let got = host.data[i] as f64;
                let rel = (got - fd).abs() / fd.abs().max(1e-3);
                worst = worst.max(rel);
                assert!(rel < 3e-2, "{}: {name}[{i}]: autodiff {got:.6e}, finite difference {fd:.6e}", c.label);
            }
        }
        eprintln!("{}: worst relative gap to finite differences {worst:.2e}", c.label);
    }
}

#[test]
fn base_training_lowers_the_loss_and_writes_a_loadable_model() {
    let dir = llama();
    let out_tmp = common::tmp("training", "base");
    let out = out_tmp.path();
    let data = load_records(&dir.join("../instruction.jsonl")).unwrap();
    let c = Compute::cpu();
    let config = ModelConfig::from_file(&dir.join("config.json")).unwrap();
    let seqs = sequences(&dir, &config);
    let before = value(loss(&CausalLm::load(&dir, &c.device).unwrap(), &seqs, &c.device));
    let opts = BaseOptions { epochs: 8, batch_size: 4, lr: 3e-3, ..BaseOptions::default() };
    let mut steps = 0;
    let record = train_base(&dir, &data, &opts, &c, out, &mut |_, _, _| steps += 1).unwrap();
    assert_eq!(steps, record.steps);
    assert!(record.epoch_loss.last().unwrap() < &record.epoch_loss[0], "{:?}", record.epoch_loss);
    let trained = CausalLm::load(out, &c.device).unwrap();
    let after = value(loss(&trained, &seqs, &c.device));
    eprintln!("training-set loss {before:.3} -> {after:.3}; epoch losses {:?}", record.epoch_loss);
    assert!(after < 0.8 * before, "loss {before} -> {after}");
    assert!(out.join("training_args.json").exists() && out.join("tokenizer.json").exists());
}

#[test]
fn batched_greedy_decoding_equals_one_prompt_at_a_time() {
    let dir = llama();
    let c = Compute::cpu();
    let model = CausalLm::load(&dir, &c.device).unwrap();
    let tok = TextTokenizer::from_file(&dir.join("tokenizer.json"), model.config.eos_token_id).unwrap();
    let prompts: Vec<Vec<u32>> = ["Add 2 and 3.\nAnswer:", "Hi", "Reverse the word 'planet' please.\nAnswer:"]
        .iter()
        .map(|p| tok.prompt_ids(p).unwrap())
        .collect();
    let batched = gradsift::eval::greedy(&model, None, &prompts, 6, tok.eos(), 8, &c.device);
    for (p, got) in prompts.iter().zip(&batched) {
        // One prompt, no padding: the plain argmax loop.
        let mut ids = p.clone();
        let mut want = Vec::new();
        for _ in 0..6 {
            let t = Tensor::<2, Int>::from_data(
                TensorData::new(ids.iter().map(|&x| x as i64).collect::<Vec<_>>(), [1, ids.len()]),
                &c.device,
            );
            let logits: Vec<f32> = model.logits(t, &[ids.len()], None).into_data().iter::<f32>().collect();
            let v = logits.len() / ids.len();
            let last = &logits[(ids.len() - 1) * v..];
            let next = (0..v).max_by(|&a, &b| last[a].total_cmp(&last[b])).unwrap() as u32;
            if next == tok.eos() {
                break;
            }
            ids.push(next);
            want.push(next);
        }
        assert_eq!(got, &want);
    }
}
