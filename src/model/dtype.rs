//! A checkpoint's declared float type: what its weights are stored in, and what Transformers
//! rounds the RoPE frequency buffers to when it loads them (see [`super::rope`]).

/// A checkpoint's declared float type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FloatKind {
    F32,
    Bf16,
    F16,
}
