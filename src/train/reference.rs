//! DPO's reference policy π_ref, the policy a DPO loss measures the trained one against. A
//! preference run starts from some policy and π_ref is that policy (TRL's `ref_model`): the base
//! model when the LoRA adapter is fresh (its B = 0 leaves the base model's outputs), the SFT
//! adapter when the run starts from one. Every DPO quantity (the warmup's loss, ROSE's target
//! gradients, the TIF family's influence, LossDiff and IRM) must use the same π_ref, so a warmup
//! records the one it trained against in each checkpoint's trainer_state.json, and whatever
//! later works at that checkpoint takes it from there unless told otherwise
//! ([`super::warmup::recorded_reference`]).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::model::{CausalLm, LoraAdapter};

/// A reference policy, named.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DpoReference {
    /// The base model without adapter.
    Base,
    /// The base model with the PEFT adapter in this directory.
    Adapter(PathBuf),
}

impl DpoReference {
    /// `base`, or an adapter directory (the command line's form).
    pub fn parse(s: &str) -> DpoReference {
        match s {
            "base" => DpoReference::Base,
            dir => DpoReference::Adapter(PathBuf::from(dir)),
        }
    }

    /// The policy a run starting from `adapter` starts from: its directory when it was loaded
    /// from one, the base model when it is fresh.
    pub fn start_of(adapter: &LoraAdapter) -> DpoReference {
        adapter.dir.clone().map_or(DpoReference::Base, DpoReference::Adapter)
    }

    /// The adapter to run beside the base model; None for the base model itself.
    pub fn load(&self, model: &CausalLm) -> Result<Option<LoraAdapter>> {
        match self {
            DpoReference::Base => Ok(None),
            DpoReference::Adapter(dir) => Ok(Some(LoraAdapter::load(dir, &model.linears)?)),
        }
    }

    /// How manifests and logs name it.
    pub fn describe(&self) -> String {
        match self {
            DpoReference::Base => "the base model without adapter".into(),
            DpoReference::Adapter(dir) => format!("the base model with the adapter {}", dir.display()),
        }
    }
}
