//! ListOps (Nangia & Bowman 2018, as generated for the Long Range Arena).
//!
//! A sample is a nested prefix expression over the digits 0-9 with the operators
//! `[MIN`, `[MAX`, `[MED` (median, truncated to an integer) and `[SM` (sum modulo 10),
//! each closed by `]`; the label is its value. The released TSVs wrap every subtree in
//! parentheses: `( ( ( [MAX 2 ) 9 ) ] )` is `[MAX 2 9 ]` = 9.
//!
//! The generator follows the official procedure: below `max_depth` a node is a leaf with
//! probability 0.75, otherwise an operator with uniformly 2..=`max_args` children; nodes
//! at `max_depth` are leaves; the root has depth 1. A tree's length counts 2 per operator
//! (itself and `]`) and 1 per value; only trees with `min_length < length < max_length`
//! are kept, and duplicates are dropped across all splits.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::io::{BufRead, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::rng::SeededRng;
use crate::{DataError, Example, Splits};

/// The four operators of ListOps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operator {
    Min,
    Max,
    Median,
    SumMod10,
}

impl Operator {
    pub const ALL: [Operator; 4] = [Operator::Min, Operator::Max, Operator::Median, Operator::SumMod10];

    /// The token as it appears in the released files.
    pub fn token(self) -> &'static str {
        match self {
            Operator::Min => "[MIN",
            Operator::Max => "[MAX",
            Operator::Median => "[MED",
            Operator::SumMod10 => "[SM",
        }
    }

    fn from_token(token: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|op| op.token() == token)
    }

    /// The operator's value over its arguments (at least one).
    pub fn apply(self, args: &[u8]) -> u8 {
        match self {
            Operator::Min => *args.iter().min().expect("an operator has arguments"),
            Operator::Max => *args.iter().max().expect("an operator has arguments"),
            Operator::SumMod10 => (args.iter().map(|&a| a as u32).sum::<u32>() % 10) as u8,
            Operator::Median => {
                let mut sorted = args.to_vec();
                sorted.sort_unstable();
                let n = sorted.len();
                if n % 2 == 1 {
                    sorted[n / 2]
                } else {
                    // The official code takes int(np.median(..)): the mean of the two
                    // middle values, truncated.
                    ((sorted[n / 2 - 1] as u32 + sorted[n / 2] as u32) / 2) as u8
                }
            }
        }
    }
}

/// An expression tree.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Expr {
    Value(u8),
    Apply(Operator, Vec<Expr>),
}

impl Expr {
    pub fn value(&self) -> u8 {
        match self {
            Expr::Value(v) => *v,
            Expr::Apply(op, args) => {
                let values: Vec<u8> = args.iter().map(Expr::value).collect();
                op.apply(&values)
            }
        }
    }

    /// Length as the official generator counts it: 2 per operator, 1 per value.
    pub fn length(&self) -> usize {
        match self {
            Expr::Value(_) => 1,
            Expr::Apply(_, args) => 2 + args.iter().map(Expr::length).sum::<usize>(),
        }
    }

    /// The released format: the operator and its arguments folded left into pairs,
    /// every pair in parentheses, e.g. `( ( ( [MAX 2 ) 9 ) ] )`.
    pub fn to_source(&self) -> String {
        let mut out = String::new();
        self.write_source(&mut out);
        out
    }

    fn write_source(&self, out: &mut String) {
        match self {
            Expr::Value(v) => {
                let _ = write!(out, "{v}");
            }
            Expr::Apply(op, args) => {
                // ((((op a0) a1) ...) ]) : one "( " per pair, args.len() + 1 pairs.
                for _ in 0..=args.len() {
                    out.push_str("( ");
                }
                out.push_str(op.token());
                for arg in args {
                    out.push(' ');
                    arg.write_source(out);
                    out.push_str(" )");
                }
                out.push_str(" ] )");
            }
        }
    }
}

/// Parameters of the generator (the official defaults in `Default`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GeneratorConfig {
    pub max_depth: usize,
    pub max_args: usize,
    /// Exclusive lower bound on a kept tree's length.
    pub min_length: usize,
    /// Exclusive upper bound on a kept tree's length.
    pub max_length: usize,
    pub train: usize,
    pub validation: usize,
    pub test: usize,
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        Self { max_depth: 10, max_args: 10, min_length: 500, max_length: 2000, train: 96_000, validation: 2_000, test: 2_000 }
    }
}

const LEAF_PROBABILITY: f64 = 0.75;

/// One random tree; `depth` of the root is 1.
pub fn random_tree(rng: &mut SeededRng, config: &GeneratorConfig, depth: usize) -> Expr {
    let leaf = depth >= config.max_depth || rng.unit() < LEAF_PROBABILITY;
    if leaf {
        return Expr::Value(rng.below(10) as u8);
    }
    let children = rng.range_inclusive(2, config.max_args as u64) as usize;
    let args = (0..children).map(|_| random_tree(rng, config, depth + 1)).collect();
    Expr::Apply(*rng.choose(&Operator::ALL), args)
}

/// The largest `max_depth` and `max_args` accepted (LRA's are 10 and 10): a tree is built
/// whole before its length is checked, and its expected size grows as
/// `(max_args / 8)^max_depth`, so larger settings would exhaust time, memory or the stack.
pub const MAX_TREE_SETTING: usize = 20;

/// The most examples the generator makes (LRA's ListOps has 100,000).
pub const MAX_EXAMPLES: usize = 10_000_000;

/// Error for generator settings that can never produce a sample, or that would exhaust
/// the machine.
pub fn check_config(config: &GeneratorConfig) -> Result<(), DataError> {
    if config.max_depth < 2 || config.max_args < 2 {
        return Err(DataError::new("listops: max_depth and max_args must be at least 2"));
    }
    for (name, value) in [("max_depth", config.max_depth), ("max_args", config.max_args)] {
        if value > MAX_TREE_SETTING {
            return Err(DataError::new(format!(
                "listops: {name} {value} is above {MAX_TREE_SETTING}: trees that deep or wide grow without bound (LRA's is 10)"
            )));
        }
    }
    let total = config.train.checked_add(config.validation).and_then(|n| n.checked_add(config.test));
    if total.is_none_or(|n| n > MAX_EXAMPLES) {
        return Err(DataError::new(format!(
            "listops: train + validation + test ({} + {} + {}) is more than {MAX_EXAMPLES} examples",
            config.train, config.validation, config.test
        )));
    }
    if config.min_length + 1 >= config.max_length {
        return Err(DataError::new(format!(
            "listops: no length lies strictly between min_length {} and max_length {}",
            config.min_length, config.max_length
        )));
    }
    Ok(())
}

/// Generates the three splits: distinct trees with lengths in the open bounds, in the
/// order the seeded stream yields them (train first, then validation, then test).
pub fn generate(config: &GeneratorConfig, seed: u64) -> Result<Vec<Expr>, DataError> {
    let mut trees = Vec::new();
    draw_distinct(config, seed, |tree, _| trees.push(tree))?;
    Ok(trees)
}

/// Hands `keep` each tree of the seeded stream whose length is within the open bounds
/// and that did not come before, with its source, until the splits are full.
///
/// Repeats are recognised by the SHA-256 of the source, which determines the tree: 32
/// bytes per tree kept in memory instead of a copy of the tree (the full-size dataset's
/// trees take gigabytes as nodes).
fn draw_distinct(config: &GeneratorConfig, seed: u64, mut keep: impl FnMut(Expr, String)) -> Result<(), DataError> {
    check_config(config)?;
    let wanted = config.train + config.validation + config.test;
    let mut rng = SeededRng::new(seed, u64::from_le_bytes(*b"ListOps\0"));
    let mut seen: HashSet<[u8; 32]> = HashSet::with_capacity(wanted);
    // Most trees are rejected (a quarter of roots are operators at all); the bound only
    // guards against settings under which the lengths asked for are practically unreachable.
    let max_attempts = 10_000 * wanted.max(1) as u64 + 1_000_000;
    let mut attempts = 0u64;
    while seen.len() < wanted {
        attempts += 1;
        if attempts > max_attempts {
            return Err(DataError::new(format!(
                "listops: found only {} of {} trees with {} < length < {} in {} attempts; widen the bounds",
                seen.len(),
                wanted,
                config.min_length,
                config.max_length,
                max_attempts
            )));
        }
        let tree = random_tree(&mut rng, config, 1);
        let length = tree.length();
        if length <= config.min_length || length >= config.max_length {
            continue;
        }
        let source = tree.to_source();
        if seen.insert(Sha256::digest(source.as_bytes()).into()) {
            keep(tree, source);
        }
    }
    Ok(())
}

/// A sample as the released TSV holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    pub source: String,
    pub target: u8,
}

/// Generates the splits as samples, one tree at a time.
pub fn generate_samples(config: &GeneratorConfig, seed: u64) -> Result<[Vec<Sample>; 3], DataError> {
    let mut samples = Vec::with_capacity(config.train + config.validation + config.test);
    draw_distinct(config, seed, |tree, source| samples.push(Sample { target: tree.value(), source }))?;
    let test = samples.split_off(config.train + config.validation);
    let validation = samples.split_off(config.train);
    Ok([samples, validation, test])
}

/// Evaluates a source string in the released format (parentheses optional).
pub fn evaluate(source: &str) -> Result<u8, DataError> {
    let tokens: Vec<&str> = source.split_whitespace().filter(|t| *t != "(" && *t != ")").collect();
    let mut stack: Vec<(Operator, Vec<u8>)> = Vec::new();
    let mut result = None;
    for (i, token) in tokens.iter().enumerate() {
        if result.is_some() {
            return Err(DataError::new(format!("token {} `{token}` after the end of the expression", i + 1)));
        }
        let value = if let Some(op) = Operator::from_token(token) {
            stack.push((op, Vec::new()));
            continue;
        } else if *token == "]" {
            let (op, args) = stack.pop().ok_or_else(|| DataError::new(format!("token {} `]` closes no operator", i + 1)))?;
            if args.is_empty() {
                return Err(DataError::new(format!("token {} `]` closes {} with no arguments", i + 1, op.token())));
            }
            op.apply(&args)
        } else {
            match token.parse::<u8>() {
                Ok(v) if v <= 9 => v,
                _ => {
                    return Err(DataError::new(format!(
                        "token {} `{token}`: expected a digit 0-9, an operator ([MIN [MAX [MED [SM) or `]`",
                        i + 1
                    )));
                }
            }
        };
        match stack.last_mut() {
            Some((_, args)) => args.push(value),
            None => result = Some(value),
        }
    }
    if let Some((op, _)) = stack.last() {
        return Err(DataError::new(format!("{} is never closed by `]`", op.token())));
    }
    result.ok_or_else(|| DataError::new("empty expression"))
}

/// The header line of the released TSVs.
pub const TSV_HEADER: &str = "Source\tTarget";

/// Writes samples in the released TSV format (header `Source<TAB>Target`).
pub fn write_tsv(out: &mut impl Write, samples: &[Sample]) -> std::io::Result<()> {
    writeln!(out, "{TSV_HEADER}")?;
    for sample in samples {
        writeln!(out, "{}\t{}", sample.source, sample.target)?;
    }
    Ok(())
}

/// Longest line accepted: the official sources are under 2,000 tokens (~10 KB); a
/// line far beyond that is not ListOps and is refused before it fills memory.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// Reads a released ListOps TSV; every line's target must be 0-9 and its source must be
/// a well-formed expression whose value is the target.
pub fn read_tsv(path: &Path) -> Result<Vec<Sample>, DataError> {
    read_tsv_from(crate::files::open_bounded(path, crate::files::limit::DATA_TEXT)?, path)
}

/// As [`read_tsv`], from any reader; `path` names the source in errors.
pub fn read_tsv_from(reader: impl BufRead, path: &Path) -> Result<Vec<Sample>, DataError> {
    let mut samples = Vec::new();
    for (index, line) in crate::text::complete_lines(reader, MAX_LINE_BYTES).enumerate() {
        let number = index + 1;
        let line = line.map_err(|e| e.located(path, number))?;
        if number == 1 {
            if line.trim_end() != TSV_HEADER {
                return Err(DataError::at(
                    path,
                    1,
                    format!("expected the header `Source<TAB>Target`, found `{}`", crate::text::preview(&line)),
                ));
            }
            continue;
        }
        if line.trim().is_empty() {
            continue;
        }
        let mut columns = line.split('\t');
        let (Some(source), Some(target), None) = (columns.next(), columns.next(), columns.next()) else {
            return Err(DataError::at(path, number, "expected 2 tab-separated columns (Source, Target)"));
        };
        let target: u8 = match target.trim().parse() {
            Ok(t) if t <= 9 => t,
            _ => {
                return Err(DataError::at(
                    path,
                    number,
                    format!("Target: expected a digit 0-9, found `{}`", crate::text::preview(target)),
                ));
            }
        };
        let value = evaluate(source).map_err(|e| DataError::at(path, number, format!("Source: {}", e.message)))?;
        if value != target {
            return Err(DataError::at(path, number, format!("Source evaluates to {value} but Target is {target}")));
        }
        samples.push(Sample { source: source.to_string(), target });
    }
    Ok(samples)
}

/// Token ids of the ListOps vocabulary. Padding is 0; parentheses carry no information
/// beyond the operators and `]`, so the tokenizer drops them (as the fixed official
/// pipeline does) and keeps `]`.
pub mod vocab {
    pub const PAD: u32 = 0;
    pub const CLOSE: u32 = 1;
    /// `[MIN`, `[MAX`, `[MED`, `[SM` in that order.
    pub const FIRST_OPERATOR: u32 = 2;
    /// Digits 0-9 are `FIRST_DIGIT + d`.
    pub const FIRST_DIGIT: u32 = 6;
    pub const SIZE: usize = 16;
}

/// Token ids of a source string; errors on a token outside the vocabulary.
pub fn tokenize(source: &str) -> Result<Vec<u32>, DataError> {
    source
        .split_whitespace()
        .filter(|t| *t != "(" && *t != ")")
        .map(|token| {
            if token == "]" {
                return Ok(vocab::CLOSE);
            }
            if let Some(i) = Operator::ALL.iter().position(|op| op.token() == token) {
                return Ok(vocab::FIRST_OPERATOR + i as u32);
            }
            match token.parse::<u32>() {
                Ok(d) if d <= 9 => Ok(vocab::FIRST_DIGIT + d),
                _ => Err(DataError::new(format!("`{}` is not a ListOps token", crate::text::preview(token)))),
            }
        })
        .collect()
}

/// Tokenized splits from samples.
pub fn to_splits(samples: [Vec<Sample>; 3]) -> Result<Splits, DataError> {
    let convert = |split: Vec<Sample>| -> Result<Vec<Example>, DataError> {
        split.into_iter().map(|s| Ok(Example { tokens: tokenize(&s.source)?, second: None, label: s.target as u32 })).collect()
    };
    let [train, validation, test] = samples;
    Ok(Splits { train: convert(train)?, validation: convert(validation)?, test: convert(test)? })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_that_would_exhaust_the_machine_are_refused_by_name() {
        let lra = GeneratorConfig::default();
        let deep = GeneratorConfig { max_depth: 50, ..lra };
        assert!(generate(&deep, 0).unwrap_err().to_string().contains("max_depth 50 is above 20"));
        let wide = GeneratorConfig { max_args: 1000, ..lra };
        assert!(generate(&wide, 0).unwrap_err().to_string().contains("max_args 1000"));
        let overflowing = GeneratorConfig { train: usize::MAX, validation: 2, ..lra };
        assert!(generate(&overflowing, 0).unwrap_err().to_string().contains("train + validation + test"));
    }

    #[test]
    fn median_of_an_even_count_truncates_the_mean_of_the_middle_two() {
        assert_eq!(evaluate("[MED 1 2 ]").unwrap(), 1); // 1.5 -> 1
        assert_eq!(evaluate("[MED 9 2 7 4 ]").unwrap(), 5); // (4 + 7) / 2 = 5.5 -> 5
        assert_eq!(evaluate("[MED 3 8 1 ]").unwrap(), 3);
    }

    #[test]
    fn sum_is_taken_modulo_ten() {
        assert_eq!(evaluate("[SM 9 8 7 ]").unwrap(), 4); // 24 mod 10
        assert_eq!(evaluate("[SM 5 5 ]").unwrap(), 0);
    }

    #[test]
    fn nested_expressions_evaluate_inside_out() {
        // MAX(2, MIN(9, 3), SM(4, 8)) = MAX(2, 3, 2) = 3
        assert_eq!(evaluate("[MAX 2 [MIN 9 3 ] [SM 4 8 ] ]").unwrap(), 3);
        assert_eq!(evaluate("( ( ( [MAX 2 ) 9 ) ] )").unwrap(), 9);
    }

    #[test]
    fn source_format_wraps_every_pair_in_parentheses() {
        let e = Expr::Apply(Operator::Max, vec![Expr::Value(2), Expr::Value(9)]);
        assert_eq!(e.to_source(), "( ( ( [MAX 2 ) 9 ) ] )");
        assert_eq!(e.length(), 4);
    }

    #[test]
    fn malformed_expressions_are_errors() {
        for bad in ["", "[MAX 1 2", "1 2", "]", "[MAX ]", "[FOO 1 ]", "[MAX 10 ]"] {
            assert!(evaluate(bad).is_err(), "`{bad}` should not evaluate");
        }
    }

    #[test]
    fn generated_labels_agree_with_the_evaluator_on_10000_samples() {
        let config =
            GeneratorConfig { min_length: 10, max_length: 200, train: 10_000, validation: 0, test: 0, ..Default::default() };
        let [train, _, _] = generate_samples(&config, 11).unwrap();
        assert_eq!(train.len(), 10_000);
        for sample in &train {
            assert_eq!(evaluate(&sample.source).unwrap(), sample.target, "{}", sample.source);
        }
    }

    #[test]
    fn generated_trees_are_distinct_and_within_the_open_length_bounds() {
        let config =
            GeneratorConfig { min_length: 20, max_length: 60, train: 300, validation: 50, test: 50, ..Default::default() };
        let trees = generate(&config, 5).unwrap();
        assert_eq!(trees.len(), 400);
        let distinct: HashSet<_> = trees.iter().collect();
        assert_eq!(distinct.len(), 400);
        assert!(trees.iter().all(|t| t.length() > 20 && t.length() < 60));
        // Tokens: every operator and value becomes one token, and each `]` one more.
        for t in &trees {
            assert_eq!(tokenize(&t.to_source()).unwrap().len(), t.length());
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_data() {
        let config = GeneratorConfig { min_length: 10, max_length: 100, train: 50, validation: 5, test: 5, ..Default::default() };
        assert_eq!(generate_samples(&config, 3).unwrap(), generate_samples(&config, 3).unwrap());
        assert_ne!(generate_samples(&config, 3).unwrap()[0], generate_samples(&config, 4).unwrap()[0]);
    }

    #[test]
    fn tsv_round_trips() {
        let config = GeneratorConfig { min_length: 10, max_length: 100, train: 40, validation: 0, test: 0, ..Default::default() };
        let [samples, _, _] = generate_samples(&config, 9).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("basic_train.tsv");
        let mut file = std::fs::File::create(&path).unwrap();
        write_tsv(&mut file, &samples).unwrap();
        drop(file);
        assert_eq!(read_tsv(&path).unwrap(), samples);
    }

    #[test]
    fn malformed_tsv_lines_name_the_file_and_line() {
        let cases = [
            ("Source\tTarget\n[MAX 1 2 ]\t2\n[MAX 1 2 ]\n", 3, "2 tab-separated columns"),
            ("Source\tTarget\n[MAX 1 2 ]\t7\n", 2, "evaluates to 2"),
            ("Source\tTarget\n[MAX 1 2 ]\tx\n", 2, "Target"),
            ("Source\tTarget\n[MAX 1 2\t2\n", 2, "never closed"),
            ("Src\tT\n", 1, "header"),
        ];
        for (text, line, needle) in cases {
            let err = read_tsv_from(text.as_bytes(), Path::new("basic_val.tsv")).unwrap_err();
            let shown = err.to_string();
            assert!(shown.starts_with(&format!("basic_val.tsv:{line}: ")), "{shown}");
            assert!(shown.contains(needle), "{shown}");
        }
    }

    #[test]
    fn tokenizer_drops_parentheses_and_keeps_closing_brackets() {
        assert_eq!(
            tokenize("( ( ( [MAX 2 ) 9 ) ] )").unwrap(),
            vec![vocab::FIRST_OPERATOR + 1, vocab::FIRST_DIGIT + 2, vocab::FIRST_DIGIT + 9, vocab::CLOSE]
        );
        assert!(tokenize("[MAX 12 ]").is_err());
    }
}
