//! The task kinds of the generated suite. Each kind draws one item: a prompt in one of several
//! phrasings, its correct answer, and a plausible wrong answer (the rejected side of a preference
//! pair). The kinds differ in what they exercise (arithmetic, string edits, table lookups, format
//! conversion, reading comprehension), so their gradients point in clearly different directions.

use crate::util::SplitMix64 as Rng;

/// One drawn item.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub prompt: String,
    pub answer: String,
    /// Close to the answer but wrong: an off-by-some number, a swapped letter, a neighbour in
    /// the table.
    pub wrong: String,
}

/// The kinds of task, by name (the `task` field of the generated files).
pub const KINDS: &[&str] =
    &["add", "compare", "reverse", "upper", "sort", "count", "capital", "symbol", "date", "story"];

// Tables large enough that the evaluation sets (few-shot targets, tests, validation and
// held-out pairs) can take their prompts out of a kind's space and leave most of it to the pool:
// see [`space`].
const WORDS: &[&str] = &[
    "planet", "garden", "river", "candle", "rocket", "silver", "forest", "window", "pencil", "dragon", "winter",
    "castle", "butter", "meadow", "rabbit", "mirror", "lantern", "pepper", "harbor", "violin", "anchor", "basket",
    "blanket", "bridge", "button", "cactus", "carpet", "cherry", "cloud", "copper", "cotton", "desert", "engine",
    "falcon", "feather", "garlic", "ginger", "hammer", "helmet", "island", "jacket", "kettle", "ladder", "lemon",
    "magnet", "marble", "needle", "orange", "parrot", "pillow", "pocket", "puzzle", "saddle", "shadow", "spider",
    "tomato", "tunnel", "velvet", "walnut", "yellow",
];

/// A bundled table: country → capital.
const CAPITALS: &[(&str, &str)] = &[
    ("France", "Paris"),
    ("Japan", "Tokyo"),
    ("Italy", "Rome"),
    ("Spain", "Madrid"),
    ("Egypt", "Cairo"),
    ("Peru", "Lima"),
    ("Kenya", "Nairobi"),
    ("Norway", "Oslo"),
    ("Chile", "Santiago"),
    ("Cuba", "Havana"),
    ("Greece", "Athens"),
    ("Poland", "Warsaw"),
    ("Germany", "Berlin"),
    ("Austria", "Vienna"),
    ("Hungary", "Budapest"),
    ("Portugal", "Lisbon"),
    ("Ireland", "Dublin"),
    ("Sweden", "Stockholm"),
    ("Finland", "Helsinki"),
    ("Denmark", "Copenhagen"),
    ("Belgium", "Brussels"),
    ("Romania", "Bucharest"),
    ("Bulgaria", "Sofia"),
    ("Serbia", "Belgrade"),
    ("Croatia", "Zagreb"),
    ("Ukraine", "Kyiv"),
    ("Turkey", "Ankara"),
    ("Iran", "Tehran"),
    ("Iraq", "Baghdad"),
    ("India", "New Delhi"),
    ("China", "Beijing"),
    ("Thailand", "Bangkok"),
    ("Vietnam", "Hanoi"),
    ("Indonesia", "Jakarta"),
    ("Philippines", "Manila"),
    ("Mexico", "Mexico City"),
    ("Canada", "Ottawa"),
    ("Brazil", "Brasilia"),
    ("Argentina", "Buenos Aires"),
    ("Colombia", "Bogota"),
    ("Venezuela", "Caracas"),
    ("Ecuador", "Quito"),
    ("Morocco", "Rabat"),
    ("Ghana", "Accra"),
    ("Nigeria", "Abuja"),
    ("Ethiopia", "Addis Ababa"),
    ("Australia", "Canberra"),
    ("Nepal", "Kathmandu"),
    ("Pakistan", "Islamabad"),
    ("Bangladesh", "Dhaka"),
    ("Mongolia", "Ulaanbaatar"),
    ("Malaysia", "Kuala Lumpur"),
    ("Iceland", "Reykjavik"),
    ("Latvia", "Riga"),
    ("Lithuania", "Vilnius"),
    ("Estonia", "Tallinn"),
    ("Slovakia", "Bratislava"),
    ("Uruguay", "Montevideo"),
    ("Bolivia", "Sucre"),
    ("Senegal", "Dakar"),
];

/// A bundled table: element → symbol.
const ELEMENTS: &[(&str, &str)] = &[
    ("hydrogen", "H"),
    ("helium", "He"),
    ("carbon", "C"),
    ("nitrogen", "N"),
    ("oxygen", "O"),
    ("sodium", "Na"),
    ("iron", "Fe"),
    ("copper", "Cu"),
    ("silver", "Ag"),
    ("gold", "Au"),
    ("zinc", "Zn"),
    ("lead", "Pb"),
    ("lithium", "Li"),
    ("boron", "B"),
    ("fluorine", "F"),
    ("neon", "Ne"),
    ("magnesium", "Mg"),
    ("aluminium", "Al"),
    ("silicon", "Si"),
    ("phosphorus", "P"),
    ("sulfur", "S"),
    ("chlorine", "Cl"),
    ("argon", "Ar"),
    ("potassium", "K"),
    ("calcium", "Ca"),
    ("titanium", "Ti"),
    ("chromium", "Cr"),
    ("manganese", "Mn"),
    ("cobalt", "Co"),
    ("nickel", "Ni"),
    ("tin", "Sn"),
    ("iodine", "I"),
    ("platinum", "Pt"),
    ("mercury", "Hg"),
    ("uranium", "U"),
    ("tungsten", "W"),
];

const NAMES: &[&str] = &["Ann", "Bob", "Cara", "Dev", "Eli", "Fay", "Gus", "Hana"];
const MONTHS: &[&str] = &[
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

fn pick<'a, T>(rng: &mut Rng, xs: &'a [T]) -> &'a T {
    &xs[rng.below(xs.len())]
}

/// Fills `{a}`, `{b}`… in one of `phrasings`.
fn phrase(rng: &mut Rng, phrasings: &[&str], fills: &[(&str, &str)]) -> String {
    let mut s = pick(rng, phrasings).to_string();
    for (k, v) in fills {
        s = s.replace(&format!("{{{k}}}"), v);
    }
    s
}

/// A word with two neighbouring letters swapped (a plausible misspelling).
fn swap_two(w: &str, rng: &mut Rng) -> String {
    let mut c: Vec<char> = w.chars().collect();
    if c.len() < 2 {
        return format!("{w}{w}");
    }
    for _ in 0..8 {
        let i = rng.below(c.len() - 1);
        if c[i] != c[i + 1] {
            c.swap(i, i + 1);
            return c.into_iter().collect();
        }
    }
    c.reverse();
    let s: String = c.into_iter().collect();
    if s == w {
        format!("{w}s")
    } else {
        s
    }
}

/// A different entry of a two-column table.
fn neighbour<'a>(rng: &mut Rng, table: &'a [(&'a str, &'a str)], i: usize) -> &'a str {
    let j = (i + 1 + rng.below(table.len() - 1)) % table.len();
    table[j].1
}

/// Draws one item of `kind` (an index into [`KINDS`]).
pub fn draw(kind: usize, rng: &mut Rng) -> Item {
    match KINDS[kind] {
        "add" => {
            let (a, b) = (rng.below(50), rng.below(50));
            let prompt = phrase(
                rng,
                &["Add {a} and {b}.", "What is {a} plus {b}?", "Compute {a} + {b}.", "Find the sum of {a} and {b}."],
                &[("a", &a.to_string()), ("b", &b.to_string())],
            );
            let off = 1 + rng.below(9);
            let wrong = if rng.below(2) == 0 || a + b < off { a + b + off } else { a + b - off };
            Item { prompt, answer: (a + b).to_string(), wrong: wrong.to_string() }
        }
        "compare" => {
            let a = rng.below(100);
            let mut b = rng.below(100);
            if b == a {
                b = (a + 1 + rng.below(98)) % 100;
            }
            let larger = rng.below(2) == 0;
            let (prompt, answer, wrong) = if larger {
                let p = phrase(
                    rng,
                    &[
                        "Which is larger, {a} or {b}?",
                        "Pick the bigger number: {a}, {b}.",
                        "Which number is greater: {a} or {b}?",
                    ],
                    &[("a", &a.to_string()), ("b", &b.to_string())],
                );
                (p, a.max(b), a.min(b))
            } else {
                let p = phrase(
                    rng,
                    &[
                        "Which is smaller, {a} or {b}?",
                        "Pick the smaller number: {a}, {b}.",
                        "Which number is less: {a} or {b}?",
                    ],
                    &[("a", &a.to_string()), ("b", &b.to_string())],
                );
                (p, a.min(b), a.max(b))
            };
            Item { prompt, answer: answer.to_string(), wrong: wrong.to_string() }
        }
        "reverse" => {
            let w = *pick(rng, WORDS);
            let prompt = phrase(
                rng,
                &["Reverse the word '{w}'.", "Spell '{w}' backwards.", "Write '{w}' in reverse order."],
                &[("w", w)],
            );
            let answer: String = w.chars().rev().collect();
            let wrong = swap_two(&answer, rng);
            Item { prompt, answer, wrong }
        }
        "upper" => {
            let w = *pick(rng, WORDS);
            let prompt = phrase(
                rng,
                &["Write '{w}' in capital letters.", "Uppercase the word '{w}'.", "Convert '{w}' to upper case."],
                &[("w", w)],
            );
            let answer = w.to_uppercase();
            let wrong = swap_two(&answer, rng);
            Item { prompt, answer, wrong }
        }
        "sort" => {
            let w = *pick(rng, WORDS);
            let prompt = phrase(
                rng,
                &[
                    "Sort the letters of '{w}'.",
                    "Put the letters of '{w}' in alphabetical order.",
                    "Arrange '{w}' alphabetically by letter.",
                ],
                &[("w", w)],
            );
            let mut c: Vec<char> = w.chars().collect();
            c.sort();
            let answer: String = c.into_iter().collect();
            let wrong = swap_two(&answer, rng);
            Item { prompt, answer, wrong }
        }
        "count" => {
            let w = *pick(rng, WORDS);
            let prompt = phrase(
                rng,
                &[
                    "How many letters are in '{w}'?",
                    "Count the letters in '{w}'.",
                    "What is the length of the word '{w}'?",
                ],
                &[("w", w)],
            );
            let n = w.len();
            let wrong = if rng.below(2) == 0 { n + 1 } else { n - 1 };
            Item { prompt, answer: n.to_string(), wrong: wrong.to_string() }
        }
        "capital" => {
            let i = rng.below(CAPITALS.len());
            let prompt = phrase(
                rng,
                &["What is the capital of {c}?", "Name the capital city of {c}.", "{c}'s capital is which city?"],
                &[("c", CAPITALS[i].0)],
            );
            Item { prompt, answer: CAPITALS[i].1.into(), wrong: neighbour(rng, CAPITALS, i).into() }
        }
        "symbol" => {
            let i = rng.below(ELEMENTS.len());
            let prompt = phrase(
                rng,
                &[
                    "What is the chemical symbol for {e}?",
                    "Give the element symbol of {e}.",
                    "Which symbol stands for {e}?",
                ],
                &[("e", ELEMENTS[i].0)],
            );
            Item { prompt, answer: ELEMENTS[i].1.into(), wrong: neighbour(rng, ELEMENTS, i).into() }
        }
        "date" => {
            let (y, m, d) = (1990 + rng.below(40), 1 + rng.below(12), 1 + rng.below(28));
            let iso = format!("{y}-{m:02}-{d:02}");
            let prompt = phrase(
                rng,
                &[
                    "Convert the date {iso} to day/month/year.",
                    "Rewrite {iso} as DD/MM/YYYY.",
                    "Write the date {iso} in the format DD/MM/YYYY.",
                ],
                &[("iso", &iso)],
            );
            let answer = format!("{d:02}/{m:02}/{y}");
            // The classic mistake: month and day swapped (or, when they are equal, the year off).
            let wrong = if m != d { format!("{m:02}/{d:02}/{y}") } else { format!("{d:02}/{m:02}/{}", y + 1) };
            Item { prompt, answer, wrong }
        }
        "story" => {
            let i = rng.below(NAMES.len());
            let j = (i + 1 + rng.below(NAMES.len() - 1)) % NAMES.len();
            let (a, b) = (NAMES[i], NAMES[j]);
            let month = *pick(rng, MONTHS);
            let (x, y) = (3 + rng.below(30), 3 + rng.below(30));
            let y = if x == y { y + 1 } else { y };
            let older = if x > y { a } else { b };
            let younger = if x > y { b } else { a };
            let (prompt, answer, wrong) = if rng.below(2) == 0 {
                let p = phrase(
                    rng,
                    &[
                        "{a} is {x} years old and {b} is {y}. Who is older?",
                        "{a} is {x}; {b} is {y}. Which of them is older?",
                    ],
                    &[("a", a), ("b", b), ("x", &x.to_string()), ("y", &y.to_string())],
                );
                (p, older.to_string(), younger.to_string())
            } else {
                let p = phrase(
                    rng,
                    &[
                        "{a} was born in {m}. In which month was {a} born?",
                        "{a}'s birthday is in {m}. Which month is {a}'s birthday?",
                    ],
                    &[("a", a), ("m", month)],
                );
                (p, month.to_string(), MONTHS[(MONTHS.iter().position(|x| *x == month).unwrap() + 1) % 12].to_string())
            };
            Item { prompt, answer, wrong }
        }
        other => unreachable!("unknown kind {other}"),
    }
}

/// How many distinct prompts `kind` can draw: its parameter combinations times its phrasings
/// (every combination gives another string).
pub fn space(kind: usize) -> usize {
    let words = WORDS.len() * 3;
    match KINDS[kind] {
        "add" => 50 * 50 * 4,
        // Ordered pairs of distinct numbers, three phrasings each for "larger" and "smaller".
        "compare" => 100 * 99 * 6,
        "reverse" | "upper" | "sort" | "count" => words,
        "capital" => CAPITALS.len() * 3,
        "symbol" => ELEMENTS.len() * 3,
        "date" => 40 * 12 * 28 * 3,
        "story" => {
            let names = NAMES.len() * (NAMES.len() - 1);
            // Ages x, y in 3..33 with y bumped past x when equal: 30 × 29 pairs plus (32, 33).
            let ages = 30 * 29 + 1;
            names * ages * 2 + NAMES.len() * MONTHS.len() * 2
        }
        other => unreachable!("unknown kind {other}"),
    }
}

/// The index of a kind by name.
pub(crate) fn kind_index(name: &str) -> Option<usize> {
    KINDS.iter().position(|k| *k == name)
}

/// A request outside the suite answered with generic chat: on-format but no task signal.
pub fn distractor(rng: &mut Rng) -> (String, String) {
    let w = *pick(rng, WORDS);
    let prompt = phrase(
        rng,
        &["Write a short sentence about a {w}.", "Tell me something about a {w}.", "Describe a {w} in a few words."],
        &[("w", w)],
    );
    let answer = phrase(
        rng,
        &[
            "The {w} was quiet in the evening light.",
            "A {w} can be found in many stories.",
            "Everyone remembers their first {w}.",
        ],
        &[("w", w)],
    );
    (prompt, answer)
}

/// The pool's non-answers: what low-quality scraped data looks like.
pub const FILLERS: &[&str] = &["ok ok ok", "I don't know.", "Sure!", "lol"];

/// Filler that ignores the request (one of [`FILLERS`]).
pub fn filler(rng: &mut Rng) -> String {
    pick(rng, FILLERS).to_string()
}

/// The target pairs' non-answers: disjoint from the pool's [`FILLERS`], so a target knows
/// nothing of how the pool is corrupted.
pub const EVASIONS: &[&str] = &[
    "Let me get back to you on that.",
    "That is a good question.",
    "I would rather not answer.",
    "Could you ask me something else?",
];

/// An evasion for the rejected side of a target pair (one of [`EVASIONS`]).
pub fn evasion(rng: &mut Rng) -> String {
    pick(rng, EVASIONS).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The numbers in a prompt, in order.
    fn numbers(s: &str) -> Vec<i64> {
        s.split(|c: char| !c.is_ascii_digit()).filter(|t| !t.is_empty()).map(|t| t.parse().unwrap()).collect()
    }

    /// The word quoted in a prompt.
    fn quoted(s: &str) -> String {
        s.split('\'').nth(1).unwrap().to_string()
    }

    /// Every kind's answer, recomputed from the prompt text alone, and a wrong answer that
    /// differs from it, over many draws.
    #[test]
    fn answers_are_right_and_wrong_answers_are_wrong() {
        let mut rng = Rng(5);
        let mut phrasings = vec![std::collections::HashSet::new(); KINDS.len()];
        for kind in 0..KINDS.len() {
            for _ in 0..300 {
                let it = draw(kind, &mut rng);
                assert_ne!(it.answer, it.wrong, "{}: {it:?}", KINDS[kind]);
                let p = &it.prompt;
                phrasings[kind].insert(p.split(|c: char| c.is_ascii_digit() || c == '\'').next().unwrap().to_string());
                let expect = match KINDS[kind] {
                    "add" => Some(numbers(p).iter().sum::<i64>().to_string()),
                    "compare" => {
                        let n = numbers(p);
                        let big = if p.contains("larger") || p.contains("bigger") || p.contains("greater") {
                            n[0].max(n[1])
                        } else {
                            n[0].min(n[1])
                        };
                        Some(big.to_string())
                    }
                    "reverse" => Some(quoted(p).chars().rev().collect()),
                    "upper" => Some(quoted(p).to_uppercase()),
                    "sort" => {
                        let mut c: Vec<char> = quoted(p).chars().collect();
                        c.sort();
                        Some(c.into_iter().collect())
                    }
                    "count" => Some(quoted(p).len().to_string()),
                    "date" => {
                        let n = numbers(p);
                        Some(format!("{:02}/{:02}/{}", n[2], n[1], n[0]))
                    }
                    _ => None,
                };
                if let Some(e) = expect {
                    assert_eq!(it.answer, e, "{}: {p}", KINDS[kind]);
                }
            }
        }
        for (k, p) in phrasings.iter().enumerate() {
            assert!(p.len() >= 2, "{} has {} phrasing(s)", KINDS[k], p.len());
        }
    }

    /// [`space`] is the number of distinct prompts a kind draws: reached exactly by the small
    /// spaces, never exceeded by the large ones.
    #[test]
    fn spaces_count_the_distinct_prompts() {
        let mut rng = Rng(9);
        for (kind, name) in KINDS.iter().enumerate() {
            let mut seen = std::collections::HashSet::new();
            for _ in 0..30_000 {
                seen.insert(draw(kind, &mut rng).prompt);
            }
            let n = space(kind);
            assert!(seen.len() <= n, "{name}: {} distinct prompts, space {n}", seen.len());
            if n <= 500 {
                assert_eq!(seen.len(), n, "{name}: the whole space is drawn");
            }
        }
    }
}
