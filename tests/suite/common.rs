//! Shared test helpers: the backends every numeric test runs on, temp dirs, fresh inputs.

#![allow(dead_code)]

use gradsift::device::{self, Compute, DeviceChoice};

/// One test per backend for a body that takes `c: &Compute`: `NAME::cpu` on the CPU backend
/// and `NAME::wgpu` on the wgpu backend (skipped with a visible message without an adapter, a
/// failure under CI=true), so a failure names its backend and one backend can run alone.
macro_rules! each_backend {
    ($(#[$attr:meta])* fn $name:ident($c:ident) $body:block) => {
        $(#[$attr])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            fn run($c: &gradsift::device::Compute) $body

            #[test]
            fn cpu() {
                run(&gradsift::device::Compute::cpu())
            }

            #[test]
            fn wgpu() {
                if let Some(c) = crate::common::gpu() {
                    run(&c)
                }
            }
        }
    };
}
pub(crate) use each_backend;

/// The storage-binding limit the tests' wgpu device is opened with: 64 MiB, as a browser may
/// grant, so every wgpu test runs within a browser's limit (the command-line tests' own
/// processes open the adapter with its native limits).
pub const GPU_BINDING_LIMIT: u64 = 64 << 20;

/// The wgpu backend (see [`GPU_BINDING_LIMIT`]), or None after a visible skip message (a
/// failure under CI=true).
pub fn gpu() -> Option<Compute> {
    match device::open_limited(DeviceChoice::Gpu, None, Some(GPU_BINDING_LIMIT)) {
        Ok(c) => Some(c),
        Err(e) => {
            if std::env::var("CI").map(|v| v == "true").unwrap_or(false) {
                panic!("CI=true but no wgpu adapter: {e} (install mesa-vulkan-drivers for lavapipe)");
            }
            eprintln!("SKIPPED (wgpu backend): no wgpu adapter: {e}");
            None
        }
    }
}

/// A fresh, empty directory under the temp dir, removed when the returned guard drops (also
/// when the test fails). Its name (`gradsift-PREFIX-NAME-…`) says which test made it.
pub fn tmp(prefix: &str, name: &str) -> tempfile::TempDir {
    tempfile::Builder::new().prefix(&format!("gradsift-{prefix}-{name}-")).tempdir().unwrap()
}

/// a·b / (‖a‖·‖b‖).
pub fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
    dot / (norm(a) * norm(b))
}

/// Relative error ‖a − b‖ / ‖b‖.
pub fn rel_err(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    let num: f64 = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f64>().sqrt();
    let den: f64 = b.iter().map(|y| y * y).sum::<f64>().sqrt();
    if den == 0.0 {
        num
    } else {
        num / den
    }
}

/// Deterministic pseudo-random f32 values in [-1, 1) for kernel tests (fresh per seed).
pub fn random_vec(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    (0..n)
        .map(|_| {
            s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            ((z >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// A seed that differs on every run (time-based), printed so a failure can be replayed.
pub fn fresh_seed(name: &str) -> u64 {
    let seed = std::env::var("GRADSIFT_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1)
    });
    eprintln!("{name}: seed {seed} (replay with GRADSIFT_TEST_SEED={seed})");
    seed
}

/// A complete in-memory feature matrix with the given target tasks (for scoring tests).
pub fn features(data: Vec<f32>, rows: usize, dim: usize, tasks: Vec<Option<String>>) -> gradsift::features::Features {
    gradsift::features::Features::from_matrix(data, rows, dim, tasks)
}

/// A fixture model (tests/fixtures/hf-tiny/NAME) with its PEFT adapter, loaded on `c`.
pub fn load_with_adapter(name: &str, c: &Compute) -> gradsift::pipeline::Loaded {
    let model = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hf-tiny").join(name);
    let spec = gradsift::pipeline::ModelSpec {
        adapter_dir: Some(model.join("adapter")),
        model_dir: model,
        lora_r: 8,
        lora_alpha: 16.0,
        lora_targets: vec![],
        seed: 0,
        chat_template: Default::default(),
        backprop: Default::default(),
        weights_dtype: Default::default(),
    };
    gradsift::pipeline::load(&spec, c).unwrap()
}

/// The checkpoints under tests/fixtures/hf-arch, each with chat templates, chat data and float64
/// references. From the shared hf-arch: Llama-3 (llama3 RoPE scaling, tied embeddings), Qwen3
/// (q/k norm, head_dim 24 ≠ hidden / heads, bf16), Gemma-2 (soft-capping, sliding and full
/// layers, four norms per block, scaled embeddings), Phi-3 (fused qkv_proj and gate_up_proj,
/// LoRA on the fused modules), Mistral (a window of 10, shorter than most sequences). Made by
/// tests/fixtures/hf-arch/make_reference.py: Gemma (1) (multi-query attention; a hidden size
/// whose square root bf16 rounds, as a bf16 model's embedding scale is; its config.json
/// as Transformers 4 wrote Google's: legacy `"gelu"`, the tied default left out), Gemma-3 (q/k
/// norms, RoPE per layer type with a linearly scaled global base; Gemma-3's template folds the
/// system message into the first user turn, and tiny-gemma uses it too), Qwen2 with
/// `use_sliding_window`, Phi-4-mini's RoPE (three quarters of each head rotate; LongRoPE whose
/// short and long sets both occur within one batch and within one DPO pair), Qwen3 with YaRN,
/// SmolLM3 (a NoPE layer with a window), OLMo-2 (norms after attention and MLP, q/k norms over
/// the whole projection), OLMo-3 (three windowed layers, YaRN on the full one) and GPT-NeoX
/// (parallel residual, per-head `query_key_value`, a quarter of each head rotating; f16),
/// Granite (multipliers on the embeddings, residual branches, scores and logits), Phi-2 (one
/// norm feeding both branches, 0.4 of each head rotating, a biased output head; f16) and
/// GPT-2 with `scale_attn_by_inverse_layer_idx`.
pub const HF_ARCH: &[&str] = &[
    "tiny-mistral",
    "tiny-llama3",
    "tiny-qwen3",
    "tiny-phi3",
    "tiny-gemma2",
    "tiny-gemma",
    "tiny-gemma3",
    "tiny-qwen2-window",
    "tiny-phi4",
    "tiny-qwen3-yarn",
    "tiny-smollm3",
    "tiny-olmo2",
    "tiny-olmo3",
    "tiny-neox",
    "tiny-granite",
    "tiny-phi2",
    "tiny-gpt2-scaled",
];
