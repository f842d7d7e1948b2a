//! The library's error type. Every variant names the file (and, where it applies, the line,
//! field or tensor) so that a user can fix bad input without reading our source.

use std::path::PathBuf;

/// Errors raised by gradsift's library code.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A JSONL record is malformed or lacks a field.
    #[error("{path}:{line}: {message}")]
    Record { path: PathBuf, line: usize, message: String },
    /// A file has the wrong content (JSON syntax, safetensors header, config field...).
    #[error("{path}: {message}")]
    Format { path: PathBuf, message: String },
    /// The model's `model_type` is not one we implement.
    #[error("{path}: unsupported model_type `{model_type}` (supported: llama, mistral, qwen2, gpt2)")]
    UnknownArchitecture { path: PathBuf, model_type: String },
    /// A tensor the architecture needs is not in the checkpoint.
    #[error("{path}: missing tensor `{name}`")]
    MissingTensor { path: PathBuf, name: String },
    /// A tensor exists but its shape does not fit the model.
    #[error("{path}: tensor `{name}` has shape {found:?}, the model needs {expected:?}")]
    Shape { path: PathBuf, name: String, found: Vec<usize>, expected: Vec<usize> },
    /// The tokenizer could not be loaded or failed on a text.
    #[error("{path}: tokenizer: {message}")]
    Tokenizer { path: PathBuf, message: String },
    /// No usable compute device, or a GPU operation failed.
    #[error("device: {0}")]
    Device(String),
    /// An argument or option has a value we cannot use.
    #[error("{0}")]
    Invalid(String),
}

/// Shorthand for results with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }

    /// A content error for `path`.
    pub fn format(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Format { path: path.into(), message: message.into() }
    }
}
