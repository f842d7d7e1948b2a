//! `make-data`: a seeded task suite written as JSONL files, plus `suite.json`, which records the
//! ground truth a selection is judged against (which pool lines are low quality, which pairs were
//! flipped).
//!
//! The evaluation sets never leak into the training side: the few-shot targets, the tests, the
//! validation and held-out pairs are drawn first, without replacement, and every pool, pair-pool
//! and base-mix prompt is drawn from what they left of its kind's prompt space.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::tasks::{self, Item, KINDS};
use crate::error::{Error, Result, Setting};
use crate::util::{write_atomic, SplitMix64 as Rng};

/// What to generate.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SuiteSpec {
    pub seed: u64,
    /// Instruction pool size (the pairs pool has the same size).
    pub pool: usize,
    /// The tasks the target and test sets are drawn from.
    pub target_tasks: Vec<String>,
    /// Target (few-shot) examples per target task.
    pub shots: usize,
    /// Held-out test examples per target task.
    pub test: usize,
    /// Clean validation pairs per task kind (`val-pairs.jsonl`, the TIF family's validation set).
    pub val_shots: usize,
    /// Fraction of the pool that is off-suite chat.
    pub distractor_rate: f64,
    /// Fraction of the pool whose response is wrong or ignores the request.
    pub low_quality_rate: f64,
    /// Fraction of preference pairs with chosen and rejected swapped.
    pub flip_rate: f64,
    /// Size of the generic mix the base model is trained on (`base.jsonl`: every kind but the
    /// target tasks, plus chat).
    pub base: usize,
}

impl Default for SuiteSpec {
    fn default() -> Self {
        SuiteSpec {
            seed: 1,
            pool: 1000,
            target_tasks: vec!["add".into(), "capital".into()],
            shots: 4,
            test: 40,
            val_shots: 10,
            distractor_rate: 0.15,
            low_quality_rate: 0.15,
            flip_rate: 0.3,
            base: 4000,
        }
    }
}

/// What was written, and the ground truth behind it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SuiteManifest {
    pub spec: SuiteSpec,
    /// Pool lines (1-based) by kind of content: a task name, `chat` or `low-quality`.
    pub pool_kinds: Vec<String>,
    /// 1-based lines of `pool-pairs.jsonl` whose chosen and rejected were swapped.
    pub flipped: Vec<usize>,
    /// Per task kind: how many distinct prompts it can draw, and how many of them the
    /// evaluation sets took (the pool, pairs and base mix draw only from the rest).
    #[serde(default)]
    pub prompt_spaces: BTreeMap<String, PromptSpace>,
    pub files: Vec<String>,
}

/// A kind's prompt space and the part of it held out for evaluation.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct PromptSpace {
    pub size: usize,
    pub held_out: usize,
}

/// The prompts the evaluation sets hold: each drawn once, and kept away from the training side.
struct HeldOut {
    prompts: HashSet<String>,
    per_kind: Vec<usize>,
}

/// Draws before giving up on finding a prompt outside the held-out set (never reached when
/// [`SuiteSpec::check`] passed: at most half of a space is held out).
const MAX_DRAWS: usize = 100_000;

impl HeldOut {
    /// A new prompt of `kind`, held out from now on.
    fn take(&mut self, kind: usize, rng: &mut Rng) -> Result<Item> {
        for _ in 0..MAX_DRAWS {
            let item = tasks::draw(kind, rng);
            if self.prompts.insert(item.prompt.clone()) {
                self.per_kind[kind] += 1;
                return Ok(item);
            }
        }
        Err(Error::setting(Setting::PoolSize, format!("make-data: the `{}` prompt space is exhausted", KINDS[kind])))
    }

    /// A prompt of `kind` that no evaluation set holds.
    fn outside(&self, kind: usize, rng: &mut Rng) -> Result<Item> {
        for _ in 0..MAX_DRAWS {
            let item = tasks::draw(kind, rng);
            if !self.prompts.contains(&item.prompt) {
                return Ok(item);
            }
        }
        Err(Error::setting(
            Setting::TestSize,
            format!("make-data: every `{}` prompt is held out for evaluation", KINDS[kind]),
        ))
    }
}

impl SuiteManifest {
    /// Reads `suite.json` from a generated directory.
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join("suite.json");
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        serde_json::from_str(&text).map_err(|e| Error::format(&path, e.to_string()))
    }
}

/// The prompt as the model sees it, and the completion it learns (LESS appends EOS).
pub(crate) fn render(prompt: &str) -> String {
    format!("{prompt}\nAnswer:")
}

fn instruction(prompt: &str, answer: &str, task: &str) -> String {
    json!({"prompt": render(prompt), "completion": format!(" {answer}"), "task": task}).to_string()
}

fn pair(prompt: &str, chosen: &str, rejected: &str, task: &str) -> String {
    json!({"prompt": render(prompt), "chosen": format!(" {chosen}"), "rejected": format!(" {rejected}"), "task": task})
        .to_string()
}

impl SuiteSpec {
    fn check(&self) -> Result<Vec<usize>> {
        if self.target_tasks.is_empty() {
            return Err(Error::setting(Setting::TargetTasks, "make-data: at least one target task is needed"));
        }
        let kinds = self
            .target_tasks
            .iter()
            .map(|t| {
                tasks::kind_index(t).ok_or_else(|| {
                    Error::setting(
                        Setting::TargetTasks,
                        format!("make-data: unknown task '{t}' (known: {})", KINDS.join(", ")),
                    )
                })
            })
            .collect::<Result<Vec<_>>>()?;
        for (setting, name, r) in [
            (Setting::DistractorRate, "distractor rate", self.distractor_rate),
            (Setting::LowQualityRate, "low-quality rate", self.low_quality_rate),
            (Setting::FlipRate, "flip rate", self.flip_rate),
        ] {
            if !(0.0..=1.0).contains(&r) {
                return Err(Error::setting(setting, format!("make-data: the {name} must lie in [0, 1], got {r}")));
            }
        }
        if self.distractor_rate + self.low_quality_rate > 1.0 {
            return Err(Error::setting(
                Setting::LowQualityRate,
                "make-data: distractor and low-quality rates add up to more than 1",
            ));
        }
        for (setting, name, n) in [
            (Setting::PoolSize, "pool size", self.pool),
            (Setting::Shots, "target examples per task", self.shots),
            (Setting::TestSize, "test examples per task", self.test),
            (Setting::ValShots, "validation pairs per task", self.val_shots),
        ] {
            if n == 0 {
                return Err(Error::setting(setting, format!("make-data: the {name} must be positive")));
            }
        }
        // At most half of a kind's prompts go to evaluation; the rest is the pool's.
        for (k, name) in KINDS.iter().enumerate() {
            let held = self.held_out(k, &kinds);
            if 2 * held > tasks::space(k) {
                return Err(Error::setting(
                    Setting::HeldOut,
                    format!(
                        "make-data: `{name}` has {} distinct prompts; holding out {held} for the targets, tests, \
                         validation and held-out pairs would leave the pool less than half",
                        tasks::space(k)
                    ),
                ));
            }
        }
        Ok(kinds)
    }

    /// How many prompts of kind `k` the evaluation sets hold.
    fn held_out(&self, k: usize, target_kinds: &[usize]) -> usize {
        let target = if target_kinds.contains(&k) { self.shots + self.test } else { 0 };
        target + self.val_shots + self.test.div_ceil(2)
    }

    /// Writes the suite into `dir` and returns its manifest. Same spec, same bytes.
    pub fn write(&self, dir: &Path) -> Result<SuiteManifest> {
        let target_kinds = self.check()?;
        // Separate streams, so growing one file does not change the others.
        let mut pool_rng = Rng(self.seed ^ 0x706F_6F6C);
        let mut pair_rng = Rng(self.seed ^ 0x7061_6972);
        let mut eval_rng = Rng(self.seed ^ 0x6576_616C);
        let mut base_rng = Rng(self.seed ^ 0x6261_7365);

        // The evaluation sets first, each prompt drawn once: the few-shot targets and tests of the
        // target tasks, then (the preference pool spans every kind, so cleaning it is judged on
        // every kind) clean validation pairs (TIF's) and held-out test pairs over all kinds.
        let mut held = HeldOut { prompts: HashSet::new(), per_kind: vec![0; KINDS.len()] };
        let draw_sets = |held: &mut HeldOut, rng: &mut Rng, kinds: &[usize], n: usize| -> Result<Vec<(usize, Item)>> {
            let mut out = Vec::with_capacity(kinds.len() * n);
            for &k in kinds {
                for _ in 0..n {
                    out.push((k, held.take(k, rng)?));
                }
            }
            Ok(out)
        };
        let target = draw_sets(&mut held, &mut eval_rng, &target_kinds, self.shots)?;
        let test = draw_sets(&mut held, &mut eval_rng, &target_kinds, self.test)?;
        let mut pref_rng = Rng(self.seed ^ 0x7072_6566);
        let every: Vec<usize> = (0..KINDS.len()).collect();
        let val_pairs = draw_sets(&mut held, &mut pref_rng, &every, self.val_shots)?;
        let heldout_pairs = draw_sets(&mut held, &mut pref_rng, &every, self.test.div_ceil(2))?;

        let mut pool = Vec::with_capacity(self.pool);
        let mut pool_kinds = Vec::with_capacity(self.pool);
        // The answers of the pool's low-quality lines, and of its right ones.
        let (mut corrupt_answers, mut right_answers) = (HashSet::new(), HashSet::new());
        for _ in 0..self.pool {
            let u = pool_rng.uniform();
            let kind = pool_rng.below(KINDS.len());
            if u < self.distractor_rate {
                let (p, a) = tasks::distractor(&mut pool_rng);
                pool.push(instruction(&p, &a, "chat"));
                pool_kinds.push("chat".to_string());
            } else if u < self.distractor_rate + self.low_quality_rate {
                // Looks like a task, answers wrongly or not at all.
                let item = held.outside(kind, &mut pool_rng)?;
                let a = if pool_rng.below(2) == 0 { item.wrong } else { tasks::filler(&mut pool_rng) };
                pool.push(instruction(&item.prompt, &a, KINDS[kind]));
                pool_kinds.push("low-quality".to_string());
                corrupt_answers.insert(a);
            } else {
                let item = held.outside(kind, &mut pool_rng)?;
                pool.push(instruction(&item.prompt, &item.answer, KINDS[kind]));
                pool_kinds.push(KINDS[kind].to_string());
                right_answers.insert(item.answer);
            }
        }

        let mut pairs = Vec::with_capacity(self.pool);
        let mut flipped = Vec::new();
        for line in 1..=self.pool {
            let kind = pair_rng.below(KINDS.len());
            let item = held.outside(kind, &mut pair_rng)?;
            if pair_rng.uniform() < self.flip_rate {
                pairs.push(pair(&item.prompt, &item.wrong, &item.answer, KINDS[kind]));
                flipped.push(line);
            } else {
                pairs.push(pair(&item.prompt, &item.answer, &item.wrong, KINDS[kind]));
            }
        }

        let lines = |items: &[(usize, Item)], as_pairs: bool| -> Vec<String> {
            items
                .iter()
                .map(|(k, it)| {
                    if as_pairs {
                        pair(&it.prompt, &it.answer, &it.wrong, KINDS[*k])
                    } else {
                        instruction(&it.prompt, &it.answer, KINDS[*k])
                    }
                })
                .collect()
        };

        // The generic mix the base model learns the format from: every kind except the target
        // tasks, plus chat, always correct. The target tasks stay new skills, so what the
        // selected data teaches shows in the evaluation.
        let base_kinds: Vec<usize> = (0..KINDS.len()).filter(|k| !target_kinds.contains(k)).collect();
        let base: Vec<String> = (0..self.base)
            .map(|_| {
                let pick = base_rng.below(base_kinds.len() + 1);
                if pick == base_kinds.len() {
                    let (p, a) = tasks::distractor(&mut base_rng);
                    Ok(instruction(&p, &a, "chat"))
                } else {
                    let kind = base_kinds[pick];
                    let item = held.outside(kind, &mut base_rng)?;
                    Ok(instruction(&item.prompt, &item.answer, KINDS[kind]))
                }
            })
            .collect::<Result<_>>()?;

        // The target tasks' pairs (ROSE's and PRISM's targets) reject what the target should not
        // do, half an evasion and half the right answer to another question of the task. Both
        // come from generators the pool's corruption does not use (its low-quality lines answer
        // with a near miss or a filler), and no rejected answer is a string of that corruption
        // (an answer that is also some pool line's right answer is not corruption): a target
        // must not know how the pool was corrupted.
        let corruption: HashSet<String> = corrupt_answers.difference(&right_answers).cloned().collect();
        let mut negative_rng = Rng(self.seed ^ 0x6E65_6761);
        let mut target_pairs = |items: &[(usize, Item)]| -> Vec<String> {
            items
                .iter()
                .map(|(k, it)| {
                    let confusion = (negative_rng.below(2) == 0)
                        .then(|| {
                            (0..MAX_DRAWS)
                                .map(|_| tasks::draw(*k, &mut negative_rng).answer)
                                .find(|a| *a != it.answer && !corruption.contains(a))
                        })
                        .flatten();
                    let rejected = confusion.unwrap_or_else(|| tasks::evasion(&mut negative_rng));
                    pair(&it.prompt, &it.answer, &rejected, KINDS[*k])
                })
                .collect()
        };
        let files: Vec<(&str, Vec<String>)> = vec![
            ("pool.jsonl", pool),
            ("pool-pairs.jsonl", pairs),
            ("target.jsonl", lines(&target, false)),
            ("target-pairs.jsonl", target_pairs(&target)),
            ("test.jsonl", lines(&test, false)),
            ("test-pairs.jsonl", target_pairs(&test)),
            ("val-pairs.jsonl", lines(&val_pairs, true)),
            ("heldout-pairs.jsonl", lines(&heldout_pairs, true)),
            ("base.jsonl", base),
        ];
        for (name, content) in &files {
            let text: String = content.iter().map(|l| format!("{l}\n")).collect();
            write_atomic(&dir.join(name), text.as_bytes())?;
        }
        let manifest = SuiteManifest {
            spec: self.clone(),
            pool_kinds,
            flipped,
            prompt_spaces: (0..KINDS.len())
                .map(|k| (KINDS[k].to_string(), PromptSpace { size: tasks::space(k), held_out: held.per_kind[k] }))
                .collect(),
            files: files.iter().map(|(n, _)| n.to_string()).collect(),
        };
        let text = serde_json::to_string_pretty(&manifest).map_err(|e| Error::Internal(e.to_string()))?;
        write_atomic(&dir.join("suite.json"), text.as_bytes())?;
        Ok(manifest)
    }
}
