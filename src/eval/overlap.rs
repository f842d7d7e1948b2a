//! Do test prompts appear where training data comes from? An evaluation is a measurement only
//! when the test set shares no prompt with the pool, a selection or a target set.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::{Arm, TestSets};
use crate::data::{Dataset, Record};

/// How many distinct test prompts were found on the training side.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Overlap {
    /// Distinct prompts of the test sets.
    pub test_prompts: usize,
    /// ... of them in the pool.
    pub pool: usize,
    /// ... in each fixed arm's subset.
    pub arms: Vec<(String, usize)>,
    /// ... in the target sets.
    pub targets: usize,
}

impl Overlap {
    /// True when any test prompt is on the training side.
    pub fn any(&self) -> bool {
        self.pool > 0 || self.targets > 0 || self.arms.iter().any(|a| a.1 > 0)
    }

    /// One line for messages and tables.
    pub fn describe(&self) -> String {
        let arms: Vec<String> = self.arms.iter().filter(|a| a.1 > 0).map(|(n, k)| format!("{k} in `{n}`")).collect();
        format!(
            "of {} test prompts, {} are in the pool, {} in the target sets{}{}",
            self.test_prompts,
            self.pool,
            self.targets,
            if arms.is_empty() { "" } else { ", " },
            arms.join(", ")
        )
    }
}

/// The prompt of a record, whitespace-trimmed: the prompt text, or for chat the conversation up
/// to its last assistant turn (role and content of each message).
pub(crate) fn prompt_key(record: &Record) -> String {
    let messages = |m: &[crate::data::Message]| {
        m.iter().map(|m| format!("{}: {}", m.role, m.content.trim())).collect::<Vec<_>>().join("\n")
    };
    match record {
        Record::Instruction { prompt, .. } | Record::Preference { prompt, .. } => prompt.trim().to_string(),
        Record::Chat { messages: m } => {
            let last = m.iter().rposition(|x| x.role == "assistant").unwrap_or(m.len());
            messages(&m[..last])
        }
        Record::ChatPreference { prompt, .. } => messages(prompt),
    }
}

fn keys<'a>(examples: impl IntoIterator<Item = &'a crate::data::Example>) -> HashSet<String> {
    examples.into_iter().map(|e| prompt_key(&e.record)).collect()
}

/// The overlap of the test sets with the pool, each fixed arm and the targets.
pub fn overlap(tests: TestSets<'_>, pool: &Dataset, arms: &[Arm], targets: &[&Dataset]) -> Overlap {
    let test: HashSet<String> = tests.test.iter().chain(tests.pairs.iter()).flat_map(|d| keys(&d.examples)).collect();
    let count = |set: &HashSet<String>| test.intersection(set).count();
    let arms = arms
        .iter()
        .filter_map(|a| match &a.subset {
            s if s.is_random() => None,
            s => {
                let picked = s.selections().into_iter().flatten().filter_map(|&i| pool.examples.get(i));
                Some((a.name.clone(), count(&keys(picked))))
            }
        })
        .collect();
    Overlap {
        test_prompts: test.len(),
        pool: count(&keys(&pool.examples)),
        arms,
        targets: count(&targets.iter().flat_map(|t| keys(&t.examples)).collect()),
    }
}
