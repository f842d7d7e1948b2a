//! Baselines every comparison includes: random (seeded), loss/perplexity, RDS and RDS+
//! (hidden-state similarity) and DSIR (hashed n-gram importance weights).

use std::collections::BTreeMap;

use super::subtasks::subtask_groups;
use super::unit::unit_rows;
use crate::data::{Example, Record};
use crate::features::rng::fmix32;
use crate::util::SplitMix64;

/// Seeded uniform scores: their top k is a uniformly random subset.
pub fn random_scores(n: usize, seed: u64) -> Vec<f64> {
    let mut rng = SplitMix64(seed ^ 0x7261_6E64);
    (0..n).map(|_| rng.uniform()).collect()
}

/// Cosine similarities `[N, M]` between candidate and query embeddings.
pub fn cosine_matrix(cand: &[f32], n: usize, query: &[f32], m: usize, dim: usize) -> Vec<f64> {
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
pub fn mean_max(cos: &[f64], n: usize, tasks: &[Option<String>]) -> Vec<f64> {
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
pub fn round_robin(cos: &[f64], n: usize, m: usize, k: usize) -> Vec<usize> {
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
pub const DSIR_BUCKETS: usize = 10_000;

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

fn hash_str(s: &str) -> u32 {
    // FNV-1a, then a finalizer for even buckets; stable across platforms and runs.
    let mut h: u32 = 0x811C_9DC5;
    for b in s.bytes() {
        h = (h ^ b as u32).wrapping_mul(0x0100_0193);
    }
    fmix32(h)
}

/// Hashed unigram + bigram counts of lower-cased words (DSIR's features).
pub fn ngram_counts(text: &str) -> Vec<(usize, f64)> {
    let words: Vec<String> =
        text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(|w| w.to_lowercase()).collect();
    let mut counts: BTreeMap<usize, f64> = BTreeMap::new();
    for (i, w) in words.iter().enumerate() {
        *counts.entry(hash_str(w) as usize % DSIR_BUCKETS).or_default() += 1.0;
        if i + 1 < words.len() {
            *counts.entry(hash_str(&format!("{w} {}", words[i + 1])) as usize % DSIR_BUCKETS).or_default() += 1.0;
        }
    }
    counts.into_iter().collect()
}

/// DSIR: log importance weights log p_target(x) − log p_raw(x) under bucket models fitted
/// (add-one smoothed) on the target and on the pool, plus seeded Gumbel noise, so that the
/// top k is a sample without replacement proportional to the weights (Gumbel top-k).
pub fn dsir_scores(pool: &[Example], target: &[Example], seed: u64) -> (Vec<f64>, Vec<f64>) {
    let fit = |exs: &[Example]| {
        let mut c = vec![1.0f64; DSIR_BUCKETS];
        for e in exs {
            for (b, n) in ngram_counts(&text_of(e)) {
                c[b] += n;
            }
        }
        let total: f64 = c.iter().sum();
        c.into_iter().map(|x| (x / total).ln()).collect::<Vec<f64>>()
    };
    let (lt, lr) = (fit(target), fit(pool));
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

    #[test]
    fn ngrams_are_stable_and_bucketed() {
        let c = ngram_counts("Add 2 and 2");
        assert_eq!(c.iter().map(|(_, n)| n).sum::<f64>(), 7.0, "4 unigrams + 3 bigrams");
        assert!(c.iter().all(|(b, _)| *b < DSIR_BUCKETS));
        assert_eq!(c, ngram_counts("add 2 AND 2"));
    }
}
