//! Makes the embedded default in assets/: a tiny random-initialised Llama-architecture model in
//! Hugging Face format (config.json + model.safetensors, seeded, N(0, 0.02) weights as HF
//! initialises them) and a small demo pool and target set.
//!
//!     cargo run --release --example make_assets -- assets
//!
//! The tokenizer (assets/model/tokenizer.json) is the 384-token byte-level BPE of the test
//! fixtures. Everything here is deterministic: re-running rewrites identical files.

use std::path::Path;

use gradsift::util::SplitMix64 as Rng;

fn write_model(dir: &Path) {
    let (v, h, layers, heads, kv, inter) = (384usize, 64usize, 2usize, 4usize, 2usize, 176usize);
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
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    let mut add = |name: String, shape: Vec<usize>, init: &mut dyn FnMut() -> f32| {
        let n: usize = shape.iter().product();
        let bytes = (0..n).flat_map(|_| init().to_le_bytes()).collect();
        tensors.push((name, shape, bytes));
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
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .map(|(n, s, b)| {
            (n.clone(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b).unwrap())
        })
        .collect();
    let mut meta = std::collections::HashMap::new();
    meta.insert("format".to_string(), "pt".to_string());
    std::fs::write(dir.join("model.safetensors"), safetensors::serialize(views, Some(meta)).unwrap()).unwrap();
}

const WORDS: &[&str] = &[
    "planet", "garden", "river", "candle", "rocket", "silver", "forest", "window", "pencil", "dragon", "winter",
    "castle",
];
const CAPITALS: &[(&str, &str)] = &[
    ("France", "Paris"),
    ("Japan", "Tokyo"),
    ("Italy", "Rome"),
    ("Spain", "Madrid"),
    ("Egypt", "Cairo"),
    ("Peru", "Lima"),
    ("Kenya", "Nairobi"),
    ("Norway", "Oslo"),
];

fn line(prompt: &str, completion: &str, task: Option<&str>) -> String {
    let mut v = serde_json::json!({"prompt": prompt, "completion": completion});
    if let Some(t) = task {
        v["task"] = t.into();
    }
    serde_json::to_string(&v).unwrap()
}

/// One example of `kind`: (prompt, completion).
fn example(kind: usize, rng: &mut Rng) -> (String, String) {
    match kind {
        0 => {
            let (a, b) = (rng.below(50), rng.below(50));
            let p = ["Add {a} and {b}.", "What is {a} plus {b}?", "Compute {a} + {b}."][rng.below(3)];
            (
                format!("{}\nAnswer:", p.replace("{a}", &a.to_string()).replace("{b}", &b.to_string())),
                format!(" {}", a + b),
            )
        }
        1 => {
            let w = WORDS[rng.below(WORDS.len())];
            let p = ["Reverse the word '{w}'.", "Spell '{w}' backwards."][rng.below(2)];
            (format!("{}\nAnswer:", p.replace("{w}", w)), format!(" {}", w.chars().rev().collect::<String>()))
        }
        2 => {
            let (c, cap) = CAPITALS[rng.below(CAPITALS.len())];
            (format!("What is the capital of {c}?\nAnswer:"), format!(" {cap}"))
        }
        3 => {
            let w = WORDS[rng.below(WORDS.len())];
            (format!("Write '{w}' in capital letters.\nAnswer:"), format!(" {}", w.to_uppercase()))
        }
        4 => {
            let w = WORDS[rng.below(WORDS.len())];
            let mut c: Vec<char> = w.chars().collect();
            c.sort();
            (format!("Sort the letters of '{w}'.\nAnswer:"), format!(" {}", c.into_iter().collect::<String>()))
        }
        5 => {
            let w = WORDS[rng.below(WORDS.len())];
            (format!("How many letters are in '{w}'?\nAnswer:"), format!(" {}", w.len()))
        }
        6 => {
            let w = WORDS[rng.below(WORDS.len())];
            (
                format!("Write a short sentence about a {w}.\nAnswer:"),
                format!(" The {w} was quiet in the evening light."),
            )
        }
        _ => {
            // Low-quality filler: the response ignores the request.
            let w = WORDS[rng.below(WORDS.len())];
            (format!("Tell me about {w}.\nAnswer:"), " ok ok ok".to_string())
        }
    }
}

fn write_demo(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let mut rng = Rng(7);
    let pool: Vec<String> = (0..200)
        .map(|_| {
            let (p, c) = example(rng.below(8), &mut rng);
            line(&p, &c, None)
        })
        .collect();
    std::fs::write(dir.join("pool.jsonl"), pool.join("\n") + "\n").unwrap();
    let mut target = Vec::new();
    for (kind, task) in [(0, "arithmetic"), (1, "reverse")] {
        for _ in 0..3 {
            let (p, c) = example(kind, &mut rng);
            target.push(line(&p, &c, Some(task)));
        }
    }
    std::fs::write(dir.join("target.jsonl"), target.join("\n") + "\n").unwrap();
    // Preference targets (ROSE, PRISM): the correct answer against a plausible wrong one.
    let mut pairs = Vec::new();
    for (kind, task) in [(0, "arithmetic"), (1, "reverse")] {
        for _ in 0..3 {
            let (p, c) = example(kind, &mut rng);
            let wrong = if kind == 0 {
                format!(" {}", c.trim().parse::<i64>().unwrap() + 1 + rng.below(9) as i64)
            } else {
                let mut w: Vec<char> = c.trim().chars().collect();
                w.swap(0, 1);
                format!(" {}", w.into_iter().collect::<String>())
            };
            let v = serde_json::json!({"prompt": p, "chosen": c, "rejected": wrong, "task": task});
            pairs.push(serde_json::to_string(&v).unwrap());
        }
    }
    std::fs::write(dir.join("target-pairs.jsonl"), pairs.join("\n") + "\n").unwrap();
    // A preference pool for the TIF family: the correct answer against the ignoring filler,
    // with 30% of the pairs flipped (chosen and rejected swapped).
    let pool_pairs: Vec<String> = (0..200)
        .map(|_| {
            let (p, c) = example(rng.below(7), &mut rng);
            let (chosen, rejected) =
                if rng.uniform() < 0.3 { (" ok ok ok".to_string(), c) } else { (c, " ok ok ok".to_string()) };
            serde_json::to_string(&serde_json::json!({"prompt": p, "chosen": chosen, "rejected": rejected})).unwrap()
        })
        .collect();
    std::fs::write(dir.join("pool-pairs.jsonl"), pool_pairs.join("\n") + "\n").unwrap();
}

fn main() {
    let out = std::env::args().nth(1).unwrap_or_else(|| "assets".into());
    let out = Path::new(&out);
    write_model(&out.join("model"));
    write_demo(&out.join("demo"));
    println!("wrote {}", out.display());
}
