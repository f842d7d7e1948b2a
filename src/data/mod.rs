//! Data: JSONL records (instruction or preference) and their tokenization.

mod formats;
mod tokenize;

pub use formats::{load_jsonl, Dataset, Example, Record, RecordKind, View};
pub use tokenize::{Sequence, TextTokenizer, Tokenized, TokenizedPair};
