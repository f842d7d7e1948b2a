//! Linear layers with an optional LoRA branch, and the builder that uploads them from a
//! checkpoint. Weights are plain tensors (no Burn `Module`): loading is a direct copy from the
//! checkpoint. Selection only ever differentiates the LoRA matrices; training the embedded base
//! model loads the weights as gradient leaves instead ([`Leaf`]). The LoRA branches a forward
//! pass uses ([`LoraRuntime`]) live here, beside the layer that applies them; `lora.rs` is the
//! PEFT file format only.

use burn::prelude::*;

use super::dtype::FloatKind;
use super::half;
use super::matrix::Matrix;
use super::weights::{HostTensor, Weights};
use crate::error::Result;

/// Name, shape and index of a linear (or Conv1D) module: the places LoRA can attach.
#[derive(Debug, Clone)]
pub struct LinearInfo {
    pub name: String,
    pub d_in: usize,
    pub d_out: usize,
}

/// `y = x·W + b (+ s·x·A·B)`, W stored `[in, out]`.
pub struct Linear {
    pub id: usize,
    w: Matrix,
    b: Option<Tensor<1>>,
    d_out: usize,
}

/// A checkpoint tensor uploaded as a gradient leaf, for full-parameter training. Vectors are
/// leaves of shape `[1, n]`; linear weights are stored `[in, out]`, the transpose of HF's
/// `nn.Linear`, which `transposed` records.
pub struct Leaf {
    pub name: String,
    pub tensor: Tensor<2>,
    pub transposed: bool,
}

/// Collects linear modules while a model is built, so LoRA targets can be matched by name.
pub(crate) struct LinearBuilder<'a> {
    pub weights: &'a Weights,
    pub device: &'a Device,
    pub infos: Vec<LinearInfo>,
    /// Upload every weight as a gradient leaf (recorded in `leaves`).
    pub trainable: bool,
    pub leaves: Vec<Leaf>,
    /// The type of the frozen matrices (linear weights, embedding, head); f32 when trainable.
    pub matrices: FloatKind,
    /// Matrices kept in f32 because f16 cannot hold their values.
    pub kept_f32: Vec<String>,
    /// The largest tensor the device can bind, in bytes (`None`: no limit); larger matrices
    /// are kept in parts.
    pub binding_limit: Option<usize>,
}

impl<'a> LinearBuilder<'a> {
    /// A PyTorch `nn.Linear` (`weight [out, in]`).
    pub fn linear(&mut self, name: &str, d_in: usize, d_out: usize) -> Result<Linear> {
        let w = self.weights.take_transposed(&format!("{name}.weight"), &[d_out, d_in])?;
        self.finish(name, w, true, d_in, d_out)
    }

    /// A GPT-2 `Conv1D` (`weight [in, out]`).
    pub fn conv1d(&mut self, name: &str, d_in: usize, d_out: usize) -> Result<Linear> {
        let w = self.weights.take(&format!("{name}.weight"), &[d_in, d_out])?;
        self.finish(name, w, false, d_in, d_out)
    }

    fn finish(&mut self, name: &str, w: HostTensor, transposed: bool, d_in: usize, d_out: usize) -> Result<Linear> {
        let w = self.matrix(&format!("{name}.weight"), w, transposed);
        let b = self
            .weights
            .take_opt(&format!("{name}.bias"), &[d_out])?
            .map(|b| self.param(&format!("{name}.bias"), b, false));
        let id = self.infos.len();
        self.infos.push(LinearInfo { name: name.to_string(), d_in, d_out });
        Ok(Linear { id, w, b, d_out })
    }

    /// Uploads checkpoint matrix `name` `[in, out]` (see [`Self::param`]) in the builder's
    /// matrix type, in parts along its output columns where it is past the binding limit.
    pub fn matrix(&mut self, name: &str, t: HostTensor, transposed: bool) -> Matrix {
        self.frozen(name, t, transposed, 1)
    }

    /// Uploads embedding table `name` `[vocabulary, hidden]` as [`Self::matrix`] does, in
    /// parts along its rows (so that its transpose, a tied head, is in parts along the
    /// vocabulary too).
    pub fn embedding(&mut self, name: &str, t: HostTensor) -> Matrix {
        self.frozen(name, t, false, 0)
    }

    /// A model built for training gets whole f32 gradient leaves; a matrix f16 cannot hold
    /// gets f32.
    fn frozen(&mut self, name: &str, t: HostTensor, transposed: bool, axis: usize) -> Matrix {
        if self.trainable {
            return Matrix::whole(self.param(name, t, transposed));
        }
        let kind = match self.matrices {
            FloatKind::F16 if !half::fits_f16(&t) => {
                self.kept_f32.push(name.to_string());
                FloatKind::F32
            }
            kind => kind,
        };
        let device = self.device;
        Matrix::upload_in_parts(t, axis, kind.bytes(), self.binding_limit, |part| half::upload_as(part, kind, device))
    }

    /// A 1-D tensor (norm weight or bias).
    pub fn vector(&mut self, name: &str, n: usize) -> Result<Tensor<1>> {
        let t = self.weights.take(name, &[n])?;
        Ok(self.param(name, t, false))
    }

    /// Uploads checkpoint tensor `name` (already transposed to our layout when `transposed`):
    /// a constant, or a gradient leaf when the model is built for training.
    pub fn param<const D: usize>(&mut self, name: &str, t: HostTensor, transposed: bool) -> Tensor<D> {
        if !self.trainable {
            return t.upload(self.device);
        }
        let (rows, cols) = match t.shape[..] {
            [n] => (1, n),
            [r, c] => (r, c),
            _ => unreachable!("weights are vectors or matrices"),
        };
        let leaf = Tensor::<2>::from_data(TensorData::new(t.data, [rows, cols]), self.device).require_grad();
        self.leaves.push(Leaf { name: name.to_string(), tensor: leaf.clone(), transposed });
        leaf.reshape(Shape::from(t.shape))
    }
}

impl Linear {
    /// Applies the layer to `x: [B, T, in]`.
    pub fn forward(&self, x: Tensor<3>, lora: Option<&LoraRuntime>) -> Tensor<3> {
        let [b, t, d_in] = x.dims();
        let mut y = self.w.matmul(x.clone().reshape([b * t, d_in])).reshape([b, t, self.d_out]);
        if let Some(bias) = &self.b {
            y = y + bias.clone().reshape([1, 1, self.d_out]);
        }
        if let Some(branch) = lora.and_then(|l| l.branch(self.id)) {
            // [B,T,in]·[B,in,r]·[B,r,out]: one adapter copy per sequence, so that per-example
            // copies receive per-example gradients. The scale multiplies the rank-r middle, not
            // the [B,T,out] product: an element-wise pass (and its backward) out/r times smaller.
            y = y + x.matmul(branch.a.clone()).mul_scalar(branch.scale).matmul(branch.b.clone());
        }
        y
    }
}

/// The LoRA branches used by one forward pass: per linear module, `a: [S, in, r]`,
/// `b: [S, r, out]` with S the number of sequences (1 for a shared adapter).
pub struct LoraRuntime {
    branches: Vec<Option<Branch>>,
}

/// One module's branch.
pub struct Branch {
    pub a: Tensor<3>,
    pub b: Tensor<3>,
    pub scale: f64,
}

impl LoraRuntime {
    /// Branches indexed by linear id.
    pub fn new(branches: Vec<Option<Branch>>) -> Self {
        LoraRuntime { branches }
    }

    /// The same branches without autodiff: a pass through them is values only (Burn's
    /// `detach` keeps a gradient leaf tracked).
    pub(crate) fn detached(&self) -> LoraRuntime {
        let values = |t: &Tensor<3>| t.clone().without_autodiff();
        let branches = self
            .branches
            .iter()
            .map(|b| b.as_ref().map(|b| Branch { a: values(&b.a), b: values(&b.b), scale: b.scale }));
        LoraRuntime { branches: branches.collect() }
    }

    /// The branch of linear `id`, if adapted.
    pub fn branch(&self, id: usize) -> Option<&Branch> {
        self.branches.get(id).and_then(Option::as_ref)
    }
}
