//! Data: JSONL records (instruction or preference) and their tokenization.

mod chat;
mod formats;
mod template;
mod tokenize;

pub use chat::Message;
pub use formats::{load_records, Dataset, Example, Record, RecordKind, View};
pub use template::{ChatTemplate, TemplateChoice};
pub use tokenize::{Sequence, TextTokenizer, Tokenized, TokenizedPair};
