//! Scale-out: one featurization split into shards that run as separate processes (a Slurm job
//! array, a Kubernetes Indexed Job), each its own resumable store, merged afterwards
//! ([`super::merge`]). A shard is a run of whole chunks, so every batch is formed exactly as in
//! one unsharded run and the merged store is bit-identical to it.

use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Shard `index` of `count` (0-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Shard {
    /// `I/N`.
    pub fn parse(s: &str) -> Result<Shard> {
        let bad = || Error::Shard(format!("shard `{s}`: expected I/N with 0 ≤ I < N"));
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count) = (i.trim().parse().map_err(|_| bad())?, n.trim().parse().map_err(|_| bad())?);
        Shard::new(index, count).ok_or_else(bad)
    }

    /// A shard, when `index < count`.
    pub fn new(index: usize, count: usize) -> Option<Shard> {
        (index < count).then_some(Shard { index, count })
    }

    /// The shard a cluster job's environment names: a Slurm array task
    /// (`SLURM_ARRAY_TASK_ID` − `SLURM_ARRAY_TASK_MIN` of `SLURM_ARRAY_TASK_COUNT`), or a
    /// Kubernetes Indexed Job's `JOB_COMPLETION_INDEX` of `shards` (which Kubernetes does not
    /// export). None when neither is set.
    pub fn from_env(var: impl Fn(&str) -> Option<String>, shards: Option<usize>) -> Result<Option<Shard>> {
        let num = |name: &str| -> Result<Option<usize>> {
            var(name)
                .map(|v| v.trim().parse::<usize>().map_err(|_| Error::Shard(format!("{name}=`{v}` is not a number"))))
                .transpose()
        };
        let out_of = |index: usize, count: usize, what: &str| {
            Shard::new(index, count).ok_or_else(|| Error::Shard(format!("{what}: shard {index} of {count}")))
        };
        if let (Some(id), Some(count)) = (num("SLURM_ARRAY_TASK_ID")?, num("SLURM_ARRAY_TASK_COUNT")?) {
            let min = num("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
            return out_of(id.saturating_sub(min), count, "SLURM_ARRAY_TASK_ID").map(Some);
        }
        match (num("JOB_COMPLETION_INDEX")?, shards) {
            (Some(i), Some(n)) => out_of(i, n, "JOB_COMPLETION_INDEX").map(Some),
            (Some(_), None) => Err(Error::Shard(
                "JOB_COMPLETION_INDEX is set: give the number of shards (the Indexed Job's completions)".into(),
            )),
            (None, _) => Ok(None),
        }
    }

    /// The rows of `total` this shard featurizes: whole chunks of `chunk_size`, spread evenly.
    pub fn rows(self, total: usize, chunk_size: usize) -> Range<usize> {
        let chunks = total.div_ceil(chunk_size.max(1));
        let at = |i: usize| (i * chunks / self.count * chunk_size).min(total);
        at(self.index)..at(self.index + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_whole_chunks_covering_every_row_once() {
        for (total, chunk, count) in [(1000usize, 256usize, 4usize), (6, 2, 4), (10, 3, 3), (5, 8, 2)] {
            let mut next = 0;
            for i in 0..count {
                let r = Shard { index: i, count }.rows(total, chunk);
                assert_eq!(r.start, next, "{total}/{chunk}/{count}");
                assert!(r.start.is_multiple_of(chunk) || r.start == total);
                next = r.end;
            }
            assert_eq!(next, total);
        }
    }

    #[test]
    fn shards_come_from_slurm_or_kubernetes() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|p| p.0 == k).map(|p| p.1.to_string())
        };
        let slurm =
            env(&[("SLURM_ARRAY_TASK_ID", "3"), ("SLURM_ARRAY_TASK_COUNT", "4"), ("SLURM_ARRAY_TASK_MIN", "1")]);
        assert_eq!(Shard::from_env(slurm, None).unwrap(), Some(Shard { index: 2, count: 4 }));
        assert_eq!(
            Shard::from_env(env(&[("JOB_COMPLETION_INDEX", "1")]), Some(4)).unwrap(),
            Some(Shard { index: 1, count: 4 })
        );
        assert!(Shard::from_env(env(&[("JOB_COMPLETION_INDEX", "1")]), None).is_err());
        assert_eq!(Shard::from_env(env(&[]), None).unwrap(), None);
        assert_eq!(Shard::parse("2/4").unwrap(), Shard { index: 2, count: 4 });
        assert!(Shard::parse("4/4").is_err() && Shard::parse("x").is_err());
    }
}
