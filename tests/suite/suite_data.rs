//! `make-data`: the generated suite is reproducible, mixes every task kind with distractors and
//! low-quality lines, and its ground truth (`suite.json`) is right: checked by recomputing the
//! answers of the arithmetic pairs from their prompts.

use crate::common;
use gradsift::data::{load_records, Record};
use gradsift::suite::{tasks::KINDS, SuiteManifest, SuiteSpec};

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let spec = SuiteSpec { pool: 120, base: 50, ..SuiteSpec::default() };
    let (a, b, c) = (common::tmp("suite", "a"), common::tmp("suite", "b"), common::tmp("suite", "c"));
    let (a, b, c) = (a.path(), b.path(), c.path());
    let m = spec.write(a).unwrap();
    spec.write(b).unwrap();
    SuiteSpec { seed: 2, ..spec.clone() }.write(c).unwrap();
    for f in &m.files {
        let (x, y, z) =
            (std::fs::read(a.join(f)).unwrap(), std::fs::read(b.join(f)).unwrap(), std::fs::read(c.join(f)).unwrap());
        assert_eq!(x, y, "{f} differs between two runs with one seed");
        assert_ne!(x, z, "{f} does not depend on the seed");
    }
}

#[test]
fn pool_mixes_every_kind_and_ground_truth_is_right() {
    let dir_tmp = common::tmp("suite", "truth");
    let dir = dir_tmp.path();
    let spec = SuiteSpec { pool: 600, base: 10, ..SuiteSpec::default() };
    spec.write(dir).unwrap();
    let m = SuiteManifest::read(dir).unwrap();
    assert_eq!(m.pool_kinds.len(), 600);
    for k in KINDS.iter().copied().chain(["chat", "low-quality"]) {
        let n = m.pool_kinds.iter().filter(|x| x.as_str() == k).count();
        assert!(n >= 10, "pool has only {n} `{k}` lines");
    }
    // Preference pairs: the flipped list is exactly the pairs whose chosen answer is wrong.
    let pairs = load_records(&dir.join("pool-pairs.jsonl")).unwrap();
    let flipped: std::collections::HashSet<usize> = m.flipped.iter().copied().collect();
    let rate = flipped.len() as f64 / pairs.len() as f64;
    assert!((rate - 0.3).abs() < 0.06, "flip rate {rate}");
    let mut checked = 0;
    for e in &pairs.examples {
        let Record::Preference { prompt, chosen, rejected } = &e.record else { panic!("not a pair") };
        assert_ne!(chosen, rejected);
        if e.task.as_deref() == Some("add") {
            let n: Vec<i64> = prompt
                .split(|c: char| !c.is_ascii_digit())
                .filter(|t| !t.is_empty())
                .map(|t| t.parse().unwrap())
                .collect();
            let right = (n[0] + n[1]).to_string();
            let chosen_right = chosen.trim() == right;
            assert_eq!(!chosen_right, flipped.contains(&e.line), "line {}: {prompt} {chosen}", e.line);
            checked += 1;
        }
    }
    assert!(checked > 20, "only {checked} add pairs");
    // Targets and tests carry the task field, only for target tasks.
    for f in ["target.jsonl", "test.jsonl", "target-pairs.jsonl", "test-pairs.jsonl"] {
        let d = load_records(&dir.join(f)).unwrap();
        assert!(d.examples.iter().all(|e| e.task.as_deref().is_some_and(|t| spec.target_tasks.iter().any(|x| x == t))));
    }
    // The target tasks' pairs: chosen is the target line's answer; rejected is the answer to
    // another question of the task or an evasion (forms the pool's low-quality lines do not
    // use), and both forms occur.
    let evasions = gradsift::suite::tasks::EVASIONS;
    let (mut wrong, mut filler) = (0, 0);
    for (lines, name) in [("target.jsonl", "target-pairs.jsonl"), ("test.jsonl", "test-pairs.jsonl")] {
        let (lines, pairs) = (load_records(&dir.join(lines)).unwrap(), load_records(&dir.join(name)).unwrap());
        assert_eq!(lines.len(), pairs.len());
        for (l, p) in lines.examples.iter().zip(&pairs.examples) {
            let Record::Instruction { prompt: lp, completion } = &l.record else { panic!("not an instruction") };
            let Record::Preference { prompt, chosen, rejected } = &p.record else { panic!("not a pair") };
            assert_eq!((lp, completion), (prompt, chosen), "{name} line {}", p.line);
            assert_ne!(chosen, rejected);
            if evasions.contains(&rejected.trim()) {
                filler += 1;
            } else {
                wrong += 1;
            }
        }
    }
    assert!(wrong >= 10 && filler >= 10, "rejected: {wrong} other answers, {filler} evasions");
}

#[test]
fn bad_specs_are_refused_with_the_reason() {
    let dir_tmp = common::tmp("suite", "bad");
    let dir = dir_tmp.path();
    let e = SuiteSpec { target_tasks: vec!["poetry".into()], ..SuiteSpec::default() }.write(dir).unwrap_err();
    assert!(e.to_string().contains("unknown task 'poetry'"), "{e}");
    let e = SuiteSpec { flip_rate: 1.5, ..SuiteSpec::default() }.write(dir).unwrap_err();
    assert!(e.to_string().contains("flip rate"), "{e}");
}

/// The prompts of a suite file (trimmed, as the generator renders them).
fn prompts(path: &std::path::Path) -> std::collections::HashSet<String> {
    load_records(path)
        .unwrap()
        .examples
        .iter()
        .map(|e| match &e.record {
            Record::Instruction { prompt, .. } | Record::Preference { prompt, .. } => prompt.trim().to_string(),
            other => panic!("{}: unexpected record {other:?}", path.display()),
        })
        .collect()
}

/// No evaluation prompt is ever a training prompt: the targets, tests, validation and held-out
/// pairs share no prompt with the pool, the pair pool or the base mix, nor with each other
/// (a target and its pair twin are one set, as are a test and its twin).
fn assert_no_leak(dir: &std::path::Path, with_base: bool) {
    let mut training: Vec<&str> = vec!["pool.jsonl", "pool-pairs.jsonl"];
    if with_base {
        training.push("base.jsonl");
    }
    let sets: [&[&str]; 4] = [
        &["target.jsonl", "target-pairs.jsonl"],
        &["test.jsonl", "test-pairs.jsonl"],
        &["val-pairs.jsonl"],
        &["heldout-pairs.jsonl"],
    ];
    let train: std::collections::HashSet<String> = training.iter().flat_map(|f| prompts(&dir.join(f))).collect();
    let groups: Vec<std::collections::HashSet<String>> =
        sets.iter().map(|files| files.iter().flat_map(|f| prompts(&dir.join(f))).collect()).collect();
    for (files, g) in sets.iter().zip(&groups) {
        let leaked: Vec<&String> = g.intersection(&train).collect();
        assert!(leaked.is_empty(), "{}: {files:?} prompts in the training files: {leaked:?}", dir.display());
    }
    for i in 0..groups.len() {
        for j in i + 1..groups.len() {
            let shared: Vec<&String> = groups[i].intersection(&groups[j]).collect();
            assert!(shared.is_empty(), "{}: {:?} and {:?} share {shared:?}", dir.display(), sets[i], sets[j]);
        }
    }
}

#[test]
fn no_evaluation_prompt_is_in_the_pool() {
    for seed in 1..=3 {
        let dir_tmp = common::tmp("suite", &format!("leak{seed}"));
        let dir = dir_tmp.path();
        let spec = SuiteSpec { seed, pool: 1000, base: 2000, ..SuiteSpec::default() };
        let m = spec.write(dir).unwrap();
        assert_no_leak(dir, true);
        // suite.json states each kind's space and what evaluation took of it.
        let capital = m.prompt_spaces["capital"];
        assert_eq!(capital.held_out, spec.shots + spec.test + spec.val_shots + spec.test.div_ceil(2));
        assert!(capital.size >= 2 * capital.held_out);
    }
    // The embedded demo data too.
    assert_no_leak(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo"), false);
    // A suite that cannot keep its evaluation prompts out of the pool is refused.
    let e = SuiteSpec { test: 200, ..SuiteSpec::default() }.write(common::tmp("suite", "small").path()).unwrap_err();
    assert!(e.to_string().contains("distinct prompts"), "{e}");
}

/// A target pair's rejected answer is never a string of the pool's corruption: not one of the
/// pool's fillers, and not the answer of a low-quality pool line (unless that answer is also
/// some pool line's right answer). Over several seeds, for the target and the test pairs.
#[test]
fn target_pairs_do_not_know_the_pools_corruption() {
    use std::collections::HashSet;
    for seed in [1, 2, 3] {
        let dir_tmp = common::tmp("suite", &format!("corruption-{seed}"));
        let dir = dir_tmp.path();
        let spec = SuiteSpec { seed, pool: 400, base: 10, ..SuiteSpec::default() };
        spec.write(dir).unwrap();
        let m = SuiteManifest::read(dir).unwrap();
        let pool = load_records(&dir.join("pool.jsonl")).unwrap();
        let answer = |r: &Record| match r {
            Record::Instruction { completion, .. } => completion.trim().to_string(),
            _ => panic!("not an instruction"),
        };
        let (mut corrupt, mut right) = (HashSet::new(), HashSet::new());
        for (e, kind) in pool.examples.iter().zip(&m.pool_kinds) {
            if kind == "low-quality" {
                corrupt.insert(answer(&e.record))
            } else {
                right.insert(answer(&e.record))
            };
        }
        let corruption: HashSet<&String> = corrupt.difference(&right).collect();
        assert!(gradsift::suite::tasks::FILLERS.iter().all(|f| corruption.contains(&f.to_string())));
        for file in ["target-pairs.jsonl", "test-pairs.jsonl"] {
            let pairs = load_records(&dir.join(file)).unwrap();
            assert!(!pairs.examples.is_empty());
            for e in &pairs.examples {
                let Record::Preference { chosen, rejected, .. } = &e.record else { panic!("{file}: not a pair") };
                let rejected = rejected.trim().to_string();
                assert!(
                    !corruption.contains(&rejected),
                    "seed {seed} {file}:{}: rejects `{rejected}`, a string of the pool's corruption",
                    e.line
                );
                assert_ne!(chosen.trim(), rejected, "{file}:{}", e.line);
            }
        }
    }
}
