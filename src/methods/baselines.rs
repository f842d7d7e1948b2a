//! Baselines every comparison includes: random (seeded), loss/perplexity, RDS and RDS+
//! (hidden-state similarity) and DSIR (hashed n-gram importance weights).

use std::collections::BTreeMap;

use super::subtasks::subtask_groups;
use super::unit::unit_rows;
use crate::data::{Example, Record};
use crate::util::SplitMix64;

/// Seeded uniform scores: their top k is a uniformly random subset.
pub(crate) fn random_scores(n: usize, seed: u64) -> Vec<f64> {
    let mut rng = SplitMix64(seed ^ 0x7261_6E64);
    (0..n).map(|_| rng.uniform()).collect()
}

/// Cosine similarities `[N, M]` between candidate and query embeddings.
pub(crate) fn cosine_matrix(cand: &[f32], n: usize, query: &[f32], m: usize, dim: usize) -> Vec<f64> {
    let (c, q) = (unit_rows(cand, n, dim), unit_rows(query, m, dim));
    let mut out = vec![0f64; n * m];
    for i in 0..n {
        for j in 0..m {
            out[i * m + j] = c[i * dim..(i + 1) * dim].iter().zip(&q[j * dim..(j + 1) * dim]).map(|(a, b)| a * b).sum();
        }
    }
    out
}

/// RDS matching as LESS does it: mean cosine over a subtask's queries, max over subtasks.
pub(crate) fn mean_max(cos: &[f64], n: usize, tasks: &[Option<String>]) -> Vec<f64> {
    let m = tasks.len();
    let groups = subtask_groups(tasks);
    (0..n)
        .map(|i| {
            groups
                .iter()
                .map(|(_, g)| g.iter().map(|&j| cos[i * m + j]).sum::<f64>() / g.len() as f64)
                .fold(f64::NEG_INFINITY, f64::max)
        })
        .collect()
}

/// RDS+ selection: round-robin over queries, each taking its most similar candidate not yet
/// taken, until `k` are chosen. Returns the chosen indices in the order taken.
pub(crate) fn round_robin(cos: &[f64], n: usize, m: usize, k: usize) -> Vec<usize> {
    let orders: Vec<Vec<usize>> = (0..m)
        .map(|j| {
            let mut idx: Vec<usize> = (0..n).collect();
            idx.sort_by(|&a, &b| {
                cos[b * m + j].partial_cmp(&cos[a * m + j]).unwrap_or(std::cmp::Ordering::Equal).then(a.cmp(&b))
            });
            idx
        })
        .collect();
    let mut taken = vec![false; n];
    let mut cursor = vec![0usize; m];
    let mut out = Vec::with_capacity(k);
    while out.len() < k.min(n) {
        for j in 0..m {
            if out.len() == k.min(n) {
                break;
            }
            while cursor[j] < n && taken[orders[j][cursor[j]]] {
                cursor[j] += 1;
            }
            if cursor[j] < n {
                let i = orders[j][cursor[j]];
                taken[i] = true;
                out.push(i);
            }
        }
    }
    out
}

/// Number of hash buckets of DSIR's n-gram features.
pub(crate) const DSIR_BUCKETS: usize = 10_000;

fn text_of(e: &Example) -> String {
    match &e.record {
        Record::Instruction { prompt, completion } => format!("{prompt} {completion}"),
        Record::Preference { prompt, chosen, .. } => format!("{prompt} {chosen}"),
        Record::Chat { messages } => messages.iter().map(|m| m.content.as_str()).collect::<Vec<_>>().join(" "),
        Record::ChatPreference { prompt, chosen, .. } => {
            prompt.iter().chain(chosen).map(|m| m.content.as_str()).collect::<Vec<_>>().join(" ")
        }
    }
}

/// The reference's bucket of an n-gram: SHA-256 of its UTF-8 bytes, read as a big-endian
/// integer, modulo the number of buckets (`int(hashlib.sha256(...).hexdigest(), 16) % 10000`).
fn bucket(s: &str) -> usize {
    use sha2::{Digest, Sha256};
    Sha256::digest(s.as_bytes()).iter().fold(0usize, |r, &b| (r * 256 + b as usize) % DSIR_BUCKETS)
}

/// Word-punctuation tokens of lower-cased text, as NLTK's WordPunctTokenizer (`\w+|[^\w\s]+`):
/// words and punctuation runs both kept.
fn word_punct(text: &str) -> Vec<String> {
    static TOKENS: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = TOKENS.get_or_init(|| regex::Regex::new(r"\w+|[^\w\s]+").expect("a valid pattern"));
    let lower = text.to_lowercase();
    re.find_iter(&lower).map(|m| m.as_str().to_string()).collect()
}

/// Hashed unigram + bigram counts of an example's text (DSIR's features, as its reference
/// computes them).
pub(crate) fn ngram_counts(text: &str) -> Vec<(usize, f64)> {
    let words = word_punct(text);
    let mut counts: BTreeMap<usize, f64> = BTreeMap::new();
    for w in &words {
        *counts.entry(bucket(w)).or_default() += 1.0;
    }
    for pair in words.windows(2) {
        *counts.entry(bucket(&format!("{} {}", pair[0], pair[1]))).or_default() += 1.0;
    }
    counts.into_iter().collect()
}

/// DSIR as its reference (hashed_ngram_dsir.py): bucket distributions p = counts / total of
/// the target and of the raw pool, no smoothing; an example's log importance weight is
/// Σ count · (log(p_target + 1e-8) − log(p_raw + 1e-8)) over its n-gram buckets. Seeded Gumbel
/// noise on top makes the top k a sample without replacement proportional to the weights.
/// One difference: the reference drops examples shorter than its `min_example_length` (in
/// words) before resampling; every example is kept here, since instruction data is full of
/// short, useful records (a sum, a one-word answer) that such a cut would remove wholesale.
/// Returns (noisy scores, log weights).
pub(crate) fn dsir_scores(pool: &[Example], target: &[Example], seed: u64) -> (Vec<f64>, Vec<f64>) {
    let log_p = |exs: &[Example]| {
        let mut c = vec![0f64; DSIR_BUCKETS];
        for e in exs {
            for (b, n) in ngram_counts(&text_of(e)) {
                c[b] += n;
            }
        }
        let total: f64 = c.iter().sum::<f64>().max(1.0);
        c.into_iter().map(|x| (x / total + 1e-8).ln()).collect::<Vec<f64>>()
    };
    let (lt, lr) = (log_p(target), log_p(pool));
    let logw: Vec<f64> =
        pool.iter().map(|e| ngram_counts(&text_of(e)).into_iter().map(|(b, n)| n * (lt[b] - lr[b])).sum()).collect();
    let mut rng = SplitMix64(seed ^ 0x6473_6972);
    let scores = logw.iter().map(|w| w - (-rng.uniform().ln()).ln()).collect();
    (scores, logw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_alternates_queries_without_repeats() {
        // 4 candidates, 2 queries: query 0 likes 0 > 1 > 2 > 3, query 1 likes 0 > 3 > 2 > 1.
        let cos = [0.9, 0.9, 0.8, 0.1, 0.5, 0.3, 0.1, 0.7];
        assert_eq!(round_robin(&cos, 4, 2, 3), vec![0, 3, 1]);
    }

    fn example(prompt: &str, completion: &str) -> Example {
        Example {
            source: std::sync::Arc::from(std::path::Path::new("x.jsonl")),
            line: 1,
            raw: String::new(),
            task: None,
            record: Record::Instruction { prompt: prompt.into(), completion: completion.into() },
        }
    }

    /// Buckets, tokens and log importance weights as the reference computes them (values from
    /// its functions run in Python on these texts: sha256 buckets, `\w+|[^\w\s]+` tokens,
    /// log(p + 1e-8) differences).
    #[test]
    fn dsir_matches_the_reference_computation() {
        let buckets: Vec<usize> = ["add", "2", "?", "what is", "..."].iter().map(|t| bucket(t)).collect();
        assert_eq!(buckets, [9367, 9861, 1169, 8918, 8502]);
        assert_eq!(
            word_punct("Tell me something about a rocket... It flies!"),
            ["tell", "me", "something", "about", "a", "rocket", "...", "it", "flies", "!"]
        );
        let pool = [
            example("What is 2+2?\nAnswer:", "4"),
            example("Name the capital city of France.", "Paris"),
            example("Tell me something about a rocket...", "It flies!"),
            example("Add 7 and 5.", "12"),
        ];
        let target = [example("What is 3+4?\nAnswer:", "7"), example("Add 1 and 9.", "10")];
        let (_, logw) = dsir_scores(&pool, &target, 0);
        let want = [-93.49182724476937, -200.00787504038925, -271.5773925992346, -97.56825758342951];
        for (got, want) in logw.iter().zip(want) {
            assert!((got - want).abs() < 1e-9 * want.abs(), "{got} vs {want}");
        }
    }

    #[test]
    fn ngrams_are_stable_and_bucketed() {
        let c = ngram_counts("Add 2 and 2");
        assert_eq!(c.iter().map(|(_, n)| n).sum::<f64>(), 7.0, "4 unigrams + 3 bigrams");
        assert!(c.iter().all(|(b, _)| *b < DSIR_BUCKETS));
        assert_eq!(c, ngram_counts("add 2 AND 2"));
    }
}
