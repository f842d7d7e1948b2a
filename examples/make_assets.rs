//! Makes the embedded default in assets/: the demo task suite (`gradsift make-data` with its
//! defaults at a 400-example pool) and a small Llama-architecture base model trained by us, from
//! a seeded N(0, 0.02) initialisation, on the suite's generic mix (base.jsonl: every task kind
//! plus chat, always correct) with full-parameter AdamW (`gradsift::train::train_base`).
//!
//!     cargo run --example make_assets -- assets
//!
//! The tokenizer (assets/model/tokenizer.json) is the 384-token byte-level BPE of the test
//! fixtures. Everything here is deterministic on one backend: re-running on the CPU backend
//! rewrites the same files.

use std::path::Path;

use gradsift::model::HostTensor;
use gradsift::util::SplitMix64 as Rng;

fn write_init(dir: &Path) {
    let (v, h, layers, heads, kv, inter) = (384usize, 96usize, 2usize, 4usize, 2usize, 256usize);
    let hd = h / heads;
    let config = serde_json::json!({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": v, "hidden_size": h,
        "intermediate_size": inter, "num_hidden_layers": layers, "num_attention_heads": heads,
        "num_key_value_heads": kv, "head_dim": hd, "hidden_act": "silu", "max_position_embeddings": 512,
        "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "tie_word_embeddings": false,
        "bos_token_id": 0, "eos_token_id": 1, "attention_bias": false, "mlp_bias": false,
        "initializer_range": 0.02, "torch_dtype": "float32"
    });
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("config.json"), serde_json::to_string_pretty(&config).unwrap()).unwrap();
    let mut rng = Rng(20261123);
    let mut tensors: Vec<(String, HostTensor)> = Vec::new();
    let mut add = |name: String, shape: Vec<usize>, init: &mut dyn FnMut() -> f32| {
        let n: usize = shape.iter().product();
        tensors.push((name, HostTensor { data: (0..n).map(|_| init()).collect(), shape }));
    };
    let mut normal = || (rng.normal() * 0.02) as f32;
    add("model.embed_tokens.weight".into(), vec![v, h], &mut normal);
    add("lm_head.weight".into(), vec![v, h], &mut normal);
    for l in 0..layers {
        let p = format!("model.layers.{l}");
        add(format!("{p}.self_attn.q_proj.weight"), vec![heads * hd, h], &mut normal);
        add(format!("{p}.self_attn.k_proj.weight"), vec![kv * hd, h], &mut normal);
        add(format!("{p}.self_attn.v_proj.weight"), vec![kv * hd, h], &mut normal);
        add(format!("{p}.self_attn.o_proj.weight"), vec![h, heads * hd], &mut normal);
        add(format!("{p}.mlp.gate_proj.weight"), vec![inter, h], &mut normal);
        add(format!("{p}.mlp.up_proj.weight"), vec![inter, h], &mut normal);
        add(format!("{p}.mlp.down_proj.weight"), vec![h, inter], &mut normal);
        add(format!("{p}.input_layernorm.weight"), vec![h], &mut || 1.0);
        add(format!("{p}.post_attention_layernorm.weight"), vec![h], &mut || 1.0);
    }
    add("model.norm.weight".into(), vec![h], &mut || 1.0);
    gradsift::train::write_model(dir, &tensors).unwrap();
}

/// The demo suite: the CLI's defaults, with a pool small enough for a classroom run.
fn suite() -> gradsift::suite::SuiteSpec {
    gradsift::suite::SuiteSpec { pool: 400, ..Default::default() }
}

fn main() {
    let out = std::env::args().nth(1).unwrap_or_else(|| "assets".into());
    let out = Path::new(&out);
    let demo = out.join("demo");
    let manifest = suite().write(&demo).expect("write the suite");
    // The generic mix trains the base model; it is not part of the embedded data.
    let work = std::env::temp_dir().join(format!("gradsift-make-assets-{}", std::process::id()));
    let init = work.join("init");
    write_init(&init);
    std::fs::copy(out.join("model/tokenizer.json"), init.join("tokenizer.json")).expect("tokenizer.json");
    let base = demo.join("base.jsonl");
    std::fs::rename(&base, work.join("base.jsonl")).expect("move base.jsonl");
    let data = gradsift::data::load_records(&work.join("base.jsonl")).expect("base mix");
    let opts = gradsift::train::BaseOptions::default();
    let compute = gradsift::Compute::cpu();
    let start = std::time::Instant::now();
    let record =
        gradsift::train::train_base(&init, &data, &opts, &compute, &out.join("model"), &mut |step, total, loss| {
            if step % 50 == 0 || step == total {
                eprintln!("base: step {step}/{total}: loss {loss:.4} ({:.0} s)", start.elapsed().as_secs_f64());
            }
        })
        .expect("train the base model");
    let _ = std::fs::remove_dir_all(&work);
    println!(
        "wrote {} ({} suite files) and the base model (epoch losses {:?}, {:.0} s)",
        out.display(),
        manifest.files.len(),
        record.epoch_loss,
        start.elapsed().as_secs_f64()
    );
}
