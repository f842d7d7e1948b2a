//! Our models against PyTorch's float64 reference values (tests/fixtures/hf-tiny, copied from
//! the shared fixtures): logits, per-example SFT and DPO gradients of the LoRA weights, DPO
//! log-probs and margins, and tokenization. Every numeric check runs on the CPU backend for
//! every checkpoint, and on the wgpu backend (lavapipe in CI) for the checkpoints that together
//! take every device code path; one test per checkpoint and backend.

use crate::common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::prelude::*;
use gradsift::data::{load_records, Record, Sequence, TextTokenizer, Tokenized, TokenizedPair};
use gradsift::device::Compute;
use gradsift::loss::{dpo_stats, per_example_grads, DpoStats, LossKind, Objective, SeqBatch};
use gradsift::model::{Backprop, CausalLm, FloatKind, LoraAdapter, WeightsDtype};
use serde_json::Value;

/// The hf-tiny checkpoints: numeric checks and tokenization of the shared plain data.
const MODELS: &[&str] = &["tiny-llama", "tiny-qwen2", "tiny-gpt2"];
/// Every checkpoint with numeric references: hf-tiny's, then hf-arch's ([`common::HF_ARCH`]).
fn numeric() -> impl Iterator<Item = &'static str> {
    MODELS.iter().chain(common::HF_ARCH).copied()
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hf-tiny")
}

/// The directory of a fixture checkpoint.
fn model_dir(model: &str) -> PathBuf {
    match MODELS.contains(&model) {
        true => fixtures().join(model),
        false => Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hf-arch").join(model),
    }
}

fn reference_json(model: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(model_dir(model).join("reference.json")).unwrap()).unwrap()
}

/// reference.safetensors read as f64.
fn reference_tensors(model: &str) -> HashMap<String, (Vec<usize>, Vec<f64>)> {
    f64_tensors(&model_dir(model).join("reference.safetensors"))
}

/// A safetensors file of f64 tensors.
fn f64_tensors(path: &Path) -> HashMap<String, (Vec<usize>, Vec<f64>)> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(name, v)| {
            assert_eq!(v.dtype(), safetensors::Dtype::F64);
            let data = v.data().chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect();
            (name, (v.shape().to_vec(), data))
        })
        .collect()
}

fn seq(ids: &Value, mask: &Value) -> Sequence {
    Sequence {
        ids: ids.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect(),
        mask: mask.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u8).collect(),
    }
}

fn sft_seqs(r: &Value) -> Vec<Sequence> {
    r["sft"].as_array().unwrap().iter().map(|e| seq(&e["ids"], &e["mask"])).collect()
}

fn dpo_pairs(r: &Value) -> Vec<Tokenized> {
    r["dpo"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            Tokenized::Pair(TokenizedPair {
                chosen: seq(&e["chosen_ids"], &e["chosen_mask"]),
                rejected: seq(&e["rejected_ids"], &e["rejected_mask"]),
            })
        })
        .collect()
}

fn load(model: &str, c: &Compute) -> (CausalLm, LoraAdapter) {
    let dir = model_dir(model);
    let m = CausalLm::load(&dir, &c.device).unwrap();
    let a = LoraAdapter::load(&dir.join("adapter"), &m.linears).unwrap();
    (m, a)
}

fn to_f64(t: Tensor<3>) -> (Vec<usize>, Vec<f64>) {
    let d = t.dims().to_vec();
    (d, t.into_data().iter::<f32>().map(f64::from).collect())
}

/// Logits with and without the adapter against the reference's.
fn logits(name: &str, c: &Compute) {
    let (model, adapter) = load(name, c);
    let r = reference_json(name);
    let refs = reference_tensors(name);
    let seqs = sft_seqs(&r);
    let seq_refs: Vec<&Sequence> = seqs.iter().collect();
    let batch = SeqBatch::new(&seq_refs, &c.device);
    let lora = adapter.runtime(model.linears.len(), seqs.len(), &c.device);
    let mut failures = Vec::new();
    for (with_adapter, key) in [(true, "logits"), (false, "base_logits")] {
        let logits = model.logits(batch.ids.clone(), &batch.lengths, if with_adapter { Some(&lora) } else { None });
        let (dims, ours) = to_f64(logits);
        let (t, v) = (dims[1], dims[2]);
        for (i, s) in seqs.iter().enumerate() {
            let (shape, want) = &refs[&format!("sft.{i}.{key}")];
            assert_eq!(shape, &vec![s.ids.len(), v]);
            let got = &ours[i * t * v..i * t * v + s.ids.len() * v];
            let err = common::rel_err(got, want);
            if err > 1e-5 {
                failures.push(format!("{name} {key} example {i} on {}: rel err {err:.3e}", c.label));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    eprintln!("{name}: logits checked on {}", c.label);
}

fn check_grads(
    prefix: &str,
    name: &str,
    c: &Compute,
    adapter: &LoraAdapter,
    grads: Tensor<2>,
    refs: &HashMap<String, (Vec<usize>, Vec<f64>)>,
) {
    let [e, n] = grads.dims();
    let flat: Vec<f64> = grads.into_data().iter::<f32>().map(f64::from).collect();
    let mut worst: f64 = 0.0;
    for i in 0..e {
        for slot in adapter.layout() {
            let (shape, want) = &refs[&format!("{prefix}.{i}.grad.{}", slot.name)];
            assert_eq!(shape, &slot.shape, "{}", slot.name);
            let len: usize = shape.iter().product();
            let got = &flat[i * n + slot.offset..i * n + slot.offset + len];
            let err = common::rel_err(got, want);
            worst = worst.max(err);
            assert!(err <= 1e-4, "{name} {prefix} grad example {i} {} on {}: rel err {err:.3e}", slot.name, c.label);
        }
    }
    eprintln!(
        "{name}: {prefix} per-example gradients of {e} examples match (worst rel err {worst:.2e}) on {}",
        c.label
    );
}

/// SFT losses and per-example gradients of `model` against the reference `r`, `refs`.
fn check_sft(
    name: &str,
    c: &Compute,
    model: &CausalLm,
    adapter: &LoraAdapter,
    r: &Value,
    refs: &HashMap<String, (Vec<usize>, Vec<f64>)>,
) {
    let examples: Vec<Tokenized> = sft_seqs(r).into_iter().map(Tokenized::Single).collect();
    let out = per_example_grads(model, adapter, &examples, LossKind::Sft, &c.device).unwrap();
    for (i, e) in r["sft"].as_array().unwrap().iter().enumerate() {
        let want = e["loss"].as_f64().unwrap();
        assert!((out.losses[i] - want).abs() <= 1e-5 * want.abs(), "{name} sft loss {i}: {} vs {want}", out.losses[i]);
    }
    check_grads("sft", name, c, adapter, out.grads, refs);
}

/// SFT losses and per-example gradients through the whole graph.
fn sft(name: &str, c: &Compute) {
    let (mut model, adapter) = load(name, c);
    model.backprop = Backprop::Whole;
    check_sft(name, c, &model, &adapter, &reference_json(name), &reference_tensors(name));
}

/// DPO log-probs, margins, losses and per-example gradients through the whole graph.
fn dpo(name: &str, c: &Compute) {
    let (mut model, adapter) = load(name, c);
    model.backprop = Backprop::Whole;
    let r = reference_json(name);
    let pairs = dpo_pairs(&r);
    let out = per_example_grads(&model, &adapter, &pairs, LossKind::Dpo { beta: 0.1 }, &c.device).unwrap();
    let stats = dpo_stats(&model, &adapter, None, &pairs, 0.1, &c.device).unwrap();
    check_dpo_stats(name, c, &stats, &out.losses, &r["dpo"]);
    check_grads("dpo", name, c, &adapter, out.grads, &reference_tensors(name));
}

/// The block-by-block backward passes, each block recomputed (layerwise) or its graph kept from
/// the forward pass (blocks), attention a block of queries at a time with its backward written
/// out (on the CPU by our kernels): SFT losses and gradients, DPO gradients.
fn layerwise(name: &str, c: &Compute) {
    let (mut model, adapter) = load(name, c);
    let r = reference_json(name);
    let refs = reference_tensors(name);
    let pairs = dpo_pairs(&r);
    for backprop in [Backprop::Layerwise, Backprop::Blocks] {
        model.backprop = backprop;
        eprintln!("{name}: {backprop:?}");
        check_sft(name, c, &model, &adapter, &r, &refs);
        let out = per_example_grads(&model, &adapter, &pairs, LossKind::Dpo { beta: 0.1 }, &c.device).unwrap();
        check_grads("dpo", name, c, &adapter, out.grads, &refs);
    }
}

/// Per-example SFT gradients with the frozen matrices in 16 bits (each type the backend has)
/// against PyTorch's float64 ones: the cosine of each example's whole gradient vector. The
/// bar, 0.999, is what half precision is allowed to cost; the f32 path is held to 1e-4 above.
fn half_precision(name: &str, c: &Compute) {
    let dir = model_dir(name);
    let r = reference_json(name);
    let refs = reference_tensors(name);
    let examples: Vec<Tokenized> = sft_seqs(&r).into_iter().map(Tokenized::Single).collect();
    // No GPU backend has bf16.
    let kinds: &[(WeightsDtype, FloatKind)] = match c.is_gpu() {
        true => &[(WeightsDtype::F16, FloatKind::F16)],
        false => &[(WeightsDtype::F16, FloatKind::F16), (WeightsDtype::Bf16, FloatKind::Bf16)],
    };
    for &(dtype, kind) in kinds {
        let model = CausalLm::load_as(&dir, &c.device, dtype).unwrap();
        assert_eq!(model.matrices, kind);
        let adapter = LoraAdapter::load(&dir.join("adapter"), &model.linears).unwrap();
        let out = per_example_grads(&model, &adapter, &examples, LossKind::Sft, &c.device).unwrap();
        let n = out.grads.dims()[1];
        let flat: Vec<f64> = out.grads.into_data().iter::<f32>().map(f64::from).collect();
        let mut worst = 1f64;
        for i in 0..examples.len() {
            let mut want = vec![0f64; n];
            for slot in adapter.layout() {
                let (_, w) = &refs[&format!("sft.{i}.grad.{}", slot.name)];
                want[slot.offset..slot.offset + w.len()].copy_from_slice(w);
            }
            let cos = common::cosine(&flat[i * n..(i + 1) * n], &want);
            worst = worst.min(cos);
        }
        assert!(
            worst >= 0.999,
            "{name} with {} matrices on {}: per-example gradient cosine {worst:.5}",
            kind.name(),
            c.label
        );
        eprintln!("{name}: {} matrices, worst per-example gradient cosine {worst:.6} on {}", kind.name(), c.label);
    }
}

/// Runs `check` on one checkpoint on `backend` (`cpu`, or `wgpu`: skipped visibly without an
/// adapter, a failure under CI=true).
fn on(backend: &str, name: &str, check: fn(&str, &Compute)) {
    match backend {
        "cpu" => check(name, &Compute::cpu()),
        "wgpu" => {
            if let Some(c) = common::gpu() {
                check(name, &c)
            }
        }
        other => unreachable!("backend {other}"),
    }
}

/// One test per checkpoint and backend, `reference::TEST::CHECKPOINT::BACKEND`, so a failure
/// names both: `$test` runs `$check` on each `$model` (its fixture `$name`) on the backends in
/// brackets.
macro_rules! per_checkpoint {
    ($test:ident, $check:ident; $($model:ident $name:literal [$($backend:ident)+];)+) => {
        mod $test {
            /// The checkpoints this test runs on.
            pub(super) const CHECKPOINTS: &[&str] = &[$($name),+];

            $(
                mod $model {
                    $(
                        #[test]
                        fn $backend() {
                            super::super::on(stringify!($backend), $name, super::super::$check)
                        }
                    )+
                }
            )+
        }
    };
}

/// The whole-graph checks: every checkpoint on the CPU; on wgpu the eleven that together take
/// every device code path (on lavapipe each checkpoint costs seconds, and what the others add
/// is computed on the host: RoPE scalings' frequency tables, which layers slide). Llama (plain)
/// and Qwen2 (q/k/v biases); Gemma-2 (soft-capped scores and logits, sliding and full layers,
/// grouped-query heads, post-norms, GELU); Gemma-3 (per-head q/k norms, the sliding layers' own
/// rotary tables); Phi-4-mini (a partial rotary head, LongRoPE's short and long tables within
/// one batch); SmolLM3 (NoPE layers); OLMo-2 (q/k norms over the whole projection); Granite
/// (multipliers); GPT-NeoX (parallel block, per-head fused q/k/v; f16 weights); Phi-2 (one norm
/// for both branches, a biased head; f16); GPT-2 with its layer-scaled attention (Conv1D,
/// learned positions).
macro_rules! whole_graph {
    ($test:ident, $check:ident) => {
        per_checkpoint! { $test, $check;
            tiny_llama "tiny-llama" [cpu wgpu];
            tiny_qwen2 "tiny-qwen2" [cpu wgpu];
            tiny_gpt2 "tiny-gpt2" [cpu];
            tiny_mistral "tiny-mistral" [cpu];
            tiny_llama3 "tiny-llama3" [cpu];
            tiny_qwen3 "tiny-qwen3" [cpu];
            tiny_phi3 "tiny-phi3" [cpu];
            tiny_gemma2 "tiny-gemma2" [cpu wgpu];
            tiny_gemma "tiny-gemma" [cpu];
            tiny_gemma3 "tiny-gemma3" [cpu wgpu];
            tiny_qwen2_window "tiny-qwen2-window" [cpu];
            tiny_phi4 "tiny-phi4" [cpu wgpu];
            tiny_qwen3_yarn "tiny-qwen3-yarn" [cpu];
            tiny_smollm3 "tiny-smollm3" [cpu wgpu];
            tiny_olmo2 "tiny-olmo2" [cpu wgpu];
            tiny_olmo3 "tiny-olmo3" [cpu];
            tiny_neox "tiny-neox" [cpu wgpu];
            tiny_granite "tiny-granite" [cpu wgpu];
            tiny_phi2 "tiny-phi2" [cpu wgpu];
            tiny_gpt2_scaled "tiny-gpt2-scaled" [cpu wgpu];
        }
    };
}

whole_graph!(logits_match_pytorch, logits);
whole_graph!(sft_per_example_gradients_match_pytorch, sft);
whole_graph!(dpo_per_example_gradients_and_logps_match_pytorch, dpo);

// The block-by-block backward passes: every checkpoint on the CPU, so every attention variant the families
// use; on wgpu the four that together hold every variant: Gemma-2 (soft-capped scores, sliding
// and full layers, grouped-query heads, post-norms), SmolLM3 (NoPE layers beside rotary ones),
// GPT-NeoX (parallel block, per-head fused q/k/v) and GPT-2 (Conv1D, fused q/k/v, learned
// positions). All twenty on lavapipe took 376 s.
per_checkpoint! { layerwise_gradients_match_pytorch, layerwise;
    tiny_llama "tiny-llama" [cpu];
    tiny_qwen2 "tiny-qwen2" [cpu];
    tiny_gpt2 "tiny-gpt2" [cpu wgpu];
    tiny_mistral "tiny-mistral" [cpu];
    tiny_llama3 "tiny-llama3" [cpu];
    tiny_qwen3 "tiny-qwen3" [cpu];
    tiny_phi3 "tiny-phi3" [cpu];
    tiny_gemma2 "tiny-gemma2" [cpu wgpu];
    tiny_gemma "tiny-gemma" [cpu];
    tiny_gemma3 "tiny-gemma3" [cpu];
    tiny_qwen2_window "tiny-qwen2-window" [cpu];
    tiny_phi4 "tiny-phi4" [cpu];
    tiny_qwen3_yarn "tiny-qwen3-yarn" [cpu];
    tiny_smollm3 "tiny-smollm3" [cpu wgpu];
    tiny_olmo2 "tiny-olmo2" [cpu];
    tiny_olmo3 "tiny-olmo3" [cpu];
    tiny_neox "tiny-neox" [cpu wgpu];
    tiny_granite "tiny-granite" [cpu];
    tiny_phi2 "tiny-phi2" [cpu];
    tiny_gpt2_scaled "tiny-gpt2-scaled" [cpu];
}

// Half-precision matrices: every checkpoint on the CPU (f16 and bf16); on wgpu (f16 only) four
// that hold every place a 16-bit matrix is used: the linear layers and an untied head (Llama),
// a soft-capped head tied to a scaled embedding (Gemma-2), a biased head and layer norms
// (Phi-2), Conv1D and learned positions with the tied embedding (GPT-2).
per_checkpoint! { half_precision_gradients_follow_pytorch, half_precision;
    tiny_llama "tiny-llama" [cpu wgpu];
    tiny_qwen2 "tiny-qwen2" [cpu];
    tiny_gpt2 "tiny-gpt2" [cpu];
    tiny_mistral "tiny-mistral" [cpu];
    tiny_llama3 "tiny-llama3" [cpu];
    tiny_qwen3 "tiny-qwen3" [cpu];
    tiny_phi3 "tiny-phi3" [cpu];
    tiny_gemma2 "tiny-gemma2" [cpu wgpu];
    tiny_gemma "tiny-gemma" [cpu];
    tiny_gemma3 "tiny-gemma3" [cpu];
    tiny_qwen2_window "tiny-qwen2-window" [cpu];
    tiny_phi4 "tiny-phi4" [cpu];
    tiny_qwen3_yarn "tiny-qwen3-yarn" [cpu];
    tiny_smollm3 "tiny-smollm3" [cpu];
    tiny_olmo2 "tiny-olmo2" [cpu];
    tiny_olmo3 "tiny-olmo3" [cpu];
    tiny_neox "tiny-neox" [cpu];
    tiny_granite "tiny-granite" [cpu];
    tiny_phi2 "tiny-phi2" [cpu wgpu];
    tiny_gpt2_scaled "tiny-gpt2-scaled" [cpu wgpu];
}

/// Every checkpoint with a reference has its tests: one added to the fixtures (`HF_ARCH`) and
/// not to the lists above fails here.
#[test]
fn every_reference_checkpoint_has_its_tests() {
    let all: Vec<&str> = numeric().collect();
    for (test, listed) in [
        ("logits", logits_match_pytorch::CHECKPOINTS),
        ("sft", sft_per_example_gradients_match_pytorch::CHECKPOINTS),
        ("dpo", dpo_per_example_gradients_and_logps_match_pytorch::CHECKPOINTS),
        ("layerwise", layerwise_gradients_match_pytorch::CHECKPOINTS),
        ("half precision", half_precision_gradients_follow_pytorch::CHECKPOINTS),
    ] {
        assert_eq!(listed, all.as_slice(), "{test}");
    }
}

/// The widest layer the config promises (what the binding-limit check of a batch and the
/// doctor's batch sizes rest on) is the widest linear layer each family's loader builds.
#[test]
fn widest_layer_is_the_widest_linear_of_every_checkpoint() {
    let c = Compute::cpu();
    for name in numeric() {
        let m = CausalLm::load(&model_dir(name), &c.device).unwrap();
        let built = m.linears.iter().map(|l| l.d_out).chain([m.config.hidden]).max().unwrap();
        assert_eq!(m.config.widest_layer(), built, "{name}");
    }
}

/// Our DPO statistics and per-pair losses against a reference's `dpo` list.
fn check_dpo_stats(name: &str, c: &Compute, stats: &[DpoStats], losses: &[f64], reference: &Value) {
    for (i, e) in reference.as_array().unwrap().iter().enumerate() {
        let s = &stats[i];
        for (got, key) in [
            (s.policy_chosen, "policy_logp_chosen"),
            (s.policy_rejected, "policy_logp_rejected"),
            (s.ref_chosen, "ref_logp_chosen"),
            (s.ref_rejected, "ref_logp_rejected"),
            (s.margin, "implicit_reward_margin"),
            (s.loss, "loss"),
            (losses[i], "loss"),
        ] {
            // 1e-5, relative to the value once it exceeds 1: summed log-probs of ~40 tokens
            // reach -110, where f32 itself resolves only ~1e-5.
            let want = e[key].as_f64().unwrap();
            let tol = 1e-5 * want.abs().max(1.0);
            assert!((got - want).abs() <= tol, "{name} pair {i} {key} on {}: {got} vs {want}", c.label);
        }
    }
}

/// DPO measured against an SFT policy (`--dpo-reference`), as TRL does with `ref_model`:
/// policy = base + a second adapter, reference = base + hf-tiny's adapter. Log-probs, margins,
/// losses and per-example gradients against PyTorch's float64 values
/// (tests/fixtures/dpo-reference/make_reference.py). The CPU backend only: the wgpu path runs
/// the same code, checked against the base-model reference above.
#[test]
fn dpo_against_an_sft_reference_matches_pytorch() {
    let c = Compute::cpu();
    for name in ["tiny-llama", "tiny-gpt2"] {
        let (model, sft) = load(name, &c);
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dpo-reference").join(name);
        let policy = LoraAdapter::load(&dir.join("policy"), &model.linears).unwrap();
        let want: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap()).unwrap();
        let pairs = dpo_pairs(&reference_json(name));
        let dpo = Objective { loss: LossKind::Dpo { beta: 0.1 }, reference: Some(&sft) };
        let out = per_example_grads(&model, &policy, &pairs, dpo, &c.device).unwrap();
        let stats = dpo_stats(&model, &policy, Some(&sft), &pairs, 0.1, &c.device).unwrap();
        check_dpo_stats(name, &c, &stats, &out.losses, &want["dpo"]);
        check_grads("dpo", name, &c, &policy, out.grads, &f64_tensors(&dir.join("reference.safetensors")));
    }
}

#[test]
fn tokenization_matches_reference() {
    for &name in MODELS {
        let r = reference_json(name);
        let dir = fixtures().join(name);
        let cfg: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
        let tok = TextTokenizer::from_file(&dir.join("tokenizer.json"), cfg["eos_token_id"].as_u64().unwrap() as u32)
            .unwrap();
        let inst = load_records(&fixtures().join("instruction.jsonl")).unwrap();
        for (ex, want) in inst.examples.iter().zip(sft_seqs(&r)) {
            let Record::Instruction { prompt, completion } = &ex.record else { panic!() };
            assert_eq!(tok.sequence(prompt, completion, 512).unwrap().0, want, "{name} line {}", ex.line);
        }
        let pref = load_records(&fixtures().join("preference.jsonl")).unwrap();
        let (got, _) = tok.examples(&pref.examples, 512).unwrap();
        assert_eq!(got, dpo_pairs(&r), "{name} preference pairs");
    }
}
