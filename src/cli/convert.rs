//! From command-line arguments to the library's option sets. Every flag's meaning is decided
//! here, once; the library never sees a flag.

use std::path::PathBuf;

use gradsift::data::TemplateChoice;
use gradsift::features::FeatureOptions;
use gradsift::loss::LossKind;
use gradsift::methods::knn::{IvfParams, KnnIndex};
use gradsift::methods::prism::Hessian;
use gradsift::methods::tsds::TsdsParams;
use gradsift::pipeline::{MethodOptions, ModelSpec, PrismOptions, TifOptions, TsdsOptions, TsdsSource, ValTraining};
use gradsift::select::Budget;
use gradsift::suite::SuiteSpec;
use gradsift::train::{AdamWConfig, Schedule, WarmupOptions};

use super::args::{
    EvalArgs, FeatureArgs, HessianArg, IndexArg, LossArg, MakeDataArgs, ModelArgs, SelectArgs, WarmupArgs, WarmupLoss,
};

impl From<&FeatureArgs> for FeatureOptions {
    fn from(f: &FeatureArgs) -> Self {
        FeatureOptions {
            seed: f.seed,
            proj_dim: f.proj_dim,
            projection: f.projection,
            proj_nnz: f.proj_nnz,
            dtype: f.dtype,
            max_len: f.max_len,
            batch_size: f.batch_size,
            chunk_size: f.chunk_size,
            overwrite: f.overwrite,
            max_batch_tokens: f.max_batch_tokens,
        }
    }
}

/// `--chat-template FILE|none`.
fn template_choice(arg: &Option<PathBuf>) -> TemplateChoice {
    match arg {
        None => TemplateChoice::FromModel,
        Some(p) if p.as_os_str() == "none" => TemplateChoice::Disabled,
        Some(p) => TemplateChoice::File(p.clone()),
    }
}

impl EvalArgs {
    pub fn chat_template(&self) -> TemplateChoice {
        template_choice(&self.chat_template)
    }
}

impl ModelArgs {
    pub fn chat_template(&self) -> TemplateChoice {
        template_choice(&self.chat_template)
    }

    /// The model spec for `model_dir` (the flag's, or the embedded default's).
    pub fn spec(&self, model_dir: PathBuf, seed: u64) -> ModelSpec {
        ModelSpec {
            model_dir,
            adapter_dir: self.adapter.clone(),
            lora_r: self.lora_r,
            lora_alpha: self.lora_alpha,
            lora_targets: self.lora_targets.clone(),
            seed,
            chat_template: self.chat_template(),
            backprop: self.backprop,
            weights_dtype: self.weights_dtype,
        }
    }
}

impl LossArg {
    /// The loss, with the DPO temperature `beta`.
    pub fn loss(self, beta: f64) -> LossKind {
        match self {
            LossArg::Sft => LossKind::Sft,
            LossArg::SftSum => LossKind::SftSum,
            LossArg::Dpo => LossKind::Dpo { beta },
        }
    }
}

impl WarmupLoss {
    /// The loss, with the DPO temperature `beta`.
    pub fn loss(self, beta: f64) -> LossKind {
        match self {
            WarmupLoss::Sft => LossKind::Sft,
            WarmupLoss::Dpo => LossKind::Dpo { beta },
        }
    }
}

impl SelectArgs {
    pub fn budget(&self) -> Budget {
        match self.count {
            Some(c) => Budget::Count(c),
            None => Budget::Fraction(self.fraction),
        }
    }

    pub fn prism(&self) -> PrismOptions {
        PrismOptions {
            hessian: match self.hessian {
                HessianArg::Identity => Hessian::Identity,
                HessianArg::Cov => Hessian::Covariance { damping: self.damping },
            },
            weights: self.weights,
            unpaired: self.unpaired,
            repair: self.repair,
        }
    }

    pub fn tsds(&self) -> TsdsOptions {
        TsdsOptions {
            params: TsdsParams {
                neighbours: self.tsds_k,
                kde_neighbours: self.kde_k,
                sigma: self.sigma,
                alpha: self.alpha,
                c: self.tsds_c,
                index: match self.tsds_index {
                    IndexArg::Exact => KnnIndex::Exact,
                    IndexArg::Ivf => {
                        KnnIndex::Ivf(IvfParams { nlist: self.nlist, nprobe: self.nprobe, seed: self.features.seed })
                    }
                },
            },
            source: match (&self.pool_npy, &self.target_npy, self.embed) {
                (Some(pool), Some(target), _) => TsdsSource::Npy { pool: pool.clone(), target: target.clone() },
                (_, _, Some(pooling)) => TsdsSource::Embeddings(pooling),
                _ => TsdsSource::Gradients,
            },
            density: self.tsds_density,
            no_replacement: self.no_replacement,
        }
    }

    /// Every method's options; the chosen method keeps what it uses.
    pub fn method_options(&self) -> MethodOptions {
        MethodOptions {
            grad_type: self.grad_type,
            beta: self.beta,
            dpo_reference: self.dpo_reference.clone(),
            prism: self.prism(),
            tsds: self.tsds(),
            tif: self.tif(),
            low_loss: self.low_loss,
        }
    }

    pub fn tif(&self) -> TifOptions {
        TifOptions {
            band: self.band,
            lossdiff_band: self.lossdiff_band,
            irm_band: self.irm_band,
            val: ValTraining {
                lr: self.val_lr,
                batch_size: self.val_batch_size,
                epochs: self.val_epochs,
                schedule: self.val_schedule,
            },
            with_if: self.with_if,
        }
    }
}

impl From<&WarmupArgs> for WarmupOptions {
    fn from(a: &WarmupArgs) -> Self {
        WarmupOptions {
            fraction: a.fraction,
            epochs: a.epochs,
            lr: a.lr,
            batch_size: a.batch_size,
            warmup_ratio: a.warmup_ratio,
            schedule: Schedule::Linear,
            adamw: AdamWConfig { weight_decay: a.weight_decay, ..Default::default() },
            loss: a.loss.loss(a.beta),
            reference: a.dpo_reference.clone(),
            seed: a.seed,
            max_len: a.max_len,
        }
    }
}

impl From<MakeDataArgs> for SuiteSpec {
    fn from(a: MakeDataArgs) -> Self {
        SuiteSpec {
            seed: a.seed,
            pool: a.pool,
            target_tasks: a.target_tasks,
            shots: a.shots,
            test: a.test,
            val_shots: a.val_shots,
            distractor_rate: a.distractor_rate,
            low_quality_rate: a.low_quality_rate,
            flip_rate: a.flip_rate,
            base: a.base,
        }
    }
}
