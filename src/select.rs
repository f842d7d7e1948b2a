//! From scores to a subset, and the files that record it:
//! `selected.json` (pool indices in rank order), `scores.csv` (every candidate: index, score,
//! rank, source file and line, selected flag, per-subtask columns), `selected.jsonl` (the
//! selected pool lines, byte for byte, in rank order) and `manifest.json`. Candidates given as a
//! matrix only (TSDS on `.npy` embeddings) have no lines: scores.csv then has no file and line,
//! and there is no selected.jsonl.

use std::path::Path;

use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::util::write_atomic;

/// How many to keep.
#[derive(Debug, Clone, Copy)]
pub enum Budget {
    Fraction(f64),
    Count(usize),
}

impl Budget {
    /// The number of examples out of `n`: floor(fraction × n), at least 1.
    pub fn count(&self, n: usize) -> Result<usize> {
        match *self {
            Budget::Fraction(f) if f > 0.0 && f <= 1.0 => Ok(((f * n as f64).floor() as usize).max(1)),
            Budget::Fraction(f) => Err(Error::Budget(format!("the fraction to select, {f}, must be in (0, 1]"))),
            Budget::Count(k) if k >= 1 && k <= n => Ok(k),
            Budget::Count(k) => {
                Err(Error::Budget(format!("the count to select, {k}, must be between 1 and the pool size {n}")))
            }
        }
    }
}

/// The rank order of candidates `a` and `b`: higher score first, ties to the lower index, NaN last.
fn rank_order(scores: &[f64], a: usize, b: usize) -> std::cmp::Ordering {
    let (x, y) = (scores[a], scores[b]);
    match (x.is_nan(), y.is_nan()) {
        (true, false) => std::cmp::Ordering::Greater,
        (false, true) => std::cmp::Ordering::Less,
        _ => y.partial_cmp(&x).unwrap_or(std::cmp::Ordering::Equal).then(a.cmp(&b)),
    }
}

/// Indices of all candidates sorted by descending score (ties: lower index first; NaN last).
pub fn ranking(scores: &[f64]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| rank_order(scores, a, b));
    idx
}

/// The first `k` of [`ranking`] without sorting the whole pool: a linear-time partition
/// around the k-th candidate, then a sort of the k kept (O(N + k log k)).
pub(crate) fn top_k(scores: &[f64], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    let k = k.min(idx.len());
    if k < idx.len() {
        idx.select_nth_unstable_by(k, |&a, &b| rank_order(scores, a, b));
        idx.truncate(k);
    }
    idx.sort_by(|&a, &b| rank_order(scores, a, b));
    idx
}

/// Writes the four outputs into `out`, keeping the top `k` by score. `columns` are extra
/// per-candidate score columns.
pub(crate) fn write_selection(
    out: &Path,
    pool: &Dataset,
    scores: &[f64],
    columns: &[(String, Vec<f64>)],
    k: usize,
    manifest: serde_json::Value,
) -> Result<Vec<usize>> {
    let selected = top_k(scores, k);
    write_outputs(out, Some(pool), scores, columns, &selected, manifest)?;
    Ok(selected)
}

/// Writes the four outputs for an explicit selection (which may repeat indices, as sampling
/// with replacement does; the `selected` column then counts the draws).
pub(crate) fn write_outputs(
    out: &Path,
    pool: Option<&Dataset>,
    scores: &[f64],
    columns: &[(String, Vec<f64>)],
    selected: &[usize],
    manifest: serde_json::Value,
) -> Result<()> {
    if let Some(&bad) = selected.iter().find(|&&i| i >= scores.len()) {
        let pool = pool.map_or_else(|| "the pool".to_string(), |p| p.name());
        return Err(Error::OutsidePool { index: bad, pool, len: scores.len() });
    }
    let order = ranking(scores);
    let mut rank = vec![0usize; scores.len()];
    for (r, &i) in order.iter().enumerate() {
        rank[i] = r + 1;
    }
    let mut times = vec![0usize; scores.len()];
    selected.iter().for_each(|&i| times[i] += 1);
    write_atomic(&out.join("selected.json"), serde_json::to_string(selected).expect("json").as_bytes())?;

    let scores_path = out.join("scores.csv");
    let csv_error = |e: csv::Error| Error::format(&scores_path, e.to_string());
    let mut csv = csv::Writer::from_writer(Vec::new());
    let at: &[&str] = if pool.is_some() { &["file", "line"] } else { &[] };
    let header = ["index", "score", "rank"]
        .into_iter()
        .chain(at.iter().copied())
        .chain(["selected"])
        .chain(columns.iter().map(|(n, _)| n.as_str()));
    csv.write_record(header).map_err(csv_error)?;
    for i in 0..scores.len() {
        let mut row = vec![i.to_string(), scores[i].to_string(), rank[i].to_string()];
        if let Some(p) = pool {
            row.push(p.examples[i].source.display().to_string());
            row.push(p.examples[i].line.to_string());
        }
        row.push(times[i].to_string());
        row.extend(columns.iter().map(|(_, col)| col[i].to_string()));
        csv.write_record(row).map_err(csv_error)?;
    }
    let csv = csv.into_inner().map_err(|e| Error::format(&scores_path, e.to_string()))?;
    write_atomic(&scores_path, &csv)?;

    if let Some(pool) = pool {
        let mut lines = String::new();
        for &i in selected {
            lines.push_str(&pool.examples[i].raw);
            lines.push('\n');
        }
        write_atomic(&out.join("selected.jsonl"), lines.as_bytes())?;
    }
    write_atomic(&out.join("manifest.json"), serde_json::to_string_pretty(&manifest).expect("json").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_descending_with_stable_ties_and_nan_last() {
        assert_eq!(ranking(&[0.5, f64::NAN, 0.9, 0.5]), vec![2, 0, 3, 1]);
    }

    #[test]
    fn top_k_is_the_head_of_the_ranking() {
        let mut s = 0x2545_f491_4f6c_dd1du64;
        let scores: Vec<f64> = (0..5000)
            .map(|i| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                // Few distinct values (many ties) and a NaN now and then.
                if i % 97 == 0 {
                    f64::NAN
                } else {
                    (s % 50) as f64 / 7.0
                }
            })
            .collect();
        let full = ranking(&scores);
        for k in [0, 1, 49, 50, 1234, 4999, 5000] {
            assert_eq!(top_k(&scores, k), full[..k], "k = {k}");
        }
    }

    #[test]
    fn fraction_floors_but_keeps_one() {
        assert_eq!(Budget::Fraction(0.05).count(200).unwrap(), 10);
        assert_eq!(Budget::Fraction(0.05).count(10).unwrap(), 1);
        assert!(Budget::Fraction(1.5).count(10).is_err());
    }
}
