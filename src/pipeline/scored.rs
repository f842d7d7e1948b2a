//! What a method hands back to `select`: the scores and how to turn them into a subset.

/// Which candidates a method keeps.
pub(super) enum Chosen {
    /// The top n by score.
    Top(usize),
    /// An explicit list (round-robin order, a band, or samples with repeats).
    List(Vec<usize>),
}

impl Chosen {
    /// How many selections it makes (with repeats).
    pub fn len(&self) -> usize {
        match self {
            Chosen::Top(n) => *n,
            Chosen::List(l) => l.len(),
        }
    }
}

/// One method's result.
pub(super) struct Scored {
    /// One score per candidate (scores.csv's `score` and the rank order).
    pub scores: Vec<f64>,
    /// Extra per-candidate columns of scores.csv.
    pub columns: Vec<(String, Vec<f64>)>,
    pub chosen: Chosen,
    /// The method's part of manifest.json.
    pub details: serde_json::Value,
}
