//! `gradsift bench --shape NAME`: featurization at a real model's shape. The published config
//! of one of the models users bring (SmolLM2-135M to Llama-3.1-8B) gets seeded random weights (N(0, 0.02), bf16
//! on disk as the checkpoints ship), written to a temporary directory and loaded the normal
//! way; a LoRA of realistic size (r = 8 on q/k/v/o) and generated records of a fixed length go
//! through per-example gradients and the projection, each phase timed, with the peak resident
//! memory and the achieved rate of the forward and backward passes against the backend's own
//! measured matmul rate. `scripts/less_loop.py` runs the LESS-style PyTorch loop on the same
//! shapes for the comparison.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::prelude::*;
use serde_json::json;

use crate::choice::Choice;
use crate::data::{Sequence, Tokenized};
use crate::device::Compute;
use crate::error::{Error, Result, Setting};
use crate::features::rng::fmix32;
use crate::features::{Dtype, ProjectionKind, Projector};
use crate::loss::{per_example_grads, LossKind};
use crate::model::{Backprop, CausalLm, FloatKind, LoraAdapter, WeightsDtype};

/// The shapes, as their config.json files publish them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    SmolLm2_135m,
    Qwen25_05b,
    Llama32_1b,
    Qwen25_15b,
    Llama32_3b,
    Phi35Mini,
    Llama31_8b,
}

crate::choice::choice!(Shape {
    SmolLm2_135m => "smollm2-135m": "SmolLM2-135M: Llama, 30 layers, hidden 576, GQA 9/3, vocab 49,152, tied",
    Qwen25_05b => "qwen2.5-0.5b": "Qwen2.5-0.5B: Qwen2, 24 layers, hidden 896, GQA 14/2, vocab 151,936, q/k/v bias, tied",
    Llama32_1b => "llama-3.2-1b": "Llama-3.2-1B: 16 layers, hidden 2048, GQA 32/8, vocab 128,256, llama3 RoPE, tied",
    Qwen25_15b => "qwen2.5-1.5b": "Qwen2.5-1.5B: Qwen2, 28 layers, hidden 1536, GQA 12/2, vocab 151,936, q/k/v bias, tied",
    Llama32_3b => "llama-3.2-3b": "Llama-3.2-3B: 28 layers, hidden 3072, GQA 24/8, vocab 128,256, llama3 RoPE, tied",
    Phi35Mini => "phi-3.5-mini": "Phi-3.5-mini: Phi-3, 32 layers, hidden 3072, 32 heads, fused qkv and gate_up, vocab 32,064, longrope, untied",
    Llama31_8b => "llama-3.1-8b": "Llama-3.1-8B: 32 layers, hidden 4096, GQA 32/8, vocab 128,256, llama3 RoPE, untied",
});

impl Shape {
    /// The published config.json (architecture fields; bf16).
    pub fn config(self) -> serde_json::Value {
        match self {
            Shape::SmolLm2_135m => json!({
                "model_type": "llama", "vocab_size": 49152, "hidden_size": 576, "intermediate_size": 1536,
                "num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3,
                "rms_norm_eps": 1e-5, "rope_theta": 100000.0, "tie_word_embeddings": true,
                "max_position_embeddings": 8192, "bos_token_id": 0, "eos_token_id": 0, "torch_dtype": "bfloat16",
            }),
            Shape::Qwen25_05b => json!({
                "model_type": "qwen2", "vocab_size": 151936, "hidden_size": 896, "intermediate_size": 4864,
                "num_hidden_layers": 24, "num_attention_heads": 14, "num_key_value_heads": 2,
                "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "tie_word_embeddings": true,
                "max_position_embeddings": 32768, "bos_token_id": 151643, "eos_token_id": 151643,
                "use_sliding_window": false, "torch_dtype": "bfloat16",
            }),
            Shape::Llama32_1b => json!({
                "model_type": "llama", "vocab_size": 128256, "hidden_size": 2048, "intermediate_size": 8192,
                "num_hidden_layers": 16, "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 64,
                "rms_norm_eps": 1e-5, "rope_theta": 500000.0, "tie_word_embeddings": true,
                "rope_scaling": { "rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
                                  "high_freq_factor": 4.0, "original_max_position_embeddings": 8192 },
                "max_position_embeddings": 131072, "bos_token_id": 128000, "eos_token_id": 128001,
                "torch_dtype": "bfloat16",
            }),
            Shape::Qwen25_15b => json!({
                "model_type": "qwen2", "vocab_size": 151936, "hidden_size": 1536, "intermediate_size": 8960,
                "num_hidden_layers": 28, "num_attention_heads": 12, "num_key_value_heads": 2,
                "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "tie_word_embeddings": true,
                "max_position_embeddings": 131072, "bos_token_id": 151643, "eos_token_id": 151643,
                "use_sliding_window": false, "torch_dtype": "bfloat16",
            }),
            Shape::Llama32_3b => json!({
                "model_type": "llama", "vocab_size": 128256, "hidden_size": 3072, "intermediate_size": 8192,
                "num_hidden_layers": 28, "num_attention_heads": 24, "num_key_value_heads": 8, "head_dim": 128,
                "rms_norm_eps": 1e-5, "rope_theta": 500000.0, "tie_word_embeddings": true,
                "rope_scaling": { "rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
                                  "high_freq_factor": 4.0, "original_max_position_embeddings": 8192 },
                "max_position_embeddings": 131072, "bos_token_id": 128000, "eos_token_id": 128001,
                "torch_dtype": "bfloat16",
            }),
            // The published long and short RoPE factors are 48 numbers each; ones here, which
            // change neither a shape nor a cost.
            Shape::Phi35Mini => json!({
                "model_type": "phi3", "vocab_size": 32064, "hidden_size": 3072, "intermediate_size": 8192,
                "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 32,
                "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": false,
                "rope_scaling": { "type": "longrope", "long_factor": vec![1.0; 48], "short_factor": vec![1.0; 48] },
                "original_max_position_embeddings": 4096, "max_position_embeddings": 131072,
                "bos_token_id": 1, "eos_token_id": 32000, "hidden_act": "silu", "torch_dtype": "bfloat16",
            }),
            Shape::Llama31_8b => json!({
                "model_type": "llama", "vocab_size": 128256, "hidden_size": 4096, "intermediate_size": 14336,
                "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
                "rms_norm_eps": 1e-5, "rope_theta": 500000.0, "tie_word_embeddings": false,
                "rope_scaling": { "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                  "high_freq_factor": 4.0, "original_max_position_embeddings": 8192 },
                "max_position_embeddings": 131072, "bos_token_id": 128000, "eos_token_id": 128001,
                "torch_dtype": "bfloat16",
            }),
        }
    }

    /// The LoRA targets of the bench: the attention projections (Phi-3's are fused).
    pub fn lora_targets(self) -> Vec<String> {
        let names: &[&str] = match self {
            Shape::Phi35Mini => &["qkv_proj", "o_proj"],
            _ => &["q_proj", "k_proj", "v_proj", "o_proj"],
        };
        names.iter().map(|s| s.to_string()).collect()
    }
}

/// The tensors of a Llama-family checkpoint of `config` (names and shapes, HF layout).
fn tensors(config: &serde_json::Value) -> Vec<(String, Vec<usize>)> {
    let g = |k: &str| config[k].as_u64().unwrap_or(0) as usize;
    let (h, inter, layers, heads, kv, vocab) = (
        g("hidden_size"),
        g("intermediate_size"),
        g("num_hidden_layers"),
        g("num_attention_heads"),
        g("num_key_value_heads"),
        g("vocab_size"),
    );
    let hd = config["head_dim"].as_u64().map_or(h / heads, |d| d as usize);
    let bias = config["model_type"] == "qwen2";
    let fused = config["model_type"] == "phi3";
    let mut t = vec![("model.embed_tokens.weight".to_string(), vec![vocab, h])];
    for l in 0..layers {
        let p = format!("model.layers.{l}");
        let projections = match fused {
            true => vec![
                ("self_attn.qkv_proj.weight", vec![(heads + 2 * kv) * hd, h]),
                ("mlp.gate_up_proj.weight", vec![2 * inter, h]),
            ],
            false => vec![
                ("self_attn.q_proj.weight", vec![heads * hd, h]),
                ("self_attn.k_proj.weight", vec![kv * hd, h]),
                ("self_attn.v_proj.weight", vec![kv * hd, h]),
                ("mlp.gate_proj.weight", vec![inter, h]),
                ("mlp.up_proj.weight", vec![inter, h]),
            ],
        };
        for (name, shape) in projections.into_iter().chain([
            ("self_attn.o_proj.weight", vec![h, heads * hd]),
            ("mlp.down_proj.weight", vec![h, inter]),
            ("input_layernorm.weight", vec![h]),
            ("post_attention_layernorm.weight", vec![h]),
        ]) {
            t.push((format!("{p}.{name}"), shape));
        }
        if bias {
            for (name, n) in [("q_proj", heads * hd), ("k_proj", kv * hd), ("v_proj", kv * hd)] {
                t.push((format!("{p}.self_attn.{name}.bias"), vec![n]));
            }
        }
    }
    t.push(("model.norm.weight".to_string(), vec![h]));
    if config["tie_word_embeddings"] != true {
        t.push(("lm_head.weight".to_string(), vec![vocab, h]));
    }
    t
}

/// Writes config.json and a bf16 model.safetensors of seeded N(0, 0.02) weights (norms at 1)
/// into `dir`, a tensor at a time (the file is written as it is generated, never held whole;
/// each tensor's values on every core). The file is written under a temporary name and renamed
/// when whole, so a run stopped while writing leaves no truncated checkpoint for the next run
/// to find.
pub fn write_model(shape: Shape, dir: &Path, seed: u64) -> Result<u64> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let config = shape.config();
    let cfg_path = dir.join("config.json");
    std::fs::write(&cfg_path, serde_json::to_string_pretty(&config).expect("json"))
        .map_err(|e| Error::io(&cfg_path, e))?;
    let list = tensors(&config);
    let mut header = serde_json::Map::new();
    let mut offset = 0usize;
    for (name, shape) in &list {
        let bytes = 2 * shape.iter().product::<usize>();
        header
            .insert(name.clone(), json!({ "dtype": "BF16", "shape": shape, "data_offsets": [offset, offset + bytes] }));
        offset += bytes;
    }
    let mut text = serde_json::Value::Object(header).to_string();
    while !text.len().is_multiple_of(8) {
        text.push(' ');
    }
    let path = dir.join("model.safetensors");
    let tmp = crate::util::tmp_path(&path);
    let file = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
    let io = |e| Error::io(&tmp, e);
    w.write_all(&(text.len() as u64).to_le_bytes()).map_err(io)?;
    w.write_all(text.as_bytes()).map_err(io)?;
    let mut params = 0u64;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    for (t, (name, shape)) in list.iter().enumerate() {
        let n: usize = shape.iter().product();
        params += n as u64;
        let norm = name.ends_with("norm.weight");
        let key = (seed as u32) ^ fmix32(t as u32 ^ 0x9E37_79B9);
        let mut buf = vec![0u8; 2 * n];
        let per = n.div_ceil(threads).max(1 << 16);
        std::thread::scope(|scope| {
            for (c, part) in buf.chunks_mut(2 * per).enumerate() {
                scope.spawn(move || {
                    for (j, out) in part.chunks_exact_mut(2).enumerate() {
                        let x = if norm { 1.0 } else { weight(key, c * per + j) };
                        out.copy_from_slice(&half::bf16::from_f32(x).to_le_bytes());
                    }
                });
            }
        });
        w.write_all(&buf).map_err(io)?;
    }
    w.flush().map_err(io)?;
    drop(w);
    std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
    Ok(params)
}

/// Element `i` of the tensor keyed `key`: Irwin–Hall(4) from counter-based hashes, mean 0 and
/// unit variance, scaled to 0.02.
fn weight(key: u32, i: usize) -> f32 {
    let u: f32 = (0..4u32)
        .map(|j| fmix32(key ^ fmix32((i as u32).wrapping_mul(4).wrapping_add(j))) as f32 / u32::MAX as f32)
        .sum();
    (u - 2.0) * 3f32.sqrt() * 0.02
}

/// What one `bench --shape` run measured.
#[derive(Debug, Clone)]
pub struct ShapeRun {
    pub shape: Shape,
    pub device: String,
    pub params: u64,
    pub lora_params: usize,
    pub examples: usize,
    pub seq_len: usize,
    pub batch: usize,
    pub proj_dim: usize,
    pub projection: ProjectionKind,
    /// How the gradient passes ran (`auto` resolved).
    pub backprop: Backprop,
    /// The blocks pass's estimate of the activations it keeps
    /// ([`CausalLm::kept_activations`]), in bytes, to put beside the measured peak.
    pub kept_estimate: Option<usize>,
    /// The type the frozen matrices were kept in (`--weights-dtype` resolved).
    pub matrices: FloatKind,
    /// Seconds per phase: write (generate the checkpoint), load, forward only (one pass over
    /// the records, no gradients), gradients (forward + backward), projection, store write.
    pub phases: Vec<(&'static str, f64)>,
    /// Estimated FLOPs of forward + backward over the records (see `gradient_flops`).
    pub flops: f64,
    /// The backend's f32 matmul rate at a shape like the MLP's.
    pub matmul_gflops: f64,
    pub peak_rss: Option<u64>,
}

impl ShapeRun {
    fn phase(&self, name: &str) -> f64 {
        self.phases.iter().find(|p| p.0 == name).map_or(0.0, |p| p.1)
    }

    /// The report lines.
    pub fn lines(&self) -> Vec<String> {
        let grad = self.phase("gradients");
        let tokens = (self.examples * self.seq_len) as f64;
        let achieved = self.flops / grad / 1e9;
        vec![
            format!(
                "{} on {}: {:.1}M parameters ({} weights), LoRA {} parameters, {} records of {} tokens, batch {}, {} backward{}, {}",
                self.shape.name(),
                self.device,
                self.params as f64 / 1e6,
                self.matrices.name(),
                self.lora_params,
                self.examples,
                self.seq_len,
                self.batch,
                self.backprop.name(),
                self.kept_estimate.map_or(String::new(), |b| format!(" (keeps about {:.2} GB, estimated)", b as f64 / 1e9)),
                match self.proj_dim {
                    0 => "no projection (exact gradients)".to_string(),
                    k => format!("{} projection k = {k}", self.projection.name()),
                }
            ),
            format!(
                "  gradients: {:.2} examples/s, {:.0} tokens/s; forward + backward at {achieved:.1} GFLOP/s ({:.0}% of the backend's {:.1} GFLOP/s matmul)",
                self.examples as f64 / grad,
                tokens / grad,
                100.0 * achieved / self.matmul_gflops,
                self.matmul_gflops
            ),
            format!(
                "  phases (s): {}",
                self.phases.iter().map(|(n, s)| format!("{n} {s:.2}")).collect::<Vec<_>>().join(", ")
            ),
            format!(
                "  projection = {:.1}% of the gradient time{}; peak RSS {}",
                100.0 * self.phase("projection") / grad,
                match self.phase("dense projection (not used)") {
                    d if d > 0.0 => format!(" (the dense P: {:.1}%)", 100.0 * d / grad),
                    _ => String::new(),
                },
                self.peak_rss.map_or("unknown".into(), |b| format!("{:.2} GB", b as f64 / 1e9))
            ),
        ]
    }
}

/// FLOPs of forward and backward through a frozen base with LoRA: the weight matmuls cost 2
/// per weight per token forward and 2 backward (activation gradients only: frozen weights get
/// none), attention scores and values 4·L·T·H per token each way. The embedding lookup is no
/// matmul: with tied embeddings its matrix is counted once, as the head; untied, only the head.
pub(crate) fn gradient_flops(config: &serde_json::Value, params: u64, tokens: usize, seq_len: usize) -> f64 {
    let g = |k: &str| config[k].as_f64().unwrap_or(0.0);
    let (layers, h) = (g("num_hidden_layers"), g("hidden_size"));
    let lookup_only = if config["tie_word_embeddings"] == true { 0.0 } else { g("vocab_size") * h };
    let dense = 2.0 * (params as f64 - lookup_only) * tokens as f64;
    let attention = 4.0 * layers * seq_len as f64 * h * tokens as f64;
    2.0 * (dense + attention)
}

/// Seeded token ids in `[vocab/8, vocab)` (past the special tokens), the first quarter of
/// each record the prompt (masked out of the loss).
fn records(n: usize, seq_len: usize, vocab: usize, seed: u64) -> Vec<Tokenized> {
    (0..n)
        .map(|e| {
            let ids: Vec<u32> = (0..seq_len)
                .map(|t| {
                    let r = fmix32((seed as u32) ^ fmix32((e * seq_len + t) as u32 ^ 0x7265_6364));
                    (vocab / 8 + r as usize % (vocab - vocab / 8)) as u32
                })
                .collect();
            let mask = (0..seq_len).map(|t| u8::from(t >= seq_len / 4)).collect();
            Tokenized::Single(Sequence { ids, mask })
        })
        .collect()
}

/// The f32 matmul rate of the backend at `[rows, h] × [h, inter]`.
fn matmul_rate(c: &Compute, rows: usize, h: usize, inter: usize) -> f64 {
    let a: Tensor<2> = Tensor::random([rows, h], burn::tensor::Distribution::Default, &c.device);
    let b: Tensor<2> = Tensor::random([h, inter], burn::tensor::Distribution::Default, &c.device);
    let _ = a.clone().matmul(b.clone()).sum().into_data();
    let reps = 4;
    let t = Instant::now();
    for _ in 0..reps {
        let _ = a.clone().matmul(b.clone()).sum().into_data();
    }
    reps as f64 * 2.0 * (rows * h * inter) as f64 / t.elapsed().as_secs_f64() / 1e9
}

/// Options of a shape run.
#[derive(Debug, Clone)]
pub struct ShapeOptions {
    pub shape: Shape,
    pub seq_len: usize,
    pub batch: usize,
    pub proj_dim: usize,
    pub projection: ProjectionKind,
    pub proj_nnz: usize,
    pub examples: usize,
    pub backprop: Backprop,
    /// The type the frozen matrices are kept in.
    pub weights_dtype: WeightsDtype,
    /// Where the generated checkpoint goes (reused when it is there).
    pub dir: PathBuf,
}

/// Runs the featurization of generated records at `o.shape` on `c`.
pub fn run(o: &ShapeOptions, c: &Compute) -> Result<ShapeRun> {
    if o.seq_len < 4 {
        return Err(Error::setting(Setting::SeqLen, "bench: a generated record needs at least 4 tokens"));
    }
    if o.batch == 0 {
        return Err(Error::setting(Setting::BatchSize, "bench: the batch size must be positive"));
    }
    if o.examples == 0 {
        return Err(Error::setting(Setting::Examples, "bench: at least one example is needed"));
    }
    let mut phases = Vec::new();
    let t = Instant::now();
    let params = if o.dir.join("model.safetensors").exists() {
        tensors(&o.shape.config()).iter().map(|(_, s)| s.iter().product::<usize>() as u64).sum()
    } else {
        write_model(o.shape, &o.dir, 1)?
    };
    phases.push(("write", t.elapsed().as_secs_f64()));
    super::reset_peak_rss();
    let t = Instant::now();
    let mut model = CausalLm::load_as(&o.dir, &c.device, o.weights_dtype)?;
    model.backprop = o.backprop;
    let adapter = LoraAdapter::fresh(&model.linears, 8, 16.0, &o.shape.lora_targets(), 0)?;
    phases.push(("load", t.elapsed().as_secs_f64()));
    let config = o.shape.config();
    let data = records(o.examples, o.seq_len, model.config.vocab_size, 7);
    let n = adapter.num_params();
    // Warm-up (kernel compilation, autotuning, first allocations) outside the clock.
    per_example_grads(&model, &adapter, &data[..o.batch.min(data.len())], LossKind::Sft, &c.device)?;
    let t = Instant::now();
    for chunk in data.chunks(o.batch) {
        let seqs: Vec<&Sequence> =
            chunk.iter().filter_map(|x| if let Tokenized::Single(s) = x { Some(s) } else { None }).collect();
        crate::loss::sequence_logps(&model, None, &seqs, &c.device)?;
    }
    phases.push(("forward only", t.elapsed().as_secs_f64()));
    let t = Instant::now();
    let mut flat = Vec::with_capacity(o.examples * n);
    for chunk in data.chunks(o.batch) {
        let g = per_example_grads(&model, &adapter, chunk, LossKind::Sft, &c.device)?;
        flat.extend(g.grads.into_data().iter::<f32>());
    }
    phases.push(("gradients", t.elapsed().as_secs_f64()));
    let projector = Projector::new(c.gpu.as_ref(), o.projection, 0, o.proj_dim, o.proj_nnz)?;
    // The sparse P is timed beside the dense one it replaces (the same gradients, one run).
    if o.projection == ProjectionKind::Sparse && o.proj_dim > 0 {
        let dense = Projector::new(c.gpu.as_ref(), ProjectionKind::Dense, 0, o.proj_dim, 0)?;
        let t = Instant::now();
        dense.apply(flat.clone(), o.examples, n)?;
        phases.push(("dense projection (not used)", t.elapsed().as_secs_f64()));
    }
    let t = Instant::now();
    let features = projector.apply(flat, o.examples, n)?;
    phases.push(("projection", t.elapsed().as_secs_f64()));
    let dim = projector.dim(n);
    let t = Instant::now();
    let out = o.dir.join("features.npy");
    crate::features::npy::write(&out, &features, o.examples, dim, Dtype::F32)?;
    phases.push(("write features", t.elapsed().as_secs_f64()));
    let peak_rss = super::peak_rss_bytes();
    let h = model.config.hidden;
    let matmul_gflops = matmul_rate(c, (o.batch * o.seq_len).min(2048), h, model.config.intermediate);
    let rows = o.batch.min(o.examples);
    let backprop = model.backprop.resolve(&model, &adapter, rows, o.seq_len, &c.device);
    Ok(ShapeRun {
        shape: o.shape,
        device: c.label.clone(),
        params,
        lora_params: n,
        examples: o.examples,
        seq_len: o.seq_len,
        batch: o.batch,
        proj_dim: o.proj_dim,
        projection: o.projection,
        backprop,
        kept_estimate: (backprop == Backprop::Blocks).then(|| model.kept_activations(&adapter, rows, o.seq_len)),
        matrices: model.matrices,
        flops: gradient_flops(&config, params, o.examples * o.seq_len, o.seq_len),
        phases,
        matmul_gflops,
        peak_rss,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The generated checkpoints have the published models' parameter counts (tied heads
    /// counted once) and configs gradsift reads.
    #[test]
    fn shapes_have_the_published_parameter_counts() {
        for (shape, published) in [
            (Shape::SmolLm2_135m, 134_515_008u64),
            (Shape::Qwen25_05b, 494_032_768),
            (Shape::Llama32_1b, 1_235_814_400),
            (Shape::Qwen25_15b, 1_543_714_304),
            (Shape::Llama32_3b, 3_212_749_824),
            (Shape::Phi35Mini, 3_821_079_552),
            (Shape::Llama31_8b, 8_030_261_248),
        ] {
            let config = shape.config();
            let n: u64 = tensors(&config).iter().map(|(_, s)| s.iter().product::<usize>() as u64).sum();
            assert_eq!(n, published, "{}", shape.name());
            crate::model::ModelConfig::from_value(&config, Path::new("config.json")).unwrap();
        }
    }
}
