//! A checkpoint's declared float type: what its weights are stored in, and what Transformers
//! rounds a model's constant buffers to when it loads them (the RoPE frequencies, see
//! [`super::rope`]; Gemma's embedding scale).

/// A checkpoint's declared float type (and the type its frozen weights are kept in, see
/// [`super::WeightsDtype`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FloatKind {
    #[default]
    F32,
    Bf16,
    F16,
}

impl FloatKind {
    /// The type's name, as options and manifests write it.
    pub fn name(self) -> &'static str {
        match self {
            FloatKind::F32 => "f32",
            FloatKind::F16 => "f16",
            FloatKind::Bf16 => "bf16",
        }
    }

    /// Bytes of one value.
    pub fn bytes(self) -> usize {
        match self {
            FloatKind::F32 => 4,
            FloatKind::F16 | FloatKind::Bf16 => 2,
        }
    }

    /// `x` as a loaded model holds it in a buffer Transformers creates in f32 and casts to the
    /// checkpoint's type: a bf16 Gemma of hidden size 1152 scales its embeddings by 34.0, not
    /// by √1152 = 33.94.
    pub fn round(self, x: f64) -> f64 {
        let x = x as f32;
        match self {
            FloatKind::F32 => x as f64,
            FloatKind::Bf16 => half::bf16::from_f32(x).to_f64(),
            FloatKind::F16 => half::f16::from_f32(x).to_f64(),
        }
    }
}
