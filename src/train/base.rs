//! Full-parameter training of a small causal LM: how the embedded base model is made. Every
//! weight is a gradient leaf (see [`crate::model::Leaf`]); the loss is the token-mean response
//! NLL of each batch, optimised with our AdamW under a linear warmup/decay schedule. The weights
//! live on the host between steps, so the model is rebuilt from them each step: for a model of a
//! few hundred thousand parameters that upload costs less than the forward pass.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::adamw::{AdamW, AdamWConfig};
use super::lora_trainer::shuffle;
use super::schedule::{LrSchedule, Schedule};
use crate::data::{Dataset, RecordKind, TextTokenizer, Tokenized};
use crate::device::Compute;
use crate::error::{Error, Result, Setting};
use crate::loss::SeqBatch;
use crate::model::{read_safetensors, write_safetensors, CausalLm, HostTensor, ModelConfig, Weights};
use crate::util::{sha256_file, write_atomic};

/// How the base model is trained.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BaseOptions {
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub warmup_ratio: f64,
    pub weight_decay: f64,
    pub seed: u64,
    pub max_len: usize,
}

impl Default for BaseOptions {
    fn default() -> Self {
        BaseOptions {
            epochs: 6,
            batch_size: 32,
            lr: 3e-3,
            warmup_ratio: 0.05,
            weight_decay: 0.01,
            seed: 1,
            max_len: 64,
        }
    }
}

/// What `training_args.json` records next to the trained weights.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BaseRecord {
    pub options: BaseOptions,
    pub data: String,
    pub data_sha256: String,
    pub examples: usize,
    pub steps: usize,
    /// Mean training loss of each epoch.
    pub epoch_loss: Vec<f64>,
}

/// Trains every weight of the model in `init` (config.json, tokenizer.json, model.safetensors)
/// on the instruction records of `data`, and writes the trained model to `out` in the same HF
/// format (f32).
pub fn train_base(
    init: &Path,
    data: &Dataset,
    opts: &BaseOptions,
    compute: &Compute,
    out: &Path,
    progress: &mut dyn FnMut(usize, usize, f64),
) -> Result<BaseRecord> {
    if opts.epochs == 0 {
        return Err(Error::setting(Setting::Epochs, "base training needs at least one epoch"));
    }
    if opts.batch_size == 0 {
        return Err(Error::setting(Setting::BatchSize, "base training: the batch size must be positive"));
    }
    let config_path = init.join("config.json");
    let config = ModelConfig::from_file(&config_path)?;
    let tokenizer = TextTokenizer::from_file(&init.join("tokenizer.json"), config.eos_token_id)?;
    let weights_path = init.join("model.safetensors");
    let mut params: Vec<(String, HostTensor)> = read_safetensors(&weights_path)?;
    params.sort_by(|a, b| a.0.cmp(&b.0));
    let offsets: Vec<usize> = params
        .iter()
        .scan(0, |acc, (_, t)| {
            let o = *acc;
            *acc += t.data.len();
            Some(o)
        })
        .collect();
    let total_params: usize = params.iter().map(|(_, t)| t.data.len()).sum();
    let names: Vec<String> = params.iter().map(|p| p.0.clone()).collect();
    let index = |name: &str| names.binary_search_by(|n| n.as_str().cmp(name)).ok();

    let (tokenized, _) = tokenizer.examples(&data.examples, opts.max_len)?;
    let seqs: Vec<_> = tokenized
        .iter()
        .map(|t| match t {
            Tokenized::Single(s) => Ok(s.clone()),
            Tokenized::Pair(_) => Err(Error::RecordKind {
                file: data.name(),
                user: "base training".into(),
                needs: RecordKind::Instructions.describe(),
                input: "data",
            }),
        })
        .collect::<Result<_>>()?;
    let steps_per_epoch = seqs.len().div_ceil(opts.batch_size);
    let total = steps_per_epoch * opts.epochs;
    let mut optimizer =
        AdamW::new(AdamWConfig { weight_decay: opts.weight_decay, ..AdamWConfig::default() }, total_params);
    let mut flat: Vec<f32> = params.iter().flat_map(|(_, t)| t.data.iter().copied()).collect();
    let mut grad = vec![0f32; total_params];
    let mut step = 0;
    let mut epoch_loss = Vec::with_capacity(opts.epochs);
    for epoch in 1..=opts.epochs {
        let mut order: Vec<usize> = (0..seqs.len()).collect();
        shuffle(&mut order, opts.seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9));
        let (mut sum, mut n) = (0f64, 0usize);
        for batch in order.chunks(opts.batch_size) {
            let weights = Weights::from_tensors(params.clone(), &weights_path);
            let (model, leaves) = CausalLm::build(config.clone(), &weights, init, &compute.device, true)?;
            let refs: Vec<_> = batch.iter().map(|&i| &seqs[i]).collect();
            let b = SeqBatch::new(&refs, &compute.device);
            let tokens = b.counts.iter().sum::<usize>().max(1);
            let loss =
                b.response_logps(model.logits(b.ids.clone(), &b.lengths, None)).sum().neg().div_scalar(tokens as f64);
            let value = loss.clone().into_data().iter::<f32>().next().map_or(f64::NAN, f64::from);
            let grads = loss.backward();
            grad.iter_mut().for_each(|g| *g = 0.0);
            for leaf in &leaves {
                let i = index(&leaf.name).expect("every leaf comes from the checkpoint");
                let Some(g) = leaf.tensor.grad(&grads) else { continue };
                let [r, c] = g.dims();
                let mut host = HostTensor { shape: vec![r, c], data: g.into_data().iter::<f32>().collect() };
                if leaf.transposed {
                    host = host.transposed();
                }
                // Tied or shared weights appear as several leaves: their gradients add.
                for (d, s) in grad[offsets[i]..offsets[i] + host.data.len()].iter_mut().zip(&host.data) {
                    *d += s;
                }
            }
            let lr =
                LrSchedule { peak: opts.lr, warmup_ratio: opts.warmup_ratio, kind: Schedule::Linear }.at(step, total);
            optimizer.step(&mut flat, &grad, lr);
            for (i, (_, t)) in params.iter_mut().enumerate() {
                let len = t.data.len();
                t.data.copy_from_slice(&flat[offsets[i]..offsets[i] + len]);
            }
            step += 1;
            sum += value;
            n += 1;
            progress(step, total, value);
        }
        epoch_loss.push(sum / n.max(1) as f64);
    }

    write_model(out, &params)?;
    for f in ["config.json", "tokenizer.json"] {
        let bytes = std::fs::read(init.join(f)).map_err(|e| Error::io(init.join(f), e))?;
        write_atomic(&out.join(f), &bytes)?;
    }
    let record = BaseRecord {
        options: opts.clone(),
        data: data
            .files
            .iter()
            .map(|f| f.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default())
            .collect::<Vec<_>>()
            .join(" + "),
        data_sha256: data.files.iter().map(|f| sha256_file(f)).collect::<Result<Vec<_>>>()?.join(" + "),
        examples: seqs.len(),
        steps: total,
        epoch_loss,
    };
    let text = serde_json::to_string_pretty(&record).expect("json");
    write_atomic(&out.join("training_args.json"), text.as_bytes())?;
    Ok(record)
}

/// Writes f32 weights as `model.safetensors` with HF names and shapes.
pub fn write_model(dir: &Path, params: &[(String, HostTensor)]) -> Result<()> {
    let tensors: Vec<(String, Vec<usize>, &[f32])> =
        params.iter().map(|(n, t)| (n.clone(), t.shape.clone(), &t.data[..])).collect();
    write_safetensors(&dir.join("model.safetensors"), &tensors, &[("format", "pt".to_string())])
}
