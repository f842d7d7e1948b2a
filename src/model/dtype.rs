//! A checkpoint's declared float type: what its weights are stored in, and what Transformers
//! rounds a model's constant buffers to when it loads them (the RoPE frequencies, see
//! [`super::rope`]; Gemma's embedding scale).

/// A checkpoint's declared float type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FloatKind {
    F32,
    Bf16,
    F16,
}

impl FloatKind {
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
