//! Checkpoint variants that have no PyTorch reference of their own are checked by equivalence:
//! sharded = single file, f16 weights = the same values stored as f32, GQA and MQA = MHA with
//! the key/value heads duplicated (HF's repeat_kv), and the summed sequence loss's gradient =
//! response length × the token-mean loss's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::common;
use gradsift::data::{Sequence, Tokenized};
use gradsift::device::{self, Compute};
use gradsift::loss::{per_example_grads, sft_losses, LossKind, SeqBatch};
use gradsift::model::{read_safetensors, Backprop, CausalLm, FloatKind, HostTensor, LoraAdapter, WeightsDtype};

fn llama() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hf-tiny/tiny-llama")
}

/// Writes tensors (name → f32 host tensor) as safetensors in `dtype`.
fn write_st(path: &Path, tensors: &BTreeMap<String, HostTensor>, dtype: safetensors::Dtype) {
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(n, t)| {
            let b = match dtype {
                safetensors::Dtype::F16 => t.data.iter().flat_map(|x| half::f16::from_f32(*x).to_le_bytes()).collect(),
                safetensors::Dtype::BF16 => {
                    t.data.iter().flat_map(|x| half::bf16::from_f32(*x).to_le_bytes()).collect()
                }
                _ => t.data.iter().flat_map(|x| x.to_le_bytes()).collect(),
            };
            (n.clone(), t.shape.clone(), b)
        })
        .collect();
    let views: Vec<_> = bytes
        .iter()
        .map(|(n, s, b)| (n.clone(), safetensors::tensor::TensorView::new(dtype, s.clone(), b).unwrap()))
        .collect();
    std::fs::write(path, safetensors::serialize(views, None).unwrap()).unwrap();
}

fn model_dir(
    name: &str,
    config: serde_json::Value,
    tensors: &BTreeMap<String, HostTensor>,
    dtype: safetensors::Dtype,
) -> tempfile::TempDir {
    let d = common::tmp("load", name);
    std::fs::write(d.path().join("config.json"), config.to_string()).unwrap();
    write_st(&d.path().join("model.safetensors"), tensors, dtype);
    d
}

fn base_tensors() -> BTreeMap<String, HostTensor> {
    read_safetensors(&llama().join("model.safetensors")).unwrap().into_iter().collect()
}

fn base_config() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(llama().join("config.json")).unwrap()).unwrap()
}

fn logits(dir: &Path) -> Vec<f32> {
    let c = Compute::cpu();
    let m = CausalLm::load(dir, &c.device).unwrap();
    let s = Sequence { ids: vec![0, 35, 70, 70, 223, 19, 20, 308, 223, 21, 18, 16, 201, 35, 1], mask: vec![0; 15] };
    let b = SeqBatch::new(&[&s], &c.device);
    m.logits(b.ids, &b.lengths, None).into_data().iter::<f32>().collect()
}

fn max_rel(a: &[f32], b: &[f32]) -> f32 {
    let scale = b.iter().fold(0f32, |m, x| m.max(x.abs()));
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

#[test]
fn sharded_checkpoint_equals_single_file() {
    let t = base_tensors();
    let d_tmp = common::tmp("load", "sharded");
    let d = d_tmp.path();
    std::fs::write(d.join("config.json"), base_config().to_string()).unwrap();
    let (mut a, mut b) = (BTreeMap::new(), BTreeMap::new());
    let mut map = serde_json::Map::new();
    for (i, (n, x)) in t.iter().enumerate() {
        let shard = if i % 2 == 0 { "model-00001-of-00002.safetensors" } else { "model-00002-of-00002.safetensors" };
        map.insert(n.clone(), shard.into());
        if i % 2 == 0 {
            a.insert(n.clone(), x.clone())
        } else {
            b.insert(n.clone(), x.clone())
        };
    }
    write_st(&d.join("model-00001-of-00002.safetensors"), &a, safetensors::Dtype::F32);
    write_st(&d.join("model-00002-of-00002.safetensors"), &b, safetensors::Dtype::F32);
    std::fs::write(
        d.join("model.safetensors.index.json"),
        serde_json::json!({"metadata": {}, "weight_map": map}).to_string(),
    )
    .unwrap();
    assert_eq!(logits(d), logits(&llama()));
}

#[test]
fn f16_weights_load_as_their_f32_values() {
    let rounded: BTreeMap<String, HostTensor> = base_tensors()
        .into_iter()
        .map(|(n, mut t)| {
            t.data.iter_mut().for_each(|x| *x = half::f16::from_f32(*x).to_f32());
            (n, t)
        })
        .collect();
    let f32_dir = model_dir("f32", base_config(), &rounded, safetensors::Dtype::F32);
    let f16_dir = model_dir("f16", base_config(), &rounded, safetensors::Dtype::F16);
    assert_eq!(logits(f16_dir.path()), logits(f32_dir.path()));
}

/// `--weights-dtype auto` follows the checkpoint's stored type where the device has it: on the
/// CPU both 16-bit types; on wgpu f16 where the adapter has shader-f16 (a bf16 checkpoint
/// becomes f16) and never bf16, which asked for explicitly is a clear error.
#[test]
fn weights_dtype_follows_the_checkpoint_and_the_device() {
    let dirs: Vec<(safetensors::Dtype, tempfile::TempDir)> = [safetensors::Dtype::F16, safetensors::Dtype::BF16]
        .into_iter()
        .map(|d| (d, model_dir(&format!("auto-{d:?}"), base_config(), &base_tensors(), d)))
        .collect();
    let cpu = Compute::cpu();
    for ((_, dir), want) in dirs.iter().zip([FloatKind::F16, FloatKind::Bf16]) {
        assert_eq!(CausalLm::load_as(dir.path(), &cpu.device, WeightsDtype::Auto).unwrap().matrices, want);
        assert_eq!(CausalLm::load_as(dir.path(), &cpu.device, WeightsDtype::F32).unwrap().matrices, FloatKind::F32);
    }
    let Some(gpu) = common::gpu() else { return };
    let f16 = gpu.device.supports_dtype(burn::tensor::DType::F16);
    for (_, dir) in &dirs {
        let want = if f16 { FloatKind::F16 } else { FloatKind::F32 };
        assert_eq!(CausalLm::load_as(dir.path(), &gpu.device, WeightsDtype::Auto).unwrap().matrices, want);
    }
    let err =
        CausalLm::load_as(dirs[1].1.path(), &gpu.device, WeightsDtype::Bf16).err().expect("no GPU backend has bf16");
    assert!(err.to_string().contains("no bf16 arithmetic"), "{err}");
}

/// A Llama of one layer whose embedding and output head are each 76.8 MB in f32 (a vocabulary
/// of 60,000 at hidden size 320), stored in bf16: both past a 64 MiB binding limit, the head
/// taking the path every linear layer's matrix takes. (Rows stay under 65,535 values, where
/// lavapipe stops a kernel's loop.)
fn past_64_mib() -> tempfile::TempDir {
    let (h, vocab, heads, kv, hd, mlp) = (320usize, 60_000usize, 4usize, 2usize, 80usize, 256usize);
    let mut config = base_config();
    for (key, value) in [
        ("hidden_size", h),
        ("intermediate_size", mlp),
        ("vocab_size", vocab),
        ("num_hidden_layers", 1),
        ("num_attention_heads", heads),
        ("num_key_value_heads", kv),
        ("head_dim", hd),
    ] {
        config[key] = value.into();
    }
    // Uniform in ±1/√fan-in (the embedding in ±1), so the logits stay in a usable range.
    let mut seed = 0;
    let mut random = |shape: Vec<usize>, scale: f32| {
        seed += 1;
        let n = shape.iter().product();
        HostTensor { shape, data: common::random_vec(n, seed).into_iter().map(|x| scale * x).collect() }
    };
    let p = "model.layers.0";
    let mut t = BTreeMap::new();
    for (name, shape) in [
        ("model.embed_tokens.weight".to_string(), vec![vocab, h]),
        ("lm_head.weight".into(), vec![vocab, h]),
        (format!("{p}.self_attn.q_proj.weight"), vec![heads * hd, h]),
        (format!("{p}.self_attn.k_proj.weight"), vec![kv * hd, h]),
        (format!("{p}.self_attn.v_proj.weight"), vec![kv * hd, h]),
        (format!("{p}.self_attn.o_proj.weight"), vec![h, heads * hd]),
        (format!("{p}.mlp.gate_proj.weight"), vec![mlp, h]),
        (format!("{p}.mlp.up_proj.weight"), vec![mlp, h]),
        (format!("{p}.mlp.down_proj.weight"), vec![h, mlp]),
    ] {
        let scale = if name.starts_with("model.embed") { 1.0 } else { 1.0 / (shape[1] as f32).sqrt() };
        t.insert(name, random(shape, scale));
    }
    for name in [
        format!("{p}.input_layernorm.weight"),
        format!("{p}.post_attention_layernorm.weight"),
        "model.norm.weight".into(),
    ] {
        t.insert(name, HostTensor { shape: vec![h], data: vec![1.0; h] });
    }
    model_dir("past-64-mib", config, &t, safetensors::Dtype::BF16)
}

/// On the tests' GPU, which binds at most 64 MiB (as a browser may grant), the matrices past
/// it are kept in parts, and the per-example gradients are the CPU backend's, which keeps them
/// whole.
#[test]
fn weights_past_the_binding_limit_give_the_unlimited_gradients() {
    let Some(limited) = common::gpu() else { return };
    assert_eq!(device::binding_limit(&limited.device), Some(common::GPU_BINDING_LIMIT as usize));
    let dir_tmp = past_64_mib();
    let dir = dir_tmp.path();
    let seqs = [
        // Tokens on both sides of the parts' boundary (52,428 rows per part).
        Sequence { ids: vec![3, 59_999, 52_428, 5, 52_427, 52_429, 12, 1], mask: vec![0, 0, 0, 1, 1, 1, 1, 1] },
        Sequence { ids: vec![3, 40_000, 42, 59_998, 1], mask: vec![0, 0, 1, 1, 1] },
    ];
    let examples: Vec<Tokenized> = seqs.iter().cloned().map(Tokenized::Single).collect();
    let targets: Vec<String> = ["q_proj", "v_proj", "gate_proj", "down_proj"].map(String::from).into();
    let grads = |c: &Compute, parts: usize| {
        let m = CausalLm::load(dir, &c.device).unwrap();
        assert_eq!(m.head().weight.parts(), parts, "head parts on {}", c.label);
        let a = LoraAdapter::fresh(&m.linears, 4, 8.0, &targets, 7).unwrap();
        let out = per_example_grads(&m, &a, &examples, LossKind::Sft, &c.device).unwrap();
        (out.losses, out.grads.into_data().iter::<f32>().collect::<Vec<f32>>())
    };
    let (loss_whole, whole) = grads(&Compute::cpu(), 1);
    let (loss_parts, parts) = grads(&limited, 2);
    for (a, b) in loss_parts.iter().zip(&loss_whole) {
        assert!(b.is_finite() && (a - b).abs() <= 1e-5 * b.abs(), "loss {a} vs {b}");
    }
    assert!(whole.iter().any(|&x| x != 0.0), "the gradients are not all zero");
    let err = max_rel(&parts, &whole);
    eprintln!("gradients with a 64 MiB binding limit on {} against the CPU's: max rel diff {err:.2e}", limited.label);
    assert!(err < 1e-5, "gradients in parts vs whole: max rel diff {err}");
}

/// `--backprop auto`: on the CPU, blocks while the estimate of every block's activations stays
/// within 4 GiB, then layerwise (a batch counts its positions); on a GPU, whole while one
/// graph's attention tensors stay within 1 GiB. Asked for, each choice is itself.
#[test]
fn auto_backprop_follows_the_device_and_the_memory_it_would_keep() {
    let cpu = Compute::cpu();
    let m = CausalLm::load(&llama(), &cpu.device).unwrap();
    let a = LoraAdapter::load(&llama().join("adapter"), &m.linears).unwrap();
    let most = (4usize << 30) / m.kept_activations(&a, 1, 1);
    let auto = |m: &CausalLm, rows, t, c: &Compute| Backprop::Auto.resolve(m, &a, rows, t, &c.device);
    assert_eq!(auto(&m, 1, most, &cpu), Backprop::Blocks);
    assert_eq!(auto(&m, 1, most + 1, &cpu), Backprop::Layerwise);
    assert_eq!(auto(&m, 2, most / 2 + 1, &cpu), Backprop::Layerwise);
    for chosen in [Backprop::Whole, Backprop::Blocks, Backprop::Layerwise] {
        assert_eq!(chosen.resolve(&m, &a, 1, most + 1, &cpu.device), chosen);
    }
    // The estimate follows the branches: o's keeps attention's output in positions' order
    // (heads × head_dim), the MLP's keep its input and the down projection's (hidden +
    // intermediate), per position and layer.
    let kept = |names: &[&str]| {
        let names = names.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        m.kept_activations(&LoraAdapter::fresh(&m.linears, 4, 8.0, &names, 0).unwrap(), 1, 1)
    };
    let c = &m.config;
    let qv = kept(&["q_proj", "v_proj"]);
    assert_eq!(kept(&["q_proj", "v_proj", "o_proj"]) - qv, 4 * c.layers * c.heads * c.head_dim);
    assert_eq!(
        kept(&["q_proj", "v_proj", "gate_proj", "up_proj", "down_proj"]) - qv,
        4 * c.layers * (c.hidden + c.intermediate)
    );
    let Some(gpu) = common::gpu() else { return };
    let g = CausalLm::load(&llama(), &gpu.device).unwrap();
    // Two [rows, heads, t, t] f32 tensors per layer.
    let (heads, layers) = (g.config.heads, g.config.layers);
    let whole_within = |t: usize| 2 * 4 * heads * t * t * layers <= 1 << 30;
    let t = (1..).take_while(|&t| whole_within(t)).last().unwrap();
    assert_eq!(auto(&g, 1, t, &gpu), Backprop::Whole);
    assert_eq!(auto(&g, 1, t + 1, &gpu), Backprop::Layerwise);
}

/// A batch whose activation the GPU cannot bind is refused before the pass, naming what fixes
/// it: through a whole graph, attention's `[1, 4, 3000, 3000]` scores (144 MB) want the
/// layerwise backward; layerwise, a 110,000-token sequence's 160-wide MLP activation (70 MB)
/// wants a shorter batch.
#[test]
fn a_batch_past_the_binding_limit_is_refused_with_the_fix() {
    let Some(gpu) = common::gpu() else { return };
    let mut m = CausalLm::load(&llama(), &gpu.device).unwrap();
    let a = LoraAdapter::load(&llama().join("adapter"), &m.linears).unwrap();
    let seq = |n: usize| Tokenized::Single(Sequence { ids: vec![5; n], mask: vec![1; n] });
    for (backprop, n, fix) in [
        (Backprop::Whole, 3000, "--backprop layerwise"),
        (Backprop::Layerwise, 110_000, "lower --batch-size or --max-len"),
    ] {
        m.backprop = backprop;
        let err = per_example_grads(&m, &a, &[seq(n)], LossKind::Sft, &gpu.device).err().expect("refused");
        assert!(err.to_string().contains(fix) && err.to_string().contains("64.00 MiB"), "{backprop:?}: {err}");
    }
    // Forward-only passes take attention in blocks: only the layer width counts.
    let err = sft_losses(&m, None, &[seq(110_000)], 1, &gpu.device).expect_err("refused");
    assert!(err.to_string().contains("lower --batch-size"), "{err}");
}

/// lavapipe stops a kernel's loop after 65,535 iterations: a model whose softmax runs over a
/// longer vocabulary is refused there (it gave infinite losses), and runs on the CPU.
#[test]
fn a_vocabulary_past_lavapipes_loop_limit_is_refused_there() {
    let Some(gpu) = common::gpu() else { return };
    if device::limits_of(&gpu.device).and_then(|l| l.max_loop).is_none() {
        eprintln!("SKIPPED: {} has no loop limit", gpu.label);
        return;
    }
    let mut config = base_config();
    config["vocab_size"] = 70_000.into();
    let dir_tmp = model_dir("vocab-70000", config, &BTreeMap::new(), safetensors::Dtype::F32);
    let dir = dir_tmp.path();
    let err = CausalLm::load(dir, &gpu.device).err().expect("refused on lavapipe");
    assert!(err.to_string().contains("70000 tokens") && err.to_string().contains("--device cpu"), "{err}");
}

/// Rows of kv head `g` of a `[kv·hd, h]` projection.
fn head_rows(t: &HostTensor, g: usize, hd: usize) -> Vec<f32> {
    let h = t.shape[1];
    t.data[g * hd * h..(g + 1) * hd * h].to_vec()
}

/// The model with `kv` key/value heads taken from the fixture's heads `pick`, and its MHA twin
/// whose head i uses kv head i / (heads / kv).
fn kv_variants(kv: usize, pick: &[usize]) -> (tempfile::TempDir, tempfile::TempDir) {
    let (heads, hd, h) = (4usize, 16usize, 64usize);
    let base = base_tensors();
    let mut grouped = base.clone();
    let mut mha = base.clone();
    for l in 0..2 {
        for p in ["k_proj", "v_proj"] {
            let name = format!("model.layers.{l}.self_attn.{p}.weight");
            let src = &base[&name];
            let g: Vec<f32> = pick.iter().flat_map(|&i| head_rows(src, i, hd)).collect();
            let m: Vec<f32> = (0..heads).flat_map(|i| head_rows(src, pick[i / (heads / kv)], hd)).collect();
            grouped.insert(name.clone(), HostTensor { shape: vec![kv * hd, h], data: g });
            mha.insert(name, HostTensor { shape: vec![heads * hd, h], data: m });
        }
    }
    let mut cg = base_config();
    cg["num_key_value_heads"] = kv.into();
    let mut cm = base_config();
    cm["num_key_value_heads"] = heads.into();
    (
        model_dir(&format!("kv{kv}"), cg, &grouped, safetensors::Dtype::F32),
        model_dir(&format!("kv{kv}-mha"), cm, &mha, safetensors::Dtype::F32),
    )
}

#[test]
fn grouped_and_multi_query_attention_equal_mha_with_shared_heads() {
    for (kv, pick) in [(2usize, vec![0usize, 1]), (1, vec![1])] {
        let (grouped, mha) = kv_variants(kv, &pick);
        let err = max_rel(&logits(grouped.path()), &logits(mha.path()));
        assert!(err < 1e-6, "kv_heads={kv}: max rel diff {err}");
    }
}

#[test]
fn summed_loss_gradient_is_length_times_mean_loss_gradient() {
    let c = Compute::cpu();
    let m = CausalLm::load(&llama(), &c.device).unwrap();
    let a = LoraAdapter::load(&llama().join("adapter"), &m.linears).unwrap();
    let seqs = [
        Sequence {
            ids: vec![0, 35, 70, 70, 223, 19, 20, 308, 223, 22, 1],
            mask: vec![0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1],
        },
        Sequence { ids: vec![0, 52, 71, 311, 274, 1], mask: vec![0, 0, 1, 1, 1, 1] },
    ];
    let ex: Vec<Tokenized> = seqs.iter().cloned().map(Tokenized::Single).collect();
    let mean = per_example_grads(&m, &a, &ex, LossKind::Sft, &c.device).unwrap();
    let sum = per_example_grads(&m, &a, &ex, LossKind::SftSum, &c.device).unwrap();
    let n = mean.grads.dims()[1];
    let (gm, gs): (Vec<f32>, Vec<f32>) =
        (mean.grads.into_data().iter().collect(), sum.grads.into_data().iter().collect());
    for (i, s) in seqs.iter().enumerate() {
        let count = s.mask.iter().skip(1).filter(|&&x| x == 1).count() as f32;
        assert!((sum.losses[i] - mean.losses[i] * count as f64).abs() < 1e-4);
        let scaled: Vec<f32> = gm[i * n..(i + 1) * n].iter().map(|x| x * count).collect();
        let err = max_rel(&gs[i * n..(i + 1) * n], &scaled);
        assert!(err < 1e-5, "example {i}: {err}");
    }
}

fn gpt2() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hf-tiny/tiny-gpt2")
}

/// A copy of tiny-gpt2 whose config and tensors the test may change.
fn gpt2_copy(
    name: &str,
    config: impl FnOnce(&mut serde_json::Value),
    tensors: impl FnOnce(&mut BTreeMap<String, HostTensor>),
) -> tempfile::TempDir {
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(gpt2().join("config.json")).unwrap()).unwrap();
    config(&mut cfg);
    let mut t: BTreeMap<String, HostTensor> =
        read_safetensors(&gpt2().join("model.safetensors")).unwrap().into_iter().collect();
    tensors(&mut t);
    let d = model_dir(name, cfg, &t, safetensors::Dtype::F32);
    for f in ["tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(gpt2().join(f), d.path().join(f)).unwrap();
    }
    d
}

/// GPT-2 checkpoints may keep a copy of the tied head as `lm_head.weight`: an equal copy loads
/// (and gives the same logits), a different one is refused, naming the tensor.
#[test]
fn gpt2_head_copy_must_equal_the_embeddings() {
    let wte = |t: &BTreeMap<String, HostTensor>| {
        t.iter().find(|(k, _)| k.ends_with("wte.weight")).map(|(_, v)| v.clone()).expect("wte")
    };
    let tied = gpt2_copy(
        "gpt2-tied",
        |_| {},
        |t| {
            let w = wte(t);
            t.insert("lm_head.weight".into(), w);
        },
    );
    assert_eq!(logits(tied.path()), logits(&gpt2()), "an equal head copy changes nothing");
    let untied = gpt2_copy(
        "gpt2-untied",
        |_| {},
        |t| {
            let mut w = wte(t);
            w.data[7] += 0.5;
            t.insert("lm_head.weight".into(), w);
        },
    );
    let e = CausalLm::load(untied.path(), &Compute::cpu().device).err().expect("refused").to_string();
    assert!(e.contains("model.safetensors") && e.contains("lm_head.weight") && e.contains("tied"), "{e}");
}

/// A sequence longer than GPT-2's learned positions is an error naming the record and the limit
/// (it used to panic inside the model); one that fits runs.
#[test]
fn sequences_past_learned_positions_are_refused() {
    let c = Compute::cpu();
    let d = gpt2_copy(
        "gpt2-short",
        |cfg| cfg["n_positions"] = 8.into(),
        |t| {
            let wpe = t.iter().find(|(k, _)| k.ends_with("wpe.weight")).map(|(k, v)| (k.clone(), v.clone())).unwrap();
            let h = wpe.1.shape[1];
            t.insert(wpe.0, HostTensor { shape: vec![8, h], data: wpe.1.data[..8 * h].to_vec() });
        },
    );
    let (_, tok) = gradsift::pipeline::load_base(d.path(), &Default::default(), Default::default(), &c).unwrap();
    let data = gradsift::data::load_records(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hf-tiny/instruction.jsonl"),
    )
    .unwrap();
    let e = tok.examples(&data.examples, 512).expect_err("refused").to_string();
    assert!(e.contains("instruction.jsonl:1") && e.contains("8 learned positions") && e.contains("--max-len 8"), "{e}");
    let (fits, _) = tok.examples(&data.examples, 8).unwrap();
    assert!(fits.iter().all(|t| matches!(t, Tokenized::Single(s) if s.ids.len() <= 8)));
}

/// An adapter whose rank_pattern key is no regular expression is refused when it loads (it was
/// ignored, and the module silently kept the global rank and scale).
#[test]
fn adapter_with_a_bad_pattern_is_refused() {
    let c = Compute::cpu();
    let model = CausalLm::load(&llama(), &c.device).unwrap();
    let d_tmp = common::tmp("load", "bad-pattern");
    let d = d_tmp.path();
    let from = llama().join("adapter");
    std::fs::copy(from.join("adapter_model.safetensors"), d.join("adapter_model.safetensors")).unwrap();
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(from.join("adapter_config.json")).unwrap()).unwrap();
    cfg["alpha_pattern"] = serde_json::json!({ "q_proj[": 32 });
    std::fs::write(d.join("adapter_config.json"), cfg.to_string()).unwrap();
    let Err(e) = LoraAdapter::load(d, &model.linears) else { panic!("a bad pattern was accepted") };
    let e = e.to_string();
    assert!(e.contains("adapter_config.json") && e.contains("alpha_pattern") && e.contains("q_proj["), "{e}");
}
