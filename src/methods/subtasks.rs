//! Target subtasks: the `task` field of target examples groups them, and methods score each
//! candidate per subtask (mean over its examples) before taking the max over subtasks. One
//! grouping for every method, so LESS and the baselines agree on what an unnamed task is.

use std::collections::BTreeMap;

/// The subtask of target examples without a `task` field.
pub(crate) const DEFAULT_TASK: &str = "target";

/// The target rows of each subtask (a row's `task`, or [`DEFAULT_TASK`]), subtasks in name order.
pub(crate) fn subtask_groups(tasks: &[Option<String>]) -> Vec<(String, Vec<usize>)> {
    let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (j, task) in tasks.iter().enumerate() {
        groups.entry(task.clone().unwrap_or_else(|| DEFAULT_TASK.into())).or_default().push(j);
    }
    groups.into_iter().collect()
}
