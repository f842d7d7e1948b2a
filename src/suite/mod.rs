//! The generated task suite: the demo's data, and the data the embedded base model was trained on.

mod generate;
pub mod tasks;

pub use generate::{SuiteManifest, SuiteSpec};
