//! Synthetic stand-ins for the released Text, Retrieval and Image data, for when those
//! files are absent (no network, a quick test). Same shapes and vocabularies as the real
//! tasks, seeded, labelled by a rule that needs evidence from across the whole sequence.
//!
//! - **Text** (as IMDb bytes, vocabulary 257): a document of neutral filler words, exactly
//!   `length` bytes, with an odd number of sentiment words (positive: *good*, *superb*, ...;
//!   negative: *dull*, *boring*, ...) planted at uniformly random word positions. The
//!   label is the sentiment with more words (1 positive, 0 negative). The margin varies
//!   from one word to all of them, and the words are spread over the whole document, so
//!   the first tenth of it usually holds none or too few of them to decide.
//! - **Retrieval** (as AAN byte pairs): two documents of filler, each about a latent topic
//!   (one of 10: space, ocean, cooking, ...): it holds 3 or more words of its topic and
//!   fewer distractors, one word each from other topics (possibly the other document's
//!   topic). Label 1 when the two topics (each document's most frequent topic) are the
//!   same, 0 otherwise.
//! - **Image** (as CIFAR-10 gray, 32x32, vocabulary 256): one of 10 drawn shapes (disk,
//!   ring, square, square outline, triangle, plus, X, horizontal, vertical and diagonal
//!   stripes) at a random position and size, with random foreground and background
//!   intensities and Gaussian noise. The label is the shape's class.
//!
//! Every planted word replaces a filler word of the same byte length, so word lengths and
//! the document's length say nothing about the label. Labels are balanced exactly (a
//! shuffled round-robin), and each split comes from its own seeded stream, so changing
//! the size of one split leaves the others unchanged.

use std::ops::Range;

use crate::rng::SeededRng;
use crate::{DataError, Example, Splits, bytes, cifar};

/// The number of examples of each split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SplitSizes {
    pub train: usize,
    pub validation: usize,
    pub test: usize,
}

/// Shortest document: enough filler to hold the fewest planted words with room to spare.
pub const MIN_DOCUMENT_LENGTH: usize = 64;

/// Neutral words; none contains a sentiment or topic word (a test checks).
#[rustfmt::skip]
const FILLER: &[&str] = &[
    "the", "a", "of", "and", "to", "in", "was", "it", "that", "with", "as", "on", "for", "this",
    "his", "her", "they", "we", "one", "all", "film", "movie", "scene", "story", "actor", "actors",
    "camera", "plot", "script", "director", "cast", "role", "ending", "minute", "minutes",
    "character", "dialogue", "setting", "sequence", "studio", "picture", "version", "audience",
    "night", "house", "city", "letter", "window", "river", "morning", "evening", "between",
    "during", "after", "before", "around", "through", "toward", "behind", "then", "later", "while",
    "where", "which", "there", "their", "other", "another", "people", "family", "friend",
    "stranger", "village", "journey", "question", "answer", "moment", "chapter", "paper", "method",
    "result", "section", "figure", "table", "model", "study", "approach", "system", "small",
    "large", "first", "second", "third", "several", "usually", "perhaps", "almost", "little",
    "often", "about", "under", "above", "inside", "outside",
];

/// Planted words have 4 to 9 bytes; the lists below hold words of every such length, so
/// any filler word of those lengths can be replaced.
const PLANTABLE_LENGTHS: Range<usize> = 4..10;

/// Sentiment words by length (index = length - 4), two of each.
const POSITIVE: [[&str; 2]; 6] = [
    ["good", "fine"],
    ["great", "witty"],
    ["superb", "lovely"],
    ["amazing", "elegant"],
    ["splendid", "charming"],
    ["wonderful", "brilliant"],
];
const NEGATIVE: [[&str; 2]; 6] = [
    ["dull", "weak"],
    ["awful", "bland"],
    ["boring", "clumsy"],
    ["tedious", "painful"],
    ["dreadful", "terrible"],
    ["appalling", "pointless"],
];

/// Topic words by length (index = length - 4), one of each, for 10 topics.
#[rustfmt::skip]
const TOPICS: [[&str; 6]; 10] = [
    ["star", "comet", "planet", "gravity", "asteroid", "telescope"],
    ["reef", "whale", "harbor", "seaweed", "lobsters", "shipwreck"],
    ["oven", "flour", "recipe", "kitchen", "saucepan", "casserole"],
    ["drum", "piano", "violin", "trumpet", "symphony", "orchestra"],
    ["pill", "nurse", "doctor", "vaccine", "hospital", "treatment"],
    ["corn", "wheat", "cattle", "tractor", "farmland", "fertilize"],
    ["byte", "pixel", "kernel", "compile", "database", "algorithm"],
    ["goal", "coach", "soccer", "stadium", "football", "champions"],
    ["jury", "judge", "lawyer", "verdict", "evidence", "testimony"],
    ["rain", "storm", "breeze", "thunder", "blizzard", "hurricane"],
];

const TEXT_STREAM: u64 = 0x0073_745f_7465_7874; // "st_text"
const RETRIEVAL_STREAM: u64 = 0x7374_5f72_6574; // "st_ret"
const IMAGE_STREAM: u64 = 0x7374_5f69_6d67; // "st_img"
const SENTIMENT_STREAM: u64 = 0x0063_7075_5f74_7874; // "cpu_txt"
const TOPIC_PAIRS_STREAM: u64 = 0x0063_7075_5f72_6574; // "cpu_ret"

/// Generates the three splits, each from its own stream, with exactly balanced labels.
pub(crate) fn generate_splits(
    sizes: SplitSizes,
    seed: u64,
    stream: u64,
    classes: u32,
    mut example: impl FnMut(&mut SeededRng, u32) -> Result<Example, DataError>,
) -> Result<Splits, DataError> {
    let mut split = |index: u64, size: usize| -> Result<Vec<Example>, DataError> {
        let mut rng = SeededRng::new(seed, stream.wrapping_add(index));
        let mut labels: Vec<u32> = (0..size).map(|i| i as u32 % classes).collect();
        rng.shuffle(&mut labels);
        labels.into_iter().map(|label| example(&mut rng, label)).collect()
    };
    Ok(Splits { train: split(0, sizes.train)?, validation: split(1, sizes.validation)?, test: split(2, sizes.test)? })
}

fn check_length(task: &str, length: usize) -> Result<(), DataError> {
    if length < MIN_DOCUMENT_LENGTH {
        return Err(DataError::new(format!(
            "{task} stand-in: documents of {length} bytes are too short; at least {MIN_DOCUMENT_LENGTH}"
        )));
    }
    Ok(())
}

/// A document of filler words, and the byte ranges of its complete words that can take
/// a planted word.
struct Document {
    bytes: Vec<u8>,
    slots: Vec<Range<usize>>,
}

/// Filler words separated by single spaces, cut to exactly `length` bytes.
fn filler_document(rng: &mut SeededRng, length: usize) -> Document {
    let mut bytes = Vec::with_capacity(length + 16);
    let mut slots = Vec::new();
    while bytes.len() < length {
        if !bytes.is_empty() {
            bytes.push(b' ');
        }
        let word = rng.choose(FILLER).as_bytes();
        let start = bytes.len();
        bytes.extend_from_slice(word);
        if bytes.len() <= length && PLANTABLE_LENGTHS.contains(&word.len()) {
            slots.push(start..bytes.len());
        }
    }
    bytes.truncate(length);
    Document { bytes, slots }
}

/// A filler document with `count` distinct slots drawn uniformly from its plantable
/// words, in random order. Redraws the filler in the rare case it has too few slots.
fn document_with_slots(rng: &mut SeededRng, length: usize, count: usize) -> Result<(Vec<u8>, Vec<Range<usize>>), DataError> {
    const ATTEMPTS: usize = 100;
    for _ in 0..ATTEMPTS {
        let mut doc = filler_document(rng, length);
        if doc.slots.len() < count {
            continue;
        }
        // A partial Fisher-Yates shuffle: the first `count` slots are a uniform draw.
        for i in 0..count {
            let j = i + rng.below((doc.slots.len() - i) as u64) as usize;
            doc.slots.swap(i, j);
        }
        doc.slots.truncate(count);
        return Ok((doc.bytes, doc.slots));
    }
    Err(DataError::new(format!("stand-in: {length} bytes of filler never held {count} plantable words")))
}

/// Replaces the word at `slot` with `word`, which has the same length.
fn plant(document: &mut [u8], slot: &Range<usize>, word: &str) {
    document[slot.clone()].copy_from_slice(word.as_bytes());
}

/// The odd number of sentiment words of a text of `length` bytes: 3 to about one per 80 bytes.
fn sentiment_word_count(rng: &mut SeededRng, length: usize) -> usize {
    let most = (length / 80).max(3);
    let most_odd = if most.is_multiple_of(2) { most - 1 } else { most };
    3 + 2 * rng.below(((most_odd - 3) / 2 + 1) as u64) as usize
}

/// One text example: see the module documentation.
fn text_example(rng: &mut SeededRng, label: u32, length: usize) -> Result<Example, DataError> {
    let total = sentiment_word_count(rng, length);
    let minority = rng.below((total / 2 + 1) as u64) as usize; // 0 ..= (total - 1) / 2
    planted_text(rng, label, length, total, minority)
}

/// A document of `length` bytes with `total` sentiment words, `minority` of them of the
/// sentiment opposite to `label`.
fn planted_text(rng: &mut SeededRng, label: u32, length: usize, total: usize, minority: usize) -> Result<Example, DataError> {
    let (mut document, slots) = document_with_slots(rng, length, total)?;
    let (majority_words, minority_words) = if label == 1 { (&POSITIVE, &NEGATIVE) } else { (&NEGATIVE, &POSITIVE) };
    for (i, slot) in slots.iter().enumerate() {
        let words = if i < total - minority { majority_words } else { minority_words };
        let word: &&str = rng.choose(&words[slot.len() - 4]);
        plant(&mut document, slot, word);
    }
    Ok(Example { tokens: bytes::encode(&document, length), second: None, label })
}

/// Text stand-in: documents of exactly `length` bytes, label 1 when positive words
/// outnumber negative ones.
pub fn text(sizes: SplitSizes, length: usize, seed: u64) -> Result<Splits, DataError> {
    check_length("text", length)?;
    generate_splits(sizes, seed, TEXT_STREAM, 2, |rng, label| text_example(rng, label, length))
}

/// The difficulty of the CPU text task: how many sentiment words each document holds, and
/// by how many words at least the majority sentiment leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sentiment {
    pub words: usize,
    pub margin: usize,
}

/// At most one planted word per this many bytes: a document of filler holds about one
/// plantable word (4 to 9 bytes) per 9 bytes, so the draw of slots succeeds within its
/// attempts (a test draws thousands of the densest documents).
pub const BYTES_PER_PLANTED_WORD: usize = 12;

/// Refuses planted-word counts that a document of `length` bytes cannot hold.
fn check_planted(task: &str, setting: &str, words: usize, length: usize) -> Result<(), DataError> {
    check_length(task, length)?;
    let most = length / BYTES_PER_PLANTED_WORD;
    if words == 0 || words > most {
        return Err(DataError::new(format!(
            "{task}: {setting} {words} must be between 1 and {most} (one planted word per {BYTES_PER_PLANTED_WORD} bytes of \
             a {length}-byte document)"
        )));
    }
    Ok(())
}

impl Sentiment {
    /// Refuses a difficulty that cannot produce a valid task for documents of `length` bytes.
    pub fn check(&self, length: usize) -> Result<(), DataError> {
        check_planted("text", "words", self.words, length)?;
        if self.margin == 0 || self.margin > self.words {
            return Err(DataError::new(format!(
                "text: margin {} must be between 1 and words ({}): the majority leads by at most every planted word",
                self.margin, self.words
            )));
        }
        Ok(())
    }
}

/// The CPU text task: documents of exactly `length` bytes, each with `sentiment.words`
/// sentiment words planted at uniformly random word positions, the majority leading by
/// `sentiment.margin` words or more (every lead of that size or more with the parity of
/// `words` equally likely). Label 1 when positive words are the majority.
pub fn sentiment_text(sizes: SplitSizes, length: usize, seed: u64, sentiment: Sentiment) -> Result<Splits, DataError> {
    sentiment.check(length)?;
    let Sentiment { words, margin } = sentiment;
    // Leads with the parity of `words` (majority - minority = words - 2 * minority).
    // Never empty: the check keeps margin <= words, and a lead of all the words qualifies.
    let leads: Vec<usize> = (margin..=words).filter(|lead| (words - lead) % 2 == 0).collect();
    generate_splits(sizes, seed, SENTIMENT_STREAM, 2, |rng, label| {
        let lead = *rng.choose(&leads);
        planted_text(rng, label, length, words, (words - lead) / 2)
    })
}

/// The CPU retrieval task: pairs of documents of exactly `length` bytes, each about one of
/// the first `topics` topics and holding `words` words of it (drawn from the topic's six)
/// and no word of another topic. Label 1 when the two share their topic: neither
/// document alone says anything about the label, since the topics are uniform.
pub fn topic_pairs(sizes: SplitSizes, length: usize, seed: u64, topics: usize, words: usize) -> Result<Splits, DataError> {
    check_topic_pairs(length, topics, words)?;
    let document = |rng: &mut SeededRng, topic: usize| -> Result<Vec<u32>, DataError> {
        let (mut document, slots) = document_with_slots(rng, length, words)?;
        for slot in &slots {
            plant(&mut document, slot, TOPICS[topic][slot.len() - 4]);
        }
        Ok(bytes::encode(&document, length))
    };
    generate_splits(sizes, seed, TOPIC_PAIRS_STREAM, 2, |rng, label| {
        let first = rng.below(topics as u64) as usize;
        let second = if label == 1 { first } else { (first + 1 + rng.below(topics as u64 - 1) as usize) % topics };
        Ok(Example { tokens: document(rng, first)?, second: Some(document(rng, second)?), label })
    })
}

/// Refuses topic and word counts that [`topic_pairs`] cannot draw in `length` bytes.
pub fn check_topic_pairs(length: usize, topics: usize, words: usize) -> Result<(), DataError> {
    check_planted("retrieval", "words", words, length)?;
    if !(2..=TOPICS.len()).contains(&topics) {
        return Err(DataError::new(format!("retrieval: topics {topics} must be between 2 and {}", TOPICS.len())));
    }
    Ok(())
}

/// One retrieval document about `topic`: 3 to about one per 150 bytes of its words, and
/// fewer distractors from distinct other topics.
fn topic_document(rng: &mut SeededRng, topic: usize, length: usize) -> Result<Vec<u8>, DataError> {
    let most = (length / 150).max(3);
    let own = rng.range_inclusive(3, most as u64) as usize;
    let distractors = rng.below(own.min(TOPICS.len()) as u64) as usize; // < own, at most 9
    let mut others: Vec<usize> = (0..TOPICS.len()).filter(|&t| t != topic).collect();
    rng.shuffle(&mut others);
    let (mut document, slots) = document_with_slots(rng, length, own + distractors)?;
    for (i, slot) in slots.iter().enumerate() {
        let word_topic = if i < own { topic } else { others[i - own] };
        plant(&mut document, slot, TOPICS[word_topic][slot.len() - 4]);
    }
    Ok(document)
}

/// One retrieval example: label 1 when the two documents share their topic.
fn retrieval_example(rng: &mut SeededRng, label: u32, length: usize) -> Result<Example, DataError> {
    let first = rng.below(TOPICS.len() as u64) as usize;
    let second = if label == 1 { first } else { (first + 1 + rng.below(TOPICS.len() as u64 - 1) as usize) % TOPICS.len() };
    let document1 = topic_document(rng, first, length)?;
    let document2 = topic_document(rng, second, length)?;
    Ok(Example { tokens: bytes::encode(&document1, length), second: Some(bytes::encode(&document2, length)), label })
}

/// Retrieval stand-in: pairs of documents of exactly `length` bytes each, label 1 when
/// they are about the same topic.
pub fn retrieval(sizes: SplitSizes, length: usize, seed: u64) -> Result<Splits, DataError> {
    check_length("retrieval", length)?;
    generate_splits(sizes, seed, RETRIEVAL_STREAM, 2, |rng, label| retrieval_example(rng, label, length))
}

/// The 10 shape classes of the image stand-in, by label.
pub const SHAPE_NAMES: [&str; 10] = [
    "disk",
    "ring",
    "square",
    "square outline",
    "triangle",
    "plus",
    "x",
    "horizontal stripes",
    "vertical stripes",
    "diagonal stripes",
];

/// A shape's class, centre and half-size, in pixels.
#[derive(Debug, Clone, Copy)]
struct Shape {
    class: u32,
    center_x: f64,
    center_y: f64,
    half_size: f64,
}

const MIN_HALF_SIZE: f64 = 4.0;
const MAX_HALF_SIZE: f64 = 10.0;

fn sample_shape(rng: &mut SeededRng, class: u32) -> Shape {
    let half_size = MIN_HALF_SIZE + (MAX_HALF_SIZE - MIN_HALF_SIZE) * rng.unit();
    let side = cifar::SIDE as f64;
    // The whole shape inside the image.
    let center_x = half_size + (side - 2.0 * half_size) * rng.unit();
    let center_y = half_size + (side - 2.0 * half_size) * rng.unit();
    Shape { class, center_x, center_y, half_size }
}

/// Whether the pixel centre `(x, y)` lies on the shape.
fn covers(shape: &Shape, x: f64, y: f64) -> bool {
    let r = shape.half_size;
    let dx = x - shape.center_x;
    let dy = y - shape.center_y;
    let in_box = dx.abs() <= r && dy.abs() <= r;
    let stroke = (r / 4.0).max(1.0); // line thickness, so thin shapes stay visible
    let distance = (dx * dx + dy * dy).sqrt();
    let stripe = |coordinate: f64| in_box && (coordinate + r).rem_euclid(r / 1.5) < stroke;
    match shape.class {
        0 => distance <= r,
        1 => distance <= r && distance >= r - stroke,
        2 => in_box,
        3 => in_box && (dx.abs() >= r - stroke || dy.abs() >= r - stroke),
        // Apex at the top, base at the bottom: the half-width grows from 0 to r.
        4 => in_box && dx.abs() <= (dy + r) / 2.0,
        5 => in_box && (dx.abs() <= stroke / 2.0 + 0.5 || dy.abs() <= stroke / 2.0 + 0.5),
        6 => in_box && ((dx - dy).abs() <= stroke || (dx + dy).abs() <= stroke),
        7 => stripe(dy),
        8 => stripe(dx),
        _ => stripe((dx + dy) / std::f64::consts::SQRT_2),
    }
}

/// The noise-free mask of a shape, row by row.
fn mask(shape: &Shape) -> Vec<bool> {
    (0..cifar::PIXELS).map(|i| covers(shape, (i % cifar::SIDE) as f64 + 0.5, (i / cifar::SIDE) as f64 + 0.5)).collect()
}

fn image_example(rng: &mut SeededRng, label: u32) -> Example {
    let shape = sample_shape(rng, label);
    let background = rng.range_inclusive(0, 90) as f64;
    let foreground = rng.range_inclusive(140, 255) as f64;
    let noise = 4.0 + 12.0 * rng.unit();
    let tokens = mask(&shape)
        .into_iter()
        .map(|on| {
            let value = if on { foreground } else { background } + noise * rng.normal();
            value.round().clamp(0.0, 255.0) as u32
        })
        .collect();
    Example { tokens, second: None, label }
}

/// Image stand-in: 32x32 gray images of 10 shape classes, 1,024 tokens of 0-255.
pub fn image(sizes: SplitSizes, seed: u64) -> Result<Splits, DataError> {
    generate_splits(sizes, seed, IMAGE_STREAM, cifar::CLASSES, |rng, label| Ok(image_example(rng, label)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIZES: SplitSizes = SplitSizes { train: 200, validation: 40, test: 60 };

    fn words(tokens: &[u32]) -> Vec<String> {
        String::from_utf8(bytes::decode(tokens)).unwrap().split(' ').map(str::to_string).collect()
    }

    /// (positive, negative) sentiment words among `words`.
    fn sentiment_counts(words: &[String]) -> (usize, usize) {
        let count = |list: &[[&str; 2]; 6]| words.iter().filter(|w| list.iter().flatten().any(|s| s == w)).count();
        (count(&POSITIVE), count(&NEGATIVE))
    }

    /// The most frequent topic among `words`, `None` when there is no topic word or a tie.
    fn plurality_topic(words: &[String]) -> Option<usize> {
        let mut counts = [0usize; 10];
        for word in words {
            if let Some(topic) = TOPICS.iter().position(|t| t.contains(&word.as_str())) {
                counts[topic] += 1;
            }
        }
        let best = *counts.iter().max().unwrap();
        let winners: Vec<usize> = (0..10).filter(|&t| counts[t] == best).collect();
        (best > 0 && winners.len() == 1).then(|| winners[0])
    }

    fn all_examples(splits: &Splits) -> impl Iterator<Item = &Example> {
        splits.train.iter().chain(&splits.validation).chain(&splits.test)
    }

    fn assert_balanced(splits: &Splits, classes: u32) {
        for split in [&splits.train, &splits.validation, &splits.test] {
            let mut counts = vec![0usize; classes as usize];
            split.iter().for_each(|e| counts[e.label as usize] += 1);
            let (low, high) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
            assert!(high - low <= 1, "unbalanced labels {counts:?}");
        }
    }

    #[test]
    fn planted_words_never_occur_inside_other_words() {
        let listed: Vec<&str> = POSITIVE.iter().chain(&NEGATIVE).flatten().chain(TOPICS.iter().flatten()).copied().collect();
        for (i, word) in listed.iter().enumerate() {
            assert!(PLANTABLE_LENGTHS.contains(&word.len()), "{word}");
            for filler in FILLER {
                assert!(!filler.contains(word), "filler `{filler}` contains `{word}`");
            }
            for (j, other) in listed.iter().enumerate() {
                assert!(i == j || !other.contains(word), "`{other}` contains `{word}`");
            }
        }
        for (index, list) in POSITIVE.iter().chain(&NEGATIVE).enumerate() {
            assert!(list.iter().all(|w| w.len() == index % 6 + 4));
        }
        for topic in TOPICS {
            assert!(topic.iter().enumerate().all(|(i, w)| w.len() == i + 4));
        }
    }

    #[test]
    fn text_labels_are_balanced_and_decided_by_the_whole_document() {
        let splits = text(SIZES, 500, 1).unwrap();
        assert_balanced(&splits, 2);
        for example in all_examples(&splits) {
            assert_eq!(example.tokens.len(), 500);
            let (positive, negative) = sentiment_counts(&words(&example.tokens));
            assert!((positive + negative) % 2 == 1 && positive + negative >= 3);
            assert_eq!(example.label, (positive > negative) as u32);
        }
    }

    /// Property: judging by the sentiment words in the first 10 % of the bytes (a tie
    /// scored as a coin flip, 1/2) gets at most 75 % of the labels right, while the
    /// whole document gets all of them (previous test).
    #[test]
    fn the_first_tenth_of_a_text_does_not_decide_its_label() {
        let splits = text(SplitSizes { train: 1000, validation: 0, test: 0 }, 1000, 2).unwrap();
        let score: f64 = splits
            .train
            .iter()
            .map(|e| {
                let (positive, negative) = sentiment_counts(&words(&e.tokens[..100]));
                if positive == negative { 0.5 } else { ((positive > negative) as u32 == e.label) as u32 as f64 }
            })
            .sum();
        let accuracy = score / splits.train.len() as f64;
        assert!(accuracy <= 0.75, "the prefix decides {accuracy:.3} of the labels");
    }

    #[test]
    fn retrieval_labels_are_balanced_and_say_whether_the_topics_match() {
        let splits = retrieval(SIZES, 600, 3).unwrap();
        assert_balanced(&splits, 2);
        for example in all_examples(&splits) {
            let second = example.second.as_ref().unwrap();
            assert_eq!((example.tokens.len(), second.len()), (600, 600));
            let first_topic = plurality_topic(&words(&example.tokens)).unwrap();
            let second_topic = plurality_topic(&words(second)).unwrap();
            assert_eq!(example.label, (first_topic == second_topic) as u32);
        }
    }

    /// Property: comparing the most frequent topics of the two documents' first 10 %
    /// (undecided, scored 1/2, when either prefix has no topic word or a tie) gets at
    /// most 75 % of the labels right, while the whole documents get all of them.
    #[test]
    fn the_first_tenth_of_two_documents_does_not_decide_their_label() {
        let splits = retrieval(SplitSizes { train: 1000, validation: 0, test: 0 }, 1000, 4).unwrap();
        let score: f64 = splits
            .train
            .iter()
            .map(|e| {
                let first = plurality_topic(&words(&e.tokens[..100]));
                let second = plurality_topic(&words(&e.second.as_ref().unwrap()[..100]));
                match (first, second) {
                    (Some(a), Some(b)) => ((a == b) as u32 == e.label) as u32 as f64,
                    _ => 0.5,
                }
            })
            .sum();
        let accuracy = score / splits.train.len() as f64;
        assert!(accuracy <= 0.75, "the prefixes decide {accuracy:.3} of the labels");
    }

    #[test]
    fn images_are_balanced_over_ten_classes_of_1024_gray_pixels() {
        let splits = image(SIZES, 5).unwrap();
        assert_balanced(&splits, 10);
        for example in all_examples(&splits) {
            assert_eq!(example.tokens.len(), cifar::PIXELS);
            assert!(example.tokens.iter().all(|&t| t < cifar::VOCAB_SIZE as u32));
        }
    }

    #[test]
    fn every_shape_class_draws_a_distinct_nonempty_mask() {
        let masks: Vec<Vec<bool>> =
            (0..10).map(|class| mask(&Shape { class, center_x: 16.0, center_y: 16.0, half_size: 8.0 })).collect();
        for (i, a) in masks.iter().enumerate() {
            assert!(a.iter().any(|&on| on), "{} draws nothing", SHAPE_NAMES[i]);
            for (j, b) in masks.iter().enumerate().skip(i + 1) {
                assert_ne!(a, b, "{} and {} draw the same mask", SHAPE_NAMES[i], SHAPE_NAMES[j]);
            }
        }
    }

    /// Property: for at least half of the sampled shapes, the first 10 % of the pixels
    /// (the top three rows and a bit) hold none of the shape, only background and noise.
    #[test]
    fn the_first_tenth_of_an_image_usually_holds_none_of_the_shape() {
        let mut rng = SeededRng::new(6, 0);
        let prefix = cifar::PIXELS / 10;
        let samples = 1000;
        let blank =
            (0..samples).filter(|i| !mask(&sample_shape(&mut rng, *i as u32 % 10))[..prefix].iter().any(|&on| on)).count();
        assert!(blank * 2 >= samples, "only {blank} of {samples} prefixes are blank");
    }

    #[test]
    fn the_same_seed_gives_the_same_data_and_splits_are_independent() {
        assert_eq!(text(SIZES, 200, 7).unwrap(), text(SIZES, 200, 7).unwrap());
        assert_ne!(text(SIZES, 200, 7).unwrap().train, text(SIZES, 200, 8).unwrap().train);
        assert_eq!(retrieval(SIZES, 200, 7).unwrap(), retrieval(SIZES, 200, 7).unwrap());
        assert_eq!(image(SIZES, 7).unwrap(), image(SIZES, 7).unwrap());
        assert_ne!(image(SIZES, 7).unwrap().test, image(SIZES, 8).unwrap().test);
        // A larger training split leaves validation and test as they were.
        let bigger = SplitSizes { train: 300, ..SIZES };
        let (a, b) = (image(SIZES, 7).unwrap(), image(bigger, 7).unwrap());
        assert_eq!((a.validation, a.test), (b.validation, b.test));
    }

    #[test]
    fn cpu_text_holds_its_words_and_the_majority_leads_by_the_margin() {
        let sentiment = Sentiment { words: 9, margin: 3 };
        let splits = sentiment_text(SIZES, 128, 11, sentiment).unwrap();
        assert_balanced(&splits, 2);
        let mut leads = std::collections::BTreeSet::new();
        for example in all_examples(&splits) {
            assert_eq!(example.tokens.len(), 128);
            let (positive, negative) = sentiment_counts(&words(&example.tokens));
            assert_eq!(positive + negative, 9);
            assert_eq!(example.label, (positive > negative) as u32);
            leads.insert(positive.abs_diff(negative));
        }
        // Every lead from the margin up with the parity of the count occurs.
        assert_eq!(leads.into_iter().collect::<Vec<_>>(), vec![3, 5, 7, 9]);
    }

    #[test]
    fn cpu_text_refuses_a_margin_or_count_that_cannot_be_planted() {
        let error =
            |words, margin, length| sentiment_text(SIZES, length, 0, Sentiment { words, margin }).unwrap_err().to_string();
        assert!(error(9, 10, 128).contains("margin 10"), "{}", error(9, 10, 128));
        assert!(error(9, 0, 128).contains("margin 0"));
        assert!(error(0, 0, 128).contains("words 0"));
        assert!(error(12, 1, 143).contains("between 1 and 11"), "{}", error(12, 1, 143));
        // The densest documents allowed are drawn without running out of slots.
        let dense = SplitSizes { train: 2000, validation: 0, test: 0 };
        assert!(sentiment_text(dense, 64, 3, Sentiment { words: 5, margin: 1 }).is_ok());
        assert!(sentiment_text(dense, 143, 3, Sentiment { words: 11, margin: 1 }).is_ok());
        // An even count with an odd margin leads by the next even number.
        let splits = sentiment_text(SIZES, 128, 1, Sentiment { words: 8, margin: 1 }).unwrap();
        for example in all_examples(&splits) {
            let (positive, negative) = sentiment_counts(&words(&example.tokens));
            assert!(positive.abs_diff(negative) >= 2);
        }
    }

    #[test]
    fn cpu_retrieval_pairs_share_their_topic_exactly_when_labelled_so() {
        let splits = topic_pairs(SIZES, 128, 12, 4, 3).unwrap();
        assert_balanced(&splits, 2);
        let mut first_topics = [0usize; 10];
        for example in all_examples(&splits) {
            let documents = [words(&example.tokens), words(example.second.as_ref().unwrap())];
            let topics = documents.map(|document| {
                let found: Vec<usize> =
                    document.iter().filter_map(|word| TOPICS.iter().position(|topic| topic.contains(&word.as_str()))).collect();
                assert_eq!(found.len(), 3, "{document:?}");
                assert!(found.iter().all(|&t| t == found[0] && t < 4));
                found[0]
            });
            first_topics[topics[0]] += 1;
            assert_eq!(example.label, (topics[0] == topics[1]) as u32);
        }
        // Only the first four topics, each of them used.
        assert!(first_topics[..4].iter().all(|&c| c > 0) && first_topics[4..].iter().all(|&c| c == 0));
        assert!(topic_pairs(SIZES, 128, 0, 1, 3).unwrap_err().to_string().contains("topics 1"));
        assert!(topic_pairs(SIZES, 128, 0, 4, 11).unwrap_err().to_string().contains("words 11"));
    }

    #[test]
    fn too_short_documents_are_an_error() {
        assert!(text(SIZES, MIN_DOCUMENT_LENGTH - 1, 0).is_err());
        assert!(retrieval(SIZES, 10, 0).is_err());
        let shortest = retrieval(SplitSizes { train: 50, validation: 0, test: 0 }, MIN_DOCUMENT_LENGTH, 0).unwrap();
        assert!(shortest.train.iter().all(|e| e.tokens.len() == MIN_DOCUMENT_LENGTH));
    }
}
