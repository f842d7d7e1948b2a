//! Data: records (instruction or preference, plain or chat) from JSONL, JSON or Parquet files,
//! and their tokenization.

mod chat;
mod dataset;
mod files;
mod formats;
mod template;
mod tokenize;

pub use chat::Message;
pub use dataset::{load_files, load_records, Dataset, FileSpan, View};
pub use files::FileFormat;
pub use formats::{Example, Record, RecordKind};
pub use template::{ChatTemplate, TemplateChoice};
pub use tokenize::{Sequence, TextTokenizer, Tokenized, TokenizedPair};
