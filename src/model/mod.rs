//! Models: Hugging Face causal LMs (the Llama family and its variations, GPT-NeoX, Phi-2,
//! GPT-2) with LoRA, on any Burn device.

mod backprop;
mod block;
mod blocked_attention;
mod config;
mod dtype;
#[cfg(not(target_family = "wasm"))]
mod flex_attention;
#[cfg(not(target_family = "wasm"))]
mod flex_gated;
#[cfg(not(target_family = "wasm"))]
mod flex_norm;
#[cfg(not(target_family = "wasm"))]
mod flex_rope;
mod gpt2;
pub(crate) mod half;
pub mod hub;
mod kept;
mod linear;
mod llama;
mod lora;
mod matrix;
mod neox;
mod nn;
mod output;
mod phi;
mod positions;
mod rope;
#[cfg(test)]
mod testing;
mod weights;

use std::path::{Path, PathBuf};

use burn::prelude::*;

pub use backprop::Backprop;
pub use config::{Arch, ModelConfig, QkNorm};
pub use dtype::FloatKind;
pub use half::WeightsDtype;
pub use linear::{Branch, Leaf, LinearInfo, LoraRuntime};
pub use lora::{LoraAdapter, LoraModule, ParamSlot, TargetSpec};
pub use matrix::Matrix;
pub use output::OutputHead;
pub use rope::{RopeScaling, RopeSpec};
pub(crate) use weights::parse_safetensors;
pub use weights::{read_safetensors, write_safetensors, HostTensor, Weights};

use crate::error::{Error, Result};

/// What every family's network is to [`CausalLm`]: an embedding, the shared blocks and a final
/// norm; the families differ in how they embed and in what each block chooses. Each family's
/// `load` builds one and the model's [`OutputHead`] beside it, so the model dispatches once,
/// when it is built.
trait Decoder {
    /// The first block's input `[B, T, H]` for `ids` `[B, T]` (rows holding `lengths` real
    /// tokens) and the positions every block shares.
    fn embed(&self, ids: Tensor<2, Int>, lengths: &[usize]) -> (Tensor<3>, positions::Positions);
    fn blocks(&self) -> &[block::Block];
    /// The norm after the last block.
    fn final_norm(&self) -> &block::Norm;
}

/// A causal language model loaded from a HF directory onto a device.
pub struct CausalLm {
    pub config: ModelConfig,
    /// Every linear/Conv1D module, in model order: where LoRA may attach.
    pub linears: Vec<LinearInfo>,
    /// The model directory.
    pub dir: PathBuf,
    /// The weight files read.
    pub files: Vec<PathBuf>,
    /// Checkpoint tensors the architecture did not use.
    pub unused: Vec<String>,
    /// How per-example gradients keep what their backward pass needs.
    pub backprop: Backprop,
    /// The type the frozen matrices are kept in on the device (see [`WeightsDtype`]).
    pub matrices: FloatKind,
    /// Matrices kept in f32 although `matrices` is f16, because f16 cannot hold their values.
    pub kept_f32: Vec<String>,
    body: Box<dyn Decoder>,
    head: OutputHead,
}

impl CausalLm {
    /// Loads `config.json` and the safetensors weights of `dir` onto `device`, every weight
    /// widened to f32.
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        Self::load_as(dir, device, WeightsDtype::F32)
    }

    /// [`Self::load`] with the frozen matrices kept in the type `dtype` resolves to for this
    /// checkpoint on `device`.
    pub fn load_as(dir: &Path, device: &Device, dtype: WeightsDtype) -> Result<Self> {
        if !dir.is_dir() {
            return Err(Error::format(dir, "model directory not found"));
        }
        let config = ModelConfig::from_file(&dir.join("config.json"))?;
        if let Some(why) = crate::device::limits_of(device).and_then(|l| l.refuses_vocabulary(config.vocab_size)) {
            return Err(Error::AdapterLimit(format!(
                "{}: {why}; use --device cpu (Burn's CPU backend is also faster than lavapipe)",
                dir.display()
            )));
        }
        let weights = Weights::from_dir(dir)?;
        let stored = weights.stored_kind();
        let matrices = dtype.resolve(stored, device)?;
        let model = Self::assemble(config, &weights, dir, device, false, matrices)?.0;
        if model.matrices != FloatKind::F32 {
            tracing::info!("model: frozen matrices in {} (checkpoint {})", matrices.name(), stored.name());
        }
        if !model.kept_f32.is_empty() {
            tracing::warn!(
                "model: {} matrices kept in f32, their values past f16's range: {}",
                model.kept_f32.len(),
                model.kept_f32.join(", ")
            );
        }
        Ok(model)
    }

    /// Builds the model from tensors in memory, every weight in f32. With `trainable`, every
    /// weight is a gradient leaf, returned alongside (full-parameter training of the embedded
    /// base model).
    pub fn build(
        config: ModelConfig,
        weights: &Weights,
        dir: &Path,
        device: &Device,
        trainable: bool,
    ) -> Result<(Self, Vec<Leaf>)> {
        Self::assemble(config, weights, dir, device, trainable, FloatKind::F32)
    }

    fn assemble(
        config: ModelConfig,
        weights: &Weights,
        dir: &Path,
        device: &Device,
        trainable: bool,
        matrices: FloatKind,
    ) -> Result<(Self, Vec<Leaf>)> {
        let mut lb = linear::LinearBuilder {
            weights,
            device,
            infos: Vec::new(),
            trainable,
            leaves: Vec::new(),
            matrices,
            kept_f32: Vec::new(),
            binding_limit: crate::device::binding_limit(device),
        };
        fn boxed<D: Decoder + 'static>((d, head): (D, OutputHead)) -> (Box<dyn Decoder>, OutputHead) {
            (Box::new(d), head)
        }
        let (body, head) = match config.arch {
            Arch::Gpt2 => boxed(gpt2::Gpt2::load(&config, &mut lb)?),
            Arch::GptNeox => boxed(neox::GptNeox::load(&config, &mut lb)?),
            Arch::Phi => boxed(phi::Phi::load(&config, &mut lb)?),
            // Every other family is a variation of the Llama block.
            _ => boxed(llama::Llama::load(&config, &mut lb)?),
        };
        let (linears, leaves, kept_f32) = (lb.infos, lb.leaves, lb.kept_f32);
        let matrices = if trainable { FloatKind::F32 } else { matrices };
        let model = CausalLm {
            config,
            linears,
            dir: dir.to_path_buf(),
            files: weights.files.clone(),
            unused: weights.unused(),
            backprop: Backprop::default(),
            matrices,
            kept_f32,
            body,
            head,
        };
        Ok((model, leaves))
    }

    /// Final hidden states `[B, T, H]` of `ids` `[B, T]`, whose rows hold `lengths` real tokens
    /// each, right-padded. The lengths matter where the positions depend on them (LongRoPE
    /// picks its frequencies by a sequence's own length), so a row's result never depends on
    /// the batch around it.
    pub fn hidden(&self, ids: Tensor<2, Int>, lengths: &[usize], lora: Option<&LoraRuntime>) -> Tensor<3> {
        debug_assert_eq!(ids.dims()[0], lengths.len(), "one length per row");
        let (mut x, pos) = self.body.embed(ids, lengths);
        for blk in self.body.blocks() {
            x = blk.forward(x, &pos, lora, block::Attend::Auto);
        }
        self.body.final_norm().forward(x)
    }

    /// The output head: logits are `hidden · W (+ b)`, soft-capped where the config says so.
    pub fn head(&self) -> &OutputHead {
        &self.head
    }

    /// Logits `[B, T, V]` (rows as in [`Self::hidden`]).
    pub fn logits(&self, ids: Tensor<2, Int>, lengths: &[usize], lora: Option<&LoraRuntime>) -> Tensor<3> {
        let h = self.hidden(ids, lengths, lora);
        let [b, t, d] = h.dims();
        let v = self.head.weight.dims()[1];
        self.head.logits(h.reshape([b * t, d])).reshape([b, t, v])
    }

    /// True for GPT-2 (Conv1D modules: PEFT's `fan_in_fan_out`).
    pub fn fan_in_fan_out(&self) -> bool {
        self.config.arch == Arch::Gpt2
    }
}
