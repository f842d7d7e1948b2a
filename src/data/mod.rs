//! Data: records (instruction or preference, plain or chat) from JSONL, JSON or Parquet files,
//! and their tokenization.

mod chat;
mod compression;
mod dataset;
mod files;
mod formats;
#[cfg(not(target_family = "wasm"))]
mod parquet_rows;
mod template;
mod tokenize;

pub use chat::Message;
pub use dataset::{load_files, load_records, parse_jsonl, Dataset, FileSpan, View};
pub(crate) use files::FileFormat;
pub use formats::{Example, Record, RecordKind};
pub use template::{ChatTemplate, TemplateChoice};
pub use tokenize::{Sequence, TextTokenizer, Tokenized, TokenizedPair};
