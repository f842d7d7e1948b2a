//! Peak host memory while loading a model onto the CPU backend: how far the process's peak
//! resident memory (VmHWM, Linux) rises during `CausalLm::load`, for each model directory given.
//!
//!     cargo run --example load_memory -- make /tmp/ckpt-100mb 100   # a Llama checkpoint of ~100 MB
//!     cargo run --example load_memory -- /tmp/ckpt-100mb [MORE_DIRS]
//!
//! With no directory it loads the embedded default model.

use std::path::{Path, PathBuf};

use gradsift::device::Compute;
use gradsift::model::{write_safetensors, CausalLm};

fn status(key: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// A Llama-architecture checkpoint of about `mb` MB (f32, seeded values): hidden 1024, as many
/// layers as the size allows.
fn make(dir: &Path, mb: usize) {
    let (vocab, h, inter, heads) = (8192usize, 1024usize, 2816usize, 16usize);
    let per_layer = 4 * h * h + 3 * h * inter + 2 * h;
    let layers = ((mb << 20) / 4).saturating_sub(2 * vocab * h + h) / per_layer;
    let layers = layers.max(1);
    std::fs::create_dir_all(dir).unwrap();
    let config = serde_json::json!({
        "model_type": "llama", "vocab_size": vocab, "hidden_size": h, "intermediate_size": inter,
        "num_hidden_layers": layers, "num_attention_heads": heads, "num_key_value_heads": heads,
        "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "tie_word_embeddings": false,
        "bos_token_id": 0, "eos_token_id": 1, "torch_dtype": "float32"
    });
    std::fs::write(dir.join("config.json"), serde_json::to_string_pretty(&config).unwrap()).unwrap();
    let mut rng = gradsift::util::SplitMix64(7);
    let mut tensors: Vec<(String, Vec<usize>, Vec<f32>)> = Vec::new();
    let mut add = |name: String, shape: Vec<usize>| {
        let n = shape.iter().product();
        tensors.push((name, shape, (0..n).map(|_| (rng.uniform() as f32 - 0.5) * 0.04).collect()));
    };
    add("model.embed_tokens.weight".into(), vec![vocab, h]);
    add("lm_head.weight".into(), vec![vocab, h]);
    add("model.norm.weight".into(), vec![h]);
    for l in 0..layers {
        let p = format!("model.layers.{l}");
        for m in ["q_proj", "k_proj", "v_proj", "o_proj"] {
            add(format!("{p}.self_attn.{m}.weight"), vec![h, h]);
        }
        add(format!("{p}.mlp.gate_proj.weight"), vec![inter, h]);
        add(format!("{p}.mlp.up_proj.weight"), vec![inter, h]);
        add(format!("{p}.mlp.down_proj.weight"), vec![h, inter]);
        add(format!("{p}.input_layernorm.weight"), vec![h]);
        add(format!("{p}.post_attention_layernorm.weight"), vec![h]);
    }
    let refs: Vec<(String, Vec<usize>, &[f32])> =
        tensors.iter().map(|(n, s, v)| (n.clone(), s.clone(), &v[..])).collect();
    write_safetensors(&dir.join("model.safetensors"), &refs, &[("format", "pt".into())]).unwrap();
    println!("wrote {} ({layers} layers)", dir.display());
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("make") {
        make(Path::new(&args[1]), args.get(2).and_then(|s| s.parse().ok()).unwrap_or(100));
        return;
    }
    let dirs: Vec<PathBuf> = if args.is_empty() {
        vec![gradsift::assets::materialize().unwrap().model_dir]
    } else {
        args.iter().map(PathBuf::from).collect()
    };
    let compute = Compute::cpu();
    for dir in dirs {
        let file_mb = std::fs::metadata(dir.join("model.safetensors")).map_or(0, |m| m.len()) >> 20;
        // Start each measurement from where the process stands (clear_refs 5 resets VmHWM).
        let _ = std::fs::write("/proc/self/clear_refs", "5");
        let before = status("VmHWM:");
        let model = CausalLm::load(&dir, &compute.device).unwrap();
        let peak = status("VmHWM:");
        println!(
            "{}: {file_mb} MB of weights, {} layers: peak resident memory rose {} MB while loading",
            dir.display(),
            model.config.layers,
            (peak.saturating_sub(before)) >> 20
        );
    }
}
